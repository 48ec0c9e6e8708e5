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
//! - `generated_untimed`: the same on a client built with `.timeout(None)`,
//!   without the timer a call otherwise has (as `hand_written`);
//! - `hand_written`: `reqwest::Client::post(url)` with a `serde_urlencoded` body, `.send()`, a status
//!   check, `.bytes()` and `serde_json::from_slice::<TokenResponse>`: what a
//!   careful hand-written refresh does, without the crate's guarantees
//!   (secrets scrubbed from errors, typed provider errors, the path of a
//!   field that failed to decode, redirects refused).
//!
//! - `hand_written_timeout`: the same with the per-request timeout the
//!   crate's `Client` sets by default (30 s), which costs a timer per call.
//!
//! Steps between the two, to tell where a call's time goes (each is the
//! one before plus one part of the crate):
//!
//! - `crate_request`: the request the crate builds (`Client::build_request`,
//!   its timeout removed), sent and read as `hand_written` does;
//! - `fetched`: the same request sent and read by the crate's exchange
//!   (`Client::fetch`: the size cap, the answer's URL kept), no timer;
//! - `executed`: `Client::execute`: the request built with its secrets
//!   gathered, the destination check, the exchange with its timer, redirects
//!   refused; the body decoded as `hand_written` does;
//! - `executed_unwrapped`: the same answer unwrapped by the endpoint's
//!   envelope (`Envelope::unwrap`), outside the scrubber;
//! - `generated` adds the scrubber around the envelope and the call's own
//!   future (`Sending`).
//!
//! `hand_written_again` is `hand_written` under another name: the ratio of
//! the two shows what the method itself makes of no difference at all.
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
//! ratio is taken within each round (`interleave.rs`). The server shares
//! the calls' thread; with `BENCH_SERVER_THREAD` set it runs on a thread of
//! its own, and the CPU time of the calling thread says what a call costs
//! the caller.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};

#[path = "interleave.rs"]
mod interleave;
use refresh_endpoint::envelope::Envelope;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, Endpoint, Secret, refresh_endpoint};
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

const CONTENDERS: [&str; 9] = [
    "hand_written",
    "hand_written_timeout",
    "generated",
    "generated_untimed",
    "crate_request",
    "fetched",
    "executed",
    "executed_unwrapped",
    "hand_written_again",
];

/// The mock server on a current-thread runtime, the crate's client, the
/// token URL and the request.
struct Fixture {
    runtime: Runtime,
    _server: OAuth2Mock,
    /// The server's own runtime, with `BENCH_SERVER_THREAD` set.
    _server_runtime: Option<Runtime>,
    client: Client,
    /// A client without a timeout.
    untimed: Client,
    url: String,
    request: PublicRefresh,
    refresh_token: String,
}

impl Fixture {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let start = OAuth2Mock::builder()
            .public_client("cli")
            .rotate_refresh_tokens(false)
            .start();
        // By default the server shares the client's thread; with
        // `BENCH_SERVER_THREAD` set it runs on a thread of its own, as a
        // provider runs elsewhere than its clients.
        let server_runtime = std::env::var_os("BENCH_SERVER_THREAD").map(|_| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        });
        let server = match &server_runtime {
            Some(server_runtime) => server_runtime.block_on(start),
            None => runtime.block_on(start),
        };
        let tokens = server.issue_tokens_for("cli", "read").unwrap();
        let client = Client::new(server.url()).unwrap();
        let untimed = Client::builder(server.url()).timeout(None).build().unwrap();
        let url = format!("{}/oauth/token", server.url());
        let request = PublicRefresh {
            grant_type: "refresh_token",
            refresh_token: Secret::new(tokens.refresh_token.as_str()),
            client_id: "cli".into(),
        };
        Fixture {
            runtime,
            _server: server,
            _server_runtime: server_runtime,
            client,
            untimed,
            url,
            refresh_token: tokens.refresh_token,
            request,
        }
    }

    /// The request the crate builds, without reqwest's timeout.
    fn crate_request(&self) -> reqwest::Request {
        let mut request = self.client.build_request(&self.request, None).unwrap();
        *request.timeout_mut() = None;
        request
    }

    /// One call of the contender `name`.
    async fn call(&self, name: &str) -> TokenResponse {
        let hand_written = |timeout| {
            hand_written(
                self.client.http(),
                &self.url,
                &self.refresh_token,
                "cli",
                timeout,
            )
        };
        match name {
            "generated" => self.request.send(&self.client).await.unwrap(),
            "generated_untimed" => self.request.send(&self.untimed).await.unwrap(),
            "hand_written" | "hand_written_again" => hand_written(None).await.unwrap(),
            "crate_request" => {
                let request = self.crate_request();
                let answer = self.client.http().execute(request).await.unwrap();
                serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
            }
            "fetched" => {
                let answer = self.client.fetch("fetched", self.crate_request());
                serde_json::from_slice(&answer.await.unwrap().body).unwrap()
            }
            "executed" => {
                let answer = self.client.execute(&self.request, None).await.unwrap();
                serde_json::from_slice(&answer.body).unwrap()
            }
            "executed_unwrapped" => {
                let answer = self.client.execute(&self.request, None).await.unwrap();
                <PublicRefresh as Endpoint>::Envelope::unwrap(&answer).unwrap()
            }
            // With the timeout the crate sets on every request by default.
            "hand_written_timeout" => hand_written(Some(refresh_endpoint::DEFAULT_TIMEOUT))
                .await
                .unwrap(),
            other => panic!("no contender {other}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let fixture = Fixture::start();
    // Both work, and answer the same.
    let a = fixture.runtime.block_on(fixture.call("generated"));
    let b = fixture.runtime.block_on(fixture.call("hand_written"));
    assert_eq!(a.token_type, b.token_type);
    assert!(!a.access_token.is_empty() && !b.access_token.is_empty());

    let mut group = c.benchmark_group("refresh_call");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(40);
    for name in CONTENDERS {
        group.bench_function(name, |b| {
            b.to_async(&fixture.runtime)
                .iter(|| async { black_box(fixture.call(name).await) })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

/// `BENCH_CALLS=<contender>:<n>`: `n` calls of one contender, for counting
/// instructions.
fn fixed_calls(spec: &str) {
    let (name, n) = spec.split_once(':').expect("BENCH_CALLS=<contender>:<n>");
    let n: usize = n.parse().expect("a number of calls");
    let fixture = Fixture::start();
    fixture.runtime.block_on(async {
        for _ in 0..n {
            black_box(fixture.call(name).await);
        }
    });
}

/// `BENCH_INTERLEAVED=<rounds>:<calls>`: the contenders in turn, the ratio
/// taken within each round.
fn interleaved(rounds: usize, calls: usize) {
    let fixture = Fixture::start();
    interleave::compare(
        &fixture.runtime,
        &CONTENDERS,
        &[
            ("hand_written", "hand_written_again"),
            ("hand_written", "crate_request"),
            ("crate_request", "fetched"),
            ("hand_written_timeout", "executed"),
            ("executed", "executed_unwrapped"),
            ("executed_unwrapped", "generated"),
            ("hand_written", "generated"),
            ("hand_written_timeout", "generated"),
            ("hand_written", "generated_untimed"),
        ],
        rounds,
        calls,
        |name, n| {
            let fixture = &fixture;
            Box::pin(async move {
                for _ in 0..n {
                    black_box(fixture.call(name).await);
                }
            })
        },
    );
}

fn main() {
    interleave::main(fixed_calls, interleaved, benches);
}
