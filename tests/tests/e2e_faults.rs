//! What breaks between the client and the provider, injected into the
//! testkit mocks with `inject(Fault::…)`: error statuses, a proxy's HTML
//! page, broken and oversized JSON, dropped and hanging connections, rate
//! limits. Each is a typed, retryable-or-not error that never ends the
//! session, and the refresh token still works afterwards.

use std::time::Duration;

use refresh_endpoint::providers::atproto::RefreshSession as AtpRefresh;
use refresh_endpoint::providers::clerk::SessionRefresh;
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, Error, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{
    AtpTokens, AtprotoMock, ClerkMock, CloudreveMock, Fault, OAuth2Mock,
};

#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = Token)]
struct CloudreveRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
struct ClerkRefresh {
    #[path]
    session_id: String,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct OAuthRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
    client_secret: Secret,
}

/// Fails if any secret shows up in the error's `Display` or `Debug`.
fn assert_no_secrets(error: &Error, secrets: &[&str]) {
    let shown = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!secret.is_empty(), "an empty secret proves nothing");
        assert!(
            !shown.contains(secret),
            "a token leaked into the error: {}",
            shown.replace(secret, "<TOKEN>")
        );
    }
}

/// A PDS with one account, and a client for it.
async fn pds() -> (AtprotoMock, AtpTokens, Client) {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let client = Client::new(pds.url()).unwrap();
    (pds, alice, client)
}

/// Refreshes after a fault: the fault did not spend the token.
async fn assert_session_intact(client: &Client, alice: &AtpTokens) {
    AtpRefresh
        .send(client, &Secret::new(alice.refresh_jwt.clone()))
        .await
        .expect("the refresh token survives the fault");
}

async fn refresh_err(client: &Client, alice: &AtpTokens) -> Error {
    let error = AtpRefresh
        .send(client, &Secret::new(alice.refresh_jwt.clone()))
        .await
        .unwrap_err();
    assert!(
        !error.is_terminal(),
        "a fault never ends the session: {error:?}"
    );
    assert_no_secrets(&error, &[&alice.refresh_jwt, &alice.access_jwt]);
    error
}

#[tokio::test]
async fn a_5xx_without_a_body_is_a_retryable_status() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::Status(503));

    let error = refresh_err(&client, &alice).await;

    let ErrorKind::Status {
        status,
        excerpt,
        retry_after,
        ..
    } = error.kind()
    else {
        panic!("{error:?}");
    };
    assert_eq!((*status, excerpt.as_str(), *retry_after), (503, "", None));
    assert!(error.is_retryable());
    assert_session_intact(&client, &alice).await;
    assert_eq!(pds.refresh_count(), 2);
}

#[tokio::test]
async fn a_proxys_html_502_page_is_a_retryable_status_with_an_excerpt() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::Html(502));

    let error = refresh_err(&client, &alice).await;

    let ErrorKind::Status {
        status, excerpt, ..
    } = error.kind()
    else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 502);
    assert!(excerpt.contains("502 Bad Gateway"), "{excerpt}");
    assert!(
        !excerpt.contains('\n'),
        "white space is folded: {excerpt:?}"
    );
    assert!(error.is_retryable());
    assert!(
        error.to_string().contains("unexpected HTTP status 502"),
        "{error}"
    );
    assert_session_intact(&client, &alice).await;
}

