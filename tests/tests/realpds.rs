//! Against the real thing: the AT Protocol's reference server
//! (`@atproto/pds` with its did:plc directory) on loopback, run by
//! `refresh_endpoint_testkit::realpds`. Every test starts its own server
//! (about 2 s) with the account `alice.test`, and stops it when the test ends,
//! panics included.
//!
//! Where node is missing or the npm install fails, each test says on stderr
//! that it was skipped and why, and passes; under `CI=true` it fails instead.
//!
//! The last test is differential: it sends the same requests to the testkit's
//! `AtprotoMock` and to the real server and compares status, `error`,
//! `message` and the shape of the body.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use refresh_endpoint::envelope::{Envelope, RawResponse, Xrpc};
use refresh_endpoint::providers::atproto::AtpSession;
use refresh_endpoint::reqwest;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::realpds::{Availability, RealPds};
use refresh_endpoint_testkit::{AtprotoMock, jwt};
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const REFRESH: &str = "com.atproto.server.refreshSession";
const GET_SESSION: &str = "com.atproto.server.getSession";
const CREATE_SESSION: &str = "com.atproto.server.createSession";
const DELETE_SESSION: &str = "com.atproto.server.deleteSession";
const HOUR: Duration = Duration::from_secs(3600);

/// The refresh route as users declare it: the refresh JWT as bearer, no body.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Clone)]
struct RefreshSession;

/// The same route, declared without credentials: no Authorization header.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = none, envelope = xrpc, response = AtpSession)]
struct RefreshWithoutAuth;

/// The same route with a body the server does not expect.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
                   auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
struct RefreshWithBody {
    note: String,
}

/// Sign-out: the refresh JWT as bearer; 200 with an empty body.
#[refresh_endpoint(path = "/xrpc/com.atproto.server.deleteSession",
                   auth = refresh_bearer, envelope = xrpc, response = IgnoredAny)]
struct DeleteSession;

// ---------------------------------------------------------------------------
// Starting the server, and what every test needs
// ---------------------------------------------------------------------------

/// Says why a test did not run, on the process's stderr (not through
/// `eprintln!`, which the test harness captures and hides for passing tests).
fn skip(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED realpds::{test}: the reference PDS cannot run here: {why}"
    );
}

/// What a test does with the outcome of [`RealPds::start`]: `None` (after
/// saying why) when the server cannot run on this machine; a panic when it
/// fails to start, or cannot run under `CI=true`.
fn ready(test: &str, started: Result<Availability, String>) -> Option<RealPds> {
    match started {
        Ok(Availability::Ready(pds)) => Some(pds),
        Ok(Availability::Skipped(why)) => {
            skip(test, &why);
            None
        }
        Err(error) => panic!("{test}: the reference PDS did not start: {error}"),
    }
}

/// Starts the reference PDS for one test, off the async worker threads.
async fn start(test: &str) -> Option<RealPds> {
    let started = tokio::task::spawn_blocking(RealPds::start)
        .await
        .expect("the start task panicked");
    ready(test, started)
}

fn client(url: &str) -> Client {
    Client::new(url).expect("a loopback URL")
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The refresh token id of a refresh JWT.
fn jti(refresh_jwt: &str) -> String {
    jwt::decode_claims(refresh_jwt).unwrap()["jti"]
        .as_str()
        .expect("a refresh JWT has a jti")
        .to_owned()
}

/// An access JWT for the account that expired an hour ago, signed with the
/// server's key.
fn expired_access(pds: &RealPds) -> String {
    pds.mint_access_token(SystemTime::now() - HOUR)
}

/// A new session for the account: `(accessJwt, refreshJwt)`.
async fn create_session(pds: &RealPds) -> (String, String) {
    let response = http()
        .post(pds.xrpc(CREATE_SESSION))
        .header("content-type", "application/json")
        .body(json!({"identifier": pds.handle, "password": pds.password}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "createSession");
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (
        body["accessJwt"].as_str().unwrap().to_owned(),
        body["refreshJwt"].as_str().unwrap().to_owned(),
    )
}

/// Takes the account down (or lifts it) the way a moderator does:
/// `com.atproto.admin.updateSubjectStatus` with HTTP Basic `admin:<password>`.
async fn set_takedown(pds: &RealPds, applied: bool) {
    let takedown = match applied {
        true => json!({"applied": true, "ref": "test-takedown"}),
        false => json!({"applied": false}),
    };
    let body = json!({
        "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": pds.did},
        "takedown": takedown,
    });
    let response = http()
        .post(pds.xrpc("com.atproto.admin.updateSubjectStatus"))
        .basic_auth("admin", Some(&pds.admin_password))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "updateSubjectStatus: {text}");
}

