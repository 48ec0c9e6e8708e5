//! Cloudreve v4 `POST /api/v4/session/token/refresh`, end to end against the
//! testkit server over real HTTP: the success path with its RFC 3339
//! expiries, no rotation, and every row of `providers.md` §2 (HTTP 200
//! throughout; only the envelope's `code` tells success from failure).

use std::time::{Duration, UNIX_EPOCH};

use refresh_endpoint::envelope::{CodeMsgData, Envelope};
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{CloudreveMock, ManualClock, jwt};
use serde_json::Value;

/// The refresh route as users declare it: `{"refresh_token": "…"}`.
#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = Token)]
struct RefreshToken {
    #[refresh_token]
    refresh_token: Secret,
}

/// The refresh route with a `refresh_token` of the wrong JSON type.
#[refresh_endpoint(path = "/api/v4/session/token/refresh",
                   envelope = code_msg_data, response = Token)]
struct RefreshWithNumber {
    refresh_token: u64,
}

/// Sign-out: `DELETE /api/v4/session/token`; success has no `data`.
#[refresh_endpoint(path = "/api/v4/session/token", method = DELETE, auth = body,
                   envelope = code_msg_data, response = Option<Value>)]
struct SignOut {
    #[refresh_token]
    refresh_token: Secret,
}

/// An authorized route: the access token is the client's bearer secret.
#[refresh_endpoint(path = "/api/v4/user/me", method = GET, auth = bearer,
                   envelope = code_msg_data, response = Value)]
struct Me;

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

/// Asserts the terminal 40020 "Failed to issue token pair", with the
/// envelope's correlation id as trace id.
fn assert_token_pair_failed(error: &Error) {
    assert!(
        matches!(error.kind(), ErrorKind::SignInAgain(Some(_))),
        "{error:?}"
    );
    assert!(error.is_terminal());
    assert!(!error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!(api.provider, "code_msg_data");
    assert_eq!(api.status, 200, "Cloudreve answers errors with HTTP 200");
    assert_eq!(api.code, "40020");
    assert_eq!(api.message, "Failed to issue token pair");
    let trace_id = api.trace_id.as_deref().expect("a correlation id");
    assert_eq!(trace_id.len(), 36, "{trace_id}");
    assert_eq!(trace_id.matches('-').count(), 4, "{trace_id}");
    assert!(error.to_string().contains(trace_id), "{error}");
}

fn refresh(token: &str) -> RefreshToken {
    RefreshToken {
        refresh_token: Secret::new(token),
    }
}

#[tokio::test]
async fn refresh_parses_the_token_pair_and_its_expiry_timestamps() {
    // A start with microseconds, which the +08:00 timestamps must keep.
    let start = UNIX_EPOCH + Duration::from_micros(1_745_654_308_456_762);
    let clock = ManualClock::new(start);
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");
    clock.advance(Duration::from_secs(30));

    let token = refresh(&tokens.refresh_token)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap();

    let now = start + Duration::from_secs(30);
    assert_eq!(token.access_expires, now + Duration::from_secs(60 * 60));
    assert_eq!(token.refresh_expires, now + 14 * DAY);
    let access = jwt::verify(cloud.jwt_secret(), token.access_token.expose()).unwrap();
    assert_eq!(access["token_type"], "access");
    let refreshed = jwt::verify(cloud.jwt_secret(), token.refresh_token.expose()).unwrap();
    assert_eq!(refreshed["token_type"], "refresh");
    assert_eq!(cloud.refresh_count(), 1);
}

#[tokio::test]
async fn expiry_timestamps_in_any_utc_offset_name_the_same_instant() {
    let start = UNIX_EPOCH + Duration::from_micros(1_745_654_308_456_762);
    let clock = ManualClock::new(start);
    for offset in [(0, 0), (-3, -30), (14, 0)] {
        let offset = time::UtcOffset::from_hms(offset.0, offset.1, 0).unwrap();
        let cloud = CloudreveMock::builder()
            .clock(clock.now_fn())
            .utc_offset(offset)
            .start()
            .await;
        let tokens = cloud.issue_tokens("alice");
        let token = refresh(&tokens.refresh_token)
            .send(&Client::new(cloud.url()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            token.access_expires,
            start + Duration::from_secs(3600),
            "{offset}"
        );
    }
}

#[tokio::test]
async fn token_debug_output_hides_both_tokens() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    let token = refresh(&tokens.refresh_token)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap();
    let debug = format!("{token:?}");
    assert!(!debug.contains(token.access_token.expose()), "{debug}");
    assert!(!debug.contains(token.refresh_token.expose()), "{debug}");
    assert!(debug.contains("access_expires"), "{debug}");
}

#[tokio::test]
async fn the_refresh_token_does_not_rotate_and_keeps_working() {
    let clock = ManualClock::default();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");
    let client = Client::new(cloud.url()).unwrap();

    let first = refresh(&tokens.refresh_token).send(&client).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let second = refresh(&tokens.refresh_token).send(&client).await.unwrap();

    assert_ne!(first.access_token, second.access_token);
    assert_eq!(cloud.refresh_count(), 2);
}

#[tokio::test]
async fn an_empty_refresh_token_is_a_parameter_error_that_keeps_the_session() {
    let cloud = CloudreveMock::start().await;

    let error = refresh("")
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal());
    assert!(!error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (200, "40001"));
    assert_eq!(api.message, "RefreshToken cannot be empty");
    assert_eq!(
        api.trace_id, None,
        "parameter errors carry no correlation id"
    );
}

