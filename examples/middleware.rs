//! A session in a `reqwest-middleware` stack: `ClientWithMiddleware` with
//! `reqwest-retry` for transient failures, and the session's middleware
//! adding the access token (refreshed, and the request replayed once, when
//! the API says it expired).
//!
//! Against an embedded mock PDS, no setup needed:
//!
//! ```text
//! cargo run -p refresh-endpoint --features middleware --example middleware
//! ```

use std::time::{Duration, SystemTime};

use refresh_endpoint::middleware::SessionMiddleware;
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, atproto};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    // An access token that expired an hour ago, as one saved yesterday would be.
    let stale = pds.mint_access_token(&alice.did, SystemTime::now() - Duration::from_secs(3600));
    println!("mode: embedded mock PDS at {}", pds.url());

    let client = Client::new(pds.url())?;
    let session = Session::builder(client.clone(), RefreshSession)
        .tokens(Tokens::new(stale, alice.refresh_jwt.as_str()))
        .build()
        .await?;

    // Outermost first: retries wrap the session, so a retried request asks
    // the session again and never causes a second refresh for one expiry.
    // The session's own reqwest client follows no redirect by itself.
    let retry = ExponentialBackoff::builder().build_with_max_retries(3);
    let http = reqwest_middleware::ClientBuilder::new(client.http().clone())
        .with(RetryTransientMiddleware::new_with_policy(retry))
        .with(SessionMiddleware::new(session.clone()))
        .build();

    let mut answer = http
        .get(format!("{}{}", pds.url(), atproto::GET_SESSION_ROUTE))
        .send()
        .await?;
    println!("status:    {}", answer.status());
    let mut bytes = 0;
    while let Some(chunk) = answer.chunk().await? {
        bytes += chunk.len(); // the body streams, chunk by chunk
    }
    println!("body:      {bytes} bytes");
    println!("refreshes: {}", pds.refresh_count());
    Ok(())
}
