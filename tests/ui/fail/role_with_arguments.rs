use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/sessions/{id}", response = Token)]
struct Refresh {
    #[path("session_id")]
    id: String,
}

fn main() {
    let _ = Refresh { id: String::new() };
}
