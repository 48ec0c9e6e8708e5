use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", envelope = oauth2(terminal = "bad_refresh_token"), response = TokenResponse)]
struct Refresh;

fn main() {
    let _ = Refresh;
    let _ = Secret::new("");
}
