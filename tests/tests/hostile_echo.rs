//! A provider or proxy echoes the request's credentials back in its error:
//! no secret the request carried shows in the error's `Display` or `Debug`,
//! nor in any log line, whatever the envelope and however it is echoed.
//!
//! The matrix: every built-in envelope × a JSON or form request × the echo
//! as plain text, JSON-escaped, form-encoded, percent-encoded, inside a URL,
//! as the error code and as the trace id, plus an HTML error page quoting
//! the request. The secrets are short (under the 20 characters the
//! token-shape heuristic needs) and hold characters that encodings change.

use std::io::Write;
use std::sync::{Arc, Mutex};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Error, Secret, refresh_endpoint};
use refresh_endpoint_testkit::hostile::{HostileServer, Recorded, Reply};
use serde_json::json;

/// The refresh token, the client secret, a `Secret` field, a secret header
/// and the access token: short, and changed by every encoding.
const REFRESH: &str = "rt+7/Qx=1";
const CLIENT_SECRET: &str = "cs/9+Lm&2";
const FIELD: &str = "fs=4+Pz/3";
const KEY: &str = "k+5/Hy=";
const ACCESS: &str = "at+8/Wn";
const SECRETS: [&str; 5] = [REFRESH, CLIENT_SECRET, FIELD, KEY, ACCESS];

macro_rules! endpoints {
    ($($json:ident, $form:ident, $envelope:ident;)*) => {$(
        #[refresh_endpoint(path = "/token", auth = bearer, envelope = $envelope, response = TokenResponse)]
        #[derive(Clone)]
        struct $json {
            grant_type: String,
            #[refresh_token]
            refresh_token: Secret,
            #[access_token]
            access_token: Secret,
            device_secret: Secret,
        }

        #[refresh_endpoint(path = "/token", auth = bearer, body = form, envelope = $envelope, response = TokenResponse)]
        #[derive(Clone)]
        struct $form {
            grant_type: String,
            #[refresh_token]
            refresh_token: Secret,
            #[access_token]
            access_token: Secret,
            device_secret: Secret,
        }
    )*};
}