/// `getSession` with `access_jwt`, read whole.
async fn get_session(url: &str, access_jwt: &str) -> RawResponse {
    let response = http()
        .get(format!("{url}/xrpc/{GET_SESSION}"))
        .bearer_auth(access_jwt)
        .send()
        .await
        .unwrap();
    RawResponse {
        endpoint: "getSession",
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// Asserts the typed error of one row of the table: variant, classification,
/// and the server's own status, name and message.
fn assert_row(row: &str, error: &Error, terminal: bool, status: u16, code: &str, message: &str) {
    match terminal {
        true => assert!(
            matches!(error.kind(), ErrorKind::SignInAgain(Some(_))),
            "{row}: {error:?}"
        ),
        false => assert!(
            matches!(error.kind(), ErrorKind::Api(_)),
            "{row}: {error:?}"
        ),
    }
    assert_eq!(error.is_terminal(), terminal, "{row}: is_terminal");
    assert!(!error.is_retryable(), "{row}: is_retryable");
    let api = error.api().expect("the server's error is kept");
    assert_eq!(
        (
            api.provider,
            api.status,
            api.code.as_str(),
            api.message.as_str()
        ),
        ("xrpc", status, code, message),
        "{row}"
    );
}

// ---------------------------------------------------------------------------
// A counting proxy: what reached the server, on the wire
// ---------------------------------------------------------------------------

/// One request the proxy forwarded.
#[derive(Debug, Clone)]
struct Forwarded {
    /// `POST /xrpc/com.atproto.server.refreshSession HTTP/1.1`
    line: String,
    authorization: Option<String>,
}

/// A loopback HTTP/1.1 proxy in front of the server that records every
/// request it forwards. It reads each request head on a connection
/// (keep-alive included) and forwards the head and a `Content-Length` body;
/// responses stream back untouched. Chunked request bodies are not supported
/// and recorded as a problem.
struct CountingProxy {
    url: String,
    forwarded: Arc<Mutex<Vec<Forwarded>>>,
    problems: Arc<Mutex<Vec<String>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream_url: &str) -> Self {
        let upstream = upstream_url
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (forwarded, problems) = (Arc::clone(&forwarded), Arc::clone(&problems));
            tokio::spawn(async move {
                // Dropping the set (when the accept task is aborted) aborts
                // every connection.
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            let (upstream, forwarded, problems) =
                                (upstream.clone(), Arc::clone(&forwarded), Arc::clone(&problems));
                            connections.spawn(async move {
                                if let Err(error) = relay(client, &upstream, &forwarded).await {
                                    problems.lock().unwrap().push(error.to_string());
                                }
                            });
                        }
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            })
        };
        CountingProxy {
            url,
            forwarded,
            problems,
            accept,
        }
    }

    /// The requests forwarded so far to `/xrpc/{nsid}`.
    fn to(&self, nsid: &str) -> Vec<Forwarded> {
        let problems = self.problems.lock().unwrap();
        assert!(problems.is_empty(), "the proxy failed: {problems:?}");
        let path = format!(" /xrpc/{nsid}");
        self.forwarded
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.line.contains(&path))
            .cloned()
            .collect()
    }

    fn count(&self, nsid: &str) -> usize {
        self.to(nsid).len()
    }

    /// The bearer tokens of the requests forwarded to `/xrpc/{nsid}`.
    fn bearers(&self, nsid: &str) -> Vec<String> {
        self.to(nsid)
            .into_iter()
            .map(|f| {
                let value = f.authorization.unwrap_or_default();
                value.strip_prefix("Bearer ").unwrap_or(&value).to_owned()
            })
            .collect()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Relays one client connection to the upstream, request by request.
async fn relay(
    client: TcpStream,
    upstream: &str,
    forwarded: &Mutex<Vec<Forwarded>>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let responses = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut reader = BufReader::new(client_read);
    'requests: loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                if head.is_empty() {
                    break 'requests; // the client closed between requests
                }
                return Err(std::io::Error::other("connection closed inside a head"));
            }
            let blank = line == b"\r\n" || line == b"\n";
            if blank && head.is_empty() {
                continue; // a stray CRLF between requests
            }
            head.extend_from_slice(&line);
            if blank {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or_default().to_owned();
        let (mut length, mut authorization) = (0u64, None);
        for header in lines {
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value
                        .parse()
                        .map_err(|_| std::io::Error::other("bad content-length"))?
                }
                "transfer-encoding" => {
                    return Err(std::io::Error::other(format!(
                        "transfer-encoding {value} is not supported by the test proxy"
                    )));
                }
                "authorization" => authorization = Some(value.to_owned()),
                _ => {}
            }
        }
        forwarded.lock().unwrap().push(Forwarded {
            line: request_line,
            authorization,
        });
        server_write.write_all(&head).await?;
        let copied = tokio::io::copy(&mut (&mut reader).take(length), &mut server_write).await?;
        if copied != length {
            return Err(std::io::Error::other("connection closed inside a body"));
        }
    }
    server_write.shutdown().await?;
    let _ = responses.await;
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. The example, pointed at the real server
// ---------------------------------------------------------------------------

