use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = basic, body = yaml, response = TokenResponse)]
#[derive(Default)]
struct Refresh {
    #[refresh_token]
    refresh_token: Secret,
}

async fn refresh(client: &refresh_endpoint::Client) -> Result<TokenResponse, refresh_endpoint::Error> {
    Refresh::default().send(client).await
}

fn main() {
    let _ = refresh;
}
