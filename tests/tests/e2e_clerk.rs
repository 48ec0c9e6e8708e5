//! Clerk Backend API "Refresh a session", end to end against the testkit
//! server over real HTTP: both response formats, the query and header the
//! SDKs send, and the error envelope of `providers.md` §3.

use std::time::Duration;

use refresh_endpoint::providers::clerk::{Format, SessionRefresh};
use refresh_endpoint::tokens::jwt_expiry;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{ClerkMock, ClerkSession, ManualClock, jwt};

/// The refresh route as the JS and Go SDKs call it.
#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
struct RefreshSession {
    #[path]
    session_id: String,
    #[query]
    suffixed_cookies: Option<bool>,
    #[header("Clerk-API-Version")]
    api_version: &'static str,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
}

/// The same route with a body parameter Clerk does not know.
#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
struct RefreshWithUnknownParam {
    #[path]
    session_id: String,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
    remember_me: bool,
}

/// The same route without the required `request_origin`.
#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
struct RefreshWithoutOrigin {
    #[path]
    session_id: String,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
}

const ORIGIN: &str = "https://app.example";
const API_VERSION: &str = "2021-02-05";

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

/// Asserts the Clerk error fields every envelope error carries.
fn assert_clerk_error(error: &Error, status: u16, code: &str, message: &str) {
    let api = error.api().expect("the provider's error is kept");
    assert_eq!(api.provider, "clerk");
    assert_eq!(api.status, status);
    assert_eq!(api.code, code);
    assert_eq!(api.message, message, "the long message");
    let trace_id = api.trace_id.as_deref().expect("the clerk_trace_id");
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    assert!(
        trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace_id}"
    );
}

fn refresh(session: &ClerkSession, format: Option<Format>) -> RefreshSession {
    RefreshSession {
        session_id: session.session_id.clone(),
        suffixed_cookies: None,
        api_version: API_VERSION,
        expired_token: Secret::new(session.session_jwt.clone()),
        refresh_token: Secret::new(session.refresh_token.clone()),
        request_origin: ORIGIN.into(),
        format,
    }
}

fn client(clerk: &ClerkMock) -> Client {
    Client::builder(clerk.url())
        .secret(clerk.secret_key())
        .build()
        .unwrap()
}

#[tokio::test]
async fn format_token_returns_a_new_session_jwt_for_the_same_session() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let clerk = ClerkMock::builder().clock(clock.now_fn()).start().await;
    let alice = clerk.create_session("alice");
    clock.advance(Duration::from_secs(120)); // the 60 s session JWT has expired

    let answer = refresh(&alice, None).send(&client(&clerk)).await.unwrap();

    let SessionRefresh::Token { jwt: new_jwt } = &answer else {
        panic!("expected a token answer: {answer:?}");
    };
    assert_ne!(new_jwt.expose(), alice.session_jwt);
    assert_eq!(answer.session_jwt().as_ref(), Some(new_jwt));
    let claims = jwt::verify(clerk.jwt_secret(), new_jwt.expose()).unwrap();
    assert_eq!(claims["sid"], alice.session_id.as_str());
    assert_eq!(claims["sub"], alice.user_id.as_str());
    assert_eq!(claims["azp"], ORIGIN);
    assert_eq!(
        jwt_expiry(new_jwt),
        Some(clock.now() + Duration::from_secs(60)),
        "the new JWT lives 60 s from the mock's now"
    );
    assert!(!format!("{answer:?}").contains(new_jwt.expose()));
}

#[tokio::test]
async fn format_cookie_returns_set_cookie_directives_holding_the_session_jwt() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");

    let answer = refresh(&alice, Some(Format::Cookie))
        .send(&client(&clerk))
        .await
        .unwrap();

    let SessionRefresh::Cookies { cookies } = &answer else {
        panic!("expected a cookies answer: {answer:?}");
    };
    assert_eq!(cookies.len(), 2, "__session and __client_uat");
    let jwt = answer.session_jwt().expect("a __session cookie");
    assert!(cookies[0].expose().starts_with("__session="));
    assert!(cookies[0].expose().contains(jwt.expose()));
    let claims = jwt::verify(clerk.jwt_secret(), jwt.expose()).unwrap();
    assert_eq!(claims["sid"], alice.session_id.as_str());
    let debug = format!("{answer:?}");
    assert!(!debug.contains(jwt.expose()), "{debug}");
    assert_eq!(clerk.last_request_body().unwrap()["format"], "cookie");
}

