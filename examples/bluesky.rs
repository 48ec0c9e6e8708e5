//! Refreshes a Bluesky / AT Protocol session (`com.atproto.server.refreshSession`).
//!
//! Against an embedded mock PDS (the default, no network needed):
//!
//! ```text
//! cargo run --example bluesky
//! ```
//!
//! Against a real PDS, with the `refreshJwt` of a session you created:
//!
//! ```text
//! BSKY_PDS_URL=https://bsky.social BSKY_REFRESH_JWT=eyJ... cargo run --example bluesky
//! ```
//!
//! It prints the account's handle and DID; tokens print as `[redacted]`.
//! Refresh JWTs rotate: the one you pass keeps working for at most 2 hours more.

use std::process::ExitCode;

// The ready-made route: the refresh JWT goes as `Authorization: Bearer`, the
// request has no body. Declared, it is three lines:
// #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
//                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
// struct RefreshSession;
use refresh_endpoint::providers::atproto::{AtpSession, RefreshSession};
use refresh_endpoint::{Client, Error, Secret};
use refresh_endpoint_testkit::AtprotoMock;

async fn refresh(pds_url: &str, refresh_jwt: &Secret) -> Result<AtpSession, Error> {
    let client = Client::new(pds_url)?;
    RefreshSession.send(&client, refresh_jwt).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match (env("BSKY_PDS_URL"), env("BSKY_REFRESH_JWT")) {
        (Some(url), Some(jwt)) => {
            println!("mode: real PDS at {url}");
            refresh(&url, &Secret::from(jwt)).await
        }
        (None, None) => {
            let pds = AtprotoMock::start().await;
            let alice = pds.create_account("alice.test");
            println!("mode: embedded mock PDS at {}", pds.url());
            refresh(&pds.url(), &Secret::from(alice.refresh_jwt)).await
        }
        _ => {
            eprintln!("set both BSKY_PDS_URL and BSKY_REFRESH_JWT, or neither (for the mock)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(session) => {
            println!("handle:      {}", session.handle);
            println!("DID:         {}", session.did);
            println!("access JWT:  {}", session.access_jwt);
            println!("refresh JWT: {}", session.refresh_jwt);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("refresh failed: {error}");
            if error.is_terminal() {
                eprintln!("terminal: forget the stored tokens, sign in again");
            } else if error.is_retryable() {
                eprintln!("retryable: keep the tokens, try again later");
            }
            ExitCode::FAILURE
        }
    }
}

/// An environment variable, if it is set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
