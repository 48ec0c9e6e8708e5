use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/session/refresh", auth = body, response = Token)]
struct Refresh {
    #[refresh_token]
    refresh_token: Secret,
    #[refresh_token]
    old_refresh_token: Secret,
}

fn main() {
    let _ = Refresh {
        refresh_token: Secret::new("a"),
        old_refresh_token: Secret::new("b"),
    };
}
