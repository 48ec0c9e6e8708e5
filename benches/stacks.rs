//! Per-request overhead of the session's `reqwest-middleware` middleware and
//! of its tower layer, against adding `Authorization: Bearer` by hand, on the
//! same loopback server, in one run.
//!
//! Seven entries, one GET each, its whole (2-byte) answer read:
//! - `reqwest/by_hand`: a `reqwest::Client`, the header added by hand;
//! - `reqwest/middleware`: a `ClientWithMiddleware` over the same client
//!   with `SessionMiddleware` (the token fresh: no refresh in the loop);
//! - `reqwest/stack_by_hand`: a `ClientWithMiddleware` over the same client
//!   with no middleware, the header added by hand: what the middleware
//!   replaces in an application that already has the stack;
//! - `reqwest/replayable_by_hand`: the same stack with a middleware written
//!   by hand that does the least a middleware able to replay a request
//!   must: keep a copy of it (`try_clone`) and add the header;
//! - `hyper/by_hand`: a hyper-util client, the header added by hand;
//! - `hyper/tower`: the same client behind `SessionLayer`;
//! - `hyper/replayable_by_hand`: the same client behind a tower service
//!   written by hand that does the least a layer able to replay a request
//!   must: keep the ready inner service and a copy of the request, add the
//!   header.
//!
//! The server runs on its own runtime and threads; the clients on a
//! current-thread runtime. The goal is a ratio of at most 1.02 for each pair.
//! No time is asserted.
//!
//! `cargo bench -p refresh-endpoint-tests --bench stacks`; figures in
//! BENCHMARKS.md.
//!
//! With `BENCH_CALLS=<entry>:<n>` (an entry as `reqwest/by_hand`) the bench
//! makes `n` requests of one entry and exits, without criterion: run it
//! under `valgrind --tool=callgrind` with two values of `n` to count the
//! instructions of one request (see BENCHMARKS.md). With
//! `BENCH_INTERLEAVED=<rounds>:<calls>` the entries take turns and the ratio
//! is taken within each round (`interleave.rs`).

use std::cell::RefCell;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group};

#[path = "interleave.rs"]
mod interleave;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use refresh_endpoint::middleware::SessionMiddleware;
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::tower::SessionLayer;
use refresh_endpoint::{Client, refresh_endpoint};
use tower::{Layer, Service};

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

const TOKEN: &str = "access-token-for-the-benchmark";

/// A loopback server answering `ok` when the token is there.
fn start_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new().route(
                "/me",
                get(|headers: axum::http::HeaderMap| async move {
                    let ok = headers
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
                    if ok {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::UNAUTHORIZED, "no")
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The least a middleware that may replay a request does, written by hand:
/// a copy of the request kept while it is sent, the header added.
struct ReplayableByHand(reqwest::header::HeaderValue);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ReplayableByHand {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let copy = request.try_clone();
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, self.0.clone());
        let response = next.run(request, extensions).await?;
        drop(std::hint::black_box(copy));
        Ok(response)
    }
}

type Hyper = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The least a tower layer able to replay a request does, written by hand:
/// the service made ready kept for a replay (a clone left in its place, as
/// tower services do), a copy of the request, the header added.
#[derive(Clone)]
struct ReplayableByHandService<S> {
    inner: S,
    bearer: reqwest::header::HeaderValue,
}

impl<S> Service<http::Request<Full<Bytes>>> for ReplayableByHandService<S>
where
    S: Service<http::Request<Full<Bytes>>> + Clone,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = KeptAlong<S::Future, (S, http::Request<Full<Bytes>>)>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Full<Bytes>>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut copy = http::Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.bearer.clone());
        KeptAlong {
            future: inner.call(request),
            _kept: Box::new((inner, copy)),
        }
    }
}

/// A future, and what must live as long as it.
struct KeptAlong<F, K> {
    future: F,
    _kept: Box<K>,
}

impl<F: std::future::Future + Unpin, K> std::future::Future for KeptAlong<F, K> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        std::pin::Pin::new(&mut self.future).poll(cx)
    }
}

const ENTRIES: [&str; 7] = [
    "reqwest/by_hand",
    "reqwest/middleware",
    "reqwest/stack_by_hand",
    "reqwest/replayable_by_hand",
    "hyper/by_hand",
    "hyper/tower",
    "hyper/replayable_by_hand",
];

/// The seven ways to make the request, sharing one server and one session.
struct Stacks {
    rt: tokio::runtime::Runtime,
    me: String,
    bearer: String,
    reqwest_client: reqwest::Client,
    middleware: reqwest_middleware::ClientWithMiddleware,
    bare_stack: reqwest_middleware::ClientWithMiddleware,
    replayable: reqwest_middleware::ClientWithMiddleware,
    hyper: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// Held as an application holds its service (`&mut`, no clone per
    /// request).
    layered: RefCell<refresh_endpoint::tower::SessionService<Hyper, RefreshSession>>,
    replayable_service: RefCell<ReplayableByHandService<Hyper>>,
}

