use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/oauth/token", body = form, response = Token)]
struct Refresh {
    client_id: String,
    scopes: Vec<String>,
}

fn main() {
    let _ = Refresh {
        client_id: String::new(),
        scopes: Vec::new(),
    };
}
