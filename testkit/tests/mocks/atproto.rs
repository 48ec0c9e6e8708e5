use std::time::Duration;

use refresh_endpoint_testkit::atproto::{
    CREATE_SESSION_ROUTE, DEFAULT_PASSWORD, DELETE_SESSION_ROUTE, GET_SESSION_ROUTE, REFRESH_ROUTE,
};
use refresh_endpoint_testkit::{AtprotoMock, jwt};
use serde_json::json;

use crate::{Answer, clock, send};

const HOUR: Duration = Duration::from_secs(60 * 60);

async fn refresh(pds: &AtprotoMock, token: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(format!("{}{REFRESH_ROUTE}", pds.url()))
            .bearer_auth(token),
    )
    .await
}

async fn get_session(pds: &AtprotoMock, token: &str) -> Answer {
    send(
        reqwest::Client::new()
            .get(format!("{}{GET_SESSION_ROUTE}", pds.url()))
            .bearer_auth(token),
    )
    .await
}

fn assert_xrpc_error(answer: &Answer, status: u16, error: &str, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.json(), json!({"error": error, "message": message}));
    assert_eq!(
        answer.header("content-type"),
        "application/json; charset=utf-8"
    );
}

fn jti(jwt: &str) -> String {
    jwt::decode_claims(jwt).unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_reissues_the_same_successor_inside_the_grace_period() {
    let clock = clock();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");

    let first = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        "application/json; charset=utf-8"
    );
    let session = first.json();
    assert_eq!(session["did"], alice.did.as_str());
    assert_eq!(session["handle"], "alice.test");
    assert_eq!(session["active"], true);
    // The reference server's keys, nothing more (no didDoc by default).
    let mut keys: Vec<_> = session.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["accessJwt", "active", "did", "handle", "refreshJwt"]);
    let new_refresh = session["refreshJwt"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, alice.refresh_jwt);

    // Within the same second the old token answers the very same pair...
    let replay = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(replay.json()["refreshJwt"], session["refreshJwt"]);
    assert_eq!(replay.json()["accessJwt"], session["accessJwt"]);
    // ...an hour later a pair signed anew for the same successor token id.
    clock.advance(HOUR);
    let replay = refresh(&pds, &alice.refresh_jwt).await;
    assert_eq!(replay.status, 200);
    let reissued = replay.json()["refreshJwt"].as_str().unwrap().to_owned();
    assert_ne!(reissued, new_refresh);
    assert_eq!(jti(&reissued), jti(&new_refresh));

    // Past the two hours of grace it is revoked; the new one still rotates.
    clock.advance(HOUR + Duration::from_secs(1));
    let late = refresh(&pds, &alice.refresh_jwt).await;
    assert_xrpc_error(&late, 400, "ExpiredToken", "Token has been revoked");
    let next = refresh(&pds, &new_refresh).await;
    assert_eq!(next.status, 200);
    assert_ne!(next.json()["refreshJwt"], new_refresh.as_str());
    assert_eq!(pds.refresh_count(), 5);
    assert_eq!(pds.requests(REFRESH_ROUTE), 5);
}

#[tokio::test]
async fn reuse_inside_the_grace_period_revives_a_deleted_successor() {
    let pds = AtprotoMock::builder().clock(clock().now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let successor = refresh(&pds, &alice.refresh_jwt).await.json()["refreshJwt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pds.revoke(&successor));
    let dead = refresh(&pds, &successor).await;
    assert_xrpc_error(&dead, 400, "ExpiredToken", "Token has been revoked");

    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
    assert_eq!(refresh(&pds, &successor).await.status, 200, "revived");
}

#[tokio::test]
async fn did_doc_with_session_adds_the_did_document() {
    let pds = AtprotoMock::builder()
        .did_doc_with_session(true)
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    let session = refresh(&pds, &alice.refresh_jwt).await.json();
    assert_eq!(session["didDoc"]["id"], alice.did.as_str());
    let me = get_session(&pds, session["accessJwt"].as_str().unwrap()).await;
    assert_eq!(me.json()["didDoc"]["id"], alice.did.as_str());
}

#[tokio::test]
async fn zero_grace_makes_refresh_tokens_strictly_single_use() {
    let pds = AtprotoMock::builder()
        .clock(clock().now_fn())
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    assert_eq!(refresh(&pds, &alice.refresh_jwt).await.status, 200);
    let again = refresh(&pds, &alice.refresh_jwt).await;
    assert_xrpc_error(&again, 400, "ExpiredToken", "Token has been revoked");
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_the_same_pair() {
    let pds = AtprotoMock::builder().clock(clock().now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let url = format!("{}{REFRESH_ROUTE}", pds.url());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let request = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&alice.refresh_jwt);
            tokio::spawn(send(request))
        })
        .collect();
    let mut pairs = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200);
        pairs.push(answer.json()["refreshJwt"].clone());
    }
    pairs.dedup();
    assert_eq!(pairs.len(), 1);
}

