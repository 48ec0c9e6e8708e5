//! N concurrent callers (1, 100, 10,000) meet an expired access token: the
//! time until every caller holds a token, and the number of refresh requests
//! the loopback testkit PDS saw (it must be 1 per iteration).
//!
//! Each iteration starts from a freshly expired session, prepared outside the
//! timed part: a new account on the mock, the shared manual clock moved 3 h
//! (past the 2 h access token lifetime), a new session on a new in-memory
//! store. The timed part spawns N tasks that call `access_token()` and joins
//! them all. The `fresh` entries time the same N tasks on a session whose
//! token is still valid, so the difference is the cost of the refresh.
//!
//! The refresh request count is checked on every iteration (a wrong count
//! panics: that is a broken session, not a slow one) and printed once per N.
//! No time is asserted.
//!
//! `cargo bench -p refresh-endpoint-tests --bench expired_callers`; figures
//! in BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::Session;
use refresh_endpoint::store::MemoryStore;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, Now};
use tokio::runtime::Runtime;

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

const CALLERS: [usize; 3] = [1, 100, 10_000];

/// A loopback PDS and the manual clock it shares with the sessions.
struct Pds {
    mock: AtprotoMock,
    clock: Arc<ManualClock>,
    accounts: AtomicUsize,
}

impl Pds {
    async fn start() -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let for_mock = Arc::clone(&clock);
        let now: Now = Arc::new(move || for_mock.now());
        let mock = AtprotoMock::builder().clock(now).start().await;
        Pds {
            mock,
            clock,
            accounts: AtomicUsize::new(0),
        }
    }

    /// A new account's session; `expired` moves the clock past the access
    /// token's 2 h lifetime first. Not timed.
    async fn session(&self, expired: bool) -> Session<RefreshSession> {
        let n = self.accounts.fetch_add(1, Ordering::Relaxed);
        let account = self.mock.create_account(&format!("bench{n}.test"));
        if expired {
            self.clock.advance(Duration::from_secs(3 * 3600));
        }
        let tokens = Tokens::new(account.access_jwt.as_str(), account.refresh_jwt.as_str());
        Session::builder(
            Client::new(self.mock.url()).expect("a client"),
            RefreshSession,
        )
        .tokens(tokens)
        .store(MemoryStore::new())
        .clock(self.clock.clone())
        .retry(RetryPolicy::default().with_max_attempts(3))
        .build()
        .await
        .expect("a session")
    }
}

/// Spawns `callers` tasks calling `access_token()` and waits for them all;
/// returns the elapsed time. Every caller must get the same token.
async fn all_callers(session: &Session<RefreshSession>, callers: usize) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    let mut tokens = Vec::with_capacity(callers);
    for handle in handles {
        tokens.push(handle.await.expect("a caller task").expect("a token"));
    }
    let elapsed = started.elapsed();
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "every caller gets the same token"
    );
    elapsed
}

/// Refresh requests per expired iteration, over every iteration of one N.
#[derive(Default)]
struct Counts {
    iterations: AtomicU64,
    refreshes: AtomicU64,
}

fn expired_callers(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a runtime");
    let pds = runtime.block_on(Pds::start());

    let mut group = c.benchmark_group("expired_callers");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for callers in CALLERS {
        let counts = Counts::default();
        group.bench_function(BenchmarkId::new("expired", callers), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (pds, counts) = (&pds, &counts);
                async move {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let session = pds.session(true).await;
                        let before = pds.mock.refresh_count();
                        timed += all_callers(&session, callers).await;
                        let refreshes = pds.mock.refresh_count() - before;
                        assert_eq!(refreshes, 1, "{callers} callers: one refresh request");
                        counts.iterations.fetch_add(1, Ordering::Relaxed);
                        counts
                            .refreshes
                            .fetch_add(refreshes as u64, Ordering::Relaxed);
                    }
                    timed
                }
            });
        });
        let iterations = counts.iterations.load(Ordering::Relaxed);
        let refreshes = counts.refreshes.load(Ordering::Relaxed);
        eprintln!(
            "expired_callers/expired/{callers}: {refreshes} refresh requests in {iterations} \
             iterations ({} per iteration)",
            refreshes as f64 / iterations.max(1) as f64
        );

        group.bench_function(BenchmarkId::new("fresh", callers), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let pds = &pds;
                async move {
                    let session = pds.session(false).await;
                    let before = pds.mock.refresh_count();
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        timed += all_callers(&session, callers).await;
                    }
                    assert_eq!(
                        pds.mock.refresh_count(),
                        before,
                        "a fresh token is not refreshed"
                    );
                    timed
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, expired_callers);
criterion_main!(benches);
