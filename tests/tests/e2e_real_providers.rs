//! Four real providers, each declared in at most 10 lines with no impl block,
//! against testkit mocks that speak their documented dialects: GitHub App
//! user tokens, Slack `oauth.v2.access`, Spotify, Microsoft Entra ID. For
//! each: a refresh with rotation, the dead-token answer (terminal), a
//! retryable answer, and a garbage answer that is neither (and that a
//! session does not retry in a loop).

use refresh_endpoint::providers::oauth2::{self, TokenResponse};
use refresh_endpoint::session::{RefreshEndpoint, Session, Status};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Endpoint, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::oauth2::{ENTRA_TENANT, GITHUB_ROUTE};
use refresh_endpoint_testkit::{Dialect, Fault, OAuth2Mock, OAuth2Tokens};

// GitHub App user tokens: 8 lines.
#[refresh_endpoint(path = "/login/oauth/access_token", auth = client_body, body = form,
                   fields(grant_type = "refresh_token"), header(Accept = "application/json"),
                   envelope = oauth2(terminal = ["bad_refresh_token"]), response = TokenResponse)]
#[derive(Clone, Default)]
struct GitHubRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

// Slack `oauth.v2.access`: 8 lines.
#[refresh_endpoint(path = "/api/oauth.v2.access", auth = client_body, body = form,
                   fields(grant_type = "refresh_token"), response = TokenResponse,
                   envelope = json(ok = "ok", code = "error", terminal = ["invalid_refresh_token"]))]
#[derive(Clone, Default)]
struct SlackRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

// Spotify: RFC 6749 with HTTP Basic, so the ready-made endpoint, 1 line.
fn spotify() -> oauth2::Refresh {
    oauth2::Refresh::basic().path("/api/token")
}

// Microsoft Entra ID: 10 lines.
#[refresh_endpoint(path = "/{tenant}/oauth2/v2.0/token", auth = client_body, body = form,
                   fields(grant_type = "refresh_token", scope = "offline_access User.Read"),
                   envelope = oauth2(terminal = ["interaction_required"]), response = TokenResponse)]
#[derive(Clone, Default)]
struct EntraRefresh {
    #[path]
    tenant: String,
    #[refresh_token]
    refresh_token: Secret,
}

async fn mock(dialect: Dialect) -> OAuth2Mock {
    OAuth2Mock::builder()
        .dialect(dialect)
        .scope("offline_access User.Read")
        .start()
        .await
}

fn client(mock: &OAuth2Mock) -> Client {
    Client::builder(mock.url())
        .client_credentials(mock.client_id(), mock.client_secret())
        .build()
        .unwrap()
}

fn with_token<E: Endpoint>(mut endpoint: E, token: &str) -> E {
    endpoint.set_refresh_token(&Secret::new(token));
    endpoint
}

async fn session<E: RefreshEndpoint>(
    mock: &OAuth2Mock,
    endpoint: E,
    issued: &OAuth2Tokens,
) -> Session<E> {
    Session::builder(client(mock), endpoint)
        .tokens(Tokens::new(
            Secret::new(issued.access_token.as_str()),
            Secret::new(issued.refresh_token.as_str()),
        ))
        .build()
        .await
        .unwrap()
}

/// A refresh rotates the refresh token, and the session uses the new one.
async fn rotates<E: RefreshEndpoint>(mock: &OAuth2Mock, endpoint: E) {
    let issued = mock.issue_tokens();
    let session = session(mock, endpoint, &issued).await;
    let first = session.refresh().await.unwrap();
    let rotated = session.tokens().unwrap().refresh_token;
    assert_ne!(rotated.expose(), issued.refresh_token);
    assert!(session.tokens().unwrap().access_expires_at.is_some());
    let second = session.refresh().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(mock.refresh_count(), 2);
}

/// A revoked refresh token signs the session out.
async fn dead_token_is_terminal<E: RefreshEndpoint>(mock: &OAuth2Mock, endpoint: E) -> Error {
    let issued = mock.issue_tokens();
    mock.revoke(&issued.refresh_token);
    let session = session(mock, endpoint, &issued).await;
    let error = session.refresh().await.unwrap_err();
    assert!(error.is_terminal(), "{error:?}");
    assert!(matches!(session.status(), Status::SignedOut(Some(_))));
    assert!(!format!("{error} {error:?}").contains(&issued.refresh_token));
    error
}

