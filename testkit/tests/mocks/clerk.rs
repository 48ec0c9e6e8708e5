use std::time::Duration;

use refresh_endpoint_testkit::clerk::{ME_ROUTE, refresh_path};
use refresh_endpoint_testkit::{ClerkMock, ClerkSession, jwt};
use serde_json::{Value, json};

use crate::{Answer, clock, send};

fn body(session: &ClerkSession) -> Value {
    json!({
        "expired_token": session.session_jwt,
        "refresh_token": session.refresh_token,
        "request_origin": "https://app.example",
    })
}

async fn refresh(clerk: &ClerkMock, session_id: &str, body: &Value) -> Answer {
    send(
        reqwest::Client::new()
            .post(format!("{}{}", clerk.url(), refresh_path(session_id)))
            .bearer_auth(clerk.secret_key())
            .json(body),
    )
    .await
}

async fn me(clerk: &ClerkMock, jwt: &str) -> Answer {
    send(
        reqwest::Client::new()
            .get(format!("{}{ME_ROUTE}", clerk.url()))
            .bearer_auth(jwt),
    )
    .await
}

/// The `code`s of a Clerk error envelope, checking its shape on the way.
fn codes(answer: &Answer) -> Vec<String> {
    let envelope = answer.json();
    assert!(envelope["clerk_trace_id"].is_string(), "{envelope}");
    envelope["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| {
            assert!(
                e["message"].is_string() && e["long_message"].is_string(),
                "{e}"
            );
            e["code"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn token_format_returns_a_new_session_jwt() {
    let clock = clock();
    let clerk = ClerkMock::builder().clock(clock.now_fn()).start().await;
    let session = clerk.create_session("alice");
    assert!(session.session_id.starts_with("sess_"));
    assert!(session.user_id.starts_with("user_"));
    assert!(clerk.secret_key().starts_with("sk_test_"));

    // The session JWT is expired by design when a backend refreshes it.
    clock.advance(Duration::from_secs(120));
    let answer = refresh(&clerk, &session.session_id, &body(&session)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer.json();
    assert_eq!(token["object"], "token");
    let claims = jwt::verify(clerk.jwt_secret(), token["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(claims["sid"], session.session_id.as_str());
    assert_eq!(claims["sub"], session.user_id.as_str());
    assert_eq!(claims["azp"], "https://app.example");
    let now = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(claims["exp"], now + 60);
    assert_eq!(clerk.last_request_body(), Some(body(&session)));
    assert_eq!(clerk.last_suffixed_cookies(), None);
    assert_eq!(clerk.last_api_version(), None);

    // The refresh token does not rotate: it works again, with explicit format.
    let mut explicit = body(&session);
    explicit["format"] = json!("token");
    explicit["request_headers"] = json!({"user-agent": ["test"]});
    explicit["request_originating_ip"] = json!("127.0.0.1");
    let again = refresh(&clerk, &session.session_id, &explicit).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(clerk.refresh_count(), 2);
    assert_eq!(clerk.requests(&refresh_path(&session.session_id)), 2);
}

#[tokio::test]
async fn cookie_format_returns_set_cookie_directives_and_records_the_extras() {
    let clerk = ClerkMock::start().await;
    let session = clerk.create_session("alice");
    let mut request = body(&session);
    request["format"] = json!("cookie");
    let answer = send(
        reqwest::Client::new()
            .post(format!(
                "{}{}?suffixed_cookies=true",
                clerk.url(),
                refresh_path(&session.session_id)
            ))
            .bearer_auth(clerk.secret_key())
            .header("Clerk-API-Version", "2021-02-05")
            .json(&request),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookies = answer.json();
    assert_eq!(cookies["object"], "cookies");
    let cookies: Vec<&str> = cookies["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__session="))
        .unwrap();
    assert!(session_cookie.contains("; Path=/"));
    let jwt = session_cookie
        .strip_prefix("__session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap();
    assert!(jwt::verify(clerk.jwt_secret(), jwt).is_ok());
    let suffixed = format!("__session_{}=", clerk.cookie_suffix());
    assert!(
        cookies.iter().any(|c| c.starts_with(&suffixed)),
        "{cookies:?}"
    );
    assert!(cookies.iter().any(|c| c.starts_with("__client_uat=")));
    assert_eq!(clerk.last_suffixed_cookies().as_deref(), Some("true"));
    assert_eq!(clerk.last_api_version().as_deref(), Some("2021-02-05"));
}

#[tokio::test]
async fn body_validation_rejects_unknown_missing_and_invalid_fields() {
    let clerk = ClerkMock::start().await;
    let session = clerk.create_session("alice");

    let mut unknown = body(&session);
    unknown["expiredToken"] = json!("x");
    let answer = refresh(&clerk, &session.session_id, &unknown).await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer), ["form_param_unknown"]);
    assert_eq!(
        answer.json()["errors"][0]["meta"]["param_name"],
        "expiredToken"
    );

    let answer = refresh(&clerk, &session.session_id, &json!({"refresh_token": "x"})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer), ["form_param_missing", "form_param_missing"]);

    let mut bad_format = body(&session);
    bad_format["format"] = json!("cookies");
    let answer = refresh(&clerk, &session.session_id, &bad_format).await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer), ["form_param_value_invalid"]);

    let mut bad_type = body(&session);
    bad_type["request_headers"] = json!("user-agent: x");
    let answer = refresh(&clerk, &session.session_id, &bad_type).await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer), ["form_param_format_invalid"]);

    let answer = send(
        reqwest::Client::new()
            .post(format!(
                "{}{}",
                clerk.url(),
                refresh_path(&session.session_id)
            ))
            .bearer_auth(clerk.secret_key())
            .body("expired_token=x"),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer), ["request_body_invalid"]);
    assert_eq!(clerk.last_raw_body().as_deref(), Some("expired_token=x"));
    assert_eq!(clerk.last_request_body(), None);
}

