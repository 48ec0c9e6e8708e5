//! Bluesky / AT Protocol `com.atproto.server.refreshSession`, end to end
//! against the testkit PDS over real HTTP: the success path, rotation and
//! its grace period, and every error row of `providers.md` §1.

use std::time::Duration;

use refresh_endpoint::auth::{Auth, Credentials};
use refresh_endpoint::envelope::{Envelope, Xrpc};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, ManualClock, jwt};
use serde::de::IgnoredAny;

/// The refresh route as users declare it: the refresh JWT as bearer, no body.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
struct RefreshSession;

/// The same route, declared without credentials.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = none, envelope = xrpc, response = AtpSession)]
struct RefreshWithoutAuth;

/// The same route with a body the server does not expect.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
struct RefreshWithBody {
    note: String,
}

/// Sends the refresh token under another scheme than `Bearer`.
struct TokenScheme;

impl Auth for TokenScheme {
    fn apply(
        request: &mut refresh_endpoint::reqwest::Request,
        credentials: Credentials<'_>,
    ) -> Result<(), Error> {
        let token = credentials
            .refresh_token
            .ok_or_else(|| ErrorKind::Invalid("no refresh token".into()))?;
        let value = format!("Token {}", token.expose())
            .parse()
            .map_err(|_| ErrorKind::Invalid("not a header value".into()))?;
        request.headers_mut().insert("authorization", value);
        Ok(())
    }
}

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = TokenScheme, envelope = xrpc, response = AtpSession)]
struct RefreshWithTokenScheme;

/// Sign-out: the refresh JWT as bearer; answers 200 with an empty body.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.deleteSession",
                   auth = refresh_bearer, envelope = xrpc, response = IgnoredAny)]
struct DeleteSession;

/// An authorized API call: the access JWT is the client's bearer secret.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.getSession", method = GET,
                   auth = bearer, envelope = xrpc, response = IgnoredAny)]
struct GetSession;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);

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

/// Asserts a terminal XRPC error with this status, name and message.
fn assert_sign_in_again(error: &Error, status: u16, name: &str, message: &str) {
    assert!(
        matches!(error.kind(), ErrorKind::SignInAgain(Some(_))),
        "{error:?}"
    );
    assert!(error.is_terminal(), "{error:?}");
    assert!(!error.is_retryable(), "{error:?}");
    let api = error.api().expect("the provider's error is kept");
    assert_eq!(api.provider, "xrpc");
    assert_eq!(api.status, status);
    assert_eq!(api.code, name);
    assert_eq!(api.message, message);
    assert_eq!(api.trace_id, None);
}

fn client(pds: &AtprotoMock) -> Client {
    Client::new(pds.url()).unwrap()
}

#[tokio::test]
async fn refresh_returns_the_typed_session_and_a_new_pair() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let old = Secret::new(alice.refresh_jwt.clone());

    let session = RefreshSession.send(&client(&pds), &old).await.unwrap();

    assert_eq!(session.handle, "alice.test");
    assert_eq!(session.did, alice.did);
    assert_eq!(session.active, Some(true));
    assert_eq!(session.status, None);
    // As the reference PDS: refreshSession carries no email fields, and no
    // didDoc unless the server is configured to add it.
    assert_eq!(session.email, None);
    assert_eq!(session.email_confirmed, None);
    assert_eq!(session.email_auth_factor, None);
    assert_eq!(session.did_doc, None);
    assert_ne!(session.refresh_jwt, old, "the refresh JWT rotates");
    let access = jwt::verify(pds.jwt_secret(), session.access_jwt.expose()).unwrap();
    assert_eq!(access["sub"], alice.did.as_str());
    assert_eq!(
        jwt::decode_header(session.access_jwt.expose()).unwrap()["typ"],
        "at+jwt"
    );
    assert_eq!(
        jwt::decode_header(session.refresh_jwt.expose()).unwrap()["typ"],
        "refresh+jwt"
    );
    assert_eq!(pds.refresh_count(), 1);
}

#[tokio::test]
async fn session_debug_output_hides_both_jwts() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let session = RefreshSession
        .send(&client(&pds), &Secret::new(alice.refresh_jwt))
        .await
        .unwrap();
    let debug = format!("{session:?}");
    assert!(!debug.contains(session.access_jwt.expose()), "{debug}");
    assert!(!debug.contains(session.refresh_jwt.expose()), "{debug}");
    assert!(debug.contains("alice.test"), "{debug}");
}

