use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint]
struct Refresh;

fn main() {
    let _ = Refresh;
}
