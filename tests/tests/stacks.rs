//! A session plugged into the HTTP stacks applications already have — a
//! `reqwest-middleware` `ClientWithMiddleware` and a tower service over a
//! hyper-util client — over real HTTP on loopback: streamed answers with
//! bounded memory, reactive refresh and replay, single-flight under 1,000
//! concurrent requests, requests that cannot be replayed, an expiry answer
//! to the replay, redirects to another origin, plain http.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use refresh_endpoint::middleware::SessionMiddleware;
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::session::{Session, TokenPlacement};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::tower::{BoxError, SessionLayer};
use refresh_endpoint::{Client, Error, ErrorKind, refresh_endpoint};
use reqwest_middleware::ClientWithMiddleware;
use tower::{Layer, Service, ServiceExt};

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

/// The streamed answer's size.
const BIG: usize = 50 * 1000 * 1000;
const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// An API on loopback: `a0` is an expired access token; each refresh issues
/// `a<n>`, the only one accepted afterwards.
#[derive(Default)]
struct Api {
    refreshes: AtomicUsize,
    calls: AtomicUsize,
    flaky: AtomicUsize,
    other_calls: AtomicUsize,
    other_origin: std::sync::Mutex<String>,
}

type Shared = Arc<Api>;

fn token(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned()
}

fn expired() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json")],
        r#"{"error":"ExpiredToken","message":"Token has expired"}"#,
    )
        .into_response()
}

/// The one access token accepted: none before the first refresh.
fn current(api: &Api) -> Option<String> {
    match api.refreshes.load(Ordering::SeqCst) {
        0 => None,
        n => Some(format!("a{n}")),
    }
}

async fn refresh(State(api): State<Shared>) -> Response {
    let n = api.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(serde_json::json!({
        "accessJwt": format!("a{n}"), "refreshJwt": format!("r{n}"),
        "handle": "alice.test", "did": "did:plc:alice",
    }))
    .into_response()
}

