use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", auth = body, response = Token)]
struct Refresh {
    #[refresh_token]
    refresh_token: String,
}

fn main() {
    let _ = Refresh { refresh_token: String::new() };
}
