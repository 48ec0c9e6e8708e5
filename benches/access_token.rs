//! `Session::access_token()` on a fresh session (the hot path), against the
//! same state behind a lock, measured in the same run.
//!
//! The baselines hold what the session's fast path reads, an access token and
//! its expiry, and do what it does: read the clock, compare, clone the token.
//! They differ only in how the state is guarded:
//!
//! - `tokio_rwlock`: `tokio::sync::RwLock`, a read lock per call;
//! - `tokio_rwlock_coarse`: the same, reading the coarse clock the session's
//!   hot path reads (`CLOCK_REALTIME_COARSE`) instead of `SystemTime::now()`,
//!   to tell what the lock costs from what the clock costs;
//! - `tokio_mutex`: `tokio::sync::Mutex`;
//! - `std_rwlock`: `std::sync::RwLock`, a read lock per call;
//! - `arc_swap`: `arc_swap::ArcSwap`, the lock-free load the session's hot
//!   path is built on, without the session around it;
//! - `unguarded`: no guard at all, a floor no shared mutable state can beat
//!   (the clock read and the token clone).
//!
//! Groups:
//!
//! - `access_token/one_thread`: one call per iteration on a current-thread
//!   runtime.
//! - `access_token/tasks_N`: N tasks (N = 1, cores and 2 × cores) on a
//!   multi-thread runtime with one worker per core, each making
//!   [`CALLS_PER_TASK`] calls per iteration and yielding every
//!   [`YIELD_EVERY`] iterations (so that idle workers take tasks over); the throughput is N × [`CALLS_PER_TASK`]
//!   calls per iteration, so time per call is 1 / throughput. A figure that
//!   falls from `tasks_1` to `tasks_{cores}` means the calls scale with the
//!   cores; one that stays flat, that they queue on something shared.
//!
//! `cargo bench -p refresh-endpoint-tests --bench access_token`; figures in
//! BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, Secret, refresh_endpoint};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

/// Calls each task makes per iteration in the multi-task groups.
const CALLS_PER_TASK: u64 = 1_000;

/// Iterations between two yields of a task in the multi-task groups.
const YIELD_EVERY: u64 = 64;

/// How long the tokens are valid: hours, so no call ever refreshes.
const VALID_FOR: Duration = Duration::from_secs(10 * 3600);

/// The state every baseline guards: what the session's fast path reads.
struct Cached {
    access_token: Secret,
    expires_at: SystemTime,
}

impl Cached {
    fn new() -> Self {
        Cached {
            access_token: Secret::new(ACCESS_TOKEN),
            expires_at: SystemTime::now() + VALID_FOR,
        }
    }

    /// The baselines' hot path: read the clock, compare, clone the token.
    fn fresh_token(&self) -> Option<Secret> {
        (SystemTime::now() < self.expires_at).then(|| self.access_token.clone())
    }

    /// The same on the clock the session's hot path reads: the coarse wall
    /// clock, taken as up to a second late.
    fn fresh_token_coarse(&self) -> Option<Secret> {
        (coarse_now() + Duration::from_secs(1) < self.expires_at).then(|| self.access_token.clone())
    }
}

/// The wall clock as of the last scheduler tick (`CLOCK_REALTIME_COARSE`),
/// as the session reads it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_now() -> SystemTime {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the whole call.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    assert_eq!(read, 0, "CLOCK_REALTIME_COARSE");
    SystemTime::UNIX_EPOCH + Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_now() -> SystemTime {
    SystemTime::now()
}

/// A token of a realistic size (an atproto access JWT is about this long);
/// its length does not matter to a reference-counted clone.
const ACCESS_TOKEN: &str = concat!(
    "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.",
    "eyJzY29wZSI6ImNvbS5hdHByb3RvLmFjY2VzcyIsInN1YiI6ImRpZDpwbGM6YWxpY2UiLCJpYXQiOjE3MDAwMDAwMDAsImV4",
    "cCI6MTcwMDAwNzIwMCwiYXVkIjoiZGlkOndlYjpic2t5LnNvY2lhbCJ9.",
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbg",
);

/// One way of holding the state: cheap to clone into tasks, and a call that
/// yields a token while it is fresh.
trait Contender: Clone + Send + Sync + 'static {
    type Token: Send;
    fn call(&self) -> impl Future<Output = Self::Token> + Send;
}

/// The session under test: `access_token()`, its `Result` and all.
#[derive(Clone)]
struct SessionContender(Session<RefreshSession>);

impl SessionContender {
    fn new(runtime: &Runtime) -> Self {
        let tokens = Tokens::new(ACCESS_TOKEN, "refresh-token")
            .with_access_expires_at(SystemTime::now() + VALID_FOR);
        // Never contacted: the tokens stay fresh for the whole run.
        let client = Client::new("http://127.0.0.1:9").expect("a client");
        let builder = Session::builder(client, RefreshSession).tokens(tokens);
        SessionContender(runtime.block_on(builder.build()).expect("a session"))
    }
}

