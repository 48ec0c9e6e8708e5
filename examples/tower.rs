//! A session as a tower layer over a hyper-util client: the same layer fits
//! tonic channels and any service of `http::Request`.
//!
//! Against an embedded mock PDS, no setup needed:
//!
//! ```text
//! cargo run -p refresh-endpoint --features tower --example tower
//! ```

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::tower::SessionLayer;
use refresh_endpoint::{Client, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, atproto};
use tower::{Layer, ServiceExt};

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    // An access token that expired an hour ago, as one saved yesterday would be.
    let stale = pds.mint_access_token(&alice.did, SystemTime::now() - Duration::from_secs(3600));
    println!("mode: embedded mock PDS at {}", pds.url());

    let session = Session::builder(Client::new(pds.url())?, RefreshSession)
        .tokens(Tokens::new(stale, alice.refresh_jwt.as_str()))
        .build()
        .await?;

    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let api = SessionLayer::new(session).layer(hyper);

    let request = http::Request::get(format!("{}{}", pds.url(), atproto::GET_SESSION_ROUTE))
        .body(Full::default())?;
    let answer = api.oneshot(request).await?;
    println!("status:    {}", answer.status());
    let mut body = answer.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len(); // the body streams, frame by frame
        }
    }
    println!("body:      {bytes} bytes");
    println!("refreshes: {}", pds.refresh_count());
    Ok(())
}
