//! Borrowed fields: the struct keeps its lifetime.
#![deny(warnings)]

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Endpoint, refresh_endpoint};

#[refresh_endpoint(path = "/users/{user}/token", response = Token)]
struct Refresh<'a> {
    #[path]
    user: &'a str,
    #[query]
    scope: &'a str,
    #[header("X-Device")]
    device: &'a str,
    client_id: &'a str,
}

#[refresh_endpoint(path = "/token", body = form, response = Token)]
struct Two<'a, 'b: 'a> {
    a: &'a str,
    b: &'b str,
}

fn main() {
    let user = String::from("u");
    let request = Refresh {
        user: &user,
        scope: "all",
        device: "d",
        client_id: "c",
    };
    let _ = Refresh::send;
    let _ = <Refresh<'_> as Endpoint>::METHOD;
    let _ = &request;
    let two = Two { a: "a", b: "b" };
    let _ = Two::send;
    let _ = &two;
}