/// Cloudreve always answers 200, so a non-200 comes from something in front
/// of it: its envelope reports the status instead of decoding the page.
#[tokio::test]
async fn an_html_502_in_front_of_cloudreve_is_a_retryable_status() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    let endpoint = CloudreveRefresh {
        refresh_token: Secret::new(tokens.refresh_token.clone()),
    };
    let client = Client::new(cloud.url()).unwrap();
    cloud.inject(Fault::Html(502));

    let error = endpoint.send(&client).await.unwrap_err();

    assert!(
        matches!(error.kind(), ErrorKind::Status { status: 502, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable() && !error.is_terminal());
    assert_no_secrets(&error, &[&tokens.refresh_token]);
    endpoint.send(&client).await.unwrap();
}

#[tokio::test]
async fn a_clerk_500_without_an_envelope_is_a_retryable_status() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let client = Client::builder(clerk.url())
        .secret(clerk.secret_key())
        .build()
        .unwrap();
    let endpoint = ClerkRefresh {
        session_id: alice.session_id.clone(),
        expired_token: Secret::new(alice.session_jwt.clone()),
        refresh_token: Secret::new(alice.refresh_token.clone()),
        request_origin: "https://app.example".into(),
    };
    clerk.inject(Fault::Status(500));

    let error = endpoint.send(&client).await.unwrap_err();

    assert!(
        matches!(error.kind(), ErrorKind::Status { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable() && !error.is_terminal());
    assert_no_secrets(
        &error,
        &[&alice.session_jwt, &alice.refresh_token, clerk.secret_key()],
    );
    endpoint.send(&client).await.unwrap();
}

#[tokio::test]
async fn broken_json_is_a_decode_error_without_the_partial_token() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::BrokenJson);

    let error = refresh_err(&client, &alice).await;

    assert!(
        matches!(error.kind(), ErrorKind::Decode { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    // The cut-off body holds the start of a JWT; none of it is shown.
    assert_no_secrets(&error, &["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"]);
    assert_session_intact(&client, &alice).await;
}

#[tokio::test]
async fn broken_json_from_cloudreve_is_a_decode_error() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    cloud.inject(Fault::BrokenJson);

    let error = CloudreveRefresh {
        refresh_token: Secret::new(tokens.refresh_token.clone()),
    }
    .send(&Client::new(cloud.url()).unwrap())
    .await
    .unwrap_err();

    assert!(
        matches!(error.kind(), ErrorKind::Decode { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable() && !error.is_terminal());
    assert_no_secrets(
        &error,
        &[
            &tokens.refresh_token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ],
    );
}

#[tokio::test]
async fn json_of_another_shape_is_a_decode_error_naming_the_field() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::Oversized(64)); // `{"padding":"xxx…"}`, under the limit

    let error = refresh_err(&client, &alice).await;

    let ErrorKind::Decode { path, message, .. } = error.kind() else {
        panic!("{error:?}");
    };
    assert_eq!(path, ".");
    assert!(message.contains("accessJwt"), "{message}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_body_over_max_response_bytes_is_too_large() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let client = Client::builder(pds.url())
        .max_response_bytes(16 * 1024)
        .build()
        .unwrap();
    pds.inject(Fault::Oversized(64 * 1024));

    let error = refresh_err(&client, &alice).await;

    assert!(
        matches!(error.kind(), ErrorKind::TooLarge { limit: 16384, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    // A normal answer fits under the same limit.
    assert_session_intact(&client, &alice).await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_retryable_transport_error() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::Drop);

    let error = refresh_err(&client, &alice).await;

    assert!(
        matches!(error.kind(), ErrorKind::Transport { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(
        !format!("{error:?}").contains(&pds.url()),
        "the URL is removed"
    );
    assert_session_intact(&client, &alice).await;
}

#[tokio::test]
async fn a_hanging_server_hits_the_client_timeout() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let client = Client::builder(pds.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    pds.inject(Fault::Hang);

    let error = refresh_err(&client, &alice).await;

    assert!(
        matches!(error.kind(), ErrorKind::Timeout { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), None);
    assert_session_intact(&client, &alice).await;
}

#[tokio::test]
async fn a_short_delay_inside_the_timeout_still_succeeds() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::Delay(Duration::from_millis(20)));

    assert_session_intact(&client, &alice).await;
    assert_eq!(pds.refresh_count(), 1);
}

#[tokio::test]
async fn xrpc_rate_limit_is_a_retryable_api_error_with_retry_after() {
    let (pds, alice, client) = pds().await;
    pds.inject(Fault::RateLimited {
        retry_after_secs: 7,
    });

    let error = refresh_err(&client, &alice).await;

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    let api = error.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (429, "RateLimitExceeded"));
    assert_session_intact(&client, &alice).await;
}

#[tokio::test]
async fn cloudreve_rate_limit_is_a_retryable_error_with_retry_after() {
    let cloud = CloudreveMock::start().await;
    let tokens = cloud.issue_tokens("alice");
    let endpoint = CloudreveRefresh {
        refresh_token: Secret::new(tokens.refresh_token.clone()),
    };
    let client = Client::new(cloud.url()).unwrap();
    cloud.inject(Fault::RateLimited {
        retry_after_secs: 30,
    });

    let error = endpoint.send(&client).await.unwrap_err();

    // The 429 carries the envelope: its code and message are kept.
    let api = error.api().expect("the envelope's error");
    assert_eq!((api.status, api.code.as_str()), (429, "429"));
    assert!(error.is_retryable() && !error.is_terminal());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert_no_secrets(&error, &[&tokens.refresh_token]);
    endpoint.send(&client).await.unwrap();
}

#[tokio::test]
async fn clerk_rate_limit_is_a_retryable_api_error_with_retry_after() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let client = Client::builder(clerk.url())
        .secret(clerk.secret_key())
        .build()
        .unwrap();
    let endpoint = ClerkRefresh {
        session_id: alice.session_id.clone(),
        expired_token: Secret::new(alice.session_jwt.clone()),
        refresh_token: Secret::new(alice.refresh_token.clone()),
        request_origin: "https://app.example".into(),
    };
    clerk.inject(Fault::RateLimited {
        retry_after_secs: 5,
    });

    let error = endpoint.send(&client).await.unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(error.is_retryable() && !error.is_terminal());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(5)));
    let api = error.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (429, "too_many_requests"));
    assert!(api.trace_id.is_some());
    assert_no_secrets(
        &error,
        &[&alice.session_jwt, &alice.refresh_token, clerk.secret_key()],
    );
    endpoint.send(&client).await.unwrap();
}

#[tokio::test]
async fn oauth2_rate_limit_is_a_retryable_api_error_with_retry_after() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(tokens.refresh_token.clone()),
        client_id: oauth.client_id().into(),
        client_secret: Secret::new(oauth.client_secret()),
    };
    let client = Client::new(oauth.url()).unwrap();
    oauth.inject(Fault::RateLimited {
        retry_after_secs: 60,
    });

    let error = endpoint.send(&client).await.unwrap_err();

    assert!(matches!(error.kind(), ErrorKind::Api(_)), "{error:?}");
    assert!(error.is_retryable() && !error.is_terminal());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    let api = error.api().unwrap();
    assert_eq!(
        (api.status, api.code.as_str()),
        (429, "temporarily_unavailable")
    );
    assert_no_secrets(&error, &[&tokens.refresh_token, oauth.client_secret()]);
    endpoint.send(&client).await.unwrap();
}

