use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "sessions/{id}/refresh", method = Post, envelope = jsend, response = Token)]
struct Refresh {
    #[path]
    id: String,
}

fn main() {
    let _ = Refresh { id: String::new() };
}
