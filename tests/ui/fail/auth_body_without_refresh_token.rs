use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", auth = body, response = Token)]
struct Refresh {
    client_id: String,
}

fn main() {
    let _ = Refresh { client_id: String::new() };
}
