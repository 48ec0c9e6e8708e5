//! Several processes sharing one Bluesky session through a shared store
//! (standalone Redis, Redis over TLS, Redis Cluster, PostgreSQL): the
//! scenarios every shared store must pass, written once and run by each
//! store's test file against a real server.
//!
//! The replicas are the calling test binary run again as child processes:
//! each test file defines a `#[test] #[ignore] fn replica_child()` that
//! calls [`replica_child`]. A child learns how to reach the store from
//! [`StoreSpec`] (JSON in an environment variable) and never prints a
//! token: each caller's result is reported as a short SHA-256 of the token
//! it got, and the parent compares those.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{Lease, PostgresStore, RedisStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, Fault, Now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::postgres_server::PostgresServer;
use crate::redis_server::{RedisCluster, RedisServer};

/// The Bluesky refresh endpoint the replicas call.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
pub struct RefreshSession;

/// The child test's name, and the variables that make it a replica.
const CHILD_TEST: &str = "replica_child";
const ENV_MOCK_URL: &str = "REPLICA_MOCK_URL";
const ENV_STORE: &str = "REPLICA_STORE";
const ENV_KEY: &str = "REPLICA_KEY";
const ENV_CALLERS: &str = "REPLICA_CALLERS";
const ENV_LEASE_TTL_MS: &str = "REPLICA_LEASE_TTL_MS";

/// No step of a test may take longer than this (a hang fails, not blocks).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Which store, on which server.

/// How to reach a shared store: what a child process needs to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSpec {
    /// `redis` (any Redis URL) or `postgres`.
    pub kind: String,
    /// The store's URL.
    pub url: String,
    /// A CA to trust, PEM.
    pub ca_pem: Option<String>,
    /// A client certificate and its key, PEM.
    pub client_cert: Option<(String, String)>,
}

impl StoreSpec {
    /// Connects to the store for the session under `key`.
    pub async fn connect(&self, key: &str) -> Result<AnyStore, Error> {
        match self.kind.as_str() {
            "redis" => {
                let mut builder = RedisStore::builder(&self.url);
                if let Some(ca) = &self.ca_pem {
                    builder = builder.ca_pem(ca.as_bytes());
                }
                if let Some((cert, key)) = &self.client_cert {
                    builder = builder.client_cert_pem(cert.as_bytes(), key.as_bytes());
                }
                Ok(AnyStore::Redis(builder.connect(key).await?))
            }
            "postgres" => {
                let mut builder = PostgresStore::builder(&self.url);
                if let Some(ca) = &self.ca_pem {
                    builder = builder.ca_pem(ca.as_bytes());
                }
                Ok(AnyStore::Postgres(builder.connect(key).await?))
            }
            other => panic!("unknown store kind {other}"),
        }
    }
}

/// A store of either kind, with what the tests ask of both.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A [`RedisStore`].
    Redis(RedisStore),
    /// A [`PostgresStore`].
    Postgres(PostgresStore),
}

impl AnyStore {
    /// The lease lives this long unless extended.
    pub fn lease_ttl(self, ttl: Duration) -> Self {
        match self {
            AnyStore::Redis(store) => AnyStore::Redis(store.lease_ttl(ttl)),
            AnyStore::Postgres(store) => AnyStore::Postgres(store.lease_ttl(ttl)),
        }
    }

    /// Waiters give up after this long.
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        match self {
            AnyStore::Redis(store) => AnyStore::Redis(store.wait_timeout(timeout)),
            AnyStore::Postgres(store) => AnyStore::Postgres(store.wait_timeout(timeout)),
        }
    }

    /// Waiters look at most this far apart.
    pub fn poll_interval(self, interval: Duration) -> Self {
        match self {
            AnyStore::Redis(store) => AnyStore::Redis(store.poll_interval(interval)),
            AnyStore::Postgres(store) => AnyStore::Postgres(store.poll_interval(interval)),
        }
    }

    /// The same connection, another session.
    pub fn for_key(&self, key: &str) -> Self {
        match self {
            AnyStore::Redis(store) => AnyStore::Redis(store.for_key(key)),
            AnyStore::Postgres(store) => AnyStore::Postgres(store.for_key(key)),
        }
    }

    /// Who holds the lease: `"{pid}.{random}"`.
    pub async fn lease_holder(&self) -> Result<Option<String>, Error> {
        match self {
            AnyStore::Redis(store) => store.lease_holder().await,
            AnyStore::Postgres(store) => store.lease_holder().await,
        }
    }
}

