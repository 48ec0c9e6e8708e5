//! Sessions need no extra code for any seed provider: Clerk (the expired
//! session JWT sent back, a client secret key, 60-second tokens) and OAuth 2.0
//! (form body, rotation or none).

use std::sync::Arc;
use std::time::Duration;

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::clerk::SessionRefresh;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::Session;
use refresh_endpoint::store::{MemoryStore, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{ClerkMock, Now, OAuth2Mock, oauth2};

#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
#[derive(Clone)]
struct ClerkRefresh {
    #[path]
    session_id: String,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2, body = form,
                   response = TokenResponse)]
#[derive(Clone)]
struct OAuthRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
}

fn shared_clock() -> (Arc<ManualClock>, Now) {
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    (clock, Arc::new(move || for_mock.now()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_sessions_refresh_short_lived_tokens_only_when_due() {
    let (clock, now) = shared_clock();
    let mock = ClerkMock::builder().clock(now).start().await;
    let signed_in = mock.create_session("user_1");
    let client = Client::builder(mock.url())
        .secret(mock.secret_key())
        .build()
        .unwrap();
    let endpoint = ClerkRefresh {
        session_id: signed_in.session_id.clone(),
        expired_token: Secret::new(""),
        refresh_token: Secret::new(""),
        request_origin: "https://app.example.com".into(),
    };
    let session = Session::builder(client, endpoint)
        .tokens(Tokens::new(
            signed_in.session_jwt.as_str(),
            signed_in.refresh_token.as_str(),
        ))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();

    // A 60 s token with the default 120 s skew: still used for its first half.
    assert_eq!(
        session.access_token().await.unwrap().expose(),
        signed_in.session_jwt
    );
    clock.advance(Duration::from_secs(20));
    session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 0, "not refreshed on every call");

    clock.advance(Duration::from_secs(45)); // expired
    let fresh = session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1);
    assert_ne!(fresh.expose(), signed_in.session_jwt);
    let sent = mock.last_request_body().unwrap();
    assert_eq!(
        sent["expired_token"],
        signed_in.session_jwt.as_str(),
        "the expired JWT is sent back"
    );
    assert_eq!(sent["refresh_token"], signed_in.refresh_token.as_str());

    // A revoked session ends in "sign in again".
    mock.revoke(&signed_in.session_id);
    clock.advance(Duration::from_secs(120));
    let error = session.access_token().await.unwrap_err();
    assert!(error.is_terminal(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_sessions_rotate_or_keep_the_refresh_token() {
    for rotate in [true, false] {
        let (clock, now) = shared_clock();
        let mock = OAuth2Mock::builder()
            .clock(now)
            .public_client("cli")
            .rotate_refresh_tokens(rotate)
            .omit_refresh_token(!rotate)
            .start()
            .await;
        let issued = mock.issue_tokens_for("cli", "").unwrap();
        let store = MemoryStore::new();
        let endpoint = OAuthRefresh {
            grant_type: "refresh_token",
            refresh_token: Secret::new(""),
            client_id: "cli".to_owned(),
        };
        let session = Session::builder(Client::new(mock.url()).unwrap(), endpoint)
            .tokens(
                Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
                    .with_access_expires_at(clock.now() + Duration::from_secs(issued.expires_in)),
            )
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        clock.advance(Duration::from_secs(issued.expires_in + 1));
        let fresh = session.access_token().await.unwrap();
        assert_ne!(fresh.expose(), issued.access_token);
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(stored.access_token, fresh);
        if rotate {
            assert_ne!(
                stored.refresh_token.expose(),
                issued.refresh_token,
                "rotated and saved"
            );
        } else {
            assert_eq!(
                stored.refresh_token.expose(),
                issued.refresh_token,
                "no refresh_token in the answer: kept"
            );
        }
        // expires_in set the next expiry: fresh until near it.
        clock.advance(Duration::from_secs(issued.expires_in / 4));
        session.access_token().await.unwrap();
        assert_eq!(mock.refresh_count(), 1, "rotate={rotate}");
        // An authorized call with the session's token works.
        let me = format!("{}{}", mock.url(), oauth2::ME_ROUTE);
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
    }
}