// --- a server that writes part of an answer, then nothing -----------------

/// A loopback server that reads each request, writes `answer`, then keeps
/// the connection open without another byte.
async fn half_answering_server(answer: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8192];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(&answer).await;
                std::future::pending::<()>().await;
                drop(socket);
            });
        }
    });
    url
}

/// A refresh against `url` with `client`, which must end (with an error)
/// well before the test's own limit.
async fn refresh_against(client: &Client) -> Error {
    tokio::time::timeout(
        Duration::from_secs(20),
        AtpRefresh.send(client, &Secret::new("r-secret-token")),
    )
    .await
    .expect("the refresh must end, not wait forever")
    .unwrap_err()
}

#[tokio::test]
async fn a_body_that_stalls_after_the_headers_hits_the_client_timeout() {
    // The headers promise 100 bytes; 14 come, then nothing.
    let url = half_answering_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"accessJwt\":\""
            .to_vec(),
    )
    .await;
    let client = Client::builder(&url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let error = refresh_against(&client).await;

    assert!(
        matches!(error.kind(), ErrorKind::Timeout { .. }),
        "the deadline covers the body too: {error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_too_large_without_waiting_for_its_end() {
    // No content-length: the size is only known as the chunks come, and the
    // server never ends the body.
    let mut answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..3 {
        answer.extend_from_slice(b"258\r\n");
        answer.extend_from_slice(&[b' '; 0x258]);
        answer.extend_from_slice(b"\r\n");
    }
    let url = half_answering_server(answer).await;
    let client = Client::builder(&url)
        .max_response_bytes(1024)
        .build()
        .unwrap();

    let error = refresh_against(&client).await;

    assert!(
        matches!(error.kind(), ErrorKind::TooLarge { limit: 1024, .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("r-secret-token"));
}
