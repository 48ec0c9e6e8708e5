//! Per-request overhead of the session's `reqwest-middleware` middleware and
//! of its tower layer, against adding `Authorization: Bearer` by hand, on the
//! same loopback server, in one run.
//!
//! Four entries, one GET each, its whole (2-byte) answer read:
//! - `reqwest/by_hand`: a `reqwest::Client`, the header added by hand;
//! - `reqwest/middleware`: a `ClientWithMiddleware` over the same client
//!   with `SessionMiddleware` (the token fresh: no refresh in the loop);
//! - `hyper/by_hand`: a hyper-util client, the header added by hand;
//! - `hyper/tower`: the same client behind `SessionLayer`.
//!
//! The server runs on its own runtime and threads; the clients on a
//! current-thread runtime. The goal is a ratio of at most 1.02 for each pair.
//! No time is asserted.
//!
//! `cargo bench -p refresh-endpoint-tests --bench stacks`; figures in
//! BENCHMARKS.md.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use refresh_endpoint::middleware::SessionMiddleware;
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::tower::SessionLayer;
use refresh_endpoint::{Client, refresh_endpoint};
use tower::{Layer, Service, ServiceExt};

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

fn bench(c: &mut Criterion) {
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
    let bearer = format!("Bearer {TOKEN}");

    let mut group = c.benchmark_group("stacks");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("reqwest/by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let answer = reqwest_client
                .get(&me)
                .header("authorization", &bearer)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            answer.bytes().await.unwrap()
        })
    });
    group.bench_function("reqwest/middleware", |b| {
        b.to_async(&rt).iter(|| async {
            let answer = middleware.get(&me).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.bytes().await.unwrap()
        })
    });
    group.bench_function("hyper/by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let request = http::Request::get(&me)
                .header("authorization", &bearer)
                .body(Full::default())
                .unwrap();
            let answer = hyper.request(request).await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.into_body().collect().await.unwrap().to_bytes()
        })
    });
    group.bench_function("hyper/tower", |b| {
        b.to_async(&rt).iter(|| async {
            let request = http::Request::get(&me).body(Full::default()).unwrap();
            let mut service = layered.clone();
            let answer = service.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.into_body().collect().await.unwrap().to_bytes()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
