//! Every log line the crate (and the HTTP stack beneath it) writes at TRACE
//! level, during a refresh, a reactive replay and a sign-out: the refresh
//! spans are there, the tokens never are.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refresh_endpoint::Client;
use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::atproto::RefreshSession;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint_testkit::{AtprotoMock, atproto};

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

#[tokio::test]
async fn logs_name_the_refresh_and_its_outcome_but_never_a_token() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let clock = Arc::new(ManualClock::starting_now());
    let mock_clock = Arc::clone(&clock);
    let mock = AtprotoMock::builder()
        .clock(Arc::new(move || mock_clock.now()))
        .start()
        .await;
    let account = mock.create_account("alice.test");
    let expired = mock.mint_access_token(&account.did, clock.now() - Duration::from_secs(1));
    let session = Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
        .tokens(
            Tokens::new(expired.as_str(), account.refresh_jwt.as_str())
                .with_access_expires_at(clock.now() + Duration::from_secs(3600)),
        )
        .clock(clock.clone())
        .build()
        .await
        .unwrap();

    // A reactive refresh and replay…
    let me = format!("{}{}", mock.url(), atproto::GET_SESSION_ROUTE);
    assert_eq!(
        session
            .authorized(session.client().http().get(&me))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let after_refresh = session.tokens().unwrap();
    // …then a sign-out.
    mock.revoke(after_refresh.refresh_token.expose());
    clock.advance(Duration::from_secs(3 * 3600));
    let error = session.access_token().await.unwrap_err();
    assert!(error.is_terminal());

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("refresh_endpoint.refresh"),
        "the refresh span is logged:\n{logs}"
    );
    assert!(
        logs.contains("outcome=\"refreshed\"") || logs.contains("outcome=refreshed"),
        "{logs}"
    );
    assert!(logs.contains("signed_out"), "{logs}");
    // The exchange's own span, with its status, holds the HTTP stack's lines.
    assert!(
        logs.lines()
            .any(|line| line.contains("refresh_endpoint.http{")
                && line.contains("status=200")
                && line.contains("response received")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|line| line.contains("refresh_endpoint.http{")
                && (line.contains(" hyper") || line.contains(" reqwest"))),
        "the HTTP stack logs within the exchange's span:\n{logs}"
    );
    assert!(
        logs.contains("endpoint=\"RefreshSession\"") || logs.contains("endpoint=RefreshSession"),
        "{logs}"
    );
    for secret in [
        expired.as_str(),
        account.access_jwt.as_str(),
        account.refresh_jwt.as_str(),
        after_refresh.access_token.expose(),
        after_refresh.refresh_token.expose(),
    ] {
        // The signature part alone would betray a token.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token leaked into the logs");
    }
    assert!(
        !format!("{session:?} {error:?} {after_refresh:?}")
            .contains(after_refresh.refresh_token.expose())
    );
}
