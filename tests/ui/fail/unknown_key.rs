use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", timeout = 30, response = Token)]
struct Refresh;

fn main() {
    let _ = Refresh;
}
