//! Several processes sharing one Bluesky session through `RedisStore`: a
//! real `redis-server` started by the tests on a free loopback port, the
//! testkit's AT Protocol mock in this process, and replicas that are this
//! very test binary run again as child processes (`replica_child`).
//!
//! Replicas never print a token: each caller's result is reported as a
//! short SHA-256 of the token it got, and the parent compares those.
//!
//! Without `redis-server` installed the tests print why and pass, except
//! under `CI=true`, where they fail (`.ci/run` installs it).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{RedisStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, Fault, Now};
use refresh_endpoint_tests::redis_server::RedisServer;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

/// The child test's name, and the variables that make it a replica.
const CHILD_TEST: &str = "replica_child";
const ENV_MOCK_URL: &str = "REPLICA_MOCK_URL";
const ENV_REDIS_URL: &str = "REPLICA_REDIS_URL";
const ENV_KEY: &str = "REPLICA_KEY";
const ENV_CALLERS: &str = "REPLICA_CALLERS";
const ENV_LEASE_TTL_MS: &str = "REPLICA_LEASE_TTL_MS";

/// No step of a test may take longer than this (a hang fails, not blocks).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The first 16 hex digits of the token's SHA-256: comparable, not usable.
fn short_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tokens whose access JWT expired an hour ago, in real time.
fn expired_tokens(mock: &AtprotoMock) -> Tokens {
    let account = mock.create_account("alice.test");
    let expired =
        mock.mint_access_token(&account.did, SystemTime::now() - Duration::from_secs(3600));
    Tokens::new(expired.as_str(), account.refresh_jwt.as_str())
}

// ---------------------------------------------------------------------------
// The replica: this binary run again with the variables above set.

/// One replica process: builds a session on the shared Redis key, says
/// `READY`, waits for `GO` on stdin, runs its callers at once and reports
/// one line per caller, its session's status, then `DONE`.
#[test]
#[ignore = "a replica process, started by the other tests in this file"]
fn replica_child() {
    let Ok(mock_url) = std::env::var(ENV_MOCK_URL) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let redis_url = var(ENV_REDIS_URL);
    let key = var(ENV_KEY);
    let callers: usize = var(ENV_CALLERS).parse().unwrap();
    let lease_ttl = Duration::from_millis(var(ENV_LEASE_TTL_MS).parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = RedisStore::connect(&redis_url, key)
            .await
            .expect("redis is up")
            .lease_ttl(lease_ttl);
        let session = Session::builder(Client::new(&mock_url).unwrap(), RefreshSession)
            .store(store)
            .build()
            .await
            .expect("the store holds the session");
        println!("READY {}", std::process::id());
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        })
        .await
        .unwrap()
        .unwrap();
        let callers: Vec<_> = (0..callers)
            .map(|_| {
                let session = session.clone();
                tokio::spawn(async move { session.access_token().await })
            })
            .collect();
        for (i, caller) in callers.into_iter().enumerate() {
            match caller.await.expect("a caller panicked") {
                Ok(token) => println!("CALLER {i} ok {}", short_hash(token.expose())),
                Err(error) => {
                    let kind = if error.is_terminal() {
                        "terminal"
                    } else if error.is_retryable() {
                        "retryable"
                    } else {
                        "other"
                    };
                    // An error's text never holds a token.
                    println!("CALLER {i} err {kind} {error}");
                }
            }
        }
        let status = match session.status() {
            Status::Active => "active",
            _ => "signed_out",
        };
        println!("STATUS {status}");
        println!("DONE");
    });
}

// ---------------------------------------------------------------------------
// The parent's side.

/// What one replica reported.
#[derive(Debug, Default)]
struct Report {
    /// Token hashes of the callers that got one.
    tokens: Vec<String>,
    /// `(kind, message)` of the callers that failed.
    errors: Vec<(String, String)>,
    status: String,
}

