use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = basic("X-Key"), response = TokenResponse)]
struct Refresh;

fn main() {
    let _ = Refresh;
    let _ = Secret::new("");
}
