//! `RedisStore` on a Redis Cluster (`redis+cluster://`): three
//! `redis-server --cluster-enabled yes` on free loopback ports joined with
//! `redis-cli --cluster create`, the same scenarios as the standalone tests
//! (from `refresh_endpoint_tests::replicas`), and a primary failover.

use std::sync::Arc;
use std::time::Duration;

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::retry::RetryPolicy;
use refresh_endpoint::session::{Session, Status};
use refresh_endpoint::store::{RedisStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, ErrorKind};
use refresh_endpoint_testkit::{AtprotoMock, Now};
use refresh_endpoint_tests::redis_server::RedisCluster;
use refresh_endpoint_tests::replicas::{self, RefreshSession, SharedServer};

/// A replica process, started by the other tests in this file.
#[test]
#[ignore = "a replica process, started by the other tests in this file"]
fn replica_child() {
    replicas::replica_child();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_250_callers_share_one_refresh() {
    let Some(cluster) = RedisCluster::start_or_skip(false) else {
        return;
    };
    replicas::four_processes_of_250_callers_share_one_refresh(cluster.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_is_taken_over_within_the_grace_period() {
    let Some(cluster) = RedisCluster::start_or_skip(false) else {
        return;
    };
    replicas::a_killed_lease_holder_is_taken_over_within_the_grace_period(cluster.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again() {
    let Some(cluster) = RedisCluster::start_or_skip(false) else {
        return;
    };
    replicas::a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again(cluster.spec())
        .await;
}

/// The contract, for sessions whose keys land on every node: each session's
/// two keys share a slot (no `CROSSSLOT`), and redirections are followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compares_and_swaps_on_the_refresh_token() {
    let Some(cluster) = RedisCluster::start_or_skip(false) else {
        return;
    };
    replicas::the_store_compares_and_swaps_on_the_refresh_token(cluster.spec()).await;
    let store = RedisStore::connect(&cluster.url(), "bsky:alice")
        .await
        .unwrap();
    assert!(store.is_cluster());
    assert_eq!(store.tokens_key(), "refresh-endpoint:{bsky:alice}:tokens");
    let mut primaries = std::collections::HashSet::new();
    for n in 0..24 {
        let key = format!("bsky:user{n}");
        primaries.insert(cluster.primary_of(&key).unwrap());
        let store = store.for_key(&key);
        let tokens = Tokens::new(format!("a{n}"), format!("r{n}"));
        assert_eq!(store.save(None, &tokens).await.unwrap(), Saved::Written);
        let refresh_endpoint::store::Lease::Acquired(guard) = store.lease(&tokens).await.unwrap()
        else {
            panic!("granted");
        };
        guard.release().await;
        assert_eq!(store.load().await.unwrap(), Some(tokens));
    }
    assert_eq!(
        primaries.len(),
        3,
        "the sessions are spread over every primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_down_fails_retryably_and_the_session_survives_a_restart() {
    let Some(mut cluster) = RedisCluster::start_or_skip(false) else {
        return;
    };
    replicas::server_down_fails_retryably_and_the_session_survives_a_restart(&mut cluster).await;
}

/// The primary serving the session's slot is killed; its replica takes
/// over after the cluster's node timeout (1 s). Meanwhile calls fail with
/// retryable errors and nobody is signed out; then the session refreshes
/// once on the new primary, which holds the tokens the old one had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_gives_retryable_errors_then_carries_on() {
    let Some(mut cluster) = RedisCluster::start_or_skip(true) else {
        return;
    };
    let clock = Arc::new(ManualClock::starting_now());
    let for_mock = Arc::clone(&clock);
    let now: Now = Arc::new(move || for_mock.now());
    let mock = AtprotoMock::builder()
        .clock(now)
        .grace_period(Duration::ZERO)
        .start()
        .await;
    let account = mock.create_account("alice.test");
    let tokens = Tokens::new(account.access_jwt.as_str(), account.refresh_jwt.as_str());
    let store = RedisStore::connect(&cluster.url(), "bsky:alice")
        .await
        .unwrap();
    let session = Session::builder(Client::new(mock.url()).unwrap(), RefreshSession)
        .tokens(tokens)
        .store(store.clone())
        .clock(clock.clone())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3 * 3600));
    let first = session.access_token().await.unwrap();
    assert_eq!(mock.refresh_count(), 1);

    let primary = cluster.primary_of(store.tokens_key()).unwrap();
    cluster.wait_replicated(primary).unwrap();
    cluster.kill(primary);
    clock.advance(Duration::from_secs(3 * 3600));
    let mut failures = 0;
    let token = loop {
        match session.access_token().await {
            Ok(token) => break token,
            Err(error) => {
                assert!(
                    matches!(
                        error.kind(),
                        ErrorKind::Store {
                            retryable: true,
                            ..
                        }
                    ),
                    "{error}"
                );
                assert_eq!(session.status(), Status::Active);
                failures += 1;
                assert!(failures < 200, "no new primary: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_ne!(token, first);
    assert_eq!(mock.refresh_count(), 2, "one refresh, after the failover");
    assert_ne!(cluster.primary_of(store.tokens_key()).unwrap(), primary);
    assert_eq!(store.load().await.unwrap().unwrap().access_token, token);
    println!("{failures} retryable failures during the failover");
}
