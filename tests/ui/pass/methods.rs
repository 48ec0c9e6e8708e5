//! Each HTTP method; GET, DELETE and friends without a body.
#![deny(warnings)]

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::reqwest::Method;
use refresh_endpoint::{Endpoint, refresh_endpoint};

#[refresh_endpoint(path = "/token", method = GET, response = Token)]
struct Get {
    #[query]
    client_id: String,
}

#[refresh_endpoint(path = "/token", method = POST, response = Token)]
struct Post {
    client_id: String,
}

#[refresh_endpoint(path = "/token", method = PUT, response = Token)]
struct Put {
    client_id: String,
}

#[refresh_endpoint(path = "/token", method = PATCH, body = form, response = Token)]
struct Patch {
    client_id: String,
}

#[refresh_endpoint(path = "/sessions/{id}", method = DELETE, response = Token)]
struct Delete {
    #[path]
    id: u64,
}

fn main() {
    assert_eq!(Get::METHOD, Method::GET);
    assert_eq!(Post::METHOD, Method::POST);
    assert_eq!(Put::METHOD, Method::PUT);
    assert_eq!(Patch::METHOD, Method::PATCH);
    assert_eq!(Delete::METHOD, Method::DELETE);
    let get = Get { client_id: "c".into() };
    assert!(get.body().unwrap().is_none());
    let _ = Post { client_id: "c".into() }.body();
    let _ = Put { client_id: "c".into() }.body();
    let _ = Patch { client_id: "c".into() }.body();
    assert!(Delete { id: 1 }.body().unwrap().is_none());
    let _ = (Get::send, Post::send, Put::send, Patch::send, Delete::send);
}
