use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", response = Token)]
enum Refresh {
    Web,
    Mobile,
}

fn main() {
    let _ = [Refresh::Web, Refresh::Mobile];
}
