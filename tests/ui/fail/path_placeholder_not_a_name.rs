use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/sessions/{session-id}/refresh", response = Token)]
struct Refresh {
    #[path]
    session_id: String,
}

fn main() {
    let _ = Refresh { session_id: String::new() };
}
