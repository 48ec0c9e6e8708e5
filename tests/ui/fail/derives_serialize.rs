use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
#[derive(Debug, serde::Serialize)]
struct Refresh {
    client_id: String,
}

fn main() {
    let _ = Refresh { client_id: String::new() };
}