#[test]
fn the_bluesky_example_refreshes_against_the_real_pds_and_prints_no_token() {
    let test = "the_bluesky_example_refreshes_against_the_real_pds";
    let Some(pds) = ready(test, RealPds::start()) else {
        return;
    };
    // The example talks to the server through the counting proxy, served by
    // a runtime of its own while this thread waits for cargo.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy = rt.block_on(CountingProxy::start(&pds.url));
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "run",
        "--quiet",
        "-p",
        "refresh-endpoint",
        "--example",
        "bluesky",
    ]);
    // The target directory this test was built in (…/target/debug/deps/this),
    // so that the example is built next to it and not all over again.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    if deps.file_name().is_some_and(|name| name == "deps")
        && let Some(target) = deps.parent().and_then(|profile| profile.parent())
    {
        command.arg("--target-dir").arg(target);
    }
    let output = command
        .current_dir(workspace)
        .env("BSKY_PDS_URL", &proxy.url)
        .env("BSKY_REFRESH_JWT", &pds.refresh_jwt)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the example failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(&proxy.url), "{stdout}");
    assert!(stdout.contains(&pds.handle), "the handle: {stdout}");
    assert!(stdout.contains(&pds.did), "the DID: {stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    for shown in [&stdout, &stderr] {
        // Every JWT starts with the base64 of `{"`: "eyJ".
        assert!(!shown.contains("eyJ"), "a token was printed:\n{shown}");
        assert!(!shown.contains(&pds.refresh_jwt));
    }
    // It really refreshed, once, with the token it was given.
    assert_eq!(
        proxy.bearers(REFRESH),
        std::slice::from_ref(&pds.refresh_jwt)
    );
}

// ---------------------------------------------------------------------------
// 2. Every row of the table, for real
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_real_server_maps_to_its_typed_error() {
    let Some(pds) = start("every_answer_of_the_real_server_maps_to_its_typed_error").await else {
        return;
    };
    let client = client(&pds.url);
    let refresh = Secret::new(pds.refresh_jwt.as_str());

    // refreshSession with the refresh JWT: 200, the typed session.
    let first = RefreshSession.send(&client, &refresh).await.unwrap();
    assert_eq!(first.handle, pds.handle);
    assert_eq!(first.did, pds.did);
    assert_eq!(first.active, Some(true));
    assert_eq!(first.status, None);
    assert_ne!(jti(first.refresh_jwt.expose()), jti(&pds.refresh_jwt));

    // The same old refresh JWT again, inside the grace period: the same successor.
    let again = RefreshSession.send(&client, &refresh).await.unwrap();
    assert_eq!(
        jti(again.refresh_jwt.expose()),
        jti(first.refresh_jwt.expose())
    );

    // 50 concurrent refreshes with one refresh JWT: 50 × 200, one successor.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (client, token) = (client.clone(), first.refresh_jwt.clone());
            tokio::spawn(async move { RefreshSession.send(&client, &token).await })
        })
        .collect();
    let mut successors = Vec::new();
    for task in tasks {
        let session = task
            .await
            .unwrap()
            .expect("every concurrent refresh is a 200");
        successors.push(jti(session.refresh_jwt.expose()));
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor for all 50");

    // The access JWT sent as the refresh token.
    let (access, live) = create_session(&pds).await;
    let live = Secret::new(live);
    let error = RefreshSession
        .send(&client, &Secret::new(access.as_str()))
        .await
        .unwrap_err();
    assert_row(
        "access JWT as refresh",
        &error,
        true,
        400,
        "InvalidToken",
        "Invalid token type",
    );

    // A garbage bearer token.
    let error = RefreshSession
        .send(&client, &Secret::new("garbage"))
        .await
        .unwrap_err();
    let could_not = "Token could not be verified";
    assert_row(
        "garbage token",
        &error,
        true,
        400,
        "InvalidToken",
        could_not,
    );

    // No Authorization header: any 401 ends the session (as the reference client).
    let error = RefreshWithoutAuth.send(&client).await.unwrap_err();
    assert_row(
        "no header",
        &error,
        true,
        401,
        "AuthMissing",
        "Authentication Required",
    );

    // A body: the request is wrong, the session is fine.
    let with_body = RefreshWithBody {
        note: "hello".into(),
    };
    let error = with_body.send(&client, &live).await.unwrap_err();
    let no_body = "A request body was provided when none was expected";
    assert_row("a body", &error, false, 400, "InvalidRequest", no_body);
    // None of those used the live token up.
    let live = RefreshSession
        .send(&client, &live)
        .await
        .unwrap()
        .refresh_jwt;

    // getSession with an expired access JWT: asks for a refresh.
    let stale = get_session(&pds.url, &expired_access(&pds)).await;
    assert_eq!(
        (stale.status, String::from_utf8_lossy(&stale.body).as_ref()),
        (
            400,
            r#"{"error":"ExpiredToken","message":"Token has expired"}"#
        )
    );
    assert!(Xrpc::access_token_expired(&stale));
    let fresh = get_session(&pds.url, &access).await;
    assert_eq!(fresh.status, 200);
    assert!(!Xrpc::access_token_expired(&fresh));

    // Revoked by deleteSession.
    let signed_out = client.execute(&DeleteSession, Some(&live)).await.unwrap();
    assert_eq!(signed_out.status, 200);
    let error = RefreshSession.send(&client, &live).await.unwrap_err();
    let revoked = "Token has been revoked";
    assert_row("revoked", &error, true, 400, "ExpiredToken", revoked);

    // An admin takedown.
    let (_, before_takedown) = create_session(&pds).await;
    let before_takedown = Secret::new(before_takedown);
    set_takedown(&pds, true).await;
    let error = RefreshSession
        .send(&client, &before_takedown)
        .await
        .unwrap_err();
    let taken_down = "Account has been taken down";
    assert_row("takedown", &error, true, 401, "AccountTakedown", taken_down);
    // Lifting it does not bring the session back.
    set_takedown(&pds, false).await;
    let error = RefreshSession
        .send(&client, &before_takedown)
        .await
        .unwrap_err();
    assert_row("after lifting", &error, true, 400, "ExpiredToken", revoked);
}