/// A rate limit is retryable and keeps the session.
async fn rate_limit_is_retryable<E: RefreshEndpoint>(mock: &OAuth2Mock, endpoint: E) {
    let issued = mock.issue_tokens();
    mock.inject(Fault::RateLimited {
        retry_after_secs: 7,
    });
    let endpoint = with_token(endpoint, &issued.refresh_token);
    let Err(error) = client(mock).send(&endpoint, None).await else {
        panic!("a rate limit is an error");
    };
    assert!(error.is_retryable() && !error.is_terminal(), "{error:?}");
    assert_eq!(error.retry_after().map(|d| d.as_secs()), Some(7));
    client(mock).send(&endpoint, None).await.unwrap();
}

/// An HTML 400 page is neither terminal nor retryable, and a session does
/// not loop on it: one request, the session still active.
async fn garbage_is_neither<E: RefreshEndpoint>(mock: &OAuth2Mock, endpoint: E) {
    let issued = mock.issue_tokens();
    let session = session(mock, endpoint, &issued).await;
    mock.inject(Fault::Html(400));
    let error = session.refresh().await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Unrecognized { status: 400, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable() && !error.is_terminal());
    assert_eq!(mock.refresh_count(), 1, "not retried");
    assert_eq!(session.status(), Status::Active);
    mock.inject(Fault::BrokenJson);
    let error = session.refresh().await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Decode { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable() && !error.is_terminal());
    assert_eq!(mock.refresh_count(), 2, "not retried");
}

mod github {
    use super::*;

    #[tokio::test]
    async fn rotates() {
        super::rotates(&mock(Dialect::GitHub).await, GitHubRefresh::default()).await;
    }

    #[tokio::test]
    async fn a_200_bad_refresh_token_is_terminal() {
        let error =
            dead_token_is_terminal(&mock(Dialect::GitHub).await, GitHubRefresh::default()).await;
        let api = error.api().unwrap();
        assert_eq!((api.status, api.code.as_str()), (200, "bad_refresh_token"));
    }

    #[tokio::test]
    async fn a_rate_limit_is_retryable() {
        rate_limit_is_retryable(&mock(Dialect::GitHub).await, GitHubRefresh::default()).await;
    }

    #[tokio::test]
    async fn garbage_is_neither() {
        super::garbage_is_neither(&mock(Dialect::GitHub).await, GitHubRefresh::default()).await;
    }

    /// The mock is faithful: without `Accept: application/json`, GitHub
    /// answers form-encoded.
    #[tokio::test]
    async fn answers_form_encoded_unless_asked_for_json() {
        let mock = mock(Dialect::GitHub).await;
        let issued = mock.issue_tokens();
        let response = Client::new(mock.url())
            .unwrap()
            .http()
            .post(format!("{}{GITHUB_ROUTE}", mock.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
                issued.refresh_token,
                mock.client_id(),
                mock.client_secret()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.starts_with("access_token="), "{text}");
    }
}

mod slack {
    use super::*;

    #[tokio::test]
    async fn rotates() {
        super::rotates(&mock(Dialect::Slack).await, SlackRefresh::default()).await;
    }

    #[tokio::test]
    async fn ok_false_invalid_refresh_token_is_terminal() {
        let error =
            dead_token_is_terminal(&mock(Dialect::Slack).await, SlackRefresh::default()).await;
        let api = error.api().unwrap();
        assert_eq!(
            (api.status, api.code.as_str()),
            (200, "invalid_refresh_token")
        );
    }

    #[tokio::test]
    async fn a_rate_limit_is_retryable() {
        rate_limit_is_retryable(&mock(Dialect::Slack).await, SlackRefresh::default()).await;
    }

    #[tokio::test]
    async fn garbage_is_neither() {
        super::garbage_is_neither(&mock(Dialect::Slack).await, SlackRefresh::default()).await;
    }

    #[tokio::test]
    async fn a_wrong_client_secret_is_not_terminal() {
        let mock = mock(Dialect::Slack).await;
        let issued = mock.issue_tokens();
        let client = Client::builder(mock.url())
            .client_credentials(mock.client_id(), "wrong")
            .build()
            .unwrap();
        let endpoint = with_token(SlackRefresh::default(), &issued.refresh_token);
        let error = endpoint.send(&client).await.unwrap_err();
        assert_eq!(error.api().unwrap().code, "invalid_client_id");
        assert!(!error.is_terminal() && !error.is_retryable());
    }
}

mod spotify {
    use super::*;