impl Store for AnyStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        match self {
            AnyStore::Redis(store) => store.load(),
            AnyStore::Postgres(store) => store.load(),
        }
    }

    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>> {
        match self {
            AnyStore::Redis(store) => store.save(expected, tokens),
            AnyStore::Postgres(store) => store.save(expected, tokens),
        }
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        match self {
            AnyStore::Redis(store) => store.clear(expected),
            AnyStore::Postgres(store) => store.clear(expected),
        }
    }

    fn lease<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Lease, Error>> {
        match self {
            AnyStore::Redis(store) => store.lease(current),
            AnyStore::Postgres(store) => store.lease(current),
        }
    }
}

/// A server the scenarios run against: how to reach it, how to take it
/// away and bring it back.
pub trait SharedServer {
    /// How to reach the store on it.
    fn spec(&self) -> StoreSpec;
    /// Stops it (as a crash would).
    fn stop(&mut self);
    /// Starts it again at the same address.
    fn restart(&mut self);
    /// The error text every store error of this kind starts with.
    fn error_prefix(&self) -> &'static str {
        "token store: redis store:"
    }
}

fn redis_spec(server: &RedisServer) -> StoreSpec {
    StoreSpec {
        kind: "redis".into(),
        url: server.url(),
        ca_pem: server.tls().map(|tls| tls.ca_pem.clone()),
        client_cert: server
            .tls()
            .map(|tls| (tls.client_cert_pem.clone(), tls.client_key_pem.clone())),
    }
}

impl SharedServer for RedisServer {
    fn spec(&self) -> StoreSpec {
        redis_spec(self)
    }
    fn stop(&mut self) {
        RedisServer::stop(self);
    }
    fn restart(&mut self) {
        RedisServer::restart(self).unwrap();
    }
}

impl SharedServer for RedisCluster {
    fn spec(&self) -> StoreSpec {
        StoreSpec {
            kind: "redis".into(),
            url: self.url(),
            ca_pem: None,
            client_cert: None,
        }
    }
    fn stop(&mut self) {
        RedisCluster::stop(self);
    }
    fn restart(&mut self) {
        RedisCluster::restart(self).unwrap();
    }
}

