//! A documented `pub` endpoint in a crate that denies missing docs: the
//! generated `send` and `send_blocking` carry their own docs.
#![deny(warnings, missing_docs)]

use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::{Secret, refresh_endpoint};

/// `com.atproto.server.refreshSession`.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
pub struct RefreshSession;

/// A documented endpoint with documented fields.
#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = refresh_endpoint::providers::cloudreve::Token)]
pub struct CloudreveRefresh {
    /// The refresh token.
    #[refresh_token]
    pub refresh_token: Secret,
}

/// Keeps the endpoints used.
pub fn endpoints() {
    let _ = RefreshSession::send;
    let _ = RefreshSession::send_blocking;
    let _ = CloudreveRefresh::send;
    let _ = CloudreveRefresh {
        refresh_token: Secret::new("r"),
    };
}

fn main() {
    endpoints();
    let _ = RefreshSession;
}
