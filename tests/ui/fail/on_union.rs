use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
union Refresh {
    id: u32,
    flags: f32,
}

fn main() {
    let _ = Refresh { id: 1 };
}
