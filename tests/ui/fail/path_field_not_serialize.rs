use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

struct Session {
    id: u32,
}

#[refresh_endpoint(path = "/sessions/{session}", response = Token)]
struct Refresh {
    #[path]
    session: Session,
}

fn main() {
    let _ = Refresh { session: Session { id: 1 } }.session.id;
}