#[tokio::test]
async fn refresh_errors_match_the_reference_server() {
    let clock = clock();
    let pds = AtprotoMock::builder()
        .clock(clock.now_fn())
        .refresh_ttl(Duration::from_secs(24 * 60 * 60))
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    let url = format!("{}{REFRESH_ROUTE}", pds.url());
    let http = reqwest::Client::new();

    let none = send(http.post(&url)).await;
    assert_xrpc_error(&none, 401, "AuthMissing", "Authentication Required");
    assert!(none.headers.get("www-authenticate").is_none());
    let basic = send(http.post(&url).header("authorization", "Basic YTpi")).await;
    assert_xrpc_error(&basic, 401, "AuthMissing", "Authentication Required");
    let dpop = send(http.post(&url).header("authorization", "DPoP abc")).await;
    assert_xrpc_error(&dpop, 401, "AuthMissing", "Authentication Required");
    for malformed in ["Bearer a b", "Bearer", "Bearer  abc"] {
        let answer = send(http.post(&url).header("authorization", malformed)).await;
        assert_xrpc_error(
            &answer,
            400,
            "InvalidToken",
            "Malformed authorization header",
        );
    }
    let token_scheme = send(http.post(&url).header("authorization", "Token abc")).await;
    assert_xrpc_error(
        &token_scheme,
        400,
        "InvalidToken",
        "Unsupported authorization type: Token",
    );
    let wrong_method = send(http.get(&url).bearer_auth(&alice.refresh_jwt)).await;
    assert_xrpc_error(
        &wrong_method,
        400,
        "InvalidRequest",
        "Incorrect HTTP method (GET) expected POST",
    );
    let garbage = refresh(&pds, "garbage").await;
    assert_xrpc_error(&garbage, 400, "InvalidToken", "Token could not be verified");
    let access = refresh(&pds, &alice.access_jwt).await;
    assert_xrpc_error(&access, 400, "InvalidToken", "Invalid token type");
    let with_body = send(
        http.post(&url)
            .bearer_auth(&alice.refresh_jwt)
            .json(&json!({})),
    )
    .await;
    assert_xrpc_error(
        &with_body,
        400,
        "InvalidRequest",
        "A request body was provided when none was expected",
    );
    // Authentication is checked before the input.
    let body_without_token = send(http.post(&url).json(&json!({}))).await;
    assert_xrpc_error(
        &body_without_token,
        401,
        "AuthMissing",
        "Authentication Required",
    );
    // None of those used the token up.
    let bob = pds.create_account("bob.test");
    clock.advance(Duration::from_secs(24 * 60 * 60));
    let expired = refresh(&pds, &bob.refresh_jwt).await;
    assert_xrpc_error(&expired, 400, "ExpiredToken", "Token has expired");
    // The scheme is case-insensitive.
    let carol = pds.create_account("carol.test");
    let lowercase = send(
        http.post(&url)
            .header("authorization", format!("bearer {}", carol.refresh_jwt)),
    )
    .await;
    assert_eq!(lowercase.status, 200);
    assert_eq!(pds.refresh_count(), 14);
}