impl Contender for SessionContender {
    type Token = Result<Secret, Error>;
    fn call(&self) -> impl Future<Output = Self::Token> + Send {
        self.0.access_token()
    }
}

#[derive(Clone)]
struct TokioRwLock(Arc<tokio::sync::RwLock<Cached>>);

impl Contender for TokioRwLock {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0.read().await.fresh_token()
    }
}

/// `tokio_rwlock` on the session's coarse clock: the difference to the
/// session is then the lock alone.
#[derive(Clone)]
struct TokioRwLockCoarse(Arc<tokio::sync::RwLock<Cached>>);

impl Contender for TokioRwLockCoarse {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0.read().await.fresh_token_coarse()
    }
}

#[derive(Clone)]
struct TokioMutex(Arc<tokio::sync::Mutex<Cached>>);

impl Contender for TokioMutex {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0.lock().await.fresh_token()
    }
}

#[derive(Clone)]
struct StdRwLock(Arc<std::sync::RwLock<Cached>>);

impl Contender for StdRwLock {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .fresh_token()
    }
}

#[derive(Clone)]
struct ArcSwapped(Arc<ArcSwap<Cached>>);

impl Contender for ArcSwapped {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0.load().fresh_token()
    }
}

#[derive(Clone)]
struct Unguarded(Arc<Cached>);

impl Contender for Unguarded {
    type Token = Option<Secret>;
    async fn call(&self) -> Self::Token {
        self.0.fresh_token()
    }
}

/// Benches every contender in `group`, side by side, with `bench`.
fn each_contender(
    runtime: &Runtime,
    group: &mut BenchmarkGroup<'_, WallTime>,
    bench: impl BenchContender,
) {
    bench.run(group, "session", SessionContender::new(runtime));
    bench.run(
        group,
        "tokio_rwlock",
        TokioRwLock(Arc::new(Cached::new().into())),
    );
    bench.run(
        group,
        "tokio_rwlock_coarse",
        TokioRwLockCoarse(Arc::new(Cached::new().into())),
    );
    bench.run(
        group,
        "tokio_mutex",
        TokioMutex(Arc::new(Cached::new().into())),
    );
    bench.run(
        group,
        "std_rwlock",
        StdRwLock(Arc::new(Cached::new().into())),
    );
    bench.run(
        group,
        "arc_swap",
        ArcSwapped(Arc::new(ArcSwap::from_pointee(Cached::new()))),
    );
    bench.run(group, "unguarded", Unguarded(Arc::new(Cached::new())));
}

/// How one group measures a contender.
trait BenchContender {
    fn run<C: Contender>(&self, group: &mut BenchmarkGroup<'_, WallTime>, name: &str, contender: C);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One call per iteration on a current-thread runtime.
struct OneThread<'r>(&'r Runtime);

impl BenchContender for OneThread<'_> {
    fn run<C: Contender>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        contender: C,
    ) {
        group.bench_function(name, |b| b.to_async(self.0).iter(|| contender.call()));
    }
}

fn one_thread(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("access_token/one_thread");
    group.throughput(Throughput::Elements(1));
    each_contender(&runtime, &mut group, OneThread(&runtime));
    group.finish();
}

/// `tasks` tasks on a multi-thread runtime, [`CALLS_PER_TASK`] calls each
/// per iteration.
struct Tasks<'r> {
    runtime: &'r Runtime,
    tasks: usize,
}

impl BenchContender for Tasks<'_> {
    fn run<C: Contender>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        contender: C,
    ) {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                self.runtime
                    .block_on(run_tasks(&contender, self.tasks, iters))
            });
        });
    }
}

fn all_cores(c: &mut Criterion) {
    let cores = cores();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a runtime");
    for tasks in [1, cores, 2 * cores] {
        let mut group = c.benchmark_group(format!("access_token/tasks_{tasks}"));
        group.throughput(Throughput::Elements(tasks as u64 * CALLS_PER_TASK));
        let runtime = &runtime;
        each_contender(runtime, &mut group, Tasks { runtime, tasks });
        group.finish();
    }
}

/// Starts `tasks` tasks together, each making `iters` × [`CALLS_PER_TASK`]
/// calls, and returns the wall time until the last one is done.
async fn run_tasks<C: Contender>(contender: &C, tasks: usize, iters: u64) -> Duration {
    let start_line = Arc::new(Barrier::new(tasks + 1));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let contender = contender.clone();
            let start_line = Arc::clone(&start_line);
            tokio::spawn(async move {
                start_line.wait().await;
                for iteration in 0..iters {
                    for _ in 0..CALLS_PER_TASK {
                        black_box(contender.call().await);
                    }
                    // None of the calls suspends: yield now and then so that
                    // an idle worker can take this task over and the tasks
                    // spread over the cores. Not often: waking a parked
                    // worker costs microseconds.
                    if iteration % YIELD_EVERY == YIELD_EVERY - 1 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    start_line.wait().await;
    let started = Instant::now();
    for handle in handles {
        handle.await.expect("a bench task");
    }
    started.elapsed()
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_thread, all_cores
}
criterion_main!(benches);
