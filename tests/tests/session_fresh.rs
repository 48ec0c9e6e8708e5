//! Sessions against the testkit over real HTTP: single-flight, proactive and
//! reactive refresh, rotation, retries, sign-out and cancellation. Time is a
//! shared manual clock; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::RefreshSession;
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, CloudreveMock, Fault, Now, atproto, cloudreve};

#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = Token)]
#[derive(Clone)]
struct CloudreveRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

fn shared_clock() -> (Arc<ManualClock>, Now) {
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    (clock, Arc::new(move || for_mock.now()))
}

fn atp_tokens(t: &refresh_endpoint_testkit::atproto::AtpTokens) -> Tokens {
    Tokens::new(t.access_jwt.as_str(), t.refresh_jwt.as_str())
}

async fn atp_session(
    mock: &AtprotoMock,
    clock: &Arc<ManualClock>,
    tokens: Tokens,
    store: MemoryStore,
) -> Session<RefreshSession> {
    Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
        .tokens(tokens)
        .store(store)
        .clock(clock.clone())
        .retry(RetryPolicy::default().with_max_attempts(3))
        .build()
        .await
        .unwrap()
}

async fn many_callers_on_an_expired_session(grace: Duration) {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder()
        .clock(now)
        .grace_period(grace)
        .start()
        .await;
    let account = mock.create_account("alice.test");
    clock.advance(Duration::from_secs(3 * 3600)); // the 2 h access token is dead
    let session = atp_session(&mock, &clock, atp_tokens(&account), MemoryStore::new()).await;

    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().expect("every caller gets a token"));
    }

    assert_eq!(
        mock.refresh_count(),
        1,
        "exactly one refreshSession request"
    );
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "every caller gets the same token"
    );
    assert_ne!(tokens[0].expose(), account.access_jwt);
    // The new token works: zero ExpiredToken.
    let response = session
        .authorized(session.client().http().get(format!(
            "{}{}",
            mock.url(),
            atproto::GET_SESSION_ROUTE
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(mock.refresh_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_on_an_expired_session_cause_one_refresh() {
    many_callers_on_an_expired_session(Duration::from_secs(2 * 3600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_even_with_strictly_single_use_refresh_tokens() {
    many_callers_on_an_expired_session(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_saved_before_the_token_is_handed_out_and_survives_a_restart() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder()
        .clock(now)
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let account = mock.create_account("alice.test");
    let store = MemoryStore::new();
    let session = atp_session(&mock, &clock, atp_tokens(&account), store.clone()).await;
    let first = session.refresh().await.unwrap();
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.access_token, first);
    assert_ne!(
        stored.refresh_token.expose(),
        account.refresh_jwt,
        "rotated"
    );
    drop(session);

    // A restart: a new session on the same store, with the stale tokens
    // given again; the store wins, and the next refresh uses the new token.
    let restarted = atp_session(&mock, &clock, atp_tokens(&account), store.clone()).await;
    assert_eq!(
        restarted.tokens().unwrap().refresh_token,
        stored.refresh_token
    );
    restarted
        .refresh()
        .await
        .expect("the rotated token works; the old one is revoked");
    assert_eq!(mock.refresh_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudreve_refreshes_inside_the_skew_window_and_not_before() {
    let (clock, now) = shared_clock();
    let mock = CloudreveMock::builder().clock(now).start().await;
    let issued = mock.issue_tokens("alice");
    let tokens = Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
        .with_access_expires_at(issued.access_expires);
    let skew = Duration::from_secs(600);
    let session = Session::builder(
        Client::new(mock.url()).unwrap(),
        CloudreveRefresh {
            refresh_token: Secret::new(""),
        },
    )
    .tokens(tokens)
    .clock(clock.clone())
    .refresh_skew(skew)
    .refresh_jitter(Duration::ZERO)
    .build()
    .await
    .unwrap();

    let window_opens = issued.access_expires - skew;
    clock.set(window_opens - Duration::from_secs(1));
    assert_eq!(
        session.access_token().await.unwrap().expose(),
        issued.access_token
    );
    assert_eq!(mock.refresh_count(), 0, "no refresh before the window");

    clock.set(window_opens + Duration::from_secs(1));
    let fresh = session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1, "one refresh inside the window");
    assert_ne!(fresh.expose(), issued.access_token);
    assert!(session.tokens().unwrap().access_expires_at.unwrap() > clock.now() + skew);
    session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1, "the new token is fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_the_request_replayed_once() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder().clock(now).start().await;
    let account = mock.create_account("alice.test");
    // The session believes its token is good for an hour; the server says expired.
    let expired = mock.mint_access_token(&account.did, clock.now() - Duration::from_secs(1));
    let tokens = Tokens::new(expired.as_str(), account.refresh_jwt.as_str())
        .with_access_expires_at(clock.now() + Duration::from_secs(3600));
    let session = atp_session(&mock, &clock, tokens, MemoryStore::new()).await;
    let me = format!("{}{}", mock.url(), atproto::GET_SESSION_ROUTE);

    let response = session
        .authorized(session.client().http().get(&me))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["did"], account.did.as_str());
    assert_eq!(mock.refresh_count(), 1);
    assert_eq!(
        mock.requests(atproto::GET_SESSION_ROUTE),
        2,
        "the request and one replay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_expiry_answer_is_returned_not_looped_on() {
    // The server's clock runs an hour ahead and issues tokens that expire at
    // once; the session's clock thinks they are fresh.
    let session_clock = Arc::new(ManualClock::starting_now());
    let server_clock = ManualClock::new(session_clock.now() + Duration::from_secs(3600));
    let server_now = {
        let c = Arc::new(server_clock);
        Arc::new(move || c.now()) as Now
    };
    let mock = CloudreveMock::builder()
        .clock(server_now)
        .access_ttl(Duration::ZERO)
        .start()
        .await;
    let issued = mock.issue_tokens("alice");
    let session = Session::builder(
        Client::new(mock.url()).unwrap(),
        CloudreveRefresh {
            refresh_token: Secret::new(""),
        },
    )
    .tokens(
        Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
            .with_access_expires_at(issued.access_expires),
    )
    .clock(session_clock)
    .build()
    .await
    .unwrap();

    let me = format!("{}{}", mock.url(), cloudreve::ME_ROUTE);
    let response = session
        .authorized(session.client().http().get(&me))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["code"], 401,
        "the replay's expiry answer is returned as it is"
    );
    assert_eq!(mock.refresh_count(), 1, "one refresh");
    assert_eq!(mock.requests(cloudreve::ME_ROUTE), 2, "one replay, no loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_keep_the_session_and_the_next_call_succeeds() {
    for fault in [
        Fault::Status(503),
        Fault::Html(502),
        Fault::Drop,
        Fault::RateLimited {
            retry_after_secs: 2,
        },
    ] {
        let (clock, now) = shared_clock();
        let mock = AtprotoMock::builder().clock(now).start().await;
        let account = mock.create_account("alice.test");
        clock.advance(Duration::from_secs(3 * 3600));
        let store = MemoryStore::new();
        let session = atp_session(&mock, &clock, atp_tokens(&account), store.clone()).await;
        mock.inject_times(fault.clone(), 3); // as many as the retry policy's attempts

        let before = clock.now();
        let error = session.access_token().await.unwrap_err();
        assert!(error.is_retryable(), "{fault:?}: {error}");
        assert!(!error.is_terminal());
        assert_eq!(
            mock.refresh_count(),
            3,
            "{fault:?}: retried up to the policy"
        );
        if matches!(fault, Fault::RateLimited { .. }) {
            assert!(
                clock.now() >= before + Duration::from_secs(4),
                "Retry-After honoured twice"
            );
        }
        assert_eq!(session.status(), Status::Active);
        assert_eq!(
            session.tokens().unwrap().refresh_token.expose(),
            account.refresh_jwt
        );
        assert_eq!(
            store.load().await.unwrap().unwrap().refresh_token.expose(),
            account.refresh_jwt
        );

        // The fault clears: the next call refreshes with the kept token.
        session.access_token().await.expect("the session survived");
        assert_eq!(mock.refresh_count(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_within_the_retry_budget_is_invisible_to_callers() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder().clock(now).start().await;
    let account = mock.create_account("alice.test");
    clock.advance(Duration::from_secs(3 * 3600));
    let session = atp_session(&mock, &clock, atp_tokens(&account), MemoryStore::new()).await;
    mock.inject(Fault::Status(500));
    mock.inject(Fault::BrokenJson);
    // BrokenJson is not retryable (a decode failure), so it surfaces...
    let error = session.access_token().await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Decode { .. }), "{error}");
    assert_eq!(mock.refresh_count(), 2);
    // ...and the tokens are intact for the next call.
    session.access_token().await.unwrap();
    mock.inject(Fault::Status(502));
    clock.advance(Duration::from_secs(3 * 3600));
    session
        .access_token()
        .await
        .expect("one 502 is retried away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_during_refresh_keeps_the_session() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder().clock(now).start().await;
    let account = mock.create_account("alice.test");
    clock.advance(Duration::from_secs(3 * 3600));
    let client = Client::builder(mock.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let session = Session::builder(client, RefreshSession)
        .tokens(atp_tokens(&account))
        .clock(clock.clone())
        .retry(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    mock.inject(Fault::Hang);
    let error = session.access_token().await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Timeout { .. }), "{error}");
    assert!(error.is_retryable());
    session
        .access_token()
        .await
        .expect("after the timeout the next call succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_signs_out_clears_the_store_and_releases_every_waiter() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder().clock(now).start().await;
    let account = mock.create_account("alice.test");
    mock.revoke(&account.refresh_jwt);
    clock.advance(Duration::from_secs(3 * 3600));
    let store = MemoryStore::new();
    let session = atp_session(&mock, &clock, atp_tokens(&account), store.clone()).await;
    let mut status = session.watch_status();

    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    for waiter in waiters {
        let error = waiter.await.unwrap().unwrap_err();
        assert!(error.is_terminal(), "{error}");
        assert_eq!(error.api().unwrap().code, "ExpiredToken");
    }
    assert_eq!(mock.refresh_count(), 1, "a dead token is not retried");
    assert!(store.load().await.unwrap().is_none(), "store cleared");
    assert!(matches!(session.status(), Status::SignedOut(Some(_))));
    status.changed().await.unwrap();
    assert!(matches!(*status.borrow(), Status::SignedOut(_)));
    // Later calls fail at once, without a request.
    assert!(session.access_token().await.unwrap_err().is_terminal());
    let me = format!("{}{}", mock.url(), atproto::GET_SESSION_ROUTE);
    assert!(
        session
            .authorized(session.client().http().get(&me))
            .send()
            .await
            .unwrap_err()
            .is_terminal()
    );
    assert_eq!(mock.refresh_count(), 1);
    assert_eq!(
        mock.requests(atproto::GET_SESSION_ROUTE),
        0,
        "never a silent anonymous request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_do_not_cancel_the_refresh_or_leave_the_session_stuck() {
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder().clock(now).start().await;
    let account = mock.create_account("alice.test");
    clock.advance(Duration::from_secs(3 * 3600));
    let store = MemoryStore::new();
    let session = atp_session(&mock, &clock, atp_tokens(&account), store.clone()).await;
    mock.inject(Fault::Delay(Duration::from_millis(200)));

    let callers: Vec<_> = (0..100)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    while mock.refresh_count() == 0 {
        tokio::task::yield_now().await;
    }
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        assert!(caller.await.unwrap_err().is_cancelled());
    }
    // The refresh went on: its result is used, with no second request.
    let token = session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1);
    assert_eq!(store.load().await.unwrap().unwrap().access_token, token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waits_at_most_max_wait_and_the_refresh_goes_on_in_the_background() {
    // The default (30 s), then a configured limit.
    for max_wait in [None, Some(Duration::from_secs(5))] {
        let limit = max_wait.unwrap_or(Duration::from_secs(30));
        let (clock, now) = shared_clock();
        let mock = AtprotoMock::builder().clock(now).start().await;
        let account = mock.create_account("alice.test");
        clock.advance(Duration::from_secs(3 * 3600));
        let store = MemoryStore::new();
        let mut builder = Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
            .tokens(atp_tokens(&account))
            .store(store.clone())
            .clock(clock.clone());
        if let Some(max_wait) = max_wait {
            builder = builder.max_wait(max_wait);
        }
        let session = builder.build().await.unwrap();
        // A slow provider; the wait is measured on the session's clock.
        mock.inject(Fault::Delay(Duration::from_secs(1)));
        let caller = tokio::spawn({
            let session = session.clone();
            async move { session.access_token().await }
        });
        while mock.refresh_count() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(limit);
        let error = caller.await.unwrap().unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Timeout { .. }), "{error}");
        assert!(error.is_retryable());
        assert_eq!(session.status(), Status::Active);

        // The refresh went on: the next caller gets its result, with no
        // second request.
        let token = session.access_token().await.unwrap();
        assert_ne!(token.expose(), account.access_jwt);
        assert_eq!(mock.refresh_count(), 1);
        assert_eq!(store.load().await.unwrap().unwrap().access_token, token);
    }
}
