//! OAuth 2.0 refresh (RFC 6749 §6), end to end against the testkit token
//! endpoint over real HTTP: the form body, rotation and its absence, client
//! authentication in the body or as HTTP Basic through a user-declared
//! `Auth`, and the §5.2 errors.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use refresh_endpoint::auth::{Auth, Credentials};
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::reqwest::header::{AUTHORIZATION, HeaderValue};
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::oauth2::DEFAULT_CLIENT_ID;
use refresh_endpoint_testkit::{ManualClock, OAuth2Mock, OAuth2Tokens, jwt};

/// A confidential client sending its credentials in the form body.
#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct RefreshToken {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
    client_secret: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// A public client: its `client_id` and no secret.
#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct PublicRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

/// HTTP Basic client authentication (RFC 6749 §2.3.1), declared by the
/// user: the client id is fixed by the type, the secret is the client's.
struct TestkitClientBasic;

impl Auth for TestkitClientBasic {
    fn apply(
        request: &mut refresh_endpoint::reqwest::Request,
        credentials: Credentials<'_>,
    ) -> Result<(), Error> {
        let secret = credentials.client_secret.ok_or_else(|| {
            ErrorKind::Invalid("set the client secret with ClientBuilder::secret".into())
        })?;
        // The id and secret are form-encoded first; both are unreserved
        // characters here, which encode to themselves.
        let pair = STANDARD.encode(format!("{DEFAULT_CLIENT_ID}:{}", secret.expose()));
        let mut value = HeaderValue::try_from(format!("Basic {pair}")).map_err(|_| {
            ErrorKind::Invalid("the client secret is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }
}

/// The refresh grant with the client authenticated by HTTP Basic.
#[refresh_endpoint(path = "/oauth/token", auth = TestkitClientBasic, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct BasicRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Fails if any secret shows up in the error's `Display` or `Debug`.
fn assert_no_secrets(error: &Error, secrets: &[&str]) {
    let shown = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!secret.is_empty(), "an empty secret proves nothing");
        assert!(
            !shown.contains(secret),
            "a token leaked into the error: {}",
            shown.replace(secret, "<TOKEN>")
        );
    }
}

/// Asserts a terminal `invalid_grant`.
fn assert_invalid_grant(error: &Error) {
    assert!(
        matches!(error.kind(), ErrorKind::SignInAgain(Some(_))),
        "{error:?}"
    );
    assert!(error.is_terminal());
    assert!(!error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!(api.provider, "oauth2");
    assert_eq!((api.status, api.code.as_str()), (400, "invalid_grant"));
    assert_eq!(
        api.message,
        "The refresh token is invalid, expired or revoked"
    );
}

/// Asserts a non-terminal, non-retryable §5.2 error.
fn assert_api_error(error: &Error, status: u16, code: &str, message: &str) {
    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal());
    assert!(!error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!(api.provider, "oauth2");
    assert_eq!((api.status, api.code.as_str()), (status, code));
    assert_eq!(api.message, message);
}

fn refresh(oauth: &OAuth2Mock, refresh_token: &str) -> RefreshToken {
    RefreshToken {
        grant_type: "refresh_token",
        refresh_token: Secret::new(refresh_token),
        client_id: oauth.client_id().into(),
        client_secret: Secret::new(oauth.client_secret()),
        scope: None,
    }
}

fn all_secrets<'a>(oauth: &'a OAuth2Mock, tokens: &'a OAuth2Tokens) -> [&'a str; 3] {
    [
        &tokens.refresh_token,
        &tokens.access_token,
        oauth.client_secret(),
    ]
}

#[tokio::test]
async fn a_form_encoded_refresh_returns_a_new_access_token() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let oauth = OAuth2Mock::builder().clock(clock.now_fn()).start().await;
    let tokens = oauth.issue_tokens();

    let answer = refresh(&oauth, &tokens.refresh_token)
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap();

    assert_eq!(answer.token_type, "Bearer");
    assert_eq!(answer.expires_in, Some(3600));
    assert_eq!(answer.scope.as_deref(), Some("read"));
    let claims = jwt::verify(oauth.jwt_secret(), answer.access_token.expose()).unwrap();
    assert_eq!(claims["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(claims["exp"], 1_700_003_600);
    let debug = format!("{answer:?}");
    assert!(!debug.contains(answer.access_token.expose()), "{debug}");
    let new_refresh = answer.refresh_token.as_ref().unwrap();
    assert!(!debug.contains(new_refresh.expose()), "{debug}");
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::new(oauth.url()).unwrap();

    let answer = refresh(&oauth, &tokens.refresh_token)
        .send(&client)
        .await
        .unwrap();
    let rotated = answer.refresh_token.expect("a rotating server sends one");
    assert_ne!(rotated.expose(), tokens.refresh_token);

    let error = refresh(&oauth, &tokens.refresh_token)
        .send(&client)
        .await
        .unwrap_err();
    assert_invalid_grant(&error);
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
    assert_no_secrets(&error, &[rotated.expose()]);

    refresh(&oauth, rotated.expose())
        .send(&client)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_rotation_a_missing_refresh_token_means_keep_the_old_one() {
    let oauth = OAuth2Mock::builder()
        .rotate_refresh_tokens(false)
        .omit_refresh_token(true)
        .start()
        .await;
    let tokens = oauth.issue_tokens();
    let client = Client::new(oauth.url()).unwrap();

    let first = refresh(&oauth, &tokens.refresh_token)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(first.refresh_token, None);

    let second = refresh(&oauth, &tokens.refresh_token)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(second.refresh_token, None);
    assert_eq!(oauth.refresh_count(), 2);
}

#[tokio::test]
async fn a_narrower_scope_can_be_asked_for() {
    let oauth = OAuth2Mock::builder().scope("read write").start().await;
    let tokens = oauth.issue_tokens();
    let mut endpoint = refresh(&oauth, &tokens.refresh_token);
    endpoint.scope = Some("read".into());

    let answer = endpoint
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap();

    assert_eq!(answer.scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn a_user_declared_auth_sends_http_basic_client_credentials() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::builder(oauth.url())
        .secret(oauth.client_secret())
        .build()
        .unwrap();
    let endpoint = BasicRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(tokens.refresh_token.clone()),
    };

    let answer = endpoint.send(&client).await.unwrap();
    assert!(answer.refresh_token.is_some());

    // The same scheme with the wrong secret: 401 invalid_client.
    let wrong = Client::builder(oauth.url())
        .secret("wrong-client-secret-0123456789")
        .build()
        .unwrap();
    let endpoint = BasicRefresh {
        grant_type: "refresh_token",
        refresh_token: answer.refresh_token.unwrap(),
    };
    let error = endpoint.send(&wrong).await.unwrap_err();
    assert_api_error(
        &error,
        401,
        "invalid_client",
        "Client authentication failed",
    );
    assert_no_secrets(
        &error,
        &[
            "wrong-client-secret-0123456789",
            endpoint.refresh_token.expose(),
        ],
    );
}

#[tokio::test]
async fn a_public_client_refreshes_with_its_client_id_alone() {
    let oauth = OAuth2Mock::builder().public_client("cli").start().await;
    let tokens = oauth.issue_tokens_for("cli", "read").unwrap();

    let answer = PublicRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(tokens.refresh_token),
        client_id: "cli".into(),
    }
    .send(&Client::new(oauth.url()).unwrap())
    .await
    .unwrap();

    let claims = jwt::verify(oauth.jwt_secret(), answer.access_token.expose()).unwrap();
    assert_eq!(claims["client_id"], "cli");
}

#[tokio::test]
async fn an_unknown_refresh_token_is_invalid_grant_and_ends_the_session() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    assert!(oauth.revoke(&tokens.refresh_token));

    let error = refresh(&oauth, &tokens.refresh_token)
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_invalid_grant(&error);
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
}

#[tokio::test]
async fn an_expired_refresh_token_is_invalid_grant_and_ends_the_session() {
    let clock = ManualClock::default();
    let oauth = OAuth2Mock::builder().clock(clock.now_fn()).start().await;
    let tokens = oauth.issue_tokens();

    clock.advance(30 * DAY + Duration::from_secs(1));
    let error = refresh(&oauth, &tokens.refresh_token)
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_invalid_grant(&error);
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
}

#[tokio::test]
async fn a_refresh_token_of_another_client_is_invalid_grant() {
    let oauth = OAuth2Mock::builder()
        .client("other", "other-secret-0123456789")
        .start()
        .await;
    let theirs = oauth.issue_tokens_for("other", "read").unwrap();

    let error = refresh(&oauth, &theirs.refresh_token)
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_invalid_grant(&error);
    assert_no_secrets(&error, &[&theirs.refresh_token, oauth.client_secret()]);
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_and_keeps_the_session() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::new(oauth.url()).unwrap();
    let mut endpoint = refresh(&oauth, &tokens.refresh_token);
    endpoint.client_secret = Secret::new("not-the-secret-0123456789");

    let error = endpoint.send(&client).await.unwrap_err();

    assert_api_error(
        &error,
        401,
        "invalid_client",
        "Client authentication failed",
    );
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
    assert_no_secrets(&error, &["not-the-secret-0123456789"]);
    // The refresh token was not spent.
    refresh(&oauth, &tokens.refresh_token)
        .send(&client)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_refresh_token_is_invalid_request() {
    let oauth = OAuth2Mock::start().await;

    let error = refresh(&oauth, "")
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_api_error(
        &error,
        400,
        "invalid_request",
        "Missing parameter: refresh_token",
    );
}

#[tokio::test]
async fn another_grant_type_is_unsupported_grant_type() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let mut endpoint = refresh(&oauth, &tokens.refresh_token);
    endpoint.grant_type = "password";

    let error = endpoint
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_api_error(
        &error,
        400,
        "unsupported_grant_type",
        "Grant type password is not supported",
    );
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
}

#[tokio::test]
async fn a_wider_scope_is_invalid_scope_and_keeps_the_session() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let mut endpoint = refresh(&oauth, &tokens.refresh_token);
    endpoint.scope = Some("read admin".into());

    let error = endpoint
        .send(&Client::new(oauth.url()).unwrap())
        .await
        .unwrap_err();

    assert_api_error(
        &error,
        400,
        "invalid_scope",
        "Scope admin exceeds the scope granted",
    );
    assert_no_secrets(&error, &all_secrets(&oauth, &tokens));
}
