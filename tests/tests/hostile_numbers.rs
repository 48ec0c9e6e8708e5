//! Hostile numbers: expiries at and beyond every limit, in `expires_in`, in a
//! JWT's `exp` claim and in stored tokens, never panic and never cost a
//! rotated refresh token. An expiry more than 100 years away counts as "no
//! known expiry". The session-level checks talk real HTTP to a strictly
//! single-use token endpoint on loopback whose answers are scripted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::providers::clerk::SessionRefresh;
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::{IntoTokens, Tokens, jwt_expiry};
use refresh_endpoint::{Client, Secret, refresh_endpoint};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 100 years, the horizon beyond which an expiry is "unknown".
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600 + 25 * 24 * 3600);

/// An unsigned JWT whose claims are exactly `claims` (raw JSON text, so
/// that numbers keep the spelling a provider sent).
fn jwt(claims: &str) -> String {
    format!(
        "eyJhbGciOiJub25lIn0.{}.",
        URL_SAFE_NO_PAD.encode(claims.as_bytes())
    )
}

fn issued_tokens<T: IntoTokens>(response: T, received_at: SystemTime) -> Option<Tokens> {
    let previous = Tokens::new("old-access", "old-refresh");
    response
        .into_tokens(received_at)
        .ok()
        .map(|issued| issued.into_tokens(&previous))
}

#[test]
fn expires_in_at_u64_max_is_no_known_expiry() {
    let response: TokenResponse = serde_json::from_value(json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": u64::MAX,
    }))
    .unwrap();
    let tokens = issued_tokens(response, SystemTime::now()).unwrap();
    assert_eq!(tokens.access_expires_at, None);
}

#[test]
fn expires_in_within_the_century_is_kept() {
    let now = SystemTime::now();
    let response: TokenResponse = serde_json::from_value(json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": 3600,
    }))
    .unwrap();
    let tokens = issued_tokens(response, now).unwrap();
    assert_eq!(
        tokens.access_expires_at,
        Some(now + Duration::from_secs(3600))
    );
}

