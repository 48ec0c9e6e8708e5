use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = body, response = TokenResponse)]
struct Refresh {
    #[refresh_token]
    refresh_token: Secret,
    #[access_token]
    expired_token: Option<String>,
}

fn main() {
    let _ = Refresh { refresh_token: Secret::new(""), expired_token: None };
}
