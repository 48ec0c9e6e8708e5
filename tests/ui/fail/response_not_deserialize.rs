use refresh_endpoint::refresh_endpoint;

struct Session {
    token: String,
}

#[refresh_endpoint(path = "/session/refresh", response = Session)]
struct Refresh;

fn main() {
    let _ = |s: Session| s.token;
}
