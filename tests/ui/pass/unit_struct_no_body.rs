//! A unit struct sends no body and no `Serialize` derive is needed.
#![deny(warnings)]

use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::{Endpoint, refresh_endpoint};

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession", auth = refresh_bearer,
                   envelope = xrpc, response = AtpSession)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RefreshSession;

#[refresh_endpoint(path = "/ping/{id}", response = AtpSession)]
#[derive(Debug)]
struct OnlyPath {
    #[path]
    id: u32,
}

fn main() {
    assert!(RefreshSession.body().unwrap().is_none());
    assert!(!RefreshSession::CARRIES_REFRESH_TOKEN);
    assert_eq!(RefreshSession::NAME, "RefreshSession");
    let _ = RefreshSession::send;
    assert!(OnlyPath { id: 1 }.body().unwrap().is_none());
    let _ = OnlyPath::send;
}
