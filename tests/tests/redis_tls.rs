//! `RedisStore` over TLS (`rediss://`): a `redis-server` that speaks TLS
//! only (`--port 0 --tls-port P`), with a certificate from a throw-away CA
//! made by the test (rcgen), asking for a client certificate (mutual TLS),
//! and an ACL user whose name and password are in the URL. The same
//! scenarios as the standalone tests, from `refresh_endpoint_tests::replicas`.

use refresh_endpoint::store::RedisStore;
use refresh_endpoint_tests::redis_server::{RedisServer, TLS_PASSWORD};
use refresh_endpoint_tests::replicas::{self, SharedServer};

/// A replica process, started by the other tests in this file.
#[test]
#[ignore = "a replica process, started by the other tests in this file"]
fn replica_child() {
    replicas::replica_child();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_250_callers_share_one_refresh() {
    let Some(redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    replicas::four_processes_of_250_callers_share_one_refresh(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_is_taken_over_within_the_grace_period() {
    let Some(redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_is_taken_over_within_the_grace_period(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again() {
    let Some(redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again(redis.spec())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compares_and_swaps_on_the_refresh_token() {
    let Some(redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    replicas::the_store_compares_and_swaps_on_the_refresh_token(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_retryably_and_the_session_survives_a_restart() {
    let Some(mut redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    replicas::server_down_fails_retryably_and_the_session_survives_a_restart(&mut redis).await;
}

/// The server is only trusted through the CA it was given, and the server
/// only lets in clients with a certificate and the right ACL password; no
/// failure names the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_the_ca_the_client_certificate_and_the_acl_password() {
    let Some(redis) = RedisServer::start_tls_or_skip() else {
        return;
    };
    let tls = redis.tls().unwrap();
    let url = redis.url();
    let ok = |url: &str| {
        RedisStore::builder(url)
            .ca_pem(tls.ca_pem.as_bytes())
            .client_cert_pem(
                tls.client_cert_pem.as_bytes(),
                tls.client_key_pem.as_bytes(),
            )
    };
    let store = ok(&url).connect("k").await.expect("all three given");
    use refresh_endpoint::store::Store;
    assert_eq!(store.load().await.unwrap(), None);

    let failures = [
        // The system's roots do not hold the throw-away CA.
        RedisStore::builder(&url)
            .client_cert_pem(
                tls.client_cert_pem.as_bytes(),
                tls.client_key_pem.as_bytes(),
            )
            .connect("k")
            .await,
        // No client certificate: the server hangs up.
        RedisStore::builder(&url)
            .ca_pem(tls.ca_pem.as_bytes())
            .connect("k")
            .await,
        // Plain text to a TLS port.
        RedisStore::connect(&url.replacen("rediss://", "redis://", 1), "k").await,
        // A wrong password.
        ok(&url.replace(TLS_PASSWORD, "wrong-password-9"))
            .connect("k")
            .await,
    ];
    for (i, failure) in failures.into_iter().enumerate() {
        let error = failure.expect_err("refused");
        let text = error.to_string();
        assert!(text.starts_with("token store: redis store:"), "{i}: {text}");
        assert!(!text.contains(TLS_PASSWORD), "{i}: {text}");
        assert!(!text.contains("wrong-password-9"), "{i}: {text}");
    }
}
