//! Several processes sharing one Bluesky session through `RedisStore` on a
//! standalone `redis-server` started by the tests on a free loopback port;
//! the scenarios are in `refresh_endpoint_tests::replicas`, shared with the
//! TLS, cluster and PostgreSQL tests.
//!
//! Without `redis-server` installed the tests print why and pass, except
//! under `CI=true`, where they fail (`.ci/run` installs it).

use refresh_endpoint::store::RedisStore;
use refresh_endpoint_tests::redis_server::RedisServer;
use refresh_endpoint_tests::replicas::{self, SharedServer};

/// A replica process, started by the other tests in this file.
#[test]
#[ignore = "a replica process, started by the other tests in this file"]
fn replica_child() {
    replicas::replica_child();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_250_callers_share_one_refresh() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    replicas::four_processes_of_250_callers_share_one_refresh(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_is_taken_over_within_the_grace_period() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_is_taken_over_within_the_grace_period(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again(redis.spec())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compares_and_swaps_on_the_refresh_token() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let store = RedisStore::connect(&redis.url(), "k")
        .await
        .unwrap()
        .prefix("test:");
    assert_eq!(store.tokens_key(), "test:{k}:tokens");
    assert_eq!(store.lease_key(), "test:{k}:lease");
    assert!(!store.is_cluster());
    replicas::the_store_compares_and_swaps_on_the_refresh_token(redis.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_retryably_and_the_session_survives_a_restart() {
    let Some(mut redis) = RedisServer::start_or_skip() else {
        return;
    };
    replicas::server_down_fails_retryably_and_the_session_survives_a_restart(&mut redis).await;
}