    #[tokio::test]
    async fn rotates() {
        super::rotates(&mock(Dialect::Spotify).await, spotify()).await;
    }

    #[tokio::test]
    async fn an_absent_refresh_token_keeps_the_old_one() {
        let mock = OAuth2Mock::builder()
            .dialect(Dialect::Spotify)
            .rotate_refresh_tokens(false)
            .omit_refresh_token(true)
            .start()
            .await;
        let issued = mock.issue_tokens();
        let session = session(&mock, spotify(), &issued).await;
        session.refresh().await.unwrap();
        session.refresh().await.unwrap();
        assert_eq!(
            session.tokens().unwrap().refresh_token.expose(),
            issued.refresh_token
        );
    }

    #[tokio::test]
    async fn invalid_grant_is_terminal() {
        let error = dead_token_is_terminal(&mock(Dialect::Spotify).await, spotify()).await;
        assert_eq!(error.api().unwrap().code, "invalid_grant");
    }

    #[tokio::test]
    async fn a_rate_limit_is_retryable() {
        rate_limit_is_retryable(&mock(Dialect::Spotify).await, spotify()).await;
    }

    #[tokio::test]
    async fn garbage_is_neither() {
        super::garbage_is_neither(&mock(Dialect::Spotify).await, spotify()).await;
    }
}

mod entra {
    use super::*;

    fn entra() -> EntraRefresh {
        EntraRefresh {
            tenant: ENTRA_TENANT.into(),
            ..EntraRefresh::default()
        }
    }

    #[tokio::test]
    async fn rotates() {
        super::rotates(&mock(Dialect::Entra).await, entra()).await;
    }

    #[tokio::test]
    async fn invalid_grant_with_error_codes_is_terminal() {
        let error = dead_token_is_terminal(&mock(Dialect::Entra).await, entra()).await;
        let api = error.api().unwrap();
        assert_eq!((api.status, api.code.as_str()), (400, "invalid_grant"));
        assert!(api.message.starts_with("AADSTS70008:"), "{}", api.message);
    }

    #[tokio::test]
    async fn a_rate_limit_is_retryable() {
        rate_limit_is_retryable(&mock(Dialect::Entra).await, entra()).await;
    }

    #[tokio::test]
    async fn garbage_is_neither() {
        super::garbage_is_neither(&mock(Dialect::Entra).await, entra()).await;
    }

    #[tokio::test]
    async fn another_tenant_is_a_request_error_not_terminal() {
        let mock = mock(Dialect::Entra).await;
        let issued = mock.issue_tokens();
        let endpoint = with_token(
            EntraRefresh {
                tenant: "fabrikam.onmicrosoft.com".into(),
                ..EntraRefresh::default()
            },
            &issued.refresh_token,
        );
        let error = endpoint.send(&client(&mock)).await.unwrap_err();
        assert_eq!(error.api().unwrap().code, "invalid_request");
        assert!(!error.is_terminal());
    }
}

/// Never silent: an error answer without the declared shape is logged at
/// WARN once per endpoint, with the hint to declare the provider's error
/// shape, and never with a token.
#[tokio::test]
async fn a_shapeless_error_answer_is_warned_about_once() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[refresh_endpoint(path = "/oauth/token", auth = basic, body = form, envelope = oauth2,
                       fields(grant_type = "refresh_token"), response = TokenResponse)]
    struct WarnedOnce {
        #[refresh_token]
        refresh_token: Secret,
    }

    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mock = OAuth2Mock::start().await;
    let issued = mock.issue_tokens();
    let endpoint = WarnedOnce {
        refresh_token: Secret::new(issued.refresh_token.as_str()),
    };
    mock.inject_times(Fault::Html(403), 2);
    for _ in 0..2 {
        let error = endpoint.send(&client(&mock)).await.unwrap_err();
        assert!(matches!(
            error.kind(),
            ErrorKind::Unrecognized { status: 403, .. }
        ));
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(
        logs.contains("declare the provider's error shape"),
        "{logs}"
    );
    assert!(
        logs.contains("WarnedOnce") && logs.contains("403"),
        "{logs}"
    );
    assert!(!logs.contains(&issued.refresh_token));
    assert!(!logs.contains(mock.client_secret()));
}
