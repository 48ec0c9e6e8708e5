//! Refresh coordination overhead across replicas: the time from "the access
//! token has expired" until every caller in 4 replicas holds a token, with
//! the replicas sharing the session through a shared store (one refresh,
//! the others wait on the lease and adopt its result) — standalone Redis,
//! Redis over TLS (mutual TLS, ACL user), a 3-primary Redis Cluster,
//! PostgreSQL — or each on its own in-memory store (no lease: each replica
//! refreshes for itself). Every server is started by the bench on loopback.
//!
//! Two settings, same run, same loopback testkit PDS (2 h grace period, so
//! the uncoordinated replicas' duplicate refreshes succeed too):
//!
//! - `replicas_in_process`: 4 `Session`s in this process, each with its own
//!   store handle (and, for Redis, its own connection) on one key, 250
//!   callers each; the sessions' manual clock is moved 3 h to expire the
//!   token. `memory` shares one `MemoryStore` between the 4 sessions: it has
//!   no lease, the sessions only see each other's saves.
//! - `replicas_processes`: 4 child processes (this bench binary run again),
//!   250 callers each. Each round a new account's expired tokens are put in
//!   Redis; the children build their sessions from them (not timed), then
//!   the parent says "go" and waits for every child's "done". `memory`: each
//!   child copies the tokens into its own `MemoryStore`.
//!
//! The shared stores use the default poll interval (25 ms cap; waiters
//! look after 2, 4, 8, 16, 25, … ms); `redis_poll_1ms` looks every 1 ms.
//! The refresh requests the PDS saw per round are printed per entry. No
//! time is asserted. Needs `redis-server` (skipped with a message without
//! it); the PostgreSQL entries are left out without PostgreSQL.
//!
//! `cargo bench -p refresh-endpoint-tests --bench replicas`; figures in
//! BENCHMARKS.md.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, SamplingMode};
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::Session;
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, refresh_endpoint};
use refresh_endpoint_testkit::{AtprotoMock, Now};
use refresh_endpoint_tests::postgres_server::PostgresServer;
use refresh_endpoint_tests::redis_server::{RedisCluster, RedisServer};
use refresh_endpoint_tests::replicas::{AnyStore, SharedServer, StoreSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::runtime::Runtime;

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

const REPLICAS: usize = 4;
const CALLERS: usize = 250;

/// Set in a child: the mock's URL; the other carries the stores (JSON).
const ENV_CHILD_MOCK_URL: &str = "REPLICAS_BENCH_MOCK_URL";
const ENV_CHILD_STORES: &str = "REPLICAS_BENCH_STORES";

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    /// A shared store: index into the specs, poll interval.
    Shared {
        store: usize,
        poll: Duration,
    },
}

/// The stores' specs, in this order.
const REDIS: usize = 0;
const REDIS_TLS: usize = 1;
const REDIS_CLUSTER: usize = 2;
const POSTGRES: usize = 3;

const DEFAULT_POLL: Duration = refresh_endpoint::store::DEFAULT_POLL_INTERVAL;

const KINDS: [(&str, Kind); 6] = [
    ("memory", Kind::Memory),
    (
        "redis",
        Kind::Shared {
            store: REDIS,
            poll: DEFAULT_POLL,
        },
    ),
    (
        "redis_poll_1ms",
        Kind::Shared {
            store: REDIS,
            poll: Duration::from_millis(1),
        },
    ),
    (
        "redis_tls",
        Kind::Shared {
            store: REDIS_TLS,
            poll: DEFAULT_POLL,
        },
    ),
    (
        "redis_cluster",
        Kind::Shared {
            store: REDIS_CLUSTER,
            poll: DEFAULT_POLL,
        },
    ),
    (
        "postgres",
        Kind::Shared {
            store: POSTGRES,
            poll: DEFAULT_POLL,
        },
    ),
];

fn main() {
    if std::env::var_os(ENV_CHILD_MOCK_URL).is_some() {
        child();
        return;
    }
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let tls = RedisServer::start_tls_or_skip().expect("redis-server is installed");
    let cluster = RedisCluster::start_or_skip(false).expect("redis-server is installed");
    let postgres = PostgresServer::start_or_skip();
    let specs: Vec<Option<StoreSpec>> = vec![
        Some(redis.spec()),
        Some(tls.spec()),
        Some(cluster.spec()),
        postgres.as_ref().map(|postgres| postgres.spec()),
    ];
    let mut criterion = Criterion::default().configure_from_args();
    in_process(&mut criterion, &specs);
    processes(&mut criterion, &specs);
    criterion.final_summary();
}

