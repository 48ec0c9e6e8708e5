use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[derive(serde::Serialize)]
struct Client {
    client_id: String,
    client_secret: String,
}

#[refresh_endpoint(path = "/oauth/token", body = form, response = Token)]
struct Refresh {
    grant_type: String,
    #[serde(flatten)]
    client: Client,
}

fn main() {
    let _ = Refresh {
        grant_type: String::new(),
        client: Client {
            client_id: String::new(),
            client_secret: String::new(),
        },
    };
}
