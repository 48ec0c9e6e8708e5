use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", method = GET, response = Token)]
struct Refresh {
    #[query(grant_type)]
    grant: String,
}

fn main() {
    let _ = Refresh { grant: String::new() };
}