/// A replica process; killed (SIGKILL) if dropped while it runs.
struct Replica {
    pid: u32,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(
        mock: &AtprotoMock,
        redis: &RedisServer,
        key: &str,
        callers: usize,
        lease_ttl: Duration,
    ) -> Replica {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--ignored"])
            .env(ENV_MOCK_URL, mock.url())
            .env(ENV_REDIS_URL, redis.url())
            .env(ENV_KEY, key)
            .env(ENV_CALLERS, callers.to_string())
            .env(ENV_LEASE_TTL_MS, lease_ttl.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again");
        Replica {
            pid: child.id().unwrap(),
            stdin: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
        }
    }

    /// The next line of ours (the test harness prints its own as well).
    async fn next_line(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(STEP_TIMEOUT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("replica {} said nothing for {STEP_TIMEOUT:?}", self.pid)
                })
                .unwrap();
            match line {
                Some(line)
                    if ["READY", "CALLER", "STATUS", "DONE"]
                        .iter()
                        .any(|p| line.starts_with(p)) =>
                {
                    return line;
                }
                Some(_) => {}
                None => panic!(
                    "replica {} ended early: {:?}",
                    self.pid,
                    self.child.try_wait()
                ),
            }
        }
    }

    async fn ready(&mut self) {
        let line = self.next_line().await;
        assert!(line.starts_with("READY"), "{line}");
    }

    async fn go(&mut self) {
        self.stdin.write_all(b"GO\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn report(mut self) -> Report {
        let mut report = Report::default();
        loop {
            let line = self.next_line().await;
            let mut words = line.splitn(4, ' ');
            match words.next() {
                Some("CALLER") => {
                    let _index = words.next();
                    match words.next() {
                        Some("ok") => report.tokens.push(words.next().unwrap().to_owned()),
                        _ => {
                            let rest = words.next().unwrap_or_default();
                            let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
                            report.errors.push((kind.to_owned(), message.to_owned()));
                        }
                    }
                }
                Some("STATUS") => report.status = words.next().unwrap_or_default().to_owned(),
                Some("DONE") => break,
                _ => panic!("unexpected line from replica {}: {line}", self.pid),
            }
        }
        let exit = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("the replica exits")
            .unwrap();
        assert!(exit.success(), "replica {} exited with {exit}", self.pid);
        report
    }

    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Starts `count` replicas and waits until each has built its session.
async fn start_replicas(
    count: usize,
    mock: &AtprotoMock,
    redis: &RedisServer,
    key: &str,
    callers: usize,
    lease_ttl: Duration,
) -> Vec<Replica> {
    let mut replicas: Vec<_> = (0..count)
        .map(|_| Replica::spawn(mock, redis, key, callers, lease_ttl))
        .collect();
    for replica in &mut replicas {
        replica.ready().await;
    }
    replicas
}

async fn reports(replicas: Vec<Replica>) -> Vec<Report> {
    let mut reports = Vec::new();
    for replica in replicas {
        reports.push(replica.report().await);
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_250_callers_share_one_refresh() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let mock = AtprotoMock::builder()
        .grace_period(Duration::ZERO) // strictly single-use refresh tokens
        .start()
        .await;
    let tokens = expired_tokens(&mock);
    let store = RedisStore::connect(&redis.url(), "bsky:alice")
        .await
        .unwrap();
    assert_eq!(store.save(None, &tokens).await.unwrap(), Saved::Written);

    let mut replicas =
        start_replicas(4, &mock, &redis, "bsky:alice", 250, Duration::from_secs(30)).await;
    let started = Instant::now();
    for replica in &mut replicas {
        replica.go().await;
    }
    let reports = reports(replicas).await;
    let elapsed = started.elapsed();

    assert_eq!(
        mock.refresh_count(),
        1,
        "exactly one refreshSession request"
    );
    let stored = store
        .load()
        .await
        .unwrap()
        .expect("the new tokens are stored");
    assert_ne!(stored.refresh_token, tokens.refresh_token, "rotated");
    let expected = short_hash(stored.access_token.expose());
    assert_ne!(expected, short_hash(tokens.access_token.expose()));
    for (i, report) in reports.iter().enumerate() {
        assert!(report.errors.is_empty(), "replica {i}: {:?}", report.errors);
        assert_eq!(report.tokens.len(), 250, "replica {i}");
        assert!(
            report.tokens.iter().all(|t| *t == expected),
            "replica {i}: every caller has the stored access token"
        );
        assert_eq!(report.status, "active");
    }
    println!(
        "4 processes x 250 callers: every caller had the new token {} ms after the go",
        elapsed.as_millis()
    );
}

/// The first refresh reaches the server, which rotates the token, but its
/// answer never comes back; the process that sent it is killed (SIGKILL)
/// while it holds the lease. Returns the survivors' reports.
async fn lease_holder_killed_after_sending_the_refresh(
    grace: Duration,
) -> Option<(AtprotoMock, Option<Tokens>, Vec<Report>)> {
    let redis = RedisServer::start_or_skip()?;
    let mock = AtprotoMock::builder().grace_period(grace).start().await;
    let tokens = expired_tokens(&mock);
    // Redis's own expiry runs on the wall clock: a short lease keeps the
    // takeover quick.
    let lease_ttl = Duration::from_secs(1);
    let store = RedisStore::connect(&redis.url(), "bsky:alice")
        .await
        .unwrap()
        .lease_ttl(lease_ttl);
    store.save(None, &tokens).await.unwrap();
    mock.inject(Fault::ProcessThenHang);

    let mut replicas = start_replicas(4, &mock, &redis, "bsky:alice", 50, lease_ttl).await;
    for replica in &mut replicas {
        replica.go().await;
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    while mock.refresh_count() == 0 {
        assert!(Instant::now() < deadline, "no refresh was sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let holder = store
        .lease_holder()
        .await
        .unwrap()
        .expect("the sender holds the lease");
    let pid: u32 = holder.split('.').next().unwrap().parse().unwrap();
    let at = replicas
        .iter()
        .position(|r| r.pid == pid)
        .expect("the holder is one of the replicas");
    replicas.remove(at).kill().await;
    assert_eq!(mock.refresh_count(), 1, "the others waited for the lease");

    let survivors = reports(replicas).await;
    let stored = store.load().await.unwrap();
    Some((mock, stored, survivors))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_is_taken_over_within_the_grace_period() {
    let Some((mock, stored, survivors)) =
        lease_holder_killed_after_sending_the_refresh(Duration::from_secs(2 * 3600)).await
    else {
        return;
    };
    let stored = stored.expect("the takeover stored its tokens");
    // One survivor refreshed again with the token still in Redis; inside
    // the grace period the server answered the pair the lost answer held.
    assert_eq!(mock.refresh_count(), 2);
    let expected = short_hash(stored.access_token.expose());
    assert_eq!(survivors.len(), 3);
    for (i, report) in survivors.iter().enumerate() {
        assert!(
            report.errors.is_empty(),
            "survivor {i}: {:?}",
            report.errors
        );
        assert_eq!(report.tokens.len(), 50);
        assert!(report.tokens.iter().all(|t| *t == expected), "survivor {i}");
        assert_eq!(report.status, "active");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again() {
    let Some((mock, stored, survivors)) =
        lease_holder_killed_after_sending_the_refresh(Duration::ZERO).await
    else {
        return;
    };
    // The rotated token died with the holder; the one in Redis is spent.
    // Each survivor tries it once, is told so, and signs out: no hang.
    assert_eq!(mock.refresh_count(), 4);
    assert_eq!(survivors.len(), 3);
    for (i, report) in survivors.iter().enumerate() {
        assert!(report.tokens.is_empty(), "survivor {i}");
        assert_eq!(report.errors.len(), 50);
        assert!(
            report.errors.iter().all(|(kind, _)| kind == "terminal"),
            "survivor {i}: {:?}",
            report.errors[0]
        );
        assert!(
            report.errors[0].1.contains("sign in again"),
            "{:?}",
            report.errors[0]
        );
        assert_eq!(report.status, "signed_out");
    }
    assert_eq!(stored, None, "the store is cleared");
}

// ---------------------------------------------------------------------------
// In this process: the store's contract, and Redis going away.

fn shared_clock() -> (Arc<ManualClock>, Now) {
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    (clock, Arc::new(move || for_mock.now()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compares_and_swaps_on_the_refresh_token() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let store = RedisStore::connect(&redis.url(), "k")
        .await
        .unwrap()
        .prefix("test:");
    assert_eq!(store.tokens_key(), "test:k:tokens");
    assert_eq!(store.lease_key(), "test:k:lease");
    let other = store.for_key("other");
    let first = Tokens::new("a1", "r1")
        .with_access_expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let second = Tokens::new("a2", "r2");

    assert_eq!(store.load().await.unwrap(), None);
    assert_eq!(store.save(None, &first).await.unwrap(), Saved::Written);
    assert_eq!(store.load().await.unwrap(), Some(first.clone()));
    assert_eq!(other.load().await.unwrap(), None, "keys are separate");
    // Expecting an empty store, or another refresh token, loses.
    assert_eq!(
        store.save(None, &second).await.unwrap(),
        Saved::Conflict(Some(first.clone()))
    );
    assert_eq!(
        store.save(Some(&Secret::new("r0")), &second).await.unwrap(),
        Saved::Conflict(Some(first.clone()))
    );
    assert_eq!(
        store
            .save(Some(&first.refresh_token), &second)
            .await
            .unwrap(),
        Saved::Written
    );
    assert_eq!(
        other.save(Some(&Secret::new("r1")), &first).await.unwrap(),
        Saved::Conflict(None)
    );
    // Clearing with a stale token keeps the newer session.
    store.clear(&first.refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(second.clone()));
    store.clear(&second.refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);

    // The lease: taken, refused to a second holder until released, and
    // answered with the stored tokens once they are not the caller's.
    store.save(None, &first).await.unwrap();
    let short = store
        .clone()
        .wait_timeout(Duration::from_millis(50))
        .poll_interval(Duration::from_millis(10));
    let refresh_endpoint::store::Lease::Acquired(guard) = store.lease(&first).await.unwrap() else {
        panic!("a free lease is granted");
    };
    let holder = store.lease_holder().await.unwrap().unwrap();
    assert!(
        holder.starts_with(&format!("{}.", std::process::id())),
        "{holder}"
    );
    let error = short.lease(&first).await.unwrap_err();
    assert!(error.is_retryable() && !error.is_terminal(), "{error}");
    assert!(matches!(error.kind(), ErrorKind::Store { .. }));
    store
        .save(Some(&first.refresh_token), &second)
        .await
        .unwrap();
    match short.lease(&first).await.unwrap() {
        refresh_endpoint::store::Lease::Refreshed(stored) => assert_eq!(stored, second),
        other => panic!("{other:?}"),
    }
    guard.release().await;
    assert_eq!(store.lease_holder().await.unwrap(), None);
    assert!(matches!(
        short.lease(&second).await.unwrap(),
        refresh_endpoint::store::Lease::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_retryably_and_the_session_survives_a_restart() {
    let Some(mut redis) = RedisServer::start_or_skip() else {
        return;
    };
    let (clock, now) = shared_clock();
    let mock = AtprotoMock::builder()
        .clock(now)
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let account = mock.create_account("alice.test");
    let tokens = Tokens::new(account.access_jwt.as_str(), account.refresh_jwt.as_str());
    // Two replicas in this process, each with its own connection.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::connect(&redis.url(), "bsky:alice")
            .await
            .unwrap();
        let session = Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
            .tokens(tokens.clone())
            .store(store)
            .clock(clock.clone())
            .retry(RetryPolicy::default().with_max_attempts(3))
            .build()
            .await
            .unwrap();
        sessions.push(session);
    }
    let both = |sessions: &[Session<RefreshSession>]| {
        let [a, b] = [sessions[0].clone(), sessions[1].clone()];
        async move { tokio::join!(a.access_token(), b.access_token()) }
    };

    clock.advance(Duration::from_secs(3 * 3600));
    let (a, b) = both(&sessions).await;
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(mock.refresh_count(), 1);

    redis.stop();
    clock.advance(Duration::from_secs(3 * 3600));
    let secrets = sessions[0].tokens().unwrap();
    for _ in 0..3 {
        let (a, b) = both(&sessions).await;
        for error in [a.unwrap_err(), b.unwrap_err()] {
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::Store {
                        retryable: true,
                        ..
                    }
                ),
                "{error}"
            );
            assert!(error.is_retryable() && !error.is_terminal());
            let text = error.to_string();
            assert!(text.starts_with("token store: redis store:"), "{text}");
            assert!(!text.contains(secrets.access_token.expose()));
            assert!(!text.contains(secrets.refresh_token.expose()));
        }
        for session in &sessions {
            assert_eq!(session.status(), Status::Active);
        }
    }
    assert_eq!(mock.refresh_count(), 1, "no refresh without the lease");

    // Back on the same port, empty: the sessions store their tokens again.
    redis.restart().unwrap();
    let (a, b) = both(&sessions).await;
    let (a, b) = (a.expect("works again"), b.expect("works again"));
    assert_eq!(a, b, "one refresh, adopted by the other replica");
    assert_eq!(mock.refresh_count(), 2);
    for session in &sessions {
        assert_eq!(session.status(), Status::Active);
    }
    let store = RedisStore::connect(&redis.url(), "bsky:alice")
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().access_token, a);
}
