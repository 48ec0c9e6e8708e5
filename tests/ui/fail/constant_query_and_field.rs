use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", query(realm = "a"), response = TokenResponse)]
struct Refresh {
    #[query]
    realm: String,
}

fn main() {
    let _ = Refresh { realm: String::new() };
    let _ = Secret::new("");
}
