//! `Session::access_token()` over many sessions, one picked at random per
//! call, against the same tokens behind one `std::sync::RwLock` each with the
//! same access pattern, in the same run; and the memory an idle session takes.
//!
//! For N = 1; 1,000; 100,000 and 1,000,000 sessions, each holding its own
//! 300-byte access token (valid for hours: no call refreshes) and a 64-byte
//! refresh token:
//!
//! - `session`: `Vec<Session<_>>`, `sessions[i].access_token().await`;
//! - `std_rwlock`: `Vec<Arc<std::sync::RwLock<Cached>>>` holding the access
//!   token and its expiry, a read lock, `SystemTime::now()`, a compare and a
//!   clone of the token, as hand-written code does.
//!
//! Both run the same loop on a current-thread runtime: a xorshift generator
//! picks the index, the call's result is dropped (the token's reference count
//! goes up and down, as in real use). Both contenders' sessions are built
//! (and kept) before the timings, and the memory line printed for N ≥
//! 100,000 is the growth of the resident set while building each, divided
//! by N.
//!
//! `cargo bench -p refresh-endpoint-tests --bench sessions_at_scale`; set
//! `SCALE_MAX=100000` to stop before a million. Figures in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Secret, refresh_endpoint};
use tokio::runtime::Runtime;

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

const VALID_FOR: Duration = Duration::from_secs(10 * 3600);
const ACCESS_BYTES: usize = 300;
const REFRESH_BYTES: usize = 64;

/// A distinct token of `len` bytes for session `i`.
fn token(i: usize, len: usize, tag: char) -> String {
    let mut s = format!("{tag}{i:012}.");
    while s.len() < len {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s
}

struct Cached {
    access_token: Secret,
    expires_at: SystemTime,
}

/// The resident set, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) % n as u64) as usize
    }
}

fn build_sessions(runtime: &Runtime, n: usize) -> Vec<Session<RefreshSession>> {
    let client = Client::new("http://127.0.0.1:9").expect("a client");
    let until = SystemTime::now() + VALID_FOR;
    runtime.block_on(async {
        let mut sessions = Vec::with_capacity(n);
        for i in 0..n {
            let tokens = Tokens::new(token(i, ACCESS_BYTES, 'a'), token(i, REFRESH_BYTES, 'r'))
                .with_access_expires_at(until);
            let session = Session::builder(client.clone(), RefreshSession)
                .tokens(tokens)
                .build()
                .await
                .expect("a session");
            sessions.push(session);
        }
        sessions
    })
}

fn build_locks(n: usize) -> Vec<Arc<RwLock<Cached>>> {
    let until = SystemTime::now() + VALID_FOR;
    (0..n)
        .map(|i| {
            Arc::new(RwLock::new(Cached {
                access_token: Secret::new(token(i, ACCESS_BYTES, 'a')),
                expires_at: until,
            }))
        })
        .collect()
}

async fn locked_token(lock: &RwLock<Cached>) -> Option<Secret> {
    let cached = lock.read().unwrap_or_else(|p| p.into_inner());
    (SystemTime::now() < cached.expires_at).then(|| cached.access_token.clone())
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let max: usize = std::env::var("SCALE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut group = c.benchmark_group("access_token_at_scale");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    for n in [1, 1_000, 100_000, 1_000_000] {
        if n > max {
            break;
        }
        // Both sets alive at once, so that neither reuses memory the other
        // freed (the resident set does not shrink on free).
        let before = rss();
        let sessions = build_sessions(&runtime, n);
        let session_rss = rss().saturating_sub(before);
        let before = rss();
        let locks = build_locks(n);
        let lock_rss = rss().saturating_sub(before);
        group.bench_function(format!("session/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let session = &sessions[rng.next(n)];
                        black_box(session.access_token().await.ok());
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(format!("std_rwlock/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let lock = &locks[rng.next(n)];
                        black_box(locked_token(lock).await);
                    }
                    start.elapsed()
                })
            })
        });
        drop((sessions, locks));
        if n >= 100_000 {
            println!(
                "memory N={n}: session {} B/session, std_rwlock {} B/entry \
                 (tokens: {ACCESS_BYTES} B access + {REFRESH_BYTES} B refresh)",
                session_rss / n,
                lock_rss / n
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