async fn api(
    State(api): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: AxumBody,
) -> Response {
    api.calls.fetch_add(1, Ordering::SeqCst);
    let _ = body.collect().await;
    let header = if uri.path() == "/custom" {
        "x-auth-token"
    } else {
        "authorization"
    };
    let seen = token(&headers, header);
    if uri.path() == "/always-expired" || Some(seen) != current(&api) {
        return expired();
    }
    match uri.path() {
        "/big" => {
            let chunks = (0..BIG / CHUNK)
                .map(|_| Ok::<_, Infallible>(Bytes::from_static(&ZEROS)))
                .chain(std::iter::once(Ok(Bytes::from_static(
                    &ZEROS[..BIG % CHUNK],
                ))));
            let body = AxumBody::from_stream(futures_util::stream::iter(chunks));
            ([("content-length", BIG.to_string())], body).into_response()
        }
        "/flaky" if api.flaky.fetch_add(1, Ordering::SeqCst) == 0 => {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        "/here" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/moved")], "").into_response(),
        "/moved" => (StatusCode::OK, "moved").into_response(),
        "/loop" => (StatusCode::FOUND, [("location", "/loop")], "").into_response(),
        "/elsewhere" => {
            let other = api.other_origin.lock().unwrap().clone();
            (
                StatusCode::FOUND,
                [("location", format!("{other}/steal"))],
                "",
            )
                .into_response()
        }
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

async fn other(State(api): State<Shared>) -> Response {
    api.other_calls.fetch_add(1, Ordering::SeqCst);
    "stolen".into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

struct Fixture {
    api: Shared,
    url: String,
    session: Session<RefreshSession>,
}

async fn fixture_with(placement: TokenPlacement) -> Fixture {
    let api = Shared::default();
    let other_url = serve(Router::new().fallback(any(other)).with_state(api.clone())).await;
    *api.other_origin.lock().unwrap() = other_url;
    let url = serve(
        Router::new()
            .route("/xrpc/com.atproto.server.refreshSession", post(refresh))
            .fallback(any(self::api))
            .with_state(api.clone()),
    )
    .await;
    let session = Session::builder(Client::new(&url).unwrap(), RefreshSession)
        // Opaque tokens with no expiry: only the API says when they expire.
        .tokens(Tokens::new("a0", "r0"))
        .token_placement(placement)
        .build()
        .await
        .unwrap();
    Fixture { api, url, session }
}

async fn fixture() -> Fixture {
    fixture_with(TokenPlacement::bearer()).await
}

impl Fixture {
    fn refreshes(&self) -> usize {
        self.api.refreshes.load(Ordering::SeqCst)
    }

    fn calls(&self) -> usize {
        self.api.calls.load(Ordering::SeqCst)
    }

    fn middleware(&self) -> ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(self.session.client().http().clone())
            .with(SessionMiddleware::new(self.session.clone()))
            .build()
    }

    fn tower<B>(
        &self,
    ) -> refresh_endpoint::tower::SessionService<HyperClient<HttpConnector, B>, RefreshSession>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<B>();
        SessionLayer::new(self.session.clone()).layer(hyper)
    }

    fn get(&self, path: &str) -> http::Request<Full<Bytes>> {
        http::Request::get(format!("{}{path}", self.url))
            .body(Full::default())
            .unwrap()
    }
}

fn session_error(error: &reqwest_middleware::Error) -> &Error {
    match error {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<Error>().unwrap(),
        other => panic!("not a session error: {other:?}"),
    }
}

// --- reactive refresh and replay -------------------------------------------

#[tokio::test]
async fn middleware_refreshes_and_replays_once_on_expiry() {
    let f = fixture().await;
    let answer = f
        .middleware()
        .get(format!("{}/me", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok");
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 2, "the call and one replay");
}

#[tokio::test]
async fn tower_refreshes_and_replays_once_on_expiry() {
    let f = fixture().await;
    let mut api = f.tower::<Full<Bytes>>();
    let answer = api.ready().await.unwrap().call(f.get("/me")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 2, "the call and one replay");
}

/// A token the session knows to be expired is refreshed before the request
/// is sent: one refresh, one call, no expiry answer.
#[tokio::test]
async fn tower_refreshes_a_token_known_to_be_expired_before_sending() {
    let f = fixture().await;
    let session = Session::builder(Client::new(&f.url).unwrap(), RefreshSession)
        .tokens(Tokens::new("a0", "r0").with_access_expires_at(
            std::time::SystemTime::now() - std::time::Duration::from_secs(60),
        ))
        .build()
        .await
        .unwrap();
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut api = SessionLayer::new(session).layer(hyper);
    let answer = api.ready().await.unwrap().call(f.get("/me")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 1, "sent once, with the new token");
}

#[tokio::test]
async fn the_token_goes_where_the_session_says() {
    let f = fixture_with(TokenPlacement::header("X-Auth-Token").unwrap()).await;
    let answer = f
        .middleware()
        .get(format!("{}/custom", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "refreshed, then accepted in X-Auth-Token"
    );
    let mut api = f.tower::<Full<Bytes>>();
    let answer = api
        .ready()
        .await
        .unwrap()
        .call(f.get("/custom"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(f.refreshes(), 1);
}

// --- an expiry answer to the replay is returned, never looped on ---------

#[tokio::test]
async fn middleware_returns_the_replays_expiry_answer() {
    let f = fixture().await;
    let answer = f
        .middleware()
        .get(format!("{}/always-expired", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body = answer.text().await.unwrap();
    assert!(body.contains("ExpiredToken"), "the whole answer: {body}");
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 2);
}

#[tokio::test]
async fn tower_returns_the_replays_expiry_answer() {
    let f = fixture().await;
    let mut api = f.tower::<Full<Bytes>>();
    let answer = api
        .ready()
        .await
        .unwrap()
        .call(f.get("/always-expired"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("ExpiredToken"));
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 2);
}

// --- a body that cannot be cloned is not replayed --------------------------

fn streamed_body() -> BoxBody<Bytes, Infallible> {
    let chunks = vec![Ok::<_, Infallible>(http_body::Frame::data(
        Bytes::from_static(b"payload"),
    ))];
    http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

#[tokio::test]
async fn middleware_does_not_replay_a_streamed_body() {
    let f = fixture().await;
    let answer = f
        .middleware()
        .post(format!("{}/upload", f.url))
        .body(reqwest::Body::wrap(streamed_body()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400, "the expiry answer, as it is");
    assert!(answer.text().await.unwrap().contains("ExpiredToken"));
    assert_eq!(f.calls(), 1, "not replayed");
    assert_eq!(f.refreshes(), 0);
}

#[tokio::test]
async fn tower_does_not_replay_a_streamed_body() {
    let f = fixture().await;
    let mut api = f.tower::<BoxBody<Bytes, Infallible>>();
    let request = http::Request::post(format!("{}/upload", f.url))
        .body(streamed_body())
        .unwrap();
    let answer = api.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(answer.status(), 400, "the expiry answer, as it is");
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("ExpiredToken"));
    assert_eq!(f.calls(), 1, "not replayed");
    assert_eq!(f.refreshes(), 0);
}

// --- 1,000 concurrent requests on an expired token: one refresh ------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_thousand_concurrent_expired_requests_refresh_once() {
    let f = fixture().await;
    let http = f.middleware();
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let request = http.get(format!("{}/me", f.url));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 200);
    }
    assert_eq!(f.refreshes(), 1);
    assert!(f.calls() <= 2000, "each request replayed at most once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_thousand_concurrent_expired_requests_refresh_once() {
    let f = fixture().await;
    let api = f.tower::<Full<Bytes>>();
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let api = api.clone();
            let request = f.get("/me");
            tokio::spawn(async move { api.oneshot(request).await.map(|r| r.status()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 200);
    }
    assert_eq!(f.refreshes(), 1);
    assert!(f.calls() <= 2000, "each request replayed at most once");
}

// --- stacked with tower's retry: one refresh for one expiry ---------------

#[derive(Clone)]
struct RetryServerErrors(usize);

impl<B, E> tower::retry::Policy<http::Request<Full<Bytes>>, http::Response<B>, E>
    for RetryServerErrors
{
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut http::Request<Full<Bytes>>,
        result: &mut Result<http::Response<B>, E>,
    ) -> Option<Self::Future> {
        let retry = match result {
            Ok(answer) => answer.status().is_server_error() || answer.status() == 400,
            Err(_) => true,
        };
        (retry && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(
        &mut self,
        request: &http::Request<Full<Bytes>>,
    ) -> Option<http::Request<Full<Bytes>>> {
        let mut copy = http::Request::new(request.body().clone());
        *copy.uri_mut() = request.uri().clone();
        *copy.method_mut() = request.method().clone();
        *copy.headers_mut() = request.headers().clone();
        Some(copy)
    }
}

#[tokio::test]
async fn tower_retry_outside_the_session_never_refreshes_twice() {
    let f = fixture().await;
    // Retries 5xx and 400 (the expiry answer) three times.
    let api = tower::retry::RetryLayer::new(RetryServerErrors(3)).layer(f.tower::<Full<Bytes>>());
    // a0 expired → refresh → replay answered 503 → retried with a1 → 200.
    let answer = api.oneshot(f.get("/flaky")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.calls(), 3);
}

// --- credentials stay where they belong --------------------------------------

#[tokio::test]
async fn a_redirect_to_another_origin_is_returned_not_followed() {
    let f = fixture().await;
    f.session.refresh().await.unwrap();
    let answer = f
        .middleware()
        .get(format!("{}/elsewhere", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302, "middleware: returned as is");
    let mut api = f.tower::<Full<Bytes>>();
    let answer = api
        .ready()
        .await
        .unwrap()
        .call(f.get("/elsewhere"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 302, "tower: returned as is");
    assert_eq!(f.api.other_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_middleware_follows_same_origin_redirects_with_the_token_and_stops_at_ten() {
    let f = fixture().await;
    f.session.refresh().await.unwrap();
    let answer = f
        .middleware()
        .get(format!("{}/here", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.text().await.unwrap(),
        "moved",
        "the token went to /moved too"
    );
    assert_eq!(f.calls(), 2);
    let error = f
        .middleware()
        .get(format!("{}/loop", f.url))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(session_error(&error).kind(), ErrorKind::Invalid(text) if text.contains("redirects")),
        "{error}"
    );
    assert_eq!(f.calls(), 2 + 11, "the first request and ten redirects");
    assert_eq!(f.refreshes(), 1);
}

#[tokio::test]
async fn plain_http_off_the_machine_is_refused() {
    let f = fixture().await;
    // Resolves nowhere: refused before any connection.
    let url = "http://api.example.test/me";
    let error = f.middleware().get(url).send().await.unwrap_err();
    assert!(
        matches!(session_error(&error).kind(), ErrorKind::InsecureUrl { host, .. } if host == "api.example.test"),
        "{error:?}"
    );
    let mut api = f.tower::<Full<Bytes>>();
    let request = http::Request::get(url).body(Full::default()).unwrap();
    let error = api.ready().await.unwrap().call(request).await.unwrap_err();
    let error = error.downcast_ref::<Error>().expect("a session error");
    assert!(
        matches!(error.kind(), ErrorKind::InsecureUrl { .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("a0"));
    assert_eq!(f.calls(), 0);
}

// --- a 50 MB answer streams with bounded memory ----------------------------

const CHILD_ENV: &str = "REFRESH_ENDPOINT_STACKS_CHILD";

/// The peak resident set of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run_child(path: &str) -> (u64, u64) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "streamed_download_child",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEAK "))
        .unwrap_or_else(|| panic!("no figures from the child: {stdout}"));
    let mut figures = line.split(' ').map(|n| n.parse::<u64>().unwrap());
    (figures.next().unwrap(), figures.next().unwrap())
}

#[test]
fn a_50_mb_answer_streams_with_bounded_memory() {
    if peak_rss().is_none() {
        eprintln!("skipped: no /proc/self/status on this system");
        return;
    }
    for path in ["middleware", "tower", "authorized"] {
        let (before, after) = run_child(path);
        let growth = after.saturating_sub(before);
        eprintln!("{path}: peak RSS {before} → {after} bytes (+{growth}) for a {BIG}-byte answer");
        assert!(
            growth < (BIG / 5) as u64,
            "{path}: the peak resident set grew by {growth} bytes for a {BIG}-byte answer"
        );
    }
}

#[tokio::test]
#[ignore = "run by a_50_mb_answer_streams_with_bounded_memory in a child process"]
async fn streamed_download_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let f = fixture().await;
    // Warm up: the first request sets up the pools and the refresh.
    f.session.refresh().await.unwrap();
    let before = peak_rss().unwrap();
    let url = format!("{}/big", f.url);
    let mut total = 0usize;
    match path.as_str() {
        "middleware" => {
            let mut answer = f.middleware().get(&url).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            while let Some(chunk) = answer.chunk().await.unwrap() {
                total += chunk.len();
            }
        }
        "tower" => {
            let mut api = f.tower::<Full<Bytes>>();
            let answer = api
                .ready()
                .await
                .unwrap()
                .call(f.get("/big"))
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            let mut body = answer.into_body();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    total += data.len();
                }
            }
        }
        _ => {
            let mut answer = f
                .session
                .authorized(f.session.client().http().get(&url))
                .send()
                .await
                .unwrap();
            while let Some(chunk) = answer.chunk().await.unwrap() {
                total += chunk.len();
            }
        }
    }
    assert_eq!(total, BIG, "every byte arrived");
    println!("PEAK {before} {}", peak_rss().unwrap());
}