endpoints! {
    PlainJson, PlainForm, plain;
    CodeMsgDataJson, CodeMsgDataForm, code_msg_data;
    XrpcJson, XrpcForm, xrpc;
    ClerkJson, ClerkForm, clerk;
    OAuth2Json, OAuth2Form, oauth2;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Echo {
    Plain,
    Json,
    Form,
    Percent,
    Url,
    Code,
    TraceId,
    HtmlPage,
}

const ECHOES: [Echo; 8] = [
    Echo::Plain,
    Echo::Json,
    Echo::Form,
    Echo::Percent,
    Echo::Url,
    Echo::Code,
    Echo::TraceId,
    Echo::HtmlPage,
];

/// Everything the request carried, as one text.
fn carried(request: &Recorded) -> String {
    format!(
        "{} authorization={} x-api-key={}",
        request.body_text(),
        request.header("authorization").unwrap_or_default(),
        request.header("x-api-key").unwrap_or_default()
    )
}

/// The echo of the request in the form `echo` asks for.
fn echoed(echo: Echo, request: &Recorded) -> String {
    let all = carried(request);
    match echo {
        Echo::Plain | Echo::HtmlPage => format!("cannot parse {all}"),
        // The JSON answer escapes it once more when serialized.
        Echo::Json => format!("bad body {}", serde_json::to_string(&all).unwrap()),
        Echo::Form => serde_urlencoded::to_string([("echo", &all)]).unwrap(),
        Echo::Percent => utf8_percent_encode(&all, NON_ALPHANUMERIC).to_string(),
        Echo::Url => format!(
            "see https://cb.example/err?rt={}&cs={}&f={}",
            utf8_percent_encode(REFRESH, NON_ALPHANUMERIC),
            utf8_percent_encode(CLIENT_SECRET, NON_ALPHANUMERIC),
            utf8_percent_encode(FIELD, NON_ALPHANUMERIC)
        ),
        Echo::Code | Echo::TraceId => all,
    }
}

/// The error answer of each envelope, with the echo in its message — or in
/// its code or trace id.
fn answer(envelope: &str, echo: Echo, request: &Recorded) -> Reply {
    let text = echoed(echo, request);
    if echo == Echo::HtmlPage {
        return Reply::new(502)
            .header("content-type", "text/html")
            .body(format!(
                "<html><body><h1>502</h1><pre>{text}</pre></body></html>"
            ));
    }
    let (code, message, trace) = match echo {
        Echo::Code => (text.clone(), "x".to_owned(), "t".to_owned()),
        Echo::TraceId => ("invalid_request".to_owned(), "x".to_owned(), text.clone()),
        _ => ("invalid_request".to_owned(), text.clone(), "t".to_owned()),
    };
    match envelope {
        "plain" => Reply::new(400).body(format!("{code}: {message} ({trace})")),
        "code_msg_data" => Reply::json(
            200,
            &json!({"code": 40001, "msg": format!("{code} {message}"), "data": null, "correlation_id": trace}),
        ),
        "xrpc" => {
            Reply::json(400, &json!({"error": code, "message": message})).header("x-trace", &trace)
        }
        "clerk" => Reply::json(
            400,
            &json!({"errors": [{"code": code, "message": message, "long_message": message}], "clerk_trace_id": trace}),
        ),
        _ => Reply::json(
            400,
            &json!({"error": code, "error_description": message, "error_uri": trace}),
        ),
    }
}

/// Every form in which a secret could show.
fn forms(secret: &str) -> Vec<String> {
    let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    vec![
        secret.to_owned(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        serde_urlencoded::to_string([("", secret)])
            .unwrap()
            .trim_start_matches('=')
            .to_owned(),
        percent.to_lowercase(),
        percent,
    ]
}

fn assert_clean(text: &str, what: &str) {
    for secret in SECRETS {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what}: `{form}` (a form of {secret:?}) in: {text}"
            );
        }
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Refreshes once through a session on a server answering with `echo`, and
/// checks the error and every log line written meanwhile.
async fn check<E>(endpoint: E, envelope: &'static str, echo: Echo)
where
    E: refresh_endpoint::session::RefreshEndpoint,
{
    let what = format!("{} / {echo:?}", std::any::type_name::<E>());
    let server = HostileServer::start(move |request| answer(envelope, echo, request)).await;
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let client = Client::builder(server.url())
        .secret(CLIENT_SECRET)
        .secret_header("X-Api-Key", KEY)
        .build()
        .unwrap();
    let session = Session::builder(client, endpoint)
        .tokens(Tokens::new(ACCESS, REFRESH))
        .retry(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    let error: Error = session.refresh().await.expect_err(&what);
    assert_eq!(server.requests().len(), 1, "{what}");
    // The request did carry every secret (so the echo holds them).
    let sent = carried(&server.requests()[0]);
    for secret in [REFRESH, FIELD, ACCESS] {
        assert!(
            forms(secret)
                .iter()
                .any(|form| sent.contains(form.as_str())),
            "{what}: {secret} was not sent: {sent}"
        );
    }
    assert_clean(&error.to_string(), &format!("{what}, Display"));
    assert_clean(&format!("{error:?}"), &format!("{what}, Debug"));
    assert_clean(
        &format!("{:?}", session.status()),
        &format!("{what}, status"),
    );
    let logs = capture.text();
    assert!(logs.contains("refresh"), "{what}: no log captured");
    assert_clean(&logs, &format!("{what}, logs"));
}

macro_rules! check_all {
    ($($test:ident: $json:ident, $form:ident, $envelope:literal;)*) => {$(
        #[tokio::test]
        async fn $test() {
            for echo in ECHOES {
                check(
                    $json {
                        grant_type: "refresh_token".into(),
                        refresh_token: Secret::new("placeholder"),
                        access_token: Secret::new("placeholder"),
                        device_secret: Secret::new(FIELD),
                    },
                    $envelope,
                    echo,
                )
                .await;
                check(
                    $form {
                        grant_type: "refresh_token".into(),
                        refresh_token: Secret::new("placeholder"),
                        access_token: Secret::new("placeholder"),
                        device_secret: Secret::new(FIELD),
                    },
                    $envelope,
                    echo,
                )
                .await;
            }
        }
    )*};
}

check_all! {
    plain_envelope_scrubs_every_echo: PlainJson, PlainForm, "plain";
    code_msg_data_envelope_scrubs_every_echo: CodeMsgDataJson, CodeMsgDataForm, "code_msg_data";
    xrpc_envelope_scrubs_every_echo: XrpcJson, XrpcForm, "xrpc";
    clerk_envelope_scrubs_every_echo: ClerkJson, ClerkForm, "clerk";
    oauth2_envelope_scrubs_every_echo: OAuth2Json, OAuth2Form, "oauth2";
}

#[tokio::test]
async fn a_raw_response_debug_shows_no_body_or_header_value() {
    let server = HostileServer::start(|_| {
        Reply::new(200)
            .header("set-cookie", "__session=at+8/Wn")
            .body(format!("{{\"access_token\":\"{ACCESS}\"}}"))
    })
    .await;
    let client = Client::new(server.url()).unwrap();
    let request = client.request(reqwest::Method::GET, "/x").unwrap();
    let response = client.fetch("x", request).await.unwrap();
    assert_clean(&format!("{response:?}"), "RawResponse Debug");
}