// ---------------------------------------------------------------------------
// 3. Rotation
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_saves_the_new_refresh_token_and_the_next_refresh_uses_it() {
    let Some(pds) =
        start("rotation_saves_the_new_refresh_token_and_the_next_refresh_uses_it").await
    else {
        return;
    };
    let proxy = CountingProxy::start(&pds.url).await;
    let store = MemoryStore::new();
    let given = Tokens::new(pds.access_jwt.as_str(), pds.refresh_jwt.as_str());
    let session = Session::builder(client(&proxy.url), RefreshSession)
        .tokens(given.clone())
        .store(store.clone())
        .build()
        .await
        .unwrap();

    let first = session.refresh().await.unwrap();
    let after_first = store.load().await.unwrap().expect("saved");
    assert_eq!(after_first.access_token, first);
    assert_ne!(after_first.refresh_token.expose(), pds.refresh_jwt);
    assert_ne!(
        jti(after_first.refresh_token.expose()),
        jti(&pds.refresh_jwt),
        "a new refresh token, not the old one re-signed"
    );
    assert_eq!(session.tokens().unwrap(), after_first);

    session.refresh().await.unwrap();
    let after_second = store.load().await.unwrap().expect("saved");
    assert_ne!(after_second.refresh_token, after_first.refresh_token);
    assert_eq!(session.tokens().unwrap(), after_second);
    assert_eq!(
        proxy.bearers(REFRESH),
        [
            pds.refresh_jwt.clone(),
            after_first.refresh_token.expose().to_owned()
        ],
        "the second refresh used the rotated token"
    );

    // A restart on the same store, given the stale tokens again: the store
    // wins, and the next refresh uses its token.
    drop(session);
    let restarted = Session::builder(client(&proxy.url), RefreshSession)
        .tokens(given)
        .store(store.clone())
        .build()
        .await
        .unwrap();
    restarted.refresh().await.unwrap();
    assert_eq!(
        proxy.bearers(REFRESH).last().unwrap(),
        after_second.refresh_token.expose()
    );
    assert_eq!(proxy.count(REFRESH), 3);
}

// ---------------------------------------------------------------------------
// 4. Reactive refresh
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_once_and_the_call_replayed() {
    let Some(pds) = start("an_expired_access_token_is_refreshed_once_and_the_call_replayed").await
    else {
        return;
    };
    let proxy = CountingProxy::start(&pds.url).await;
    let expired = expired_access(&pds);
    // The server's real answer to that token.
    let answer = get_session(&pds.url, &expired).await;
    assert_eq!(answer.status, 400);
    assert!(Xrpc::access_token_expired(&answer));

    // The session believes the token is good for another hour.
    let tokens = Tokens::new(expired.as_str(), pds.refresh_jwt.as_str())
        .with_access_expires_at(SystemTime::now() + HOUR);
    let session = Session::builder(client(&proxy.url), RefreshSession)
        .tokens(tokens)
        .build()
        .await
        .unwrap();

    let url = format!("{}/xrpc/{GET_SESSION}", proxy.url);
    let response = session
        .authorized(session.client().http().get(&url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let me: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(me["did"], pds.did.as_str());
    assert_eq!(me["handle"], pds.handle.as_str());
    assert_eq!(proxy.count(REFRESH), 1, "one refresh");
    let calls = proxy.bearers(GET_SESSION);
    assert_eq!(calls.len(), 2, "the call and one replay");
    assert_eq!(calls[0], expired);
    assert_eq!(&calls[1], session.tokens().unwrap().access_token.expose());
}

// ---------------------------------------------------------------------------
// 5. Two hundred callers, one refresh on the wire
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_callers_on_an_expired_session_send_one_refresh() {
    let Some(pds) = start("two_hundred_callers_on_an_expired_session_send_one_refresh").await
    else {
        return;
    };
    let proxy = CountingProxy::start(&pds.url).await;
    let store = MemoryStore::new();
    // A minted access token that expired an hour ago, the real refresh
    // token, and the session's clock at real time.
    let session = Session::builder(client(&proxy.url), RefreshSession)
        .tokens(Tokens::new(expired_access(&pds), pds.refresh_jwt.as_str()))
        .store(store.clone())
        .build()
        .await
        .unwrap();

    let url = format!("{}/xrpc/{GET_SESSION}", proxy.url);
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let (session, url) = (session.clone(), url.clone());
            tokio::spawn(async move {
                let request = session.client().http().get(&url);
                session.authorized(request).send().await
            })
        })
        .collect();
    for (n, caller) in callers.into_iter().enumerate() {
        let response = caller
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("caller {n}: {e}"));
        assert_eq!(response.status().as_u16(), 200, "caller {n}");
    }

    assert_eq!(
        proxy.count(REFRESH),
        1,
        "exactly one refreshSession reached the server"
    );
    assert_eq!(proxy.count(GET_SESSION), 200, "no replays");
    let tokens = session.tokens().unwrap();
    assert!(
        proxy
            .bearers(GET_SESSION)
            .iter()
            .all(|used| used == tokens.access_token.expose()),
        "every caller used the refreshed token"
    );
    assert_eq!(store.load().await.unwrap().unwrap(), tokens);
}

