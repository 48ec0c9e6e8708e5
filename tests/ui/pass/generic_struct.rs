//! Type parameters get `Serialize` bounds on the generated impls.
#![deny(warnings)]

use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Endpoint, refresh_endpoint};

#[refresh_endpoint(path = "/token", response = TokenResponse)]
struct R<T> {
    #[query]
    q: T,
    body: T,
}

#[refresh_endpoint(path = "/token/{id}", body = form, response = TokenResponse)]
struct Bounded<I: Copy, S>
where
    S: AsRef<str>,
{
    #[path]
    id: I,
    name: S,
}

fn main() {
    let request = R { q: 1u8, body: 2u8 };
    let _ = <R<u8> as Endpoint>::NAME;
    let _ = R::<u8>::send;
    let _ = &request;
    let bounded = Bounded { id: 3u32, name: "n" };
    let _ = Bounded::<u32, &str>::send;
    let _ = &bounded;
}