#[tokio::test]
async fn reuse_inside_the_grace_period_returns_the_same_successor() {
    let clock = ManualClock::default();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let old = Secret::new(alice.refresh_jwt);
    let client = client(&pds);

    let first = RefreshSession.send(&client, &old).await.unwrap();
    clock.advance(HOUR); // a lost response is retried within the 2 h grace
    let again = RefreshSession.send(&client, &old).await.unwrap();

    // Signed anew an hour later, for the same successor refresh token (jti).
    let jti = |token: &Secret| jwt::decode_claims(token.expose()).unwrap()["jti"].clone();
    assert_ne!(again.refresh_jwt, first.refresh_jwt);
    assert_eq!(jti(&again.refresh_jwt), jti(&first.refresh_jwt));
    let next = RefreshSession
        .send(&client, &first.refresh_jwt)
        .await
        .unwrap();
    assert_ne!(next.refresh_jwt, first.refresh_jwt);
}

#[tokio::test]
async fn reuse_after_the_grace_period_is_revoked_and_ends_the_session() {
    let clock = ManualClock::default();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let old = Secret::new(alice.refresh_jwt.clone());
    let client = client(&pds);
    let new = RefreshSession.send(&client, &old).await.unwrap();

    clock.advance(2 * HOUR + Duration::from_secs(1));
    let error = RefreshSession.send(&client, &old).await.unwrap_err();

    assert_sign_in_again(&error, 400, "ExpiredToken", "Token has been revoked");
    assert_no_secrets(&error, &[&alice.refresh_jwt, new.refresh_jwt.expose()]);
    // The rotated token is unaffected.
    RefreshSession
        .send(&client, &new.refresh_jwt)
        .await
        .unwrap();
}

#[tokio::test]
async fn single_use_refresh_tokens_end_the_session_on_second_use() {
    let pds = AtprotoMock::builder()
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    let old = Secret::new(alice.refresh_jwt.clone());
    let client = client(&pds);
    RefreshSession.send(&client, &old).await.unwrap();

    let error = RefreshSession.send(&client, &old).await.unwrap_err();

    assert_sign_in_again(&error, 400, "ExpiredToken", "Token has been revoked");
    assert_no_secrets(&error, &[&alice.refresh_jwt]);
}

#[tokio::test]
async fn an_expired_refresh_jwt_ends_the_session() {
    let clock = ManualClock::default();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");

    clock.advance(90 * DAY + Duration::from_secs(1));
    let error = RefreshSession
        .send(&client(&pds), &Secret::new(alice.refresh_jwt.clone()))
        .await
        .unwrap_err();

    assert_sign_in_again(&error, 400, "ExpiredToken", "Token has expired");
    assert_no_secrets(&error, &[&alice.refresh_jwt]);
}

#[tokio::test]
async fn a_refresh_jwt_with_a_bad_signature_ends_the_session() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let forged = jwt::sign(
        b"not the PDS secret",
        &jwt::decode_header(&alice.refresh_jwt).unwrap(),
        &jwt::decode_claims(&alice.refresh_jwt).unwrap(),
    );

    let error = RefreshSession
        .send(&client(&pds), &Secret::new(forged.clone()))
        .await
        .unwrap_err();

    assert_sign_in_again(&error, 400, "InvalidToken", "Token could not be verified");
    assert_no_secrets(&error, &[&forged, &alice.refresh_jwt]);
}

#[tokio::test]
async fn the_access_jwt_sent_as_refresh_token_ends_the_session() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");

    let error = RefreshSession
        .send(&client(&pds), &Secret::new(alice.access_jwt.clone()))
        .await
        .unwrap_err();

    assert_sign_in_again(&error, 400, "InvalidToken", "Invalid token type");
    assert_no_secrets(&error, &[&alice.access_jwt]);
}

#[tokio::test]
async fn a_malformed_authorization_header_ends_the_session() {
    let pds = AtprotoMock::start().await;
    let garbled = "eyJhbGciOiJIUzI1NiJ9 eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlMTIz";

    let error = RefreshSession
        .send(&client(&pds), &Secret::new(garbled))
        .await
        .unwrap_err();

    assert_sign_in_again(
        &error,
        400,
        "InvalidToken",
        "Malformed authorization header",
    );
    for part in garbled.split(' ') {
        assert_no_secrets(&error, &[part]);
    }
}

