//! The hot path of `Session::access_token()` keeps a per-thread copy of each
//! session's token. These tests check that the copies never outlive what
//! they copy: a refresh or a sign-out is seen by every thread at its next
//! call, and sessions sharing a thread never see each other's tokens. The
//! sessions run on the default system clock (the path with the coarse clock),
//! against the testkit over real HTTP.

use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::RefreshSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, ErrorKind, Secret};
use refresh_endpoint_testkit::AtprotoMock;
use refresh_endpoint_testkit::atproto::AtpTokens;
use tokio::runtime::Handle;

const THREADS: usize = 6;
const CALLS: usize = 200;

async fn session(mock: &AtprotoMock, account: &AtpTokens) -> Session<RefreshSession> {
    let tokens = Tokens::new(account.access_jwt.as_str(), account.refresh_jwt.as_str());
    Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
        .tokens(tokens)
        .build()
        .await
        .unwrap()
}

/// A provider whose clock the test moves a second before each refresh, so
/// that each new access token differs from the last (they carry `iat`).
/// The sessions run on the system clock, for which the tokens stay valid
/// for hours.
async fn mock_on_its_own_clock() -> (AtprotoMock, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let now = Arc::clone(&clock);
    let mock = AtprotoMock::builder()
        .clock(Arc::new(move || now.now()))
        .start()
        .await;
    (mock, clock)
}

/// `THREADS` OS threads that, each time `round` is called, make `CALLS`
/// calls to `access_token()` and report every answer.
struct Callers {
    go: Vec<mpsc::Sender<()>>,
    answers: mpsc::Receiver<Vec<Result<Secret, Error>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Callers {
    fn start(session: &Session<RefreshSession>) -> Self {
        let (answer_tx, answers) = mpsc::channel();
        let ready = Arc::new(Barrier::new(THREADS));
        let mut go = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..THREADS {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            let (session, answer_tx, ready) = (session.clone(), answer_tx.clone(), ready.clone());
            let handle = Handle::current();
            threads.push(thread::spawn(move || {
                ready.wait(); // all threads exist at once: they are distinct
                while go_rx.recv().is_ok() {
                    let answers = (0..CALLS)
                        .map(|_| handle.block_on(session.access_token()))
                        .collect();
                    answer_tx.send(answers).unwrap();
                }
            }));
        }
        Callers {
            go,
            answers,
            threads,
        }
    }

    /// Every answer of one round, from every thread.
    async fn round(&self) -> Vec<Result<Secret, Error>> {
        for go in &self.go {
            go.send(()).unwrap();
        }
        let mut all = Vec::new();
        for _ in 0..THREADS {
            let answers = tokio::task::block_in_place(|| self.answers.recv().unwrap());
            all.extend(answers);
        }
        all
    }

    fn stop(self) {
        drop(self.go);
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

fn all_equal_to(answers: &[Result<Secret, Error>], expected: &str) -> bool {
    answers.iter().all(|answer| {
        answer
            .as_ref()
            .is_ok_and(|token| token.expose() == expected)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_seen_by_every_thread_at_its_next_call() {
    let (mock, provider_clock) = mock_on_its_own_clock().await;
    let account = mock.create_account("alice.test");
    let session = session(&mock, &account).await;
    let callers = Callers::start(&session);

    assert!(all_equal_to(&callers.round().await, &account.access_jwt));
    provider_clock.advance(Duration::from_secs(1));
    let refreshed = session.refresh().await.unwrap();
    assert_ne!(refreshed.expose(), account.access_jwt);
    assert!(
        all_equal_to(&callers.round().await, refreshed.expose()),
        "no thread hands out the token from before the refresh"
    );
    provider_clock.advance(Duration::from_secs(1));
    let again = session.refresh().await.unwrap();
    assert_ne!(again, refreshed);
    assert!(all_equal_to(&callers.round().await, again.expose()));
    assert_eq!(mock.refresh_count(), 2);
    callers.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_is_seen_by_every_thread_at_its_next_call() {
    let mock = AtprotoMock::start().await;
    let account = mock.create_account("alice.test");
    let session = session(&mock, &account).await;
    let callers = Callers::start(&session);
    assert!(all_equal_to(&callers.round().await, &account.access_jwt));

    mock.revoke(&account.refresh_jwt);
    let error = session.refresh().await.unwrap_err();
    assert!(error.is_terminal(), "{error:?}");

    let answers = callers.round().await;
    assert_eq!(answers.len(), THREADS * CALLS);
    for answer in answers {
        let error = answer.expect_err("no thread hands out a signed-out token");
        assert!(
            matches!(error.kind(), ErrorKind::SignInAgain(_)),
            "{error:?}"
        );
    }
    callers.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_sharing_a_thread_never_see_each_others_tokens() {
    let (mock, provider_clock) = mock_on_its_own_clock().await;
    // More sessions than the per-thread cache has slots.
    let mut sessions = Vec::new();
    let mut accounts = Vec::new();
    for i in 0..11 {
        let account = mock.create_account(&format!("user{i}.test"));
        sessions.push(session(&mock, &account).await);
        accounts.push(account);
    }
    for round in 0..3 {
        for (session, account) in sessions.iter().zip(&accounts).rev() {
            let token = session.access_token().await.unwrap();
            assert_eq!(token.expose(), account.access_jwt, "round {round}");
        }
    }
    // Refresh every other session; the rest keep their tokens.
    let mut expected: Vec<String> = accounts.iter().map(|a| a.access_jwt.clone()).collect();
    provider_clock.advance(Duration::from_secs(1));
    for (i, session) in sessions.iter().enumerate().step_by(2) {
        expected[i] = session.refresh().await.unwrap().expose().to_owned();
    }
    for (i, account) in accounts.iter().enumerate().step_by(2) {
        assert_ne!(expected[i], account.access_jwt, "session {i} refreshed");
    }
    for round in 0..3 {
        for (i, session) in sessions.iter().enumerate() {
            let token = session.access_token().await.unwrap();
            assert_eq!(token.expose(), expected[i], "session {i}, round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_leaves_no_token_for_the_next_one() {
    let mock = AtprotoMock::start().await;
    for i in 0..20 {
        let account = mock.create_account(&format!("user{i}.test"));
        let session = session(&mock, &account).await;
        let token = session.access_token().await.unwrap();
        assert_eq!(token.expose(), account.access_jwt);
    }
}
