//! Sessions need no extra code for any seed provider: Clerk (the expired
//! session JWT sent back, a client secret key, 60-second tokens) and OAuth 2.0
//! (the ready-made `providers::oauth2::Refresh`, rotation or none).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use refresh_endpoint::Client;
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::clerk;
use refresh_endpoint::providers::oauth2::Refresh as OAuth2Refresh;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::{IntoTokens, Issued, Tokens, expires_after};
use refresh_endpoint::{ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{ClerkMock, Now, OAuth2Mock, oauth2};

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2, body = form,
                   response = TokenResponse)]
#[derive(Clone)]
struct OAuthRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

fn shared_clock() -> (Arc<ManualClock>, Now) {
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    (clock, Arc::new(move || for_mock.now()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_sessions_refresh_short_lived_tokens_only_when_due() {
    let (clock, now) = shared_clock();
    let mock = ClerkMock::builder().clock(now).start().await;
    let signed_in = mock.create_session("user_1");
    let client = Client::builder(mock.url())
        .secret(mock.secret_key())
        .build()
        .unwrap();
    let mut endpoint =
        clerk::RefreshSession::new(signed_in.session_id.clone(), "https://app.example.com");
    endpoint.format = Some(clerk::Format::Token);
    endpoint.request_originating_ip = Some("203.0.113.7".into());
    endpoint.request_headers = Some(
        [("user-agent".to_owned(), vec!["test".to_owned()])]
            .into_iter()
            .collect(),
    );
    let session = Session::builder(client, endpoint)
        .tokens(Tokens::new(
            signed_in.session_jwt.as_str(),
            signed_in.refresh_token.as_str(),
        ))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();

    // A 60 s token with the default 120 s skew: still used for its first half.
    assert_eq!(
        session.access_token().await.unwrap().expose(),
        signed_in.session_jwt
    );
    clock.advance(Duration::from_secs(20));
    session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 0, "not refreshed on every call");

    clock.advance(Duration::from_secs(45)); // expired
    let fresh = session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1);
    assert_ne!(fresh.expose(), signed_in.session_jwt);
    let sent = mock.last_request_body().unwrap();
    assert_eq!(
        sent["expired_token"],
        signed_in.session_jwt.as_str(),
        "the expired JWT is sent back"
    );
    assert_eq!(sent["refresh_token"], signed_in.refresh_token.as_str());
    assert_eq!(sent["format"], "token");
    assert_eq!(sent["request_originating_ip"], "203.0.113.7");
    assert_eq!(
        mock.last_api_version().as_deref(),
        Some(clerk::API_VERSION),
        "the SDKs' API version"
    );

    // A revoked session ends in "sign in again".
    mock.revoke(&signed_in.session_id);
    clock.advance(Duration::from_secs(120));
    let error = session.access_token().await.unwrap_err();
    assert!(error.is_terminal(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_sessions_rotate_or_keep_the_refresh_token() {
    for rotate in [true, false] {
        let (clock, now) = shared_clock();
        let mock = OAuth2Mock::builder()
            .clock(now)
            .public_client("cli")
            .rotate_refresh_tokens(rotate)
            .omit_refresh_token(!rotate)
            .start()
            .await;
        let issued = mock.issue_tokens_for("cli", "").unwrap();
        let store = MemoryStore::new();
        // The ready-made RFC 6749 refresh; a public client sends its id alone.
        let endpoint = OAuth2Refresh::client_body().path("/oauth/token");
        let client = Client::builder(mock.url())
            .client_id("cli")
            .build()
            .unwrap();
        let session = Session::builder(client, endpoint)
            .tokens(
                Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
                    .with_access_expires_at(clock.now() + Duration::from_secs(issued.expires_in)),
            )
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        clock.advance(Duration::from_secs(issued.expires_in + 1));
        let fresh = session.access_token().await.unwrap();
        assert_ne!(fresh.expose(), issued.access_token);
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(stored.access_token, fresh);
        if rotate {
            assert_ne!(
                stored.refresh_token.expose(),
                issued.refresh_token,
                "rotated and saved"
            );
        } else {
            assert_eq!(
                stored.refresh_token.expose(),
                issued.refresh_token,
                "no refresh_token in the answer: kept"
            );
        }
        // expires_in set the next expiry: fresh until near it.
        clock.advance(Duration::from_secs(issued.expires_in / 4));
        session.access_token().await.unwrap();
        assert_eq!(mock.refresh_count(), 1, "rotate={rotate}");
        // An authorized call with the session's token works.
        let me = format!("{}{}", mock.url(), oauth2::ME_ROUTE);
        assert_eq!(
            session
                .authorized(session.client().http().get(&me))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
    }
}

/// A response type stricter than the provider: `scope` as a list, where the
/// OAuth 2.0 mock sends a string. Every 2xx answer fails to decode, after
/// the provider rotated the refresh token.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct StrictToken {
    access_token: Secret,
    refresh_token: Secret,
    expires_in: u64,
    scope: Vec<String>,
}

impl IntoTokens for StrictToken {
    fn into_tokens(self, received_at: SystemTime) -> Result<Issued, refresh_endpoint::Error> {
        Ok(Issued::access(self.access_token)
            .with_refresh_token(Some(self.refresh_token))
            .with_access_expires_at(expires_after(
                received_at,
                Duration::from_secs(self.expires_in),
            )))
    }
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2, body = form,
                   response = StrictToken)]
#[derive(Clone)]
struct StrictRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

/// Whether [`Panicky`] panics.
static PANIC: AtomicBool = AtomicBool::new(false);

/// A user's response type whose `IntoTokens` panics while [`PANIC`] is set.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Panicky(TokenResponse);

impl IntoTokens for Panicky {
    fn into_tokens(self, received_at: SystemTime) -> Result<Issued, refresh_endpoint::Error> {
        if PANIC.load(Ordering::SeqCst) {
            panic!("a bug in user code");
        }
        self.0.into_tokens(received_at)
    }
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2, body = form,
                   response = Panicky)]
#[derive(Clone)]
struct PanickyRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

/// A rotating, strictly single-use OAuth 2.0 mock with one public client,
/// and tokens it issued that expire in an hour.
async fn single_use_oauth2(clock: &Arc<ManualClock>, now: Now) -> (OAuth2Mock, Tokens) {
    let mock = OAuth2Mock::builder()
        .clock(now)
        .public_client("cli")
        .rotate_refresh_tokens(true)
        .start()
        .await;
    let issued = mock.issue_tokens_for("cli", "").unwrap();
    let tokens = Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
        .with_access_expires_at(clock.now() + Duration::from_secs(issued.expires_in));
    (mock, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_answer_that_does_not_decode_still_saves_the_rotated_refresh_token() {
    let (clock, now) = shared_clock();
    let (mock, tokens) = single_use_oauth2(&clock, now).await;
    let store = MemoryStore::new();
    let endpoint = StrictRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
        client_id: "cli".to_owned(),
    };
    let session = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
        .tokens(tokens.clone())
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2 * 3600));

    for round in 1..=2 {
        let error = session.refresh().await.unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Decode { path, .. } if path == "scope"),
            "the decode error is still reported: {error}"
        );
        assert!(!error.is_terminal());
        assert_eq!(session.status(), Status::Active, "round {round}");
        let stored = store.load().await.unwrap().unwrap();
        assert_ne!(
            stored.refresh_token, tokens.refresh_token,
            "round {round}: the rotated refresh token is saved"
        );
        assert_eq!(session.tokens().unwrap(), stored);
        // The salvaged access token is handed out without another refresh.
        assert_eq!(session.access_token().await.unwrap(), stored.access_token);
        assert_eq!(mock.refresh_count(), round);
    }

    // The chain of rotations is unbroken: a session with a response type
    // that decodes picks up from the store and refreshes.
    let endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
        client_id: "cli".to_owned(),
    };
    let lenient = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    lenient
        .refresh()
        .await
        .expect("the salvaged refresh token is the live one");
    assert_eq!(mock.refresh_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_user_code_releases_every_waiter_and_keeps_the_session() {
    let (clock, now) = shared_clock();
    let (mock, tokens) = single_use_oauth2(&clock, now).await;
    let store = MemoryStore::new();
    let endpoint = PanickyRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
        client_id: "cli".to_owned(),
    };
    let session = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
        .tokens(tokens.clone())
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2 * 3600));

    PANIC.store(true, Ordering::SeqCst);
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    for waiter in waiters {
        let error = waiter
            .await
            .expect("the waiter itself does not panic")
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("panicked in user code"), "{text}");
        assert!(
            !text.contains("JoinError") && !text.contains("task"),
            "{text}"
        );
        assert!(!error.is_terminal());
    }
    assert_eq!(mock.refresh_count(), 1, "one refresh for every waiter");
    assert_eq!(session.status(), Status::Active);
    // The provider rotated before the panic: the new refresh token is saved.
    let stored = store.load().await.unwrap().unwrap();
    assert_ne!(stored.refresh_token, tokens.refresh_token);

    PANIC.store(false, Ordering::SeqCst);
    let fresh = session
        .refresh()
        .await
        .expect("a refresh that does not panic works");
    assert_eq!(mock.refresh_count(), 2);
    assert_eq!(store.load().await.unwrap().unwrap().access_token, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_at_once_cause_one_refresh_per_minimum_interval() {
    let (clock, now) = shared_clock();
    let mock = OAuth2Mock::builder()
        .clock(now)
        .public_client("cli")
        .access_ttl(Duration::ZERO) // `expires_in: 0`, a JWT whose `exp` is now
        .start()
        .await;
    let issued = mock.issue_tokens_for("cli", "").unwrap();
    let endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
        client_id: "cli".to_owned(),
    };
    let session = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
        .tokens(
            Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
                .with_access_expires_at(clock.now()),
        )
        .clock(clock.clone())
        .build()
        .await
        .unwrap();

    for _ in 0..50 {
        session.access_token().await.unwrap();
    }
    assert_eq!(mock.refresh_count(), 1, "50 calls, one refresh");
    clock.advance(Duration::from_secs(9));
    session.access_token().await.unwrap();
    assert_eq!(
        mock.refresh_count(),
        1,
        "not before the 10 s minimum interval"
    );
    clock.advance(Duration::from_secs(1));
    for _ in 0..50 {
        session.access_token().await.unwrap();
    }
    assert_eq!(mock.refresh_count(), 2, "one more after the interval");

    // A rejected token is refreshed at once, one refresh per rejection.
    let me = format!("{}{}", mock.url(), oauth2::ME_ROUTE);
    for rejected in 1..=3 {
        let response = session
            .authorized(session.client().http().get(&me))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "the replay's answer, as it is");
        assert_eq!(mock.refresh_count(), 2 + rejected);
    }
}

