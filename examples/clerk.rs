//! Refreshes a Clerk session from a backend (`POST /v1/sessions/{session_id}/refresh`).
//!
//! Against an embedded mock Clerk Backend API (the default, no network needed):
//!
//! ```text
//! cargo run --example clerk
//! ```
//!
//! Against Clerk, with your instance's secret key and a user's session cookies
//! (`__session` is the expired session JWT, `__refresh` the refresh token):
//!
//! ```text
//! CLERK_SECRET_KEY=sk_test_... CLERK_SESSION_ID=sess_... CLERK_SESSION_JWT=eyJ... \
//! CLERK_REFRESH_TOKEN=... CLERK_REQUEST_ORIGIN=https://app.example.com \
//! cargo run --example clerk
//! ```
//!
//! `CLERK_API_URL` overrides `https://api.clerk.com`. It prints the kind of
//! object Clerk answered with; tokens print as `[redacted]`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use refresh_endpoint::providers::clerk::{Format, SessionRefresh};
use refresh_endpoint::{Client, Error, Secret, refresh_endpoint};
use refresh_endpoint_testkit::ClerkMock;

/// The instance's secret key is the bearer token; the user's tokens go in the
/// JSON body with the fields the official SDKs send (`format`,
/// `request_headers`, `request_originating_ip`) and their
/// `Clerk-API-Version`. A 401 means the session is over.
#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer, envelope = clerk,
                   header("Clerk-API-Version" = "2025-11-10"), response = SessionRefresh)]
struct RefreshSession {
    #[path]
    session_id: String,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
    format: Format,
    request_headers: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_originating_ip: Option<String>,
}

/// What a refresh needs: where, the secret key, and the user's session.
struct Setup {
    api_url: String,
    secret_key: Secret,
    session_id: String,
    session_jwt: Secret,
    refresh_token: Secret,
    request_origin: String,
}

async fn refresh(setup: Setup) -> Result<SessionRefresh, Error> {
    let client = Client::builder(&setup.api_url)
        .secret(setup.secret_key)
        .build()?;
    // The ready-made `providers::clerk::RefreshSession` is the same route.
    let endpoint = RefreshSession {
        session_id: setup.session_id,
        expired_token: setup.session_jwt,
        refresh_token: setup.refresh_token,
        request_origin: setup.request_origin,
        format: Format::Token,
        request_headers: BTreeMap::from([(
            "user-agent".into(),
            vec!["refresh-endpoint-example".into()],
        )]),
        request_originating_ip: None,
    };
    endpoint.send(&client).await
}

#[tokio::main]
async fn main() -> ExitCode {
    const NAMES: [&str; 5] = [
        "CLERK_SECRET_KEY",
        "CLERK_SESSION_ID",
        "CLERK_SESSION_JWT",
        "CLERK_REFRESH_TOKEN",
        "CLERK_REQUEST_ORIGIN",
    ];
    let values = NAMES.map(env);
    let result = if let [
        Some(key),
        Some(id),
        Some(jwt),
        Some(refresh_token),
        Some(origin),
    ] = values
    {
        let api_url = env("CLERK_API_URL").unwrap_or_else(|| "https://api.clerk.com".into());
        println!("mode: real Clerk Backend API at {api_url}");
        refresh(Setup {
            api_url,
            secret_key: key.into(),
            session_id: id,
            session_jwt: jwt.into(),
            refresh_token: refresh_token.into(),
            request_origin: origin,
        })
        .await
    } else if values.iter().all(Option::is_none) {
        let clerk = ClerkMock::start().await;
        let session = clerk.create_session("alice");
        println!("mode: embedded mock Clerk Backend API at {}", clerk.url());
        refresh(Setup {
            api_url: clerk.url(),
            secret_key: clerk.secret_key().into(),
            session_id: session.session_id,
            session_jwt: session.session_jwt.into(),
            refresh_token: session.refresh_token.into(),
            request_origin: "https://app.example.com".into(),
        })
        .await
    } else {
        eprintln!("set all of {}, or none (for the mock)", NAMES.join(", "));
        return ExitCode::from(2);
    };
    match result {
        Ok(SessionRefresh::Token { jwt }) => {
            println!("object:      token");
            println!("session JWT: {jwt}");
            ExitCode::SUCCESS
        }
        Ok(other) => {
            println!("object:      {other:?}");
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
