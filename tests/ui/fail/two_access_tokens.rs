use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/session/refresh", auth = bearer, response = Token)]
struct Refresh {
    #[access_token]
    access_token: Secret,
    #[access_token]
    expired_token: Secret,
}

fn main() {
    let _ = Refresh {
        access_token: Secret::new("a"),
        expired_token: Secret::new("b"),
    };
}
