use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Tokens)]
struct Refresh;

fn main() {
    let _ = Refresh;
}
