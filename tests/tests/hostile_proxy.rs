//! An HTTP proxy set in the environment counts as leaving the machine: a
//! credential bound for a plain-http loopback URL is refused rather than
//! handed to the proxy in clear text; with the host in `NO_PROXY` it goes
//! direct. Path parameters cannot climb out of the declared path.
//!
//! One test in this file: it changes the process environment, which the
//! HTTP client reads when it is built.

use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::hostile::{HostileServer, Reply};
use serde_json::json;

const REFRESH: &str = "rt-proxy-4Hq";

#[refresh_endpoint(path = "/token", auth = refresh_bearer, envelope = oauth2, response = TokenResponse)]
struct Refresh;

#[refresh_endpoint(path = "/tenants/{tenant}/token", auth = refresh_bearer, envelope = oauth2, response = TokenResponse)]
struct PerTenant {
    #[path]
    tenant: String,
}

fn tokens() -> Reply {
    Reply::json(
        200,
        &json!({"access_token": "at", "token_type": "Bearer", "refresh_token": "rt-2"}),
    )
}

#[tokio::test]
async fn credentials_never_reach_a_proxy_in_clear_and_paths_stay_declared() {
    let provider = HostileServer::start(|_| tokens()).await;
    let proxy = HostileServer::start(|_| tokens()).await;
    let refresh = Secret::new(REFRESH);

    // SAFETY (edition 2024 marks set_var unsafe): this test is alone in its
    // binary, and no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("HTTP_PROXY", proxy.url());
        std::env::set_var("http_proxy", proxy.url());
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let client = Client::new(provider.url()).unwrap();
    let error = Refresh
        .send(&client, &refresh)
        .await
        .expect_err("the refresh token went to the proxy in clear text");
    assert!(
        matches!(
            error.kind(),
            ErrorKind::InsecureUrl {
                through_proxy: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("NO_PROXY"), "{error}");
    assert!(proxy.requests().is_empty(), "the proxy saw the request");
    assert!(provider.requests().is_empty());

    // The user's way out: the loopback host in NO_PROXY — the request goes direct.
    unsafe {
        std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    }
    let client = Client::new(provider.url()).unwrap();
    Refresh.send(&client, &refresh).await.unwrap();
    assert_eq!(provider.requests().len(), 1);
    assert!(proxy.requests().is_empty());

    // `.` and `..` as path parameters would leave the declared path.
    for tenant in [".", ".."] {
        let error = PerTenant {
            tenant: tenant.into(),
        }
        .send(&client, &refresh)
        .await
        .expect_err(tenant);
        assert!(matches!(error.kind(), ErrorKind::Invalid(_)), "{error:?}");
        assert!(error.to_string().contains("`tenant`"), "{error}");
    }
    // Anything else is one encoded segment.
    PerTenant {
        tenant: "../admin".into(),
    }
    .send(&client, &refresh)
    .await
    .unwrap();
    let last = provider.requests().pop().unwrap();
    assert_eq!(last.path, "/tenants/..%2Fadmin/token");
    assert_eq!(provider.requests().len(), 2);
}