// ---------------------------------------------------------------------------
// 6. Dead sessions end in "sign in again"
// ---------------------------------------------------------------------------

/// A session with an expired access token, so its first use refreshes.
async fn expired_session(
    pds: &RealPds,
    refresh: &str,
    store: &MemoryStore,
) -> Session<RefreshSession> {
    Session::builder(client(&pds.url), RefreshSession)
        .tokens(Tokens::new(expired_access(pds), refresh))
        .store(store.clone())
        .build()
        .await
        .unwrap()
}

/// The session signed out for `code`, its store is empty, and later calls
/// fail at once.
async fn assert_signed_out(
    what: &str,
    session: &Session<RefreshSession>,
    store: &MemoryStore,
    error: &Error,
    (status, code, message): (u16, &str, &str),
) {
    assert_row(what, error, true, status, code, message);
    assert!(
        store.load().await.unwrap().is_none(),
        "{what}: the store is cleared"
    );
    assert!(session.tokens().is_none(), "{what}: no tokens in memory");
    match session.status() {
        Status::SignedOut(Some(reason)) => assert_eq!(reason.code, code, "{what}"),
        other => panic!("{what}: {other:?}"),
    }
    let later = session.access_token().await.unwrap_err();
    assert!(
        matches!(later.kind(), ErrorKind::SignInAgain(_)),
        "{what}: {later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_taken_down_sessions_end_in_sign_in_again_with_the_store_cleared() {
    let Some(pds) = start("revoked_and_taken_down_sessions_end_in_sign_in_again").await else {
        return;
    };

    // Revoked: the user signed out elsewhere (deleteSession).
    let (_, revoked) = create_session(&pds).await;
    let signed_out = client(&pds.url)
        .execute(&DeleteSession, Some(&Secret::new(revoked.as_str())))
        .await
        .unwrap();
    assert_eq!(signed_out.status, 200);
    let store = MemoryStore::new();
    let session = expired_session(&pds, &revoked, &store).await;
    let error = session.access_token().await.unwrap_err();
    let expected = (400, "ExpiredToken", "Token has been revoked");
    assert_signed_out("revoked", &session, &store, &error, expected).await;

    // Taken down by a moderator.
    let (_, live) = create_session(&pds).await;
    let store = MemoryStore::new();
    let session = expired_session(&pds, &live, &store).await;
    set_takedown(&pds, true).await;
    let url = format!("{}/xrpc/{GET_SESSION}", pds.url);
    let error = session
        .authorized(session.client().http().get(&url))
        .send()
        .await
        .unwrap_err();
    let expected = (401, "AccountTakedown", "Account has been taken down");
    assert_signed_out("taken down", &session, &store, &error, expected).await;
}

// ---------------------------------------------------------------------------
// 7. The testkit's mock answers as the real server does
// ---------------------------------------------------------------------------

/// One of the two servers the differential test talks to.
struct Target<'a> {
    name: &'static str,
    url: String,
    handle: String,
    password: String,
    did: String,
    secret: Vec<u8>,
    admin: Admin<'a>,
}