#[tokio::test]
async fn token_checks_follow_the_reference_order() {
    let clock = clock();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let now = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let refresh_header = json!({"typ": "refresh+jwt", "alg": "HS256"});
    let claims = jwt::decode_claims(&alice.refresh_jwt).unwrap();
    let with = |patch: serde_json::Value| {
        let mut claims = claims.clone();
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        jwt::sign(pds.jwt_secret(), &refresh_header, &claims)
    };
    let cases = [
        (
            json!({"aud": "did:web:elsewhere"}),
            400,
            "InvalidToken",
            "Token could not be verified",
        ),
        (
            json!({"aud": null}),
            400,
            "InvalidToken",
            "Token could not be verified",
        ),
        (
            json!({"nbf": now + 60}),
            400,
            "InvalidToken",
            "Token could not be verified",
        ),
        (
            json!({"exp": now - 1, "jti": null}),
            400,
            "ExpiredToken",
            "Token has expired",
        ),
        (
            json!({"sub": "alice"}),
            400,
            "InvalidToken",
            "Malformed token",
        ),
        (
            json!({"scope": "com.atproto.access"}),
            400,
            "InvalidToken",
            "Bad token scope",
        ),
        (
            json!({"jti": null}),
            401,
            "MissingTokenId",
            "Unexpected missing refresh token id",
        ),
        (
            json!({"jti": "unknown"}),
            400,
            "ExpiredToken",
            "Token has been revoked",
        ),
    ];
    for (patch, status, error, message) in cases {
        let answer = refresh(&pds, &with(patch.clone())).await;
        assert_eq!(answer.status, status, "{patch}: {}", answer.body);
        assert_eq!(
            answer.json(),
            json!({"error": error, "message": message}),
            "{patch}"
        );
    }
    // deleteSession takes an expired refresh token of a live session.
    let expired = with(json!({"exp": now - 1}));
    let delete = send(
        reqwest::Client::new()
            .post(format!("{}{DELETE_SESSION_ROUTE}", pds.url()))
            .bearer_auth(&expired),
    )
    .await;
    assert_eq!(delete.status, 200);
    let after = refresh(&pds, &alice.refresh_jwt).await;
    assert_xrpc_error(&after, 400, "ExpiredToken", "Token has been revoked");
}

#[tokio::test]
async fn a_forged_signature_is_not_verified() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let claims = jwt::decode_claims(&alice.refresh_jwt).unwrap();
    let header = jwt::decode_header(&alice.refresh_jwt).unwrap();
    let forged = jwt::sign(b"someone else's secret", &header, &claims);
    let answer = refresh(&pds, &forged).await;
    assert_xrpc_error(&answer, 400, "InvalidToken", "Token could not be verified");
    let resigned = jwt::sign(pds.jwt_secret(), &header, &claims);
    assert_eq!(refresh(&pds, &resigned).await.status, 200);
}

#[tokio::test]
async fn sign_out_and_takedown_revoke_sessions() {
    let pds = AtprotoMock::builder().clock(clock().now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let delete = send(
        reqwest::Client::new()
            .post(format!("{}{DELETE_SESSION_ROUTE}", pds.url()))
            .bearer_auth(&alice.refresh_jwt),
    )
    .await;
    assert_eq!(delete.status, 200);
    let after = refresh(&pds, &alice.refresh_jwt).await;
    assert_xrpc_error(&after, 400, "ExpiredToken", "Token has been revoked");

    let bob = pds.create_account("bob.test");
    assert!(pds.takedown(&bob.did));
    let down = refresh(&pds, &bob.refresh_jwt).await;
    assert_xrpc_error(&down, 401, "AccountTakedown", "Account has been taken down");
    let access = get_session(&pds, &bob.access_jwt).await;
    assert_xrpc_error(
        &access,
        400,
        "InvalidRequest",
        &format!("Could not find user info for account: {}", bob.did),
    );
    // Sessions stay revoked once the takedown is lifted; access JWTs work.
    assert!(pds.lift_takedown(&bob.did));
    let lifted = refresh(&pds, &bob.refresh_jwt).await;
    assert_xrpc_error(&lifted, 400, "ExpiredToken", "Token has been revoked");
    assert_eq!(get_session(&pds, &bob.access_jwt).await.status, 200);

    let carol = pds.create_account("carol.test");
    assert!(pds.revoke(&carol.refresh_jwt));
    assert!(!pds.revoke(&carol.refresh_jwt));
    assert_eq!(refresh(&pds, &carol.refresh_jwt).await.status, 400);
}

#[tokio::test]
async fn get_session_judges_access_tokens_by_the_injected_clock() {
    let clock = clock();
    let pds = AtprotoMock::builder()
        .clock(clock.now_fn())
        .access_ttl(Duration::from_secs(60))
        .start()
        .await;
    let alice = pds.create_account("alice.test");
    let ok = get_session(&pds, &alice.access_jwt).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["did"], alice.did.as_str());
    assert_eq!(ok.json()["handle"], "alice.test");
    assert_eq!(
        ok.json(),
        json!({"handle": "alice.test", "did": alice.did, "email": "alice@example.test",
               "emailConfirmed": false, "active": true})
    );

    let minted = pds.mint_access_token(&alice.did, clock.now() - Duration::from_secs(1));
    let expired = get_session(&pds, &minted).await;
    assert_xrpc_error(&expired, 400, "ExpiredToken", "Token has expired");

    clock.advance(Duration::from_secs(60));
    let stale = get_session(&pds, &alice.access_jwt).await;
    assert_xrpc_error(&stale, 400, "ExpiredToken", "Token has expired");
    let missing =
        send(reqwest::Client::new().get(format!("{}{GET_SESSION_ROUTE}", pds.url()))).await;
    assert_xrpc_error(&missing, 401, "AuthMissing", "Authentication Required");
    let refresh_token = get_session(&pds, &alice.refresh_jwt).await;
    assert_xrpc_error(&refresh_token, 400, "InvalidToken", "Invalid token type");

    let fresh = refresh(&pds, &alice.refresh_jwt).await.json();
    let again = get_session(&pds, fresh["accessJwt"].as_str().unwrap()).await;
    assert_eq!(again.status, 200);
    assert_eq!(pds.requests(GET_SESSION_ROUTE), 6);
    assert_eq!(pds.refresh_count(), 1);
}