/// Whether [`PanickyAuth`] and [`PanickyEnvelope`] panic.
static PANIC_AUTH: AtomicBool = AtomicBool::new(false);
static PANIC_ENVELOPE: AtomicBool = AtomicBool::new(false);

/// A user's `Auth` that panics while [`PANIC_AUTH`] is set, before sending.
struct PanickyAuth;

impl refresh_endpoint::auth::Auth for PanickyAuth {
    const SENDS_SECRET: bool = false;
    fn apply(
        _: &mut refresh_endpoint::reqwest::Request,
        _: refresh_endpoint::auth::Credentials<'_>,
    ) -> Result<(), refresh_endpoint::Error> {
        if PANIC_AUTH.load(Ordering::SeqCst) {
            panic!("a bug in user code");
        }
        Ok(())
    }
}

/// A user's `Envelope` that panics on a 2xx answer while
/// [`PANIC_ENVELOPE`] is set: after the provider rotated the token.
struct PanickyEnvelope;

impl refresh_endpoint::envelope::Envelope for PanickyEnvelope {
    fn unwrap<T: serde::de::DeserializeOwned>(
        response: &refresh_endpoint::envelope::RawResponse,
    ) -> Result<T, refresh_endpoint::Error> {
        if PANIC_ENVELOPE.load(Ordering::SeqCst) && response.is_success() {
            panic!("a bug in user code");
        }
        refresh_endpoint::envelope::OAuth2::unwrap(response)
    }
}