enum Admin<'a> {
    Mock(&'a AtprotoMock),
    Real(&'a RealPds),
}

/// How a request authenticates.
enum Auth<'s> {
    None,
    Bearer(&'s str),
    /// The whole `Authorization` value.
    Raw(String),
}

/// A whole answer.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn field(&self, name: &str) -> String {
        self.json()[name]
            .as_str()
            .unwrap_or_else(|| panic!("no `{name}` in {}", String::from_utf8_lossy(&self.body)))
            .to_owned()
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Target<'_> {
    async fn call(&self, method: &str, nsid: &str, auth: Auth<'_>, body: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = http().request(method, format!("{}/xrpc/{nsid}", self.url));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Raw(value) => request = request.header("authorization", value),
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn refresh(&self, auth: Auth<'_>) -> Answer {
        self.call("POST", REFRESH, auth, None).await
    }

    async fn get_session(&self, access: &str) -> Answer {
        self.call("GET", GET_SESSION, Auth::Bearer(access), None)
            .await
    }

    async fn delete_session(&self, refresh: &str) -> Answer {
        self.call("POST", DELETE_SESSION, Auth::Bearer(refresh), None)
            .await
    }

    async fn login(&self, password: &str) -> Answer {
        let body = json!({"identifier": self.handle, "password": password}).to_string();
        self.call("POST", CREATE_SESSION, Auth::None, Some(&body))
            .await
    }

    /// A new session: `(accessJwt, refreshJwt)`.
    async fn create_session(&self) -> (String, String) {
        let answer = self.login(&self.password).await;
        assert_eq!(answer.status, 200, "{}: createSession", self.name);
        (answer.field("accessJwt"), answer.field("refreshJwt"))
    }

    fn mint(&self, header: Value, claims: Value) -> String {
        jwt::sign(&self.secret, &header, &claims)
    }

    /// Refresh-token claims for the account, with `patch` applied (a null
    /// removes a claim).
    fn refresh_claims(&self, jti: &str, patch: Value) -> Value {
        let now = unix(SystemTime::now());
        let mut claims = json!({
            "scope": "com.atproto.refresh", "aud": "did:web:localhost", "sub": self.did,
            "jti": jti, "iat": now, "exp": now + 3600,
        });
        for (key, value) in patch.as_object().unwrap() {
            match value {
                Value::Null => {
                    claims.as_object_mut().unwrap().remove(key);
                }
                value => claims[key] = value.clone(),
            }
        }
        claims
    }

    fn refresh_jwt(&self, jti: &str, patch: Value) -> String {
        self.mint(
            json!({"typ": "refresh+jwt", "alg": "HS256"}),
            self.refresh_claims(jti, patch),
        )
    }

    fn access_jwt(&self, exp: u64) -> String {
        self.mint(
            json!({"typ": "at+jwt", "alg": "HS256"}),
            json!({"scope": "com.atproto.access", "aud": "did:web:localhost",
                   "sub": self.did, "iat": exp - 3600, "exp": exp}),
        )
    }

    async fn set_takedown(&self, applied: bool) {
        match self.admin {
            Admin::Mock(mock) => {
                assert!(match applied {
                    true => mock.takedown(&self.did),
                    false => mock.lift_takedown(&self.did),
                });
            }
            Admin::Real(pds) => set_takedown(pds, applied).await,
        }
    }
}

/// What the differential test compares, labelled by step.
struct Observations {
    did: String,
    seen: Vec<(String, String)>,
}

impl Observations {
    /// Status, content type, `error`, `message` (the account's DID replaced
    /// by `<did>`) and the body's top-level keys with their JSON types.
    fn answer(&mut self, label: &str, answer: &Answer) {
        let shown = if answer.body.is_empty() {
            "(empty body)".to_owned()
        } else {
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(Value::Object(map)) => {
                    let keys: BTreeMap<_, _> = map
                        .iter()
                        .map(|(k, v)| (k.as_str(), json_type(v)))
                        .collect();
                    let text = |key: &str| {
                        map.get(key)
                            .and_then(Value::as_str)
                            .map(|s| s.replace(&self.did, "<did>"))
                    };
                    format!(
                        "error={:?} message={:?} keys={keys:?}",
                        text("error"),
                        text("message")
                    )
                }
                Ok(other) => format!("JSON {}", json_type(&other)),
                Err(_) => "(not JSON)".to_owned(),
            }
        };
        let rendered = format!(
            "{} [{}] {shown}",
            answer.status,
            answer.content_type.as_deref().unwrap_or("no content-type")
        );
        self.seen.push((label.to_owned(), rendered));
    }

    fn fact(&mut self, label: &str, fact: impl std::fmt::Debug) {
        self.seen.push((label.to_owned(), format!("{fact:?}")));
    }
}