impl SharedServer for PostgresServer {
    fn spec(&self) -> StoreSpec {
        StoreSpec {
            kind: "postgres".into(),
            url: self.url(),
            ca_pem: self.tls().map(|tls| tls.ca_pem.clone()),
            client_cert: None,
        }
    }
    fn stop(&mut self) {
        PostgresServer::stop(self);
    }
    fn restart(&mut self) {
        PostgresServer::restart(self).unwrap();
    }
    fn error_prefix(&self) -> &'static str {
        "token store: postgres store:"
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// The first 16 hex digits of the token's SHA-256: comparable, not usable.
pub fn short_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tokens whose access JWT expired an hour ago, in real time.
pub fn expired_tokens(mock: &AtprotoMock) -> Tokens {
    let account = mock.create_account("alice.test");
    let expired =
        mock.mint_access_token(&account.did, SystemTime::now() - Duration::from_secs(3600));
    Tokens::new(expired.as_str(), account.refresh_jwt.as_str())
}

fn shared_clock() -> (Arc<ManualClock>, Now) {
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    (clock, Arc::new(move || for_mock.now()))
}

// ---------------------------------------------------------------------------
// The replica: the test binary run again with the variables above set.

/// One replica process: builds a session on the shared key, says `READY`,
/// waits for `GO` on stdin, runs its callers at once and reports one line
/// per caller, its session's status, then `DONE`. Does nothing unless the
/// parent set the variables.
pub fn replica_child() {
    let Ok(mock_url) = std::env::var(ENV_MOCK_URL) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let spec: StoreSpec = serde_json::from_str(&var(ENV_STORE)).unwrap();
    let key = var(ENV_KEY);
    let callers: usize = var(ENV_CALLERS).parse().unwrap();
    let lease_ttl = Duration::from_millis(var(ENV_LEASE_TTL_MS).parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = spec
            .connect(&key)
            .await
            .expect("the store is up")
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

/// What one replica reported.
#[derive(Debug, Default)]
pub struct Report {
    /// Token hashes of the callers that got one.
    pub tokens: Vec<String>,
    /// `(kind, message)` of the callers that failed.
    pub errors: Vec<(String, String)>,
    /// `active` or `signed_out`.
    pub status: String,
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
        spec: &StoreSpec,
        key: &str,
        callers: usize,
        lease_ttl: Duration,
    ) -> Replica {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--ignored"])
            .env(ENV_MOCK_URL, mock.url())
            .env(ENV_STORE, serde_json::to_string(spec).unwrap())
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
    spec: &StoreSpec,
    key: &str,
    callers: usize,
    lease_ttl: Duration,
) -> Vec<Replica> {
    let mut replicas: Vec<_> = (0..count)
        .map(|_| Replica::spawn(mock, spec, key, callers, lease_ttl))
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

// ---------------------------------------------------------------------------
// The scenarios.

/// 4 processes × 250 callers on an expired token, strictly single-use
/// refresh tokens: exactly one refresh, every caller the same new token.
pub async fn four_processes_of_250_callers_share_one_refresh(spec: StoreSpec) {
    let mock = AtprotoMock::builder()
        .grace_period(Duration::ZERO) // strictly single-use refresh tokens
        .start()
        .await;
    let tokens = expired_tokens(&mock);
    let store = spec.connect("bsky:alice").await.unwrap();
    assert_eq!(store.save(None, &tokens).await.unwrap(), Saved::Written);

    let mut replicas =
        start_replicas(4, &mock, &spec, "bsky:alice", 250, Duration::from_secs(30)).await;
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
        "4 processes x 250 callers ({}): every caller had the new token {} ms after the go",
        spec.url.split(':').next().unwrap_or_default(),
        elapsed.as_millis()
    );
}

/// The first refresh reaches the server, which rotates the token, but its
/// answer never comes back; the process that sent it is killed (SIGKILL)
/// while it holds the lease. Returns the survivors' reports.
pub async fn lease_holder_killed_after_sending_the_refresh(
    spec: StoreSpec,
    grace: Duration,
) -> (AtprotoMock, Option<Tokens>, Vec<Report>) {
    let mock = AtprotoMock::builder().grace_period(grace).start().await;
    let tokens = expired_tokens(&mock);
    // The lease's expiry runs on the server's wall clock: a short lease
    // keeps the takeover quick.
    let lease_ttl = Duration::from_secs(1);
    let store = spec
        .connect("bsky:alice")
        .await
        .unwrap()
        .lease_ttl(lease_ttl);
    store.save(None, &tokens).await.unwrap();
    mock.inject(Fault::ProcessThenHang);

    let mut replicas = start_replicas(4, &mock, &spec, "bsky:alice", 50, lease_ttl).await;
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
    (mock, stored, survivors)
}

/// With a reuse grace period, the survivors take over and carry on.
pub async fn a_killed_lease_holder_is_taken_over_within_the_grace_period(spec: StoreSpec) {
    let (mock, stored, survivors) =
        lease_holder_killed_after_sending_the_refresh(spec, Duration::from_secs(2 * 3600)).await;
    let stored = stored.expect("the takeover stored its tokens");
    // One survivor refreshed again with the token still in the store;
    // inside the grace period the server answered the pair the lost answer
    // held.
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

/// With strictly single-use tokens, every survivor ends in SignInAgain.
pub async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again(spec: StoreSpec) {
    let (mock, stored, survivors) =
        lease_holder_killed_after_sending_the_refresh(spec, Duration::ZERO).await;
    // The rotated token died with the holder; the one in the store is
    // spent. Each survivor tries it once, is told so, and signs out: no hang.
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

/// The store's contract: compare-and-swap save and clear, separate keys,
/// the lease refused to a second holder, `Refreshed` once the tokens moved.
pub async fn the_store_compares_and_swaps_on_the_refresh_token(spec: StoreSpec) {
    let store = spec.connect("k").await.unwrap();
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
    let Lease::Acquired(guard) = store.lease(&first).await.unwrap() else {
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
        Lease::Refreshed(stored) => assert_eq!(stored, second),
        other => panic!("{other:?}"),
    }
    guard.release().await;
    assert_eq!(store.lease_holder().await.unwrap(), None);
    assert!(matches!(
        short.lease(&second).await.unwrap(),
        Lease::Acquired(_)
    ));
}

/// The server goes away: calls fail retryably, nobody is signed out, no
/// refresh without the lease; it comes back: one refresh, shared.
pub async fn server_down_fails_retryably_and_the_session_survives_a_restart(
    server: &mut impl SharedServer,
) {
    let spec = server.spec();
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
        let store = spec.connect("bsky:alice").await.unwrap();
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

    server.stop();
    clock.advance(Duration::from_secs(3 * 3600));
    let secrets = sessions[0].tokens().unwrap();
    for _ in 0..2 {
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
            assert!(text.starts_with(server.error_prefix()), "{text}");
            assert!(!text.contains(secrets.access_token.expose()));
            assert!(!text.contains(secrets.refresh_token.expose()));
        }
        for session in &sessions {
            assert_eq!(session.status(), Status::Active);
        }
    }
    assert_eq!(mock.refresh_count(), 1, "no refresh without the lease");

    // Back at the same address: the sessions carry on (storing their
    // tokens again if the server came back empty).
    server.restart();
    let (a, b) = both(&sessions).await;
    let (a, b) = (a.expect("works again"), b.expect("works again"));
    assert_eq!(a, b, "one refresh, adopted by the other replica");
    assert_eq!(mock.refresh_count(), 2);
    for session in &sessions {
        assert_eq!(session.status(), Status::Active);
    }
    let store = spec.connect("bsky:alice").await.unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().access_token, a);
}
