use std::time::Duration;

use refresh_endpoint_testkit::OAuth2Mock;
use refresh_endpoint_testkit::oauth2::{ME_ROUTE, TOKEN_ROUTE};
use serde_json::json;

use crate::{Answer, clock, send};

const FORM: &str = "application/x-www-form-urlencoded";

/// A refresh with HTTP Basic client authentication.
async fn refresh_basic(auth: &OAuth2Mock, form: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(auth.token_url())
            .basic_auth(auth.client_id(), Some(auth.client_secret()))
            .header("content-type", FORM)
            .body(form.to_owned()),
    )
    .await
}

/// A token endpoint request with no Authorization header.
async fn post_form(auth: &OAuth2Mock, form: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(auth.token_url())
            .header("content-type", FORM)
            .body(form.to_owned()),
    )
    .await
}

fn assert_oauth_error(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.json()["error"], error, "{}", answer.body);
    assert!(answer.json()["error_description"].is_string());
    assert_eq!(answer.header("cache-control"), "no-store");
}

#[tokio::test]
async fn rotation_issues_a_new_refresh_token_and_kills_the_old_one() {
    let auth = OAuth2Mock::builder().clock(clock().now_fn()).start().await;
    let tokens = auth.issue_tokens();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );
    let answer = refresh_basic(&auth, &form).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.header("pragma"), "no-cache");
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    assert_ne!(body["refresh_token"], tokens.refresh_token.as_str());
    assert!(body["access_token"].is_string());

    assert_oauth_error(&refresh_basic(&auth, &form).await, 400, "invalid_grant");
    let next = format!(
        "grant_type=refresh_token&refresh_token={}",
        body["refresh_token"].as_str().unwrap()
    );
    assert_eq!(refresh_basic(&auth, &next).await.status, 200);
    assert_eq!(auth.refresh_count(), 3);
    assert_eq!(auth.requests(TOKEN_ROUTE), 3);
}

#[tokio::test]
async fn without_rotation_the_refresh_token_may_be_omitted_and_stays_valid() {
    let auth = OAuth2Mock::builder()
        .rotate_refresh_tokens(false)
        .omit_refresh_token(true)
        .start()
        .await;
    let tokens = auth.issue_tokens();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );
    for _ in 0..2 {
        let answer = refresh_basic(&auth, &form).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.json().get("refresh_token").is_none());
    }

    let kept = OAuth2Mock::builder()
        .rotate_refresh_tokens(false)
        .start()
        .await;
    let tokens = kept.issue_tokens();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );
    let answer = refresh_basic(&kept, &form).await;
    assert_eq!(
        answer.json()["refresh_token"],
        tokens.refresh_token.as_str()
    );
}

#[tokio::test]
async fn clients_authenticate_by_basic_body_or_as_public_clients() {
    let auth = OAuth2Mock::builder()
        .client("web", "s3cret:with+symbols")
        .public_client("cli")
        .start()
        .await;

    let web = auth.issue_tokens_for("web", "read").unwrap();
    let in_body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id=web&client_secret=s3cret%3Awith%2Bsymbols",
        web.refresh_token
    );
    assert_eq!(post_form(&auth, &in_body).await.status, 200);

    // Basic credentials are form-encoded before base64 (RFC 6749 §2.3.1).
    let web = auth.issue_tokens_for("web", "read").unwrap();
    let answer = send(
        reqwest::Client::new()
            .post(auth.token_url())
            .basic_auth("web", Some("s3cret%3Awith%2Bsymbols"))
            .header("content-type", FORM)
            .body(format!(
                "grant_type=refresh_token&refresh_token={}",
                web.refresh_token
            )),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let cli = auth.issue_tokens_for("cli", "read").unwrap();
    let public = format!(
        "grant_type=refresh_token&refresh_token={}&client_id=cli",
        cli.refresh_token
    );
    assert_eq!(post_form(&auth, &public).await.status, 200);
    assert!(auth.issue_tokens_for("nobody", "read").is_none());

    // A token belongs to the client it was issued to.
    let cli = auth.issue_tokens_for("cli", "read").unwrap();
    let stolen = format!(
        "grant_type=refresh_token&refresh_token={}",
        cli.refresh_token
    );
    assert_oauth_error(&refresh_basic(&auth, &stolen).await, 400, "invalid_grant");
}