/// The same requests, in the same order, against one target.
async fn script(t: &Target<'_>) -> Vec<(String, String)> {
    let mut o = Observations {
        did: t.did.clone(),
        seen: Vec::new(),
    };
    let now = unix(SystemTime::now());

    // Logging in and the success path.
    let login = t.login(&t.password).await;
    o.answer("createSession", &login);
    let (access, refresh) = (login.field("accessJwt"), login.field("refreshJwt"));
    let first = t.refresh(Auth::Bearer(&refresh)).await;
    o.answer("refreshSession with the refresh JWT", &first);
    let again = t.refresh(Auth::Bearer(&refresh)).await;
    o.answer("the same old refresh JWT again", &again);
    o.fact(
        "  ... answers for the same successor (jti)",
        jti(&again.field("refreshJwt")) == jti(&first.field("refreshJwt")),
    );
    o.answer(
        "getSession with the access JWT",
        &t.get_session(&access).await,
    );
    let successor = first.field("refreshJwt");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (url, token) = (format!("{}/xrpc/{REFRESH}", t.url), successor.clone());
            tokio::spawn(async move {
                let response = http().post(url).bearer_auth(token).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                (status, body["refreshJwt"].as_str().map(jti))
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    let mut successors = Vec::new();
    for task in tasks {
        let (status, next) = task.await.unwrap();
        *statuses.entry(status).or_insert(0) += 1;
        successors.push(next);
    }
    successors.dedup();
    o.fact(
        "50 concurrent refreshes with one refresh JWT: statuses",
        statuses,
    );
    o.fact("  ... distinct successors", successors.len());

    // Bad credentials.
    o.answer(
        "the access JWT sent to refreshSession",
        &t.refresh(Auth::Bearer(&access)).await,
    );
    o.answer(
        "a garbage bearer token",
        &t.refresh(Auth::Bearer("garbage")).await,
    );
    o.answer("no Authorization header", &t.refresh(Auth::None).await);
    let (_, spare) = t.create_session().await;
    let raw = |value: String| Auth::Raw(value);
    o.answer(
        "Authorization: Basic",
        &t.refresh(raw("Basic YWRtaW46eA==".into())).await,
    );
    o.answer(
        "Authorization: DPoP <refresh>",
        &t.refresh(raw(format!("DPoP {spare}"))).await,
    );
    o.answer(
        "Authorization: Token <refresh>",
        &t.refresh(raw(format!("Token {spare}"))).await,
    );
    o.answer(
        "Authorization: Bearer (no token)",
        &t.refresh(raw("Bearer".into())).await,
    );
    o.answer(
        "Authorization: Bearer a b",
        &t.refresh(raw("Bearer a b".into())).await,
    );
    o.answer(
        "Authorization: Bearer, two spaces, <refresh>",
        &t.refresh(raw(format!("Bearer  {spare}"))).await,
    );
    o.answer(
        "Authorization: bearer (lower case) <refresh>",
        &t.refresh(raw(format!("bearer {spare}"))).await,
    );

    // Wrong requests.
    let (_, live) = t.create_session().await;
    o.answer(
        "a JSON body {} with a valid token",
        &t.call("POST", REFRESH, Auth::Bearer(&live), Some("{}"))
            .await,
    );
    o.answer(
        "a JSON body {} without a token",
        &t.call("POST", REFRESH, Auth::None, Some("{}")).await,
    );
    o.answer(
        "GET refreshSession",
        &t.call("GET", REFRESH, Auth::Bearer(&live), None).await,
    );
    o.answer(
        "POST getSession",
        &t.call("POST", GET_SESSION, Auth::Bearer(&access), None)
            .await,
    );
    o.answer(
        "createSession with a wrong password",
        &t.login("wrong").await,
    );
    o.answer(
        "createSession without a password",
        &t.call(
            "POST",
            CREATE_SESSION,
            Auth::None,
            Some(&json!({"identifier": t.handle}).to_string()),
        )
        .await,
    );

    // Minted tokens: expiry and every check of the verifier.
    let expired_access = t.access_jwt(now - 3600);
    o.answer(
        "getSession with an expired access JWT",
        &t.get_session(&expired_access).await,
    );
    o.answer(
        "refreshSession with an expired access JWT",
        &t.refresh(Auth::Bearer(&expired_access)).await,
    );
    o.answer(
        "getSession with a minted unexpired access JWT",
        &t.get_session(&t.access_jwt(now + 3600)).await,
    );
    o.answer(
        "getSession with the refresh JWT",
        &t.get_session(&live).await,
    );
    let wrong_key = jwt::sign(
        b"not the server's key",
        &json!({"typ": "at+jwt", "alg": "HS256"}),
        &jwt::decode_claims(&expired_access).unwrap(),
    );
    o.answer(
        "getSession, expired, signed with a wrong key",
        &t.get_session(&wrong_key).await,
    );
    let live_jti = jti(&live);
    let cases = [
        ("a refresh JWT that expired", json!({"exp": now - 60})),
        (
            "a refresh JWT for another audience",
            json!({"aud": "did:web:elsewhere"}),
        ),
        ("a refresh JWT without aud", json!({"aud": null})),
        (
            "a refresh JWT not valid before an hour",
            json!({"nbf": now + 3600}),
        ),
        ("a refresh JWT without exp", json!({"exp": null})),
        ("a refresh JWT without jti", json!({"jti": null})),
        (
            "an expired refresh JWT without jti",
            json!({"jti": null, "exp": now - 60}),
        ),
        (
            "a refresh JWT with an unknown jti",
            json!({"jti": "unknown"}),
        ),
        (
            "a refresh JWT with the access scope",
            json!({"scope": "com.atproto.access"}),
        ),
        ("a refresh JWT whose sub is no DID", json!({"sub": "alice"})),
    ];
    for (label, patch) in cases {
        let token = t.refresh_jwt(&live_jti, patch);
        o.answer(label, &t.refresh(Auth::Bearer(&token)).await);
    }
    let untyped = t.mint(
        json!({"alg": "HS256"}),
        t.refresh_claims(&live_jti, json!({"scope": "com.atproto.access"})),
    );
    o.answer(
        "a refresh JWT without typ, with the access scope",
        &t.refresh(Auth::Bearer(&untyped)).await,
    );
    let resigned = t.refresh_jwt(&live_jti, json!({}));
    o.answer(
        "the live refresh JWT, re-signed",
        &t.refresh(Auth::Bearer(&resigned)).await,
    );

    // deleteSession.
    let (doomed_access, doomed) = t.create_session().await;
    o.answer(
        "deleteSession with the access JWT",
        &t.delete_session(&doomed_access).await,
    );
    o.answer(
        "deleteSession with the refresh JWT",
        &t.delete_session(&doomed).await,
    );
    o.answer("deleteSession again", &t.delete_session(&doomed).await);
    o.answer(
        "refreshSession after deleteSession",
        &t.refresh(Auth::Bearer(&doomed)).await,
    );
    o.answer(
        "getSession with that session's access JWT",
        &t.get_session(&doomed_access).await,
    );
    let (_, other) = t.create_session().await;
    let expired_copy = t.refresh_jwt(&jti(&other), json!({"exp": now - 60}));
    o.answer(
        "deleteSession with an expired copy of a live refresh JWT",
        &t.delete_session(&expired_copy).await,
    );
    o.answer(
        "  ... then refreshSession with the live one",
        &t.refresh(Auth::Bearer(&other)).await,
    );
    let (_, old) = t.create_session().await;
    let next = t.refresh(Auth::Bearer(&old)).await.field("refreshJwt");
    o.answer(
        "deleteSession with a successor",
        &t.delete_session(&next).await,
    );
    o.answer(
        "refreshSession with the deleted successor",
        &t.refresh(Auth::Bearer(&next)).await,
    );
    o.answer(
        "the old refresh JWT inside the grace period, successor deleted",
        &t.refresh(Auth::Bearer(&old)).await,
    );
    o.answer(
        "  ... then the revived successor",
        &t.refresh(Auth::Bearer(&next)).await,
    );

    // An admin takedown, and lifting it.
    let (down_access, down) = t.create_session().await;
    t.set_takedown(true).await;
    o.answer(
        "refreshSession after a takedown",
        &t.refresh(Auth::Bearer(&down)).await,
    );
    o.answer(
        "getSession after a takedown",
        &t.get_session(&down_access).await,
    );
    o.answer(
        "createSession after a takedown",
        &t.login(&t.password).await,
    );
    t.set_takedown(false).await;
    o.answer(
        "refreshSession after lifting, pre-takedown refresh JWT",
        &t.refresh(Auth::Bearer(&down)).await,
    );
    o.answer(
        "getSession after lifting, pre-takedown access JWT",
        &t.get_session(&down_access).await,
    );
    o.answer("createSession after lifting", &t.login(&t.password).await);
    o.seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testkit_mock_answers_as_the_real_server_does() {
    let Some(pds) = start("the_testkit_mock_answers_as_the_real_server_does").await else {
        return;
    };
    let mock = AtprotoMock::start().await;
    let alice = mock.create_account_with_password(&pds.handle, &pds.password);

    let real = Target {
        name: "real PDS",
        url: pds.url.clone(),
        handle: pds.handle.clone(),
        password: pds.password.clone(),
        did: pds.did.clone(),
        secret: pds.jwt_secret.as_bytes().to_vec(),
        admin: Admin::Real(&pds),
    };
    let fake = Target {
        name: "AtprotoMock",
        url: mock.url(),
        handle: alice.handle.clone(),
        password: pds.password.clone(),
        did: alice.did.clone(),
        secret: mock.jwt_secret().to_vec(),
        admin: Admin::Mock(&mock),
    };
    let real_seen = script(&real).await;
    let mock_seen = script(&fake).await;

    assert_eq!(real_seen.len(), mock_seen.len());
    let mut table = String::new();
    let mut differences = Vec::new();
    for ((label, real), (_, mock)) in real_seen.iter().zip(&mock_seen) {
        table.push_str(&format!("{label}\n    {real}\n"));
        if real != mock {
            differences.push(format!("{label}\n    real: {real}\n    mock: {mock}"));
        }
    }
    eprintln!("what the real server answered:\n{table}");
    assert!(
        differences.is_empty(),
        "the mock differs from the real server in {} of {} steps:\n{}",
        differences.len(),
        real_seen.len(),
        differences.join("\n")
    );
}
