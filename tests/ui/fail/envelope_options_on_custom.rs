use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

struct MyEnvelope;

#[refresh_endpoint(path = "/token", envelope = MyEnvelope(code = "error"), response = TokenResponse)]
struct Refresh;

fn main() {
    let _ = Refresh;
    let _ = Secret::new("");
}