#[test]
fn jwt_expiries_beyond_the_century_or_any_limit_are_unknown() {
    let in_a_century = SystemTime::now() + CENTURY + Duration::from_secs(86_400);
    let beyond = in_a_century.duration_since(UNIX_EPOCH).unwrap().as_secs();
    for exp in [
        "1e300".to_owned(),
        "9.3e18".to_owned(),
        "18446744073709551615".to_owned(),
        "18446744073709551616".to_owned(),
        "1.7976931348623157e308".to_owned(),
        beyond.to_string(),
    ] {
        let token = Secret::new(jwt(&format!(r#"{{"exp":{exp}}}"#)));
        assert_eq!(jwt_expiry(&token), None, "exp {exp}");
        let tokens = Tokens::new(token, "refresh");
        assert_eq!(tokens.access_expires_at, None, "exp {exp}");
    }
}

#[test]
fn jwt_expiries_in_range_are_read() {
    let token = Secret::new(jwt(r#"{"exp":1700000000.5}"#));
    assert_eq!(
        jwt_expiry(&token),
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
    );
    for exp in ["-1", "-1e300", "\"1700000000\"", "null", "true"] {
        let token = Secret::new(jwt(&format!(r#"{{"exp":{exp}}}"#)));
        assert_eq!(jwt_expiry(&token), None, "exp {exp}");
    }
}

#[test]
fn stored_expiries_at_any_number_load_without_panic() {
    for (number, expected) in [
        ("1e300", None),
        ("9.3e18", None),
        ("18446744073709551615", None),
        ("-5", None),
        (
            "1700000000",
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        ),
    ] {
        let json = format!(
            r#"{{"access_token":"a","refresh_token":"r","access_expires_at":{number},"refresh_expires_at":{number}}}"#
        );
        let tokens: Tokens = serde_json::from_str(&json).expect(number);
        assert_eq!(tokens.access_expires_at, expected, "{number}");
        assert_eq!(tokens.refresh_expires_at, expected, "{number}");
    }
}

/// JSON text for an `exp` claim or an `expires_in`: any number, as a
/// provider might spell it, or something that is not a number at all.
fn any_json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        "-?[0-9]{1,30}(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?",
        "\"[0-9a-z.+-]{0,12}\"".prop_map(|s| s),
        Just("null".to_owned()),
        Just("[]".to_owned()),
    ]
}

/// Something in the place of a JWT: well-formed claims with any `exp`,
/// arbitrary base64url segments, or arbitrary text.
fn any_token() -> impl Strategy<Value = String> {
    prop_oneof![
        any_json_number().prop_map(|exp| jwt(&format!(r#"{{"exp":{exp}}}"#))),
        (
            "[A-Za-z0-9_-]{0,24}",
            proptest::collection::vec(any::<u8>(), 0..64),
            "[A-Za-z0-9_=-]{0,24}"
        )
            .prop_map(|(header, claims, signature)| format!(
                "{header}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(claims)
            )),
        "[ -~]{0,64}",
    ]
}

fn any_received_at() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        Just(SystemTime::now()),
        (0u64..=(1 << 36)).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    ]
}

proptest! {
    #[test]
    fn no_expires_in_and_no_token_panics_oauth2(
        expires_in in any_json_number(),
        access in any_token(),
        received_at in any_received_at(),
    ) {
        let body = format!(
            r#"{{"access_token":{},"token_type":"Bearer","expires_in":{expires_in},"refresh_token":"r2"}}"#,
            json!(access)
        );
        if let Ok(response) = serde_json::from_str::<TokenResponse>(&body)
            && let Some(tokens) = issued_tokens(response, received_at)
        {
            check_horizon(&tokens);
        }
    }

    #[test]
    fn no_token_panics_atproto_clerk_or_tokens_new(
        access in any_token(),
        received_at in any_received_at(),
    ) {
        let tokens = Tokens::new(access.as_str(), "refresh");
        check_horizon(&tokens);
        let _ = jwt_expiry(&Secret::new(access.as_str()));
        let atp: AtpSession = serde_json::from_value(json!({
            "accessJwt": access, "refreshJwt": "r2", "handle": "a.test", "did": "did:plc:a",
        })).unwrap();
        if let Some(tokens) = issued_tokens(atp, received_at) {
            check_horizon(&tokens);
        }
        for clerk in [
            json!({"object": "token", "jwt": access}),
            json!({"object": "cookies", "cookies": [format!("__session={access}; Path=/")]}),
        ] {
            let clerk: SessionRefresh = serde_json::from_value(clerk).unwrap();
            if let Some(tokens) = issued_tokens(clerk, received_at) {
                check_horizon(&tokens);
            }
        }
    }

    #[test]
    fn no_timestamp_or_token_panics_cloudreve(
        access in any_token(),
        year in 0u32..=9999,
        rest in "-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        received_at in any_received_at(),
    ) {
        let at = format!("{year:04}{rest}");
        if let Ok(token) = serde_json::from_value::<Token>(json!({
            "access_token": access, "access_expires": at,
            "refresh_token": "r2", "refresh_expires": at,
        })) && let Some(tokens) = issued_tokens(token, received_at)
        {
            check_horizon(&tokens);
        }
    }

    #[test]
    fn no_stored_number_panics(number in any_json_number()) {
        let json = format!(
            r#"{{"access_token":"a","refresh_token":"r","access_expires_at":{number},"refresh_expires_at":{number}}}"#
        );
        if let Ok(tokens) = serde_json::from_str::<Tokens>(&json) {
            check_horizon(&tokens);
            // What loads saves again, and loads the same.
            let again = serde_json::to_string(&tokens).unwrap();
            let reloaded: Tokens = serde_json::from_str(&again).unwrap();
            prop_assert_eq!(reloaded.access_expires_at.is_some(), tokens.access_expires_at.is_some());
        }
    }
}

/// Every known expiry is within the century.
fn check_horizon(tokens: &Tokens) {
    let limit = SystemTime::now() + CENTURY + Duration::from_secs(86_400);
    for at in [tokens.access_expires_at, tokens.refresh_expires_at]
        .into_iter()
        .flatten()
    {
        assert!(at < limit, "an expiry beyond the century was kept");
    }
}

// --- Through a running session ----------------------------------------------

#[refresh_endpoint(path = "/token", auth = body, envelope = oauth2, body = form,
                   response = TokenResponse)]
#[derive(Clone)]
struct OAuthRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
}

/// A token endpoint whose refresh tokens are strictly single use: each
/// refresh must present the last one issued, and rotates it (`rt-1`,
/// `rt-2`, ...). Answer `n` is `script(n)` with `refresh_token` set.
struct Scripted {
    url: String,
    refreshes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(script: impl Fn(usize) -> Value + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refreshes = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(Mutex::new("rt-0".to_owned()));
        let script = Arc::new(script);
        let counter = Arc::clone(&refreshes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (counter, current, script) = (
                    Arc::clone(&counter),
                    Arc::clone(&current),
                    Arc::clone(&script),
                );
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut stream).await else {
                        return;
                    };
                    let presented = body
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("refresh_token="))
                        .unwrap_or_default()
                        .to_owned();
                    let (status, answer) = {
                        let mut current = current.lock().unwrap();
                        if presented != *current {
                            (400, json!({"error": "invalid_grant"}))
                        } else {
                            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                            *current = format!("rt-{n}");
                            let mut answer = script(n);
                            answer["refresh_token"] = json!(*current);
                            (200, answer)
                        }
                    };
                    let answer = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Scripted {
            url,
            refreshes,
            task,
        }
    }
}

/// Reads one HTTP/1.1 request and returns its body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expiries_from_a_rotating_provider_keep_every_rotation() {
    let hostile = [
        json!({"access_token": "at-a", "token_type": "Bearer", "expires_in": u64::MAX}),
        json!({"access_token": jwt(r#"{"exp":1e300}"#), "token_type": "Bearer"}),
        json!({"access_token": jwt(r#"{"exp":9.3e18}"#), "token_type": "Bearer"}),
        json!({"access_token": jwt(r#"{"exp":18446744073709551615}"#), "token_type": "Bearer"}),
        json!({"access_token": "at-e", "token_type": "Bearer", "expires_in": 3600}),
    ];
    let count = hostile.len();
    let server = Scripted::start(move |n| hostile[(n - 1) % count].clone()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let store = MemoryStore::new();
    let endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
    };
    let session = Session::builder(Client::new(&server.url).unwrap(), endpoint)
        .tokens(Tokens::new("at-0", "rt-0"))
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    for n in 1..=count {
        let token = session
            .refresh()
            .await
            .unwrap_or_else(|error| panic!("refresh {n}: {error}"));
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose(), format!("rt-{n}"), "saved");
        assert_eq!(stored.access_token, token);
        match n {
            5 => assert_eq!(
                stored.access_expires_at,
                Some(clock.now() + Duration::from_secs(3600))
            ),
            _ => assert_eq!(stored.access_expires_at, None, "refresh {n}"),
        }
        assert_eq!(session.status(), Status::Active);
        // No known expiry: the token is handed out as it is.
        assert_eq!(session.access_token().await.unwrap(), token);
    }
    assert_eq!(server.refreshes.load(Ordering::SeqCst), count);
}

// --- Retry-After ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_clamped_to_what_the_session_honours() {
    use refresh_endpoint::retry::RetryPolicy;
    use refresh_endpoint_testkit::{Fault, OAuth2Mock};

    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    let mock = OAuth2Mock::builder()
        .clock(Arc::new(move || for_mock.now()))
        .public_client("cli")
        .start()
        .await;
    let issued = mock.issue_tokens_for("cli", "").unwrap();
    mock.inject_times(
        Fault::RateLimited {
            retry_after_secs: 999_999,
        },
        2,
    );
    let endpoint = OAuthRefreshAs {
        grant_type: "refresh_token",
        refresh_token: Secret::new(issued.refresh_token.as_str()),
        client_id: "cli".to_owned(),
    };
    let client = Client::new(mock.url()).unwrap();
    let cap = RetryPolicy::default().max_retry_after; // what a session honours
    let error = client.send(&endpoint, None).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.retry_after(), Some(cap), "clamped");

    // A session waits no longer than that between attempts either.
    let session = Session::builder(client, endpoint)
        .tokens(Tokens::new(
            issued.access_token.as_str(),
            issued.refresh_token.as_str(),
        ))
        .clock(clock.clone())
        .retry(RetryPolicy::default().with_max_attempts(2))
        .max_wait(Duration::from_secs(300)) // this caller waits out the 60 s
        .build()
        .await
        .unwrap();
    let before = clock.now();
    assert!(session.refresh().await.is_ok(), "the second attempt passes");
    let waited = clock.now().duration_since(before).unwrap();
    assert!(waited <= cap, "{waited:?}");
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2, body = form,
                   response = TokenResponse)]
#[derive(Clone)]
struct OAuthRefreshAs {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salvaged_refresh_token_without_an_access_token_is_used_at_the_next_call() {
    // The first answer's access token is a number: it does not decode, and
    // only the (rotated) refresh token can be salvaged.
    let server = Scripted::start(|n| match n {
        1 => json!({"access_token": 42, "token_type": "Bearer", "expires_in": 3600}),
        _ => json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600}),
    })
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let store = MemoryStore::new();
    let endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
    };
    let session = Session::builder(Client::new(&server.url).unwrap(), endpoint)
        .tokens(Tokens::new("at-0", "rt-0"))
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let error = session.refresh().await.unwrap_err();
    assert!(error.to_string().contains("access_token"), "{error}");
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.expose(), "rt-1", "salvaged and saved");
    assert_eq!(
        stored.access_token.expose(),
        "at-0",
        "the old access token stays"
    );
    // Marked due: the next call refreshes with the salvaged token.
    assert_eq!(session.access_token().await.unwrap().expose(), "at-2");
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(session.status(), Status::Active);
}
