use std::time::Duration;

use refresh_endpoint_testkit::cloudreve::{ME_ROUTE, REFRESH_ROUTE, SIGN_OUT_ROUTE};
use refresh_endpoint_testkit::{CloudreveMock, jwt};
use serde_json::{Value, json};

use crate::{Answer, clock, send};

async fn refresh_raw(cloud: &CloudreveMock, body: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(format!("{}{REFRESH_ROUTE}", cloud.url()))
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

async fn refresh(cloud: &CloudreveMock, token: &str) -> Value {
    let answer = refresh_raw(cloud, &json!({"refresh_token": token}).to_string()).await;
    assert_eq!(answer.status, 200, "Cloudreve always answers 200");
    assert_eq!(
        answer.header("content-type"),
        "application/json; charset=utf-8"
    );
    answer.json()
}

async fn me(cloud: &CloudreveMock, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(format!("{}{ME_ROUTE}", cloud.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = send(request).await;
    assert_eq!(answer.status, 200);
    answer.json()
}

fn assert_refresh_failed(envelope: &Value) {
    assert_eq!(envelope["code"], 40020, "{envelope}");
    assert_eq!(envelope["msg"], "Failed to issue token pair");
    let id = envelope["correlation_id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert!(
        envelope.get("error").is_none(),
        "no detail outside debug mode"
    );
}

#[tokio::test]
async fn refresh_answers_the_seed_shape_with_offset_timestamps() {
    let cloud = CloudreveMock::builder()
        .clock(clock().now_fn())
        .start()
        .await;
    let tokens = cloud.issue_tokens("alice");
    let envelope = refresh(&cloud, &tokens.refresh_token).await;
    assert_eq!(envelope["code"], 0);
    assert_eq!(envelope["msg"], "");
    let data = &envelope["data"];
    // The seed example: issued at 2025-04-26T06:58:28.456762Z, 1 h access tokens.
    assert_eq!(data["access_expires"], "2025-04-26T15:58:28.456762+08:00");
    assert_eq!(data["refresh_expires"], "2025-05-10T14:58:28.456762+08:00");
    let access = jwt::verify(cloud.jwt_secret(), data["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(access["token_type"], "access");
    assert_eq!(access["exp"], 1_745_654_308);
    let refresh_claims =
        jwt::verify(cloud.jwt_secret(), data["refresh_token"].as_str().unwrap()).unwrap();
    assert_eq!(refresh_claims["token_type"], "refresh");
    assert!(refresh_claims["state_hash"].is_string());
}

#[tokio::test]
async fn refresh_tokens_do_not_rotate_until_sign_out() {
    let clock = clock();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");
    clock.advance(Duration::from_secs(5));
    let first = refresh(&cloud, &tokens.refresh_token).await;
    assert_eq!(first["code"], 0);
    let newer = first["data"]["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(newer, tokens.refresh_token);
    // The old refresh token keeps working.
    assert_eq!(refresh(&cloud, &tokens.refresh_token).await["code"], 0);

    let sign_out = send(
        reqwest::Client::new()
            .delete(format!("{}{SIGN_OUT_ROUTE}", cloud.url()))
            .json(&json!({"refresh_token": newer})),
    )
    .await;
    assert_eq!(sign_out.status, 200);
    assert_eq!(sign_out.json()["code"], 0);
    assert_refresh_failed(&refresh(&cloud, &tokens.refresh_token).await);
    assert_refresh_failed(&refresh(&cloud, &newer).await);

    // Another session of the same user is untouched; a password change ends it.
    clock.advance(Duration::from_secs(1));
    let other = cloud.issue_tokens("alice");
    assert_eq!(refresh(&cloud, &other.refresh_token).await["code"], 0);
    assert!(cloud.change_password("alice"));
    assert_refresh_failed(&refresh(&cloud, &other.refresh_token).await);
    assert_eq!(cloud.refresh_count(), 6);
}

#[tokio::test]
async fn every_failure_is_http_200_with_a_code() {
    let clock = clock();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");

    for body in ["{}", r#"{"refresh_token":""}"#, r#"{"refresh_token":null}"#] {
        let answer = refresh_raw(&cloud, body).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.json(),
            json!({"code": 40001, "msg": "RefreshToken cannot be empty"})
        );
    }
    for body in ["not json", r#"{"refresh_token":42}"#, "[]"] {
        let answer = refresh_raw(&cloud, body).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.json(),
            json!({"code": 40001, "msg": "Parameter error"})
        );
    }
    assert_refresh_failed(&refresh(&cloud, "garbage").await);
    assert_refresh_failed(&refresh(&cloud, &tokens.access_token).await);
    let forged = jwt::sign(
        b"other secret",
        &jwt::decode_header(&tokens.refresh_token).unwrap(),
        &jwt::decode_claims(&tokens.refresh_token).unwrap(),
    );
    assert_refresh_failed(&refresh(&cloud, &forged).await);
    assert!(cloud.sign_out(&tokens.refresh_token));
    assert_refresh_failed(&refresh(&cloud, &tokens.refresh_token).await);

    let later = cloud.issue_tokens("bob");
    clock.advance(Duration::from_secs(14 * 24 * 60 * 60));
    assert_refresh_failed(&refresh(&cloud, &later.refresh_token).await);
}

#[tokio::test]
async fn debug_mode_adds_the_error_detail() {
    let cloud = CloudreveMock::builder().debug(true).start().await;
    let envelope = refresh(&cloud, "garbage").await;
    assert_eq!(envelope["code"], 40020);
    assert!(envelope["error"].is_string());
}

#[tokio::test]
async fn login_required_is_code_401_inside_http_200() {
    let clock = clock();
    let cloud = CloudreveMock::builder().clock(clock.now_fn()).start().await;
    let tokens = cloud.issue_tokens("alice");
    let ok = me(&cloud, Some(&tokens.access_token)).await;
    assert_eq!(ok["code"], 0);
    assert_eq!(ok["data"]["nickname"], "alice");
    assert!(ok["data"]["id"].is_string());

    let login_required = json!({"code": 401, "msg": "Login required"});
    assert_eq!(me(&cloud, None).await, login_required);
    assert_eq!(
        me(&cloud, Some(&tokens.refresh_token)).await,
        login_required
    );
    clock.advance(Duration::from_secs(60 * 60));
    assert_eq!(me(&cloud, Some(&tokens.access_token)).await, login_required);

    let fresh = refresh(&cloud, &tokens.refresh_token).await;
    let access = fresh["data"]["access_token"].as_str().unwrap();
    assert_eq!(me(&cloud, Some(access)).await["code"], 0);
    assert_eq!(cloud.requests(ME_ROUTE), 5);
}
