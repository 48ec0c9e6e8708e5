use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/session/refresh", auth = refresh_bearer, response = Token)]
struct Refresh {
    #[refresh_token]
    refresh_token: Secret,
}

fn main() {
    let _ = Refresh { refresh_token: Secret::new("r") };
}
