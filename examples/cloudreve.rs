//! Refreshes a Cloudreve v4 token pair (`POST /api/v4/session/token/refresh`).
//!
//! Against an embedded mock Cloudreve (the default, no network needed):
//!
//! ```text
//! cargo run --example cloudreve
//! ```
//!
//! Against a real Cloudreve v4 server, with the refresh token of a session:
//!
//! ```text
//! CLOUDREVE_URL=https://cloud.example.com CLOUDREVE_REFRESH_TOKEN=eyJ... cargo run --example cloudreve
//! ```
//!
//! It prints when the new tokens expire; tokens print as `[redacted]`.

use std::process::ExitCode;
use std::time::SystemTime;

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Client, Error, Secret, refresh_endpoint};
use refresh_endpoint_testkit::CloudreveMock;

/// The refresh token goes in a JSON body; HTTP is always 200 and `code` tells
/// success (0) from failure (40020: the refresh token is dead).
#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = Token)]
struct RefreshToken {
    #[refresh_token]
    refresh_token: Secret,
}

async fn refresh(base_url: &str, refresh_token: Secret) -> Result<Token, Error> {
    let client = Client::new(base_url)?;
    RefreshToken { refresh_token }.send(&client).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match (env("CLOUDREVE_URL"), env("CLOUDREVE_REFRESH_TOKEN")) {
        (Some(url), Some(token)) => {
            println!("mode: real Cloudreve at {url}");
            refresh(&url, Secret::from(token)).await
        }
        (None, None) => {
            let cloud = CloudreveMock::start().await;
            let tokens = cloud.issue_tokens("alice");
            println!("mode: embedded mock Cloudreve at {}", cloud.url());
            refresh(&cloud.url(), Secret::from(tokens.refresh_token)).await
        }
        _ => {
            eprintln!(
                "set both CLOUDREVE_URL and CLOUDREVE_REFRESH_TOKEN, or neither (for the mock)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(token) => {
            println!("access token:  {}", token.access_token);
            println!("  expires:     {}", when(token.access_expires));
            println!("refresh token: {}", token.refresh_token);
            println!("  expires:     {}", when(token.refresh_expires));
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

/// `Sun, 26 Apr 2025 07:58:28 GMT (in 59 min)`.
fn when(at: SystemTime) -> String {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    let left = match (left.as_secs() + 30) / 60 {
        minutes @ 0..120 => format!("{minutes} min"),
        minutes @ 120..2880 => format!("{} h", (minutes + 30) / 60),
        minutes => format!("{} days", (minutes + 720) / 1440),
    };
    format!("{} (in {left})", httpdate::fmt_http_date(at))
}

/// An environment variable, if it is set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
