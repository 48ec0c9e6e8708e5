use std::time::Duration;

use refresh_endpoint_testkit::atproto::{GET_SESSION_ROUTE, REFRESH_ROUTE};
use refresh_endpoint_testkit::clerk::refresh_path;
use refresh_endpoint_testkit::{AtprotoMock, ClerkMock, CloudreveMock, Fault, OAuth2Mock};
use serde_json::json;

use crate::{Answer, send};

fn refresh_request(pds: &AtprotoMock, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}{REFRESH_ROUTE}", pds.url()))
        .bearer_auth(token)
}

async fn refresh(pds: &AtprotoMock, token: &str) -> Answer {
    send(refresh_request(pds, token)).await
}

#[tokio::test]
async fn status_html_broken_and_oversized_answers() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    pds.inject(Fault::Status(503));
    pds.inject(Fault::Html(502));
    pds.inject(Fault::BrokenJson);
    pds.inject(Fault::Oversized(100_000));
    pds.inject(Fault::Status(42));

    let status = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(status.status, 503);
    assert_eq!(status.body, "");

    let html = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(html.status, 502);
    assert_eq!(html.header("content-type"), "text/html");
    assert!(html.body.contains("<title>502 Bad Gateway</title>"));

    let broken = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(broken.status, 200);
    assert_eq!(broken.header("content-type"), "application/json");
    assert!(serde_json::from_str::<serde_json::Value>(&broken.body).is_err());

    let oversized = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(oversized.status, 200);
    assert_eq!(oversized.body.len(), 100_000);
    assert!(oversized.json().get("accessJwt").is_none());

    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 500);

    // The queue is empty: the token was never consumed by the faults.
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
    assert_eq!(pds.refresh_count(), 6);
}

#[tokio::test]
async fn repeated_faults_and_clearing() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    pds.inject_times(Fault::Status(500), 2);
    pds.inject(Fault::Status(504));
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 500);
    // Other routes are not affected and do not draw faults.
    let session = send(
        reqwest::Client::new()
            .get(format!("{}{GET_SESSION_ROUTE}", pds.url()))
            .bearer_auth(&alice.access_jwt),
    )
    .await;
    assert_eq!(session.status, 200);
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 500);
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 504);
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);

    pds.inject_times(Fault::Status(500), 10);
    pds.clear_faults();
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
}

#[tokio::test]
async fn a_dropped_connection_has_no_response() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    pds.inject(Fault::Drop);
    let error = refresh_request(&pds, &alice.refresh_jwt)
        .send()
        .await
        .expect_err("the connection was dropped");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(pds.refresh_count(), 1);
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_answer_comes_after_the_delay() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    pds.inject(Fault::Delay(Duration::from_secs(30)));
    let started = tokio::time::Instant::now();
    let answer = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_request_never_answers() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    pds.inject(Fault::Hang);
    let hung = tokio::time::timeout(
        Duration::from_secs(600),
        refresh_request(&pds, &alice.refresh_jwt).send(),
    )
    .await;
    assert!(hung.is_err(), "a hanging request must not answer");
    assert_eq!(pds.refresh_count(), 1);
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_processed_then_hung_refresh_rotates_the_token_but_never_answers() {
    // Strictly single-use refresh tokens make the rotation visible.
    let pds = AtprotoMock::builder()
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    pds.inject(Fault::ProcessThenHang);
    let hung = tokio::time::timeout(
        Duration::from_secs(600),
        refresh_request(&pds, &alice.refresh_jwt).send(),
    )
    .await;
    assert!(hung.is_err(), "the answer is never sent");
    assert_eq!(pds.refresh_count(), 1);
    // The server did rotate: the token the client still holds is spent.
    let again = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["message"], "Token has been revoked");

    // With the 2 hour grace period the spent token answers the pair the
    // lost response carried, so a client that lost it can recover.
    let pds = AtprotoMock::start().await;
    let bob = pds.create_account("bob.test");
    pds.inject(Fault::ProcessThenHang);
    let hung = tokio::time::timeout(
        Duration::from_secs(600),
        refresh_request(&pds, &bob.refresh_jwt).send(),
    )
    .await;
    assert!(hung.is_err());
    let first = refresh(&pds, &bob.refresh_jwt).await.json();
    let second = refresh(&pds, &bob.refresh_jwt).await.json();
    assert_ne!(first["refreshJwt"], bob.refresh_jwt.as_str());
    assert_eq!(
        first["refreshJwt"], second["refreshJwt"],
        "a replay, not a new rotation"
    );
    assert_eq!(pds.refresh_count(), 3);
}

#[tokio::test]
async fn rate_limiting_uses_each_providers_envelope() {
    let limited = Fault::RateLimited {
        retry_after_secs: 7,
    };

    let pds = AtprotoMock::start().await;
    pds.inject(limited.clone());
    let answer = refresh(&pds, "whatever").await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), "7");
    assert_eq!(answer.json()["error"], "RateLimitExceeded");

    let cloud = CloudreveMock::start().await;
    cloud.inject(limited.clone());
    let answer = send(
        reqwest::Client::new()
            .post(format!("{}/api/v4/session/token/refresh", cloud.url()))
            .json(&json!({"refresh_token": "x"})),
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), "7");
    assert_eq!(answer.json()["code"], 429);

    let clerk = ClerkMock::start().await;
    clerk.inject(limited.clone());
    let answer =
        send(reqwest::Client::new().post(format!("{}{}", clerk.url(), refresh_path("sess_1"))))
            .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), "7");
    assert_eq!(answer.json()["errors"][0]["code"], "too_many_requests");

    let auth = OAuth2Mock::start().await;
    auth.inject(limited);
    let answer = send(reqwest::Client::new().post(auth.token_url())).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), "7");
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn a_dropped_mock_stops_listening() {
    let pds = AtprotoMock::start().await;
    let url = format!("{}{REFRESH_ROUTE}", pds.url());
    drop(pds);
    tokio::task::yield_now().await;
    let error = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .expect_err("nothing listens");
    assert!(error.is_connect(), "{error:?}");
}
