//! The call `#[refresh_endpoint]` generates against the same refresh written
//! by hand with reqwest and serde, on the same loopback server, decoding into
//! the same response type, interleaved in one run.
//!
//! The server is testkit's `OAuth2Mock` with a public client and refresh
//! tokens that do not rotate, so every call of either contender is the same
//! successful refresh (`POST /oauth/token`, a form body, a JSON answer of
//! about 400 bytes).
//!
//! - `generated`: `PublicRefresh::send(&client)`, the generated method;
//! - `hand_written`: `reqwest::Client::post(url)` with a `serde_urlencoded` body, `.send()`, a status
//!   check, `.bytes()` and `serde_json::from_slice::<TokenResponse>`: what a
//!   careful hand-written refresh does, without the crate's guarantees
//!   (secrets scrubbed from errors, typed provider errors, the path of a
//!   field that failed to decode, redirects refused).
//!
//! - `hand_written_timeout`: the same with the per-request timeout the
//!   crate's `Client` sets by default (30 s), which costs a timer per call.
//!
//! The contenders share one `reqwest::Client` (the crate's `Client::http()`)
//! so that connection reuse is the same. Figures in BENCHMARKS.md:
//! `cargo bench -p refresh-endpoint-tests --bench generated_call`.
//!
//! With `BENCH_CALLS=<contender>:<n>` the bench makes `n` calls of one
//! contender and exits, without criterion: run it under
//! `valgrind --tool=callgrind` with two values of `n` to count the
//! instructions of one call (see BENCHMARKS.md). With
//! `BENCH_INTERLEAVED=<rounds>:<calls>` the contenders take turns and the
//! ratio is taken within each round (`interleave.rs`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};

#[path = "interleave.rs"]
mod interleave;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, Secret, refresh_endpoint};
use refresh_endpoint_testkit::OAuth2Mock;
use tokio::runtime::Runtime;

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct PublicRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

/// The hand-written refresh: the same request, decoded into the same type.
async fn hand_written(
    http: &reqwest::Client,
    url: &str,
    refresh_token: &str,
    client_id: &str,
    timeout: Option<Duration>,
) -> Result<TokenResponse, Box<dyn std::error::Error>> {
    let body = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ])?;
    let mut request = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()).into());
    }
    let bytes = response.bytes().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn bench(c: &mut Criterion) {
    let (runtime, _server, client, url, request) = setup();
    let refresh_token = request.refresh_token.expose().to_owned();
    let client_id = request.client_id.clone();

    // Both work, and answer the same.
    let a = runtime.block_on(request.send(&client)).unwrap();
    let b = runtime
        .block_on(hand_written(
            client.http(),
            &url,
            &refresh_token,
            &client_id,
            None,
        ))
        .unwrap();
    assert_eq!(a.token_type, b.token_type);
    assert!(!a.access_token.is_empty() && !b.access_token.is_empty());

    let mut group = c.benchmark_group("refresh_call");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(40);
    run(&mut group, &runtime, "generated", || async {
        black_box(request.send(&client).await.unwrap());
    });
    run(&mut group, &runtime, "hand_written", || async {
        black_box(
            hand_written(client.http(), &url, &refresh_token, &client_id, None)
                .await
                .unwrap(),
        );
    });
    // With the timeout the crate sets on every request by default.
    run(&mut group, &runtime, "hand_written_timeout", || async {
        let timeout = Some(refresh_endpoint::DEFAULT_TIMEOUT);
        black_box(
            hand_written(client.http(), &url, &refresh_token, &client_id, timeout)
                .await
                .unwrap(),
        );
    });
    group.finish();
}

fn run<F: std::future::Future<Output = ()>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    name: &str,
    call: impl Fn() -> F,
) {
    group.bench_function(name, |b| b.to_async(runtime).iter(&call));
}

/// A current-thread runtime with the mock server on it, the crate's client,
/// the token URL and the request.
fn setup() -> (Runtime, OAuth2Mock, Client, String, PublicRefresh) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (server, client, url, request) = runtime.block_on(start());
    (runtime, server, client, url, request)
}

async fn start() -> (OAuth2Mock, Client, String, PublicRefresh) {
    let server = OAuth2Mock::builder()
        .public_client("cli")
        .rotate_refresh_tokens(false)
        .start()
        .await;
    let tokens = server.issue_tokens_for("cli", "read").unwrap();
    let client = Client::new(server.url()).unwrap();
    let url = format!("{}/oauth/token", server.url());
    let request = PublicRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(tokens.refresh_token.as_str()),
        client_id: "cli".into(),
    };
    (server, client, url, request)
}

/// `BENCH_CALLS=<contender>:<n>`: `n` calls of one contender, for counting
/// instructions.
fn fixed_calls(spec: &str) {
    let (name, n) = spec.split_once(':').expect("BENCH_CALLS=<contender>:<n>");
    let n: usize = n.parse().expect("a number of calls");
    let (runtime, _server, client, url, request) = setup();
    let refresh_token = request.refresh_token.expose().to_owned();
    runtime.block_on(async {
        for _ in 0..n {
            match name {
                "generated" => drop(black_box(request.send(&client).await.unwrap())),
                "hand_written" => drop(black_box(
                    hand_written(client.http(), &url, &refresh_token, "cli", None)
                        .await
                        .unwrap(),
                )),
                other => panic!("no contender {other}"),
            }
        }
    });
}

criterion_group!(benches, bench);

/// `BENCH_INTERLEAVED=<rounds>:<calls>`: the contenders in turn, the ratio
/// taken within each round.
fn interleaved(rounds: usize, calls: usize) {
    let (runtime, _server, client, url, request) = setup();
    let refresh_token = request.refresh_token.expose().to_owned();
    let timeout = Some(refresh_endpoint::DEFAULT_TIMEOUT);
    interleave::compare(
        &runtime,
        &["hand_written", "hand_written_timeout", "generated"],
        &[
            ("hand_written", "generated"),
            ("hand_written_timeout", "generated"),
        ],
        rounds,
        calls,
        |name, n| {
            let (client, url, request, refresh_token) = (&client, &url, &request, &refresh_token);
            Box::pin(async move {
                for _ in 0..n {
                    match name {
                        "generated" => drop(black_box(request.send(client).await.unwrap())),
                        "hand_written" | "hand_written_timeout" => {
                            let limit = (name == "hand_written_timeout")
                                .then_some(timeout)
                                .flatten();
                            drop(black_box(
                                hand_written(client.http(), url, refresh_token, "cli", limit)
                                    .await
                                    .unwrap(),
                            ))
                        }
                        other => panic!("no contender {other}"),
                    }
                }
            })
        },
    );
}

fn main() {
    interleave::main(fixed_calls, interleaved, benches);
}