#[tokio::test]
async fn the_secret_key_is_required() {
    let clerk = ClerkMock::start().await;
    let session = clerk.create_session("alice");
    let url = format!("{}{}", clerk.url(), refresh_path(&session.session_id));
    for request in [
        reqwest::Client::new().post(&url).json(&body(&session)),
        reqwest::Client::new()
            .post(&url)
            .bearer_auth("sk_test_wrong")
            .json(&body(&session)),
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&session.session_jwt)
            .json(&body(&session)),
    ] {
        let answer = send(request).await;
        assert_eq!(answer.status, 401);
        assert_eq!(codes(&answer), ["clerk_key_invalid"]);
    }
}

#[tokio::test]
async fn signed_out_sessions_and_foreign_tokens_are_refused() {
    let clerk = ClerkMock::start().await;
    let alice = clerk.create_session("alice");
    let bob = clerk.create_session("bob");

    let mut wrong_refresh = body(&alice);
    wrong_refresh["refresh_token"] = json!(bob.refresh_token);
    let answer = refresh(&clerk, &alice.session_id, &wrong_refresh).await;
    assert_eq!(answer.status, 401);
    assert_eq!(codes(&answer), ["signed_out"]);

    // Bob's session JWT does not belong to Alice's session.
    let answer = refresh(&clerk, &alice.session_id, &body(&bob)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(codes(&answer), ["token_invalid"]);

    let mut garbage = body(&alice);
    garbage["expired_token"] = json!("not-a-jwt");
    let answer = refresh(&clerk, &alice.session_id, &garbage).await;
    assert_eq!(answer.status, 401);
    assert_eq!(codes(&answer), ["token_invalid"]);

    assert!(clerk.revoke(&alice.session_id));
    let answer = refresh(&clerk, &alice.session_id, &body(&alice)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(codes(&answer), ["signed_out"]);
    assert_eq!(me(&clerk, &alice.session_jwt).await.status, 401);
    assert_eq!(clerk.refresh_count(), 4);
}

#[tokio::test]
async fn the_authorized_route_accepts_fresh_session_jwts_only() {
    let clock = clock();
    let clerk = ClerkMock::builder().clock(clock.now_fn()).start().await;
    let session = clerk.create_session("alice");
    let ok = me(&clerk, &session.session_jwt).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["id"], session.user_id.as_str());

    clock.advance(Duration::from_secs(60));
    let expired = me(&clerk, &session.session_jwt).await;
    assert_eq!(expired.status, 401);
    assert_eq!(codes(&expired), ["token_expired"]);
    let minted = clerk
        .mint_session_jwt(&session.session_id, clock.now() + Duration::from_secs(5))
        .unwrap();
    assert_eq!(me(&clerk, &minted).await.status, 200);

    let fresh = refresh(&clerk, &session.session_id, &body(&session))
        .await
        .json();
    assert_eq!(me(&clerk, fresh["jwt"].as_str().unwrap()).await.status, 200);
    assert_eq!(me(&clerk, "garbage").await.status, 401);
}
