//! `crate = path` for code that reaches the runtime through a re-export.
#![deny(warnings)]

mod reexport {
    pub use ::refresh_endpoint as re;
}

use reexport::re;

#[re::refresh_endpoint(crate = reexport::re, path = "/session/refresh", auth = body,
                       envelope = code_msg_data, response = re::providers::cloudreve::Token)]
struct Refresh {
    #[refresh_token]
    refresh_token: re::Secret,
    client_id: &'static str,
}

#[re::refresh_endpoint(crate = "reexport::re", path = "/token",
                       response = re::providers::oauth2::TokenResponse)]
struct Quoted;

fn main() {
    let request = Refresh {
        refresh_token: re::Secret::new("r"),
        client_id: "c",
    };
    let _ = &request;
    let _ = Refresh::send;
    let _ = <Quoted as re::Endpoint>::NAME;
    let _ = Quoted;
}