#[tokio::test]
async fn tokens_have_the_reference_shapes() {
    let clock = clock();
    let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
    let alice = pds.create_account("alice.test");
    let now = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    assert_eq!(
        jwt::decode_header(&alice.access_jwt).unwrap(),
        json!({"typ": "at+jwt", "alg": "HS256"})
    );
    let access = jwt::verify(pds.jwt_secret(), &alice.access_jwt).unwrap();
    assert_eq!(access["scope"], "com.atproto.access");
    assert_eq!(access["aud"], "did:web:localhost");
    assert_eq!(access["sub"], alice.did.as_str());
    assert_eq!(access["iat"], now);
    assert_eq!(access["exp"], now + 120 * 60);

    assert_eq!(
        jwt::decode_header(&alice.refresh_jwt).unwrap()["typ"],
        "refresh+jwt"
    );
    let refresh = jwt::verify(pds.jwt_secret(), &alice.refresh_jwt).unwrap();
    assert_eq!(refresh["scope"], "com.atproto.refresh");
    assert_eq!(refresh["exp"], now + 90 * 24 * 60 * 60);
    assert!(refresh["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    assert!(alice.did.starts_with("did:plc:"));
}

#[tokio::test]
async fn create_session_logs_in_with_handle_and_password() {
    let pds = AtprotoMock::start().await;
    let alice = pds.create_account("alice.test");
    let url = format!("{}{CREATE_SESSION_ROUTE}", pds.url());
    let http = reqwest::Client::new();
    let ok = send(
        http.post(&url)
            .json(&json!({"identifier": "alice.test", "password": DEFAULT_PASSWORD})),
    )
    .await;
    assert_eq!(ok.status, 200);
    let session = ok.json();
    assert_eq!(session["did"], alice.did.as_str());
    let mut keys: Vec<_> = session.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accessJwt",
            "active",
            "did",
            "email",
            "emailConfirmed",
            "handle",
            "refreshJwt"
        ]
    );
    assert_eq!(
        refresh(&pds, session["refreshJwt"].as_str().unwrap())
            .await
            .status,
        200
    );

    let wrong = send(
        http.post(&url)
            .json(&json!({"identifier": "alice.test", "password": "nope"})),
    )
    .await;
    assert_xrpc_error(
        &wrong,
        401,
        "AuthenticationRequired",
        "Invalid identifier or password",
    );
    let missing = send(http.post(&url).json(&json!({"identifier": "alice.test"}))).await;
    assert_xrpc_error(
        &missing,
        400,
        "InvalidRequest",
        "Input must have the property \"password\"",
    );
}