#[tokio::test]
async fn a_refresh_token_of_the_wrong_type_is_a_parameter_error() {
    let cloud = CloudreveMock::start().await;

    let error = RefreshWithNumber { refresh_token: 42 }
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(!error.is_terminal() && !error.is_retryable());
    let api = error.api().unwrap();
    assert_eq!(api.code, "40001");
    assert_eq!(api.message, "Parameter error");
}

#[tokio::test]
async fn a_refresh_token_with_a_bad_signature_ends_the_session() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    let forged = jwt::sign(
        b"not the server secret",
        &jwt::decode_header(&tokens.refresh_token).unwrap(),
        &jwt::decode_claims(&tokens.refresh_token).unwrap(),
    );

    let error = refresh(&forged)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert_token_pair_failed(&error);
    assert_no_secrets(&error, &[&forged, &tokens.refresh_token]);
}

#[tokio::test]
async fn an_expired_refresh_token_ends_the_session() {
    let clock = ManualClock::default();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");

    clock.advance(14 * DAY + Duration::from_secs(1));
    let error = refresh(&tokens.refresh_token)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert_token_pair_failed(&error);
    assert_no_secrets(&error, &[&tokens.refresh_token]);
}

#[tokio::test]
async fn the_access_token_sent_as_refresh_token_ends_the_session() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");

    let error = refresh(&tokens.access_token)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert_token_pair_failed(&error);
    assert_no_secrets(&error, &[&tokens.access_token]);
}

#[tokio::test]
async fn sign_out_then_refresh_ends_the_session() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    let client = Client::new(cloud.url()).unwrap();

    let data = SignOut {
        refresh_token: Secret::new(tokens.refresh_token.clone()),
    }
    .send(&client)
    .await
    .unwrap();
    assert_eq!(data, None);
    assert_eq!(cloud.requests("/api/v4/session/token"), 1);

    let error = refresh(&tokens.refresh_token)
        .send(&client)
        .await
        .unwrap_err();
    assert_token_pair_failed(&error);
    assert_no_secrets(&error, &[&tokens.refresh_token, &tokens.access_token]);
}

#[tokio::test]
async fn a_password_change_ends_the_session() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    assert!(cloud.change_password("alice"));

    let error = refresh(&tokens.refresh_token)
        .send(&Client::new(cloud.url()).unwrap())
        .await
        .unwrap_err();

    assert_token_pair_failed(&error);
    assert_no_secrets(&error, &[&tokens.refresh_token]);
}

/// Row "an endpoint that needs login called without a valid access token":
/// code 401 "Login required". On an API call it asks for a refresh; as an
/// error it is terminal, like 40020 (the web client signs out on both).
#[tokio::test]
async fn login_required_on_an_api_call_asks_for_a_refresh() {
    let clock = ManualClock::default();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");
    let api = Client::builder(cloud.url())
        .secret(tokens.access_token.as_str())
        .build()
        .unwrap();

    let me = Me.send(&api).await.unwrap();
    assert_eq!(me["nickname"], "alice");

    clock.advance(Duration::from_secs(60 * 60 + 1));
    let raw = api.execute(&Me, None).await.unwrap();
    assert_eq!(raw.status, 200);
    assert!(CodeMsgData::<0>::access_token_expired(&raw));
    let error = <CodeMsgData>::unwrap::<Value>(&raw).unwrap_err();
    assert!(error.is_terminal() && !error.is_retryable(), "{error:?}");
    let api_error = error.api().unwrap();
    assert_eq!(api_error.code, "401");
    assert_eq!(api_error.message, "Login required");
    assert_no_secrets(&error, &[&tokens.access_token]);
}
