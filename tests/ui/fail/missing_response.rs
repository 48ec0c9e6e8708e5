use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh")]
struct Refresh;

fn main() {
    let _ = Refresh;
}