/// The entries whose store runs here.
fn kinds(specs: &[Option<StoreSpec>]) -> Vec<(&'static str, Kind)> {
    KINDS
        .into_iter()
        .filter(|(name, kind)| match kind {
            Kind::Shared { store, .. } if specs[*store].is_none() => {
                println!("{name}: skipped, its server is not installed");
                false
            }
            _ => true,
        })
        .collect()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Refresh requests per round, for one entry.
#[derive(Default)]
struct Counts {
    rounds: AtomicU64,
    refreshes: AtomicU64,
}

impl Counts {
    fn add(&self, rounds: u64, refreshes: u64) {
        self.rounds.fetch_add(rounds, Ordering::Relaxed);
        self.refreshes.fetch_add(refreshes, Ordering::Relaxed);
    }

    fn print(&self, entry: &str) {
        let rounds = self.rounds.load(Ordering::Relaxed).max(1);
        let refreshes = self.refreshes.load(Ordering::Relaxed);
        println!(
            "{entry}: {:.2} refresh requests per round ({refreshes} in {rounds} rounds)",
            refreshes as f64 / rounds as f64
        );
    }
}

/// Spawns `CALLERS` tasks per session calling `access_token()`, waits for
/// them all; every caller must get a token.
async fn all_callers(sessions: &[Session<RefreshSession>]) {
    let handles: Vec<_> = sessions
        .iter()
        .flat_map(|session| {
            (0..CALLERS).map(move |_| {
                let session = session.clone();
                tokio::spawn(async move { session.access_token().await })
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a caller task").expect("a token");
    }
}

// ---------------------------------------------------------------------------
// 4 sessions in this process.

fn in_process(c: &mut Criterion, specs: &[Option<StoreSpec>]) {
    let runtime = runtime();
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    let now: Now = Arc::new(move || for_mock.now());
    let mock = runtime.block_on(AtprotoMock::builder().clock(now).start());
    let mut group = c.benchmark_group("replicas_in_process");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for (n, (name, kind)) in kinds(specs).into_iter().enumerate() {
        let account = mock.create_account(&format!("inproc{n}.test"));
        let tokens = Tokens::new(account.access_jwt.as_str(), account.refresh_jwt.as_str());
        let sessions: Vec<_> = runtime.block_on(async {
            let memory = MemoryStore::new();
            let mut sessions = Vec::new();
            for _ in 0..REPLICAS {
                let builder = Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
                    .tokens(tokens.clone())
                    .clock(clock.clone())
                    .retry(RetryPolicy::default().with_max_attempts(3));
                let builder = match kind {
                    Kind::Memory => builder.store(memory.clone()),
                    Kind::Shared { store, poll } => builder.store(
                        specs[store]
                            .as_ref()
                            .expect("running")
                            .connect(&format!("inproc:{name}"))
                            .await
                            .expect("the store is up")
                            .poll_interval(poll),
                    ),
                };
                sessions.push(builder.build().await.expect("a session"));
            }
            sessions
        });
        let counts = Counts::default();
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|rounds| {
                let (sessions, clock, mock, counts) = (&sessions, &clock, &mock, &counts);
                async move {
                    let mut total = Duration::ZERO;
                    let before = mock.refresh_count();
                    for _ in 0..rounds {
                        clock.advance(Duration::from_secs(3 * 3600));
                        let started = Instant::now();
                        all_callers(sessions).await;
                        total += started.elapsed();
                    }
                    counts.add(rounds, (mock.refresh_count() - before) as u64);
                    total
                }
            });
        });
        counts.print(&format!("replicas_in_process/{name}"));
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// 4 child processes.

/// A child: this binary with the child variables set.
struct Replica {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(mock: &AtprotoMock, specs: &[Option<StoreSpec>]) -> Replica {
        let mut child = Command::new(std::env::current_exe().expect("the bench binary"))
            .env(ENV_CHILD_MOCK_URL, mock.url())
            .env(ENV_CHILD_STORES, serde_json::to_string(specs).unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the bench binary runs again");
        Replica {
            stdin: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
        }
    }

    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn expect(&mut self, word: &str) {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the replica answers")
            .unwrap()
            .expect("the replica is alive");
        assert!(line.starts_with(word), "expected {word}, got {line}");
    }

    async fn finish(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn processes(c: &mut Criterion, specs: &[Option<StoreSpec>]) {
    let runtime = runtime();
    let mock = runtime.block_on(AtprotoMock::start());
    // One seeding connection per running store.
    let seeders: Vec<Option<AnyStore>> = runtime.block_on(async {
        let mut seeders = Vec::new();
        for spec in specs {
            seeders.push(match spec {
                Some(spec) => Some(spec.connect("seed").await.expect("the store is up")),
                None => None,
            });
        }
        seeders
    });
    let mut replicas: Vec<Replica> = runtime.block_on(async {
        let mut replicas: Vec<_> = (0..REPLICAS)
            .map(|_| Replica::spawn(&mock, specs))
            .collect();
        for replica in &mut replicas {
            replica.expect("READY").await;
        }
        replicas
    });
    let round = AtomicU64::new(0);
    let mut group = c.benchmark_group("replicas_processes");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (name, kind) in kinds(specs) {
        let counts = Counts::default();
        let replicas = tokio::sync::Mutex::new(&mut replicas);
        // The memory entry's tokens travel through standalone Redis.
        let (seeder, store) = match kind {
            Kind::Memory => (seeders[REDIS].as_ref().expect("running"), REDIS),
            Kind::Shared { store, .. } => (seeders[store].as_ref().expect("running"), store),
        };
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|rounds| {
                let (mock, seeder, replicas, counts, round) =
                    (&mock, seeder, &replicas, &counts, &round);
                async move {
                    let mut replicas = replicas.lock().await;
                    let mut total = Duration::ZERO;
                    let before = mock.refresh_count();
                    for _ in 0..rounds {
                        // Not timed: a new account, its expired tokens in
                        // Redis, every child's session built from them.
                        let n = round.fetch_add(1, Ordering::Relaxed);
                        let account = mock.create_account(&format!("proc{n}.test"));
                        let expired = mock.mint_access_token(
                            &account.did,
                            SystemTime::now() - Duration::from_secs(3600),
                        );
                        let key = format!("proc:{n}");
                        let tokens = Tokens::new(expired.as_str(), account.refresh_jwt.as_str());
                        seeder.for_key(&key).save(None, &tokens).await.unwrap();
                        let prepare = match kind {
                            Kind::Memory => format!("PREP memory {store} {key} 0"),
                            Kind::Shared { poll, .. } => {
                                format!("PREP shared {store} {key} {}", poll.as_millis())
                            }
                        };
                        for replica in replicas.iter_mut() {
                            replica.say(&prepare).await;
                        }
                        for replica in replicas.iter_mut() {
                            replica.expect("PREPARED").await;
                        }
                        let started = Instant::now();
                        for replica in replicas.iter_mut() {
                            replica.say("GO").await;
                        }
                        for replica in replicas.iter_mut() {
                            replica.expect("DONE").await;
                        }
                        total += started.elapsed();
                    }
                    counts.add(rounds, (mock.refresh_count() - before) as u64);
                    total
                }
            });
        });
        counts.print(&format!("replicas_processes/{name}"));
    }
    group.finish();
    runtime.block_on(async {
        for replica in replicas {
            replica.finish().await;
        }
    });
}

/// The child's loop: `PREP <memory|shared> <store> <key> <poll ms>` builds
/// a session (answer `PREPARED`), `GO` runs the callers (answer `DONE`).
fn child() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let mock_url = var(ENV_CHILD_MOCK_URL);
    let specs: Vec<Option<StoreSpec>> = serde_json::from_str(&var(ENV_CHILD_STORES)).unwrap();
    runtime().block_on(async move {
        // One connection (pool) per store, for the whole run.
        let mut bases = Vec::new();
        for spec in &specs {
            bases.push(match spec {
                Some(spec) => Some(spec.connect("unused").await.expect("the store is up")),
                None => None,
            });
        }
        let client = Client::new(&mock_url).unwrap();
        let (lines, mut commands) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        println!("READY");
        let mut session = None;
        while let Some(line) = commands.recv().await {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["PREP", kind, store, key, poll] => {
                    let store = bases[store.parse::<usize>().unwrap()]
                        .as_ref()
                        .expect("running")
                        .for_key(key)
                        .poll_interval(Duration::from_millis(poll.parse().unwrap()));
                    let builder = Session::builder(client.clone(), RefreshSession);
                    let builder = match *kind {
                        "memory" => {
                            let tokens = store.load().await.unwrap().expect("seeded tokens");
                            builder.store(MemoryStore::with_tokens(tokens))
                        }
                        _ => builder.store(store),
                    };
                    session = Some(builder.build().await.expect("a session"));
                    println!("PREPARED");
                }
                ["GO"] => {
                    let session = session.take().expect("PREP before GO");
                    all_callers(std::slice::from_ref(&session)).await;
                    println!("DONE");
                }
                _ => panic!("unknown command: {line}"),
            }
        }
    });
}
