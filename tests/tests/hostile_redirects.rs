//! A provider, proxy or man in the middle answers with redirects: no
//! credential ever reaches another origin.
//!
//! The matrix: 301/302/303/307/308 × same origin / other port / other host
//! name × the credential in a bearer header / a JSON body / a form body / a
//! secret client header / a query parameter. Refresh requests never follow a
//! redirect; requests sent through a session follow same-origin redirects only.

use std::sync::Arc;

use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::hostile::{HostileServer, Recorded, Reply};
use serde_json::json;

const REFRESH: &str = "rt-redirect-7Qx";
const FIELD: &str = "fs-field-9Kd";
const KEY: &str = "key-header-3Zp";
const ACCESS: &str = "at-session-5Wm";

#[refresh_endpoint(path = "/refresh", auth = refresh_bearer, envelope = oauth2, response = TokenResponse)]
#[derive(Clone)]
struct Bearer;

#[refresh_endpoint(path = "/refresh", auth = body, envelope = oauth2, response = TokenResponse)]
#[derive(Clone)]
struct JsonBody {
    #[refresh_token]
    refresh_token: Secret,
    client_secret: Secret,
}

#[refresh_endpoint(path = "/refresh", auth = body, body = form, envelope = oauth2, response = TokenResponse)]
#[derive(Clone)]
struct FormBody {
    grant_type: String,
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/refresh", auth = none, envelope = oauth2, response = TokenResponse)]
#[derive(Clone)]
struct QueryToken {
    #[query("token")]
    token: Secret,
}

const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

#[derive(Debug, Clone, Copy)]
enum Target {
    SameOrigin,
    OtherPort,
    OtherHostName,
}

#[derive(Debug, Clone, Copy)]
enum Carrier {
    Bearer,
    JsonBody,
    FormBody,
    SecretHeader,
    Query,
}

fn token_answer() -> Reply {
    Reply::json(
        200,
        &json!({"access_token": "minted-elsewhere", "token_type": "Bearer", "refresh_token": "rt-elsewhere"}),
    )
}

/// The other origin: records and answers like a token endpoint.
async fn capture() -> HostileServer {
    HostileServer::start(|_| token_answer()).await
}

/// The origin: redirects `/refresh` (and `/api`) with `status` to `location`;
/// answers a token everywhere else.
async fn redirecting(status: u16, location: String) -> HostileServer {
    HostileServer::start(move |request: &Recorded| match request.path.as_str() {
        "/refresh" | "/api" => Reply::redirect(status, &location),
        _ => token_answer(),
    })
    .await
}

fn location(target: Target, capture: &HostileServer) -> String {
    match target {
        Target::SameOrigin => "/elsewhere?leak=1".to_owned(),
        Target::OtherPort => format!("http://127.0.0.1:{}/capture?leak=1", capture.port()),
        Target::OtherHostName => format!("http://localhost:{}/capture?leak=1", capture.port()),
    }
}

async fn call(carrier: Carrier, base: &str) -> Result<TokenResponse, Error> {
    let client = Client::builder(base)
        .secret_header("X-Api-Key", KEY)
        .build()
        .unwrap();
    let refresh = Secret::new(REFRESH);
    match carrier {
        Carrier::Bearer => Bearer.send(&client, &refresh).await,
        Carrier::JsonBody => {
            JsonBody {
                refresh_token: refresh,
                client_secret: Secret::new(FIELD),
            }
            .send(&client)
            .await
        }
        Carrier::FormBody => {
            FormBody {
                grant_type: "refresh_token".into(),
                refresh_token: refresh,
            }
            .send(&client)
            .await
        }
        Carrier::SecretHeader => Bearer.send(&client, &refresh).await,
        Carrier::Query => QueryToken { token: refresh }.send(&client).await,
    }
}

fn assert_no_credential(requests: &[Recorded], what: &str) {
    for request in requests {
        let text = request.text();
        for secret in [REFRESH, FIELD, KEY, ACCESS] {
            assert!(!text.contains(secret), "{what}: {secret} reached {text}");
        }
    }
}

#[tokio::test]
async fn refresh_requests_never_follow_a_redirect() {
    for status in STATUSES {
        for target in [Target::SameOrigin, Target::OtherPort, Target::OtherHostName] {
            for carrier in [
                Carrier::Bearer,
                Carrier::JsonBody,
                Carrier::FormBody,
                Carrier::SecretHeader,
                Carrier::Query,
            ] {
                let what = format!("{status} to {target:?} with {carrier:?}");
                let other = capture().await;
                let origin = redirecting(status, location(target, &other)).await;
                let error = call(carrier, &origin.url())
                    .await
                    .expect_err(&format!("{what}: a redirect answered Ok"));
                match error.kind() {
                    ErrorKind::Redirect {
                        status: got,
                        location,
                        ..
                    } => {
                        assert_eq!(*got, status, "{what}");
                        let expected = match target {
                            Target::SameOrigin => origin.url(),
                            Target::OtherPort => format!("http://127.0.0.1:{}", other.port()),
                            Target::OtherHostName => format!("http://localhost:{}", other.port()),
                        };
                        assert_eq!(location.as_deref(), Some(expected.as_str()), "{what}");
                    }
                    other => panic!("{what}: expected Redirect, got {other:?}"),
                }
                assert!(!error.is_retryable() && !error.is_terminal(), "{what}");
                let shown = format!("{error} {error:?}");
                assert!(
                    !shown.contains("leak"),
                    "{what}: the path or query shown: {shown}"
                );
                assert!(
                    other.requests().is_empty(),
                    "{what}: the other origin was called"
                );
                assert_eq!(
                    origin.requests().len(),
                    1,
                    "{what}: followed within the origin"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_user_client_that_follows_redirects_gets_an_error_not_foreign_tokens() {
    let other = capture().await;
    let origin = redirecting(307, format!("{}/capture", other.url())).await;
    let following = reqwest::Client::builder().build().unwrap(); // follows up to 10
    let client = Client::builder(origin.url())
        .http_client(following)
        .build()
        .unwrap();
    let error = Bearer
        .send(&client, &Secret::new(REFRESH))
        .await
        .expect_err("tokens minted by another origin were accepted");
    assert!(
        matches!(error.kind(), ErrorKind::Redirect { location: Some(l), .. } if *l == other.url()),
        "{error:?}"
    );
}

async fn session(base: &str) -> (Client, Session<Bearer>) {
    let client = Client::builder(base)
        .secret_header("X-Api-Key", KEY)
        .build()
        .unwrap();
    let session = Session::builder(client.clone(), Bearer)
        .tokens(Tokens::new(ACCESS, REFRESH))
        .build()
        .await
        .unwrap();
    (client, session)
}

#[tokio::test]
async fn session_requests_follow_same_origin_redirects_only() {
    for status in STATUSES {
        for target in [Target::SameOrigin, Target::OtherPort, Target::OtherHostName] {
            let what = format!("{status} to {target:?}");
            let other = capture().await;
            let origin = redirecting(status, location(target, &other)).await;
            let (client, session) = session(&origin.url()).await;
            let response = session
                .authorized(
                    client
                        .http()
                        .post(format!("{}/api", origin.url()))
                        .body("payload"),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_no_credential(&other.requests(), &what);
            assert!(
                other.requests().is_empty(),
                "{what}: another origin was called"
            );
            let seen = origin.requests();
            match target {
                Target::SameOrigin => {
                    assert_eq!(response.status().as_u16(), 200, "{what}");
                    assert_eq!(seen.len(), 2, "{what}");
                    let followed = &seen[1];
                    assert_eq!(followed.path, "/elsewhere", "{what}");
                    assert_eq!(
                        followed.header("authorization"),
                        Some(format!("Bearer {ACCESS}").as_str()),
                        "{what}"
                    );
                    let (method, body) = match status {
                        307 | 308 => ("POST", "payload"),
                        _ => ("GET", ""),
                    };
                    assert_eq!(followed.method.as_str(), method, "{what}");
                    assert_eq!(followed.body_text(), body, "{what}");
                }
                _ => {
                    assert_eq!(
                        response.status().as_u16(),
                        status,
                        "{what}: not returned as is"
                    );
                    assert_eq!(seen.len(), 1, "{what}");
                }
            }
        }
    }
}

#[tokio::test]
async fn session_requests_refuse_plain_http_off_the_machine() {
    // A host name that is not loopback, resolved to the loopback capture
    // server so that nothing leaves this machine even if a check is missing.
    let other = Arc::new(capture().await);
    let http = reqwest::Client::builder()
        .resolve(
            "api.example.test",
            std::net::SocketAddr::from(([127, 0, 0, 1], other.port())),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = Client::builder("https://api.example.test")
        .http_client(http.clone())
        .build()
        .unwrap();
    let session = Session::builder(client, Bearer)
        .tokens(Tokens::new(ACCESS, REFRESH))
        .build()
        .await
        .unwrap();
    let url = format!("http://api.example.test:{}/api", other.port());
    let error = session
        .authorized(http.get(&url))
        .send()
        .await
        .expect_err("the access token went over plain http");
    assert!(
        matches!(error.kind(), ErrorKind::InsecureUrl { host, through_proxy: false } if host == "api.example.test"),
        "{error:?}"
    );
    assert!(other.requests().is_empty());
}

/// An https origin redirecting to plain http on the same host: a refresh
/// request does not follow; a session request does not either (another
/// scheme is another origin), so no credential crosses in clear text.
#[tokio::test]
async fn an_https_origin_never_downgrades_to_http() {
    use refresh_endpoint_tests::tls_server::TlsServer;

    for status in STATUSES {
        let plain = capture().await;
        let target = format!("http://127.0.0.1:{}/capture", plain.port());
        let app = axum::Router::new().fallback(move || {
            let target = target.clone();
            async move {
                axum::response::Response::builder()
                    .status(status)
                    .header("location", target)
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        });
        let origin = TlsServer::start(app).await;
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(origin.ca_pem().as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let client = Client::builder(origin.url())
            .http_client(http.clone())
            .secret_header("X-Api-Key", KEY)
            .build()
            .unwrap();

        let error = Bearer
            .send(&client, &Secret::new(REFRESH))
            .await
            .expect_err("followed a downgrade");
        assert!(
            matches!(error.kind(), ErrorKind::Redirect { location: Some(l), .. } if *l == plain.url()),
            "{status}: {error:?}"
        );

        let session = Session::builder(client.clone(), Bearer)
            .tokens(Tokens::new(ACCESS, REFRESH))
            .build()
            .await
            .unwrap();
        let response = session
            .authorized(http.get(format!("{}/api", origin.url())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert!(
            plain.requests().is_empty(),
            "{status}: the plain-http origin was called"
        );
    }
}