#[tokio::test]
async fn suffixed_cookies_query_and_api_version_header_reach_clerk() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let client = client(&clerk);

    let mut endpoint = refresh(&alice, Some(Format::Cookie));
    endpoint.suffixed_cookies = Some(true);
    let answer = endpoint.send(&client).await.unwrap();

    assert_eq!(clerk.last_suffixed_cookies().as_deref(), Some("true"));
    assert_eq!(clerk.last_api_version().as_deref(), Some(API_VERSION));
    let SessionRefresh::Cookies { cookies } = &answer else {
        panic!("expected a cookies answer: {answer:?}");
    };
    assert_eq!(cookies.len(), 4, "plain and suffixed cookies");
    let suffixed = format!("__session_{}=", clerk.cookie_suffix());
    assert!(cookies.iter().any(|c| c.expose().starts_with(&suffixed)));
    // The suffixed cookie carries the same JWT; `__session` itself is read.
    let jwt = answer.session_jwt().unwrap();
    assert!(
        cookies
            .iter()
            .all(|c| !c.expose().starts_with("__session") || c.expose().contains(jwt.expose()))
    );

    // Unset, the query parameter and `format` are left out.
    refresh(&alice, None).send(&client).await.unwrap();
    assert_eq!(clerk.last_suffixed_cookies(), None);
    let body = clerk.last_request_body().unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["expired_token", "refresh_token", "request_origin"]
    );
}

#[tokio::test]
async fn a_signed_out_session_ends_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    assert!(clerk.revoke(&alice.session_id));

    let error = refresh(&alice, None)
        .send(&client(&clerk))
        .await
        .unwrap_err();

    assert!(
        matches!(error.kind(), ErrorKind::SignInAgain(Some(_))),
        "{error:?}"
    );
    assert!(error.is_terminal() && !error.is_retryable());
    assert_clerk_error(&error, 401, "signed_out", "You are signed out");
    assert_no_secrets(
        &error,
        &[&alice.session_jwt, &alice.refresh_token, clerk.secret_key()],
    );
}

#[tokio::test]
async fn a_wrong_refresh_token_ends_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let mut endpoint = refresh(&alice, None);
    endpoint.refresh_token = Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1");

    let error = endpoint.send(&client(&clerk)).await.unwrap_err();

    assert!(error.is_terminal() && !error.is_retryable(), "{error:?}");
    assert_clerk_error(&error, 401, "signed_out", "You are signed out");
    assert_no_secrets(
        &error,
        &[endpoint.refresh_token.expose(), &alice.session_jwt],
    );
}

#[tokio::test]
async fn a_session_jwt_of_another_session_ends_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let bob = clerk.create_session("bob");
    let mut endpoint = refresh(&alice, None);
    endpoint.expired_token = Secret::new(bob.session_jwt.clone());

    let error = endpoint.send(&client(&clerk)).await.unwrap_err();

    assert!(error.is_terminal() && !error.is_retryable(), "{error:?}");
    assert_clerk_error(
        &error,
        401,
        "token_invalid",
        "The expired_token is not a session token of this session.",
    );
    assert_no_secrets(&error, &[&bob.session_jwt, &alice.refresh_token]);
}

/// A wrong secret key is a server misconfiguration, not a dead session, yet
/// Clerk answers it with 401 and the clerk envelope ends the session on any
/// 401 (`envelope/clerk.rs`). This pins the current behaviour: every user
/// would be asked to sign in again while the key is wrong.
#[tokio::test]
async fn a_wrong_secret_key_is_a_configuration_error_that_keeps_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let wrong_key = "sk_test_0123456789abcdefghijklmnopqrstuvwxyz";
    let client = Client::builder(clerk.url())
        .secret(wrong_key)
        .build()
        .unwrap();

    let error = refresh(&alice, None).send(&client).await.unwrap_err();

    // The server's key is wrong, not the user's session: signing the user
    // out would not help.
    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal());
    assert!(!error.is_retryable());
    let message = "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.";
    assert_clerk_error(&error, 401, "clerk_key_invalid", message);
    assert_no_secrets(
        &error,
        &[wrong_key, clerk.secret_key(), &alice.refresh_token],
    );
    assert!(!format!("{client:?}").contains(wrong_key));
}

#[tokio::test]
async fn an_unknown_body_parameter_is_a_400_that_keeps_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");

    let error = RefreshWithUnknownParam {
        session_id: alice.session_id.clone(),
        expired_token: Secret::new(alice.session_jwt.clone()),
        refresh_token: Secret::new(alice.refresh_token.clone()),
        request_origin: ORIGIN.into(),
        remember_me: true,
    }
    .send(&client(&clerk))
    .await
    .unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal() && !error.is_retryable());
    assert_clerk_error(
        &error,
        400,
        "form_param_unknown",
        "remember_me is not a valid parameter for this request.",
    );
    assert_no_secrets(&error, &[&alice.session_jwt, &alice.refresh_token]);
}

#[tokio::test]
async fn a_missing_body_parameter_is_a_400_that_keeps_the_session() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");

    let error = RefreshWithoutOrigin {
        session_id: alice.session_id.clone(),
        expired_token: Secret::new(alice.session_jwt.clone()),
        refresh_token: Secret::new(alice.refresh_token.clone()),
    }
    .send(&client(&clerk))
    .await
    .unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal() && !error.is_retryable());
    assert_clerk_error(
        &error,
        400,
        "form_param_missing",
        "request_origin must be included.",
    );
    // The session is intact.
    refresh(&alice, None).send(&client(&clerk)).await.unwrap();
}