fn stacks() -> Stacks {
    let url = start_server();
    let me = format!("{url}/me");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let session = rt.block_on(async {
        Session::builder(Client::new(&url).unwrap(), RefreshSession)
            .tokens(Tokens::new(TOKEN, "refresh"))
            .build()
            .await
            .unwrap()
    });
    let reqwest_client = session.client().http().clone();
    let middleware = reqwest_middleware::ClientBuilder::new(reqwest_client.clone())
        .with(SessionMiddleware::new(session.clone()))
        .build();
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layered = SessionLayer::new(session.clone()).layer(hyper.clone());
    let hyper_for_replay = hyper.clone();
    let bare_stack = reqwest_middleware::ClientBuilder::new(reqwest_client.clone()).build();
    let bearer = format!("Bearer {TOKEN}");
    let replayable = reqwest_middleware::ClientBuilder::new(reqwest_client.clone())
        .with(ReplayableByHand(bearer.parse().unwrap()))
        .build();
    Stacks {
        rt,
        me,
        bearer,
        reqwest_client,
        middleware,
        bare_stack,
        replayable,
        hyper,
        layered: RefCell::new(layered),
        replayable_service: RefCell::new(ReplayableByHandService {
            inner: hyper_for_replay,
            bearer: format!("Bearer {TOKEN}").parse().unwrap(),
        }),
    }
}

/// The body of a 200 answer.
async fn read_ok(answer: reqwest::Response) -> Bytes {
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap()
}

impl Stacks {
    async fn by_hand_reqwest(&self) -> Bytes {
        let request = self.reqwest_client.get(&self.me);
        read_ok(
            request
                .header("authorization", &self.bearer)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn middleware(&self) -> Bytes {
        read_ok(self.middleware.get(&self.me).send().await.unwrap()).await
    }

    async fn by_hand_stack(&self) -> Bytes {
        let request = self.bare_stack.get(&self.me);
        read_ok(
            request
                .header("authorization", &self.bearer)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn by_hand_hyper(&self) -> Bytes {
        let request = http::Request::get(&self.me)
            .header("authorization", &self.bearer)
            .body(Full::default())
            .unwrap();
        let answer = self.hyper.request(request).await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.into_body().collect().await.unwrap().to_bytes()
    }

    async fn entry(&self, name: &str) -> Bytes {
        match name {
            "reqwest/by_hand" => self.by_hand_reqwest().await,
            "reqwest/middleware" => self.middleware().await,
            "reqwest/stack_by_hand" => self.by_hand_stack().await,
            "reqwest/replayable_by_hand" => {
                read_ok(self.replayable.get(&self.me).send().await.unwrap()).await
            }
            "hyper/by_hand" => self.by_hand_hyper().await,
            "hyper/tower" => call_held(&self.layered, &self.me).await,
            "hyper/replayable_by_hand" => call_held(&self.replayable_service, &self.me).await,
            other => panic!("no entry {other}"),
        }
    }
}

/// A GET of `url` through a service held as an application holds it
/// (`&mut`, no clone per request); the body of its 200 answer.
async fn call_held<S, B>(service: &RefCell<S>, url: &str) -> Bytes
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = http::Request::get(url).body(Full::default()).unwrap();
    let answer = {
        let mut service = service.borrow_mut();
        // A hyper-util client is always ready, as `ready().await` finds.
        let ready = service.poll_ready(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(ready, Poll::Ready(Ok(()))));
        service.call(request)
    }
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    answer.into_body().collect().await.unwrap().to_bytes()
}

fn bench(c: &mut Criterion) {
    let stacks = stacks();
    let rt = &stacks.rt;
    let mut group = c.benchmark_group("stacks");
    group.measurement_time(Duration::from_secs(10));
    for name in ENTRIES {
        group.bench_function(name, |b| b.to_async(rt).iter(|| stacks.entry(name)));
    }
    group.finish();
}

/// `BENCH_CALLS=<entry>:<n>`: `n` requests of one entry, for counting
/// instructions.
fn fixed_calls(spec: &str) {
    let (name, n) = spec.split_once(':').expect("BENCH_CALLS=<entry>:<n>");
    let n: usize = n.parse().expect("a number of requests");
    let stacks = stacks();
    stacks.rt.block_on(async {
        for _ in 0..n {
            std::hint::black_box(stacks.entry(name).await);
        }
    });
}

criterion_group!(benches, bench);

/// `BENCH_INTERLEAVED=<rounds>:<calls>`: the entries in turn, the ratio
/// taken within each round.
fn interleaved(rounds: usize, calls: usize) {
    let stacks = stacks();
    interleave::compare(
        &stacks.rt,
        &ENTRIES,
        &[
            ("reqwest/by_hand", "reqwest/middleware"),
            ("reqwest/stack_by_hand", "reqwest/middleware"),
            ("reqwest/replayable_by_hand", "reqwest/middleware"),
            ("hyper/by_hand", "hyper/tower"),
            ("hyper/replayable_by_hand", "hyper/tower"),
        ],
        rounds,
        calls,
        |name, n| {
            let stacks = &stacks;
            Box::pin(async move {
                for _ in 0..n {
                    std::hint::black_box(stacks.entry(name).await);
                }
            })
        },
    );
}

fn main() {
    interleave::main(fixed_calls, interleaved, benches);
}
