use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

struct ApiKey;

#[refresh_endpoint(path = "/session/refresh", auth = ApiKey, response = Token)]
struct Refresh;

fn main() {
    let _ = (Refresh, ApiKey);
}
