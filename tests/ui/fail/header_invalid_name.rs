use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
struct Refresh {
    #[header("Bad Name")]
    api_version: String,
}

fn main() {
    let _ = Refresh { api_version: String::new() };
}
