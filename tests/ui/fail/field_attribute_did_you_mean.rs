use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = body, response = TokenResponse)]
struct Refresh {
    #[refresh_tokn]
    refresh_token: Secret,
}

fn main() {
    let _ = Refresh { refresh_token: Secret::new("") };
}
