//! Refreshes an OAuth 2.0 access token (RFC 6749 §6) as a public client.
//!
//! Against an embedded mock token endpoint (the default, no network needed):
//!
//! ```text
//! cargo run --example oauth2
//! ```
//!
//! Against a real authorization server whose token endpoint ends in `/token`:
//!
//! ```text
//! OAUTH2_TOKEN_URL=https://auth.example.com/oauth/token OAUTH2_CLIENT_ID=my-app \
//! OAUTH2_REFRESH_TOKEN=... cargo run --example oauth2
//! ```
//!
//! It prints `expires_in`; tokens print as `[redacted]`. On the mock it then
//! reuses the old, rotated-out refresh token to show a terminal error.

use std::process::ExitCode;

use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::OAuth2Mock;

/// `grant_type=refresh_token&refresh_token=…&client_id=…`; the `oauth2`
/// envelope makes `invalid_grant` (the refresh token is dead) terminal.
#[refresh_endpoint(path = "/token", auth = body, body = form, envelope = oauth2,
                   response = TokenResponse)]
struct RefreshToken {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

async fn refresh(
    token_url: &str,
    client_id: &str,
    refresh_token: &Secret,
) -> Result<TokenResponse, Error> {
    // The client's base URL is the token URL without the declared `/token`.
    let Some(base_url) = token_url.strip_suffix("/token") else {
        return Err(ErrorKind::Invalid(format!(
            "{token_url} does not end in /token; change `path`"
        ))
        .into());
    };
    let endpoint = RefreshToken {
        grant_type: "refresh_token",
        refresh_token: refresh_token.clone(),
        client_id: client_id.to_owned(),
    };
    endpoint.send(&Client::new(base_url)?).await
}

/// Prints the outcome, telling a dead refresh token from a passing failure.
fn report(result: Result<TokenResponse, Error>) -> ExitCode {
    match result {
        Ok(token) => {
            println!("access token:  {}", token.access_token);
            match token.expires_in {
                Some(seconds) => println!("expires_in:    {seconds} s"),
                None => println!("expires_in:    not given"),
            }
            match token.refresh_token {
                Some(new) => println!("refresh token: {new} (rotated: store it)"),
                None => println!("refresh token: unchanged"),
            }
            return ExitCode::SUCCESS;
        }
        Err(e) if e.is_terminal() => println!("terminal, forget the stored tokens: {e}"),
        Err(e) if e.is_retryable() => println!("retryable, keep the tokens: {e}"),
        Err(e) => println!("failed: {e}"),
    }
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let vars = [
        "OAUTH2_TOKEN_URL",
        "OAUTH2_CLIENT_ID",
        "OAUTH2_REFRESH_TOKEN",
    ]
    .map(env);
    match vars {
        [Some(url), Some(client_id), Some(token)] => {
            println!("mode: real token endpoint {url}");
            report(refresh(&url, &client_id, &Secret::from(token)).await)
        }
        [None, None, None] => {
            let auth = OAuth2Mock::builder()
                .public_client("example-app")
                .start()
                .await;
            let tokens = auth
                .issue_tokens_for("example-app", "read")
                .expect("a registered client");
            let old = Secret::from(tokens.refresh_token);
            println!("mode: embedded mock token endpoint {}", auth.token_url());
            let exit = report(refresh(&auth.token_url(), "example-app", &old).await);
            println!("\nreusing the old refresh token:");
            report(refresh(&auth.token_url(), "example-app", &old).await);
            exit
        }
        _ => {
            eprintln!(
                "set all of OAUTH2_TOKEN_URL, OAUTH2_CLIENT_ID, OAUTH2_REFRESH_TOKEN, or none"
            );
            ExitCode::from(2)
        }
    }
}

/// An environment variable, if it is set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
