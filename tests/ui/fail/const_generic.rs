use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
struct Refresh<const N: usize> {
    ids: [u32; N],
}

fn main() {
    let _ = Refresh { ids: [1, 2] };
}