/// No Authorization: 401 `AuthMissing` (the xrpc envelope ends the session
/// on any 401, as the reference client does). An unknown scheme: 400
/// `InvalidToken`, as the reference server answers.
#[tokio::test]
async fn missing_or_unsupported_authorization_ends_the_session() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let client = client(&pds);

    let missing = RefreshWithoutAuth.send(&client).await.unwrap_err();
    // A custom `Auth` gets the token through `Client::send`.
    let wrong_scheme = client
        .send(
            &RefreshWithTokenScheme,
            Some(&Secret::new(alice.refresh_jwt.clone())),
        )
        .await
        .unwrap_err();

    assert_sign_in_again(&missing, 401, "AuthMissing", "Authentication Required");
    assert_sign_in_again(
        &wrong_scheme,
        400,
        "InvalidToken",
        "Unsupported authorization type: Token",
    );
    for error in [&missing, &wrong_scheme] {
        assert_no_secrets(error, &[&alice.refresh_jwt]);
    }
    // Neither request touched the token: it still refreshes.
    RefreshSession
        .send(&client, &Secret::new(alice.refresh_jwt))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_request_body_is_invalid_request_and_keeps_the_session() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let token = Secret::new(alice.refresh_jwt.clone());
    let client = client(&pds);

    let error = RefreshWithBody {
        note: "hello".into(),
    }
    .send(&client, &token)
    .await
    .unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal());
    assert!(!error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (400, "InvalidRequest"));
    assert_eq!(
        api.message,
        "A request body was provided when none was expected"
    );
    assert_no_secrets(&error, &[&alice.refresh_jwt]);
    RefreshSession.send(&client, &token).await.unwrap();
}

#[tokio::test]
async fn a_taken_down_account_ends_the_session_and_stays_revoked_after_lifting() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let token = Secret::new(alice.refresh_jwt.clone());
    let client = client(&pds);
    assert!(pds.takedown(&alice.did));

    let error = RefreshSession.send(&client, &token).await.unwrap_err();
    assert_sign_in_again(
        &error,
        401,
        "AccountTakedown",
        "Account has been taken down",
    );
    assert_no_secrets(&error, &[&alice.refresh_jwt]);

    assert!(pds.lift_takedown(&alice.did));
    let error = RefreshSession.send(&client, &token).await.unwrap_err();
    assert_sign_in_again(&error, 400, "ExpiredToken", "Token has been revoked");
}

#[tokio::test]
async fn delete_session_revokes_the_refresh_jwt() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let token = Secret::new(alice.refresh_jwt.clone());
    let client = client(&pds);

    let signed_out = client.execute(&DeleteSession, Some(&token)).await.unwrap();
    assert_eq!(signed_out.status, 200);

    let error = RefreshSession.send(&client, &token).await.unwrap_err();
    assert_sign_in_again(&error, 400, "ExpiredToken", "Token has been revoked");
    assert_no_secrets(&error, &[&alice.refresh_jwt]);
}

#[tokio::test]
async fn an_expired_access_jwt_on_an_api_call_asks_for_a_refresh() {
    let clock = ManualClock::default();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let api = |access: &str| Client::builder(pds.url()).secret(access).build().unwrap();

    let fresh = api(&alice.access_jwt)
        .execute(&GetSession, None)
        .await
        .unwrap();
    assert_eq!(fresh.status, 200);
    assert!(!Xrpc::access_token_expired(&fresh));

    clock.advance(2 * HOUR + Duration::from_secs(1));
    let stale = api(&alice.access_jwt)
        .execute(&GetSession, None)
        .await
        .unwrap();
    assert_eq!(stale.status, 400);
    assert!(Xrpc::access_token_expired(&stale));
    let error = Xrpc::unwrap::<IgnoredAny>(&stale).unwrap_err();
    assert_eq!(error.api().unwrap().message, "Token has expired");
    assert_no_secrets(&error, &[&alice.access_jwt]);
}

/// `send_blocking` from a thread with no runtime, the mock served by a
/// multi-thread runtime kept alive alongside.
#[test]
fn send_blocking_refreshes_without_an_async_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pds = runtime.block_on(AtprotoMock::start());
    let alice = pds.create_account("alice.test");
    let client = Client::new(pds.url()).unwrap();
    let old = Secret::new(alice.refresh_jwt.clone());

    let session = RefreshSession.send_blocking(&client, &old).unwrap();
    assert_eq!(session.did, alice.did);
    assert_ne!(session.refresh_jwt, old);

    let error = RefreshSession
        .send_blocking(&client, &Secret::new(alice.access_jwt.clone()))
        .unwrap_err();
    assert_sign_in_again(&error, 400, "InvalidToken", "Invalid token type");
    assert_eq!(pds.refresh_count(), 2);
    drop(pds);
}