#[tokio::test]
async fn client_authentication_failures_are_401_with_a_basic_challenge() {
    let auth = OAuth2Mock::start().await;
    let tokens = auth.issue_tokens();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );

    let wrong = send(
        reqwest::Client::new()
            .post(auth.token_url())
            .basic_auth(auth.client_id(), Some("wrong"))
            .header("content-type", FORM)
            .body(form.clone()),
    )
    .await;
    assert_oauth_error(&wrong, 401, "invalid_client");
    assert_eq!(wrong.header("www-authenticate"), "Basic realm=\"testkit\"");

    assert_oauth_error(&post_form(&auth, &form).await, 401, "invalid_client");
    let no_secret = format!("{form}&client_id={}", auth.client_id());
    assert_oauth_error(&post_form(&auth, &no_secret).await, 401, "invalid_client");

    let both = format!("{form}&client_secret={}", auth.client_secret());
    assert_oauth_error(&refresh_basic(&auth, &both).await, 400, "invalid_request");
    // None of those consumed the token.
    assert_eq!(refresh_basic(&auth, &form).await.status, 200);
}

#[tokio::test]
async fn request_errors_follow_section_5_2() {
    let clock = clock();
    let auth = OAuth2Mock::builder()
        .clock(clock.now_fn())
        .refresh_ttl(Duration::from_secs(3600))
        .scope("read write")
        .start()
        .await;
    let tokens = auth.issue_tokens();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );

    let json_body = send(
        reqwest::Client::new()
            .post(auth.token_url())
            .basic_auth(auth.client_id(), Some(auth.client_secret()))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token})),
    )
    .await;
    assert_oauth_error(&json_body, 400, "invalid_request");
    assert_oauth_error(
        &refresh_basic(&auth, "grant_type=password&username=a&password=b").await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &refresh_basic(&auth, "refresh_token=x").await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &refresh_basic(&auth, "grant_type=refresh_token").await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &refresh_basic(&auth, &format!("{form}&grant_type=refresh_token")).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &refresh_basic(&auth, "grant_type=refresh_token&refresh_token=unknown").await,
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &refresh_basic(&auth, &format!("{form}&scope=admin")).await,
        400,
        "invalid_scope",
    );

    // A narrower scope is granted for the access token only.
    let narrowed = refresh_basic(&auth, &format!("{form}&scope=read")).await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert_eq!(narrowed.json()["scope"], "read");
    let rotated = narrowed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wide = refresh_basic(
        &auth,
        &format!("grant_type=refresh_token&refresh_token={rotated}&scope=read+write"),
    )
    .await;
    assert_eq!(wide.status, 200, "{}", wide.body);
    let latest = wide.json()["refresh_token"].as_str().unwrap().to_owned();

    assert!(auth.revoke(&latest));
    let revoked = format!("grant_type=refresh_token&refresh_token={latest}");
    assert_oauth_error(&refresh_basic(&auth, &revoked).await, 400, "invalid_grant");

    let expiring = auth.issue_tokens();
    clock.advance(Duration::from_secs(3600));
    let expired = format!(
        "grant_type=refresh_token&refresh_token={}",
        expiring.refresh_token
    );
    assert_oauth_error(&refresh_basic(&auth, &expired).await, 400, "invalid_grant");
}

#[tokio::test]
async fn the_protected_resource_judges_access_tokens_by_the_injected_clock() {
    let clock = clock();
    let auth = OAuth2Mock::builder()
        .clock(clock.now_fn())
        .access_ttl(Duration::from_secs(300))
        .start()
        .await;
    let tokens = auth.issue_tokens();
    assert_eq!(tokens.expires_in, 300);
    let me = |token: String| {
        send(
            reqwest::Client::new()
                .get(format!("{}{ME_ROUTE}", auth.url()))
                .bearer_auth(token),
        )
    };
    let ok = me(tokens.access_token.clone()).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["client_id"], auth.client_id());

    clock.advance(Duration::from_secs(300));
    let expired = me(tokens.access_token.clone()).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired
            .header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    let missing = send(reqwest::Client::new().get(format!("{}{ME_ROUTE}", auth.url()))).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        "Bearer realm=\"testkit\""
    );

    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token
    );
    let fresh = refresh_basic(&auth, &form).await.json();
    assert_eq!(
        me(fresh["access_token"].as_str().unwrap().to_owned())
            .await
            .status,
        200
    );
    assert_eq!(auth.requests(ME_ROUTE), 4);
}
