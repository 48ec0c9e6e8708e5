use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = body, fields(refresh_token = "x"), response = TokenResponse)]
struct Refresh {
    #[refresh_token]
    refresh_token: Secret,
}

fn main() {
    let _ = Refresh { refresh_token: Secret::new("") };
}
