//! Serving a mock on loopback: binding `127.0.0.1:0`, the connection loop,
//! per-route request counts, fault injection and shutdown on drop.
//!
//! The connection loop is hand-rolled on hyper (instead of `axum::serve`) so
//! that [`Fault::Drop`] can close a connection without writing a response.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::fault::{Action, Fault, FaultQueue};

/// What a provider module tells the server about itself.
pub(crate) struct Provider {
    /// Whether a request path is the provider's refresh route (the one that
    /// suffers faults and is counted by `refresh_count`).
    pub(crate) is_refresh: fn(&str) -> bool,
    /// The provider's 429 body for [`Fault::RateLimited`]; the server sets
    /// the status and `Retry-After`.
    pub(crate) rate_limited: fn(u64) -> Response,
}

struct Shared {
    provider: Provider,
    counts: Mutex<HashMap<String, usize>>,
    refreshes: AtomicUsize,
    faults: Mutex<FaultQueue>,
}

impl Shared {
    /// Counts a request for `path`; on the refresh route, also draws the
    /// next queued fault.
    fn arrive(&self, path: &str) -> Option<Fault> {
        *lock(&self.counts).entry(path.to_owned()).or_insert(0) += 1;
        if (self.provider.is_refresh)(path) {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            lock(&self.faults).pop()
        } else {
            None
        }
    }
}

/// A running server; it stops (and drops its open connections) when dropped.
pub(crate) struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// The started mock, or a panic that names the provider and the reason (the
/// `start` of every mock; `try_start` reports the error instead).
#[track_caller]
pub(crate) fn started<M>(provider: &str, mock: io::Result<M>) -> M {
    mock.unwrap_or_else(|error| {
        panic!("testkit: cannot start the {provider} mock on 127.0.0.1: {error}")
    })
}

impl MockServer {
    /// Binds `127.0.0.1:0`. The caller builds its router knowing the address,
    /// then hands both to [`MockServer::spawn`].
    pub(crate) async fn bind() -> io::Result<TcpListener> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
    }

    /// The base URL a listener will serve at.
    pub(crate) fn url_of(listener: &TcpListener) -> io::Result<String> {
        Ok(format!("http://{}", listener.local_addr()?))
    }

    /// Serves `router` on `listener` in a task of the current tokio runtime.
    pub(crate) fn spawn(
        listener: TcpListener,
        router: Router,
        provider: Provider,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            provider,
            counts: Mutex::default(),
            refreshes: AtomicUsize::new(0),
            faults: Mutex::default(),
        });
        let task = tokio::spawn(accept_loop(listener, router, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self, route: &str) -> usize {
        lock(&self.shared.counts).get(route).copied().unwrap_or(0)
    }

    pub(crate) fn refresh_count(&self) -> usize {
        self.shared.refreshes.load(Ordering::SeqCst)
    }

    pub(crate) fn inject_times(&self, fault: Fault, times: usize) {
        lock(&self.shared.faults).push(fault, times);
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task, hanging ones included.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, router: Router, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(stream, router.clone(), Arc::clone(&shared)));
                    }
                    // Out of file descriptors or similar: let the other tasks run.
                    Err(_) => tokio::task::yield_now().await,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router, shared: Arc<Shared>) {
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = Arc::clone(&kill);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(
                request,
                router.clone(),
                Arc::clone(&shared),
                Arc::clone(&kill),
            )
        })
    };
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection future closes the socket mid-request.
        () = kill.notified() => {}
    }
}

async fn handle(
    request: Request<Incoming>,
    router: Router,
    shared: Arc<Shared>,
    kill: Arc<Notify>,
) -> Result<Response, Infallible> {
    if let Some(fault) = shared.arrive(request.uri().path()) {
        match fault.action(shared.provider.rate_limited) {
            Action::Respond(response) => return Ok(response),
            Action::Delay(by) => tokio::time::sleep(by).await,
            Action::Hang => std::future::pending::<()>().await,
            Action::ProcessThenHang => {
                // The router runs to the end (state changes included); its
                // answer is never written.
                let _unsent = TowerToHyperService::new(router).call(request).await;
                return std::future::pending().await;
            }
            Action::Drop => {
                kill.notify_one();
                std::future::pending::<()>().await;
            }
        }
    }
    TowerToHyperService::new(router).call(request).await
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not make
/// the mock unusable for the others).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON response with an exact `Content-Type`.
pub(crate) fn json_response(
    status: StatusCode,
    content_type: &'static str,
    body: &Value,
) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The `Authorization` header's value, if present and visible ASCII.
pub(crate) fn authorization(headers: &axum::http::HeaderMap) -> Option<Result<&str, ()>> {
    headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().map_err(|_| ()))
}

/// The credentials after an authentication scheme matched case-insensitively
/// (`strip_scheme("basic abc", "Basic") == Some("abc")`).
pub(crate) fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The methods every mock shares, delegating to its `server` field.
macro_rules! common_methods {
    ($refresh_route:literal) => {
        /// The mock's base URL, `http://127.0.0.1:PORT`, without a trailing slash.
        pub fn url(&self) -> String {
            self.server.url()
        }

        /// How many requests arrived for this exact path (without the query),
        /// whatever their method or outcome, faulted ones included.
        pub fn requests(&self, route: &str) -> usize {
            self.server.requests(route)
        }

        #[doc = concat!(
                                            "How many requests arrived on the refresh route (`",
                                            $refresh_route,
                                            "`), faulted ones included."
                                        )]
        pub fn refresh_count(&self) -> usize {
            self.server.refresh_count()
        }

        /// Queues `fault` for the next refresh request (first in, first out).
        pub fn inject(&self, fault: $crate::Fault) {
            self.server.inject_times(fault, 1);
        }

        /// Queues `fault` for each of the next `times` refresh requests.
        pub fn inject_times(&self, fault: $crate::Fault, times: usize) {
            self.server.inject_times(fault, times);
        }

        /// Forgets every queued fault.
        pub fn clear_faults(&self) {
            self.server.clear_faults();
        }
    };
}
pub(crate) use common_methods;