#[refresh_endpoint(path = "/oauth/token", auth = PanickyAuth, envelope = PanickyEnvelope,
                   body = form, response = TokenResponse)]
#[derive(Clone)]
struct PanickyPartsRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_custom_auth_or_envelope_leaves_the_session_usable() {
    for (flag, rotated) in [(&PANIC_AUTH, false), (&PANIC_ENVELOPE, true)] {
        let (clock, now) = shared_clock();
        let (mock, tokens) = single_use_oauth2(&clock, now).await;
        let store = MemoryStore::new();
        let endpoint = PanickyPartsRefresh {
            grant_type: "refresh_token",
            refresh_token: Secret::new(""),
            client_id: "cli".to_owned(),
        };
        let session = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
            .tokens(tokens.clone())
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        clock.advance(Duration::from_secs(2 * 3600));

        flag.store(true, Ordering::SeqCst);
        let error = session.access_token().await.unwrap_err();
        flag.store(false, Ordering::SeqCst);
        assert!(
            error.to_string().contains("panicked in user code"),
            "{error}"
        );
        assert_eq!(session.status(), Status::Active);
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(
            stored.refresh_token != tokens.refresh_token,
            rotated,
            "saved the rotated token exactly when the provider rotated it"
        );
        assert_eq!(mock.refresh_count(), usize::from(rotated));
        session
            .refresh()
            .await
            .expect("a refresh that does not panic works");
    }
}
