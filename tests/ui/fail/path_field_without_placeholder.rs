use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
struct Refresh {
    #[path]
    session: String,
}

fn main() {
    let _ = Refresh { session: String::new() };
}
