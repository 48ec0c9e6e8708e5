//! A crate-root `mod refresh_endpoint` next to the extern crate of the same
//! name: the user reaches the runtime as `::refresh_endpoint`, and so does the
//! generated code.
#![deny(warnings)]

mod refresh_endpoint {
    pub struct Secret;
    pub struct Client;
    pub struct Error;
    pub mod __private {}
    pub mod auth {}
    pub mod envelope {}
}

use ::refresh_endpoint::providers::cloudreve::Token;

#[::refresh_endpoint::refresh_endpoint(path = "/sessions/{id}/refresh", auth = body,
                                       envelope = code_msg_data, body = form, response = Token)]
struct Refresh {
    #[path]
    id: u32,
    #[query]
    device: u8,
    #[header("X-Trace")]
    trace: bool,
    #[refresh_token]
    refresh_token: ::refresh_endpoint::Secret,
}

fn main() {
    let request = Refresh {
        id: 1,
        device: 2,
        trace: true,
        refresh_token: ::refresh_endpoint::Secret::new("r"),
    };
    let _ = &request;
    let _ = Refresh::send;
    let _ = Refresh::send_blocking;
    let _ = (
        refresh_endpoint::Secret,
        refresh_endpoint::Client,
        refresh_endpoint::Error,
    );
}
