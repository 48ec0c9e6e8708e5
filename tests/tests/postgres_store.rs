//! `PostgresStore`: a PostgreSQL started by the test (`initdb` on a
//! temporary directory, `pg_ctl start` on a free loopback port), the same
//! scenarios as the Redis stores (from `refresh_endpoint_tests::replicas`).
//!
//! Without PostgreSQL installed the tests print why and pass, except under
//! `CI=true`, where they fail (`.ci/run` installs it).

use refresh_endpoint::store::{PostgresStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint_tests::postgres_server::PostgresServer;
use refresh_endpoint_tests::replicas::{self, SharedServer};

/// A replica process, started by the other tests in this file.
#[test]
#[ignore = "a replica process, started by the other tests in this file"]
fn replica_child() {
    replicas::replica_child();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_250_callers_share_one_refresh() {
    let Some(postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    replicas::four_processes_of_250_callers_share_one_refresh(postgres.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_is_taken_over_within_the_grace_period() {
    let Some(postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_is_taken_over_within_the_grace_period(postgres.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again() {
    let Some(postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    replicas::a_killed_lease_holder_with_single_use_tokens_ends_in_sign_in_again(postgres.spec())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compares_and_swaps_on_the_refresh_token() {
    let Some(postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    replicas::the_store_compares_and_swaps_on_the_refresh_token(postgres.spec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_fails_retryably_and_the_session_survives_a_restart() {
    let Some(mut postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    replicas::server_down_fails_retryably_and_the_session_survives_a_restart(&mut postgres).await;
}

/// A table of another name, in another schema, created by the documented
/// statement rather than by the store; many sessions in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_by_the_documented_statement_holds_many_sessions() {
    let Some(postgres) = PostgresServer::start_or_skip() else {
        return;
    };
    // Told not to create it, the store connects without touching the
    // table; the first use names the missing table, with an error a retry
    // cannot fix.
    let store = PostgresStore::builder(postgres.url())
        .table("auth.sessions")
        .create_table(false)
        .connect("k")
        .await
        .expect("connects");
    let error = store.load().await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("42P01"), "{error}");

    let statement = refresh_endpoint::store::CREATE_TABLE
        .replace(refresh_endpoint::store::DEFAULT_TABLE, "auth.sessions");
    run_sql(&postgres, &format!("CREATE SCHEMA auth; {statement}"));
    for n in 0..20 {
        let session = store.for_key(format!("bsky:user{n}"));
        let tokens = Tokens::new(format!("a{n}"), format!("r{n}"));
        assert_eq!(session.save(None, &tokens).await.unwrap(), Saved::Written);
    }
    for n in 0..20 {
        let session = store.for_key(format!("bsky:user{n}"));
        let tokens = session.load().await.unwrap().unwrap();
        assert_eq!(tokens.refresh_token.expose(), format!("r{n}"));
    }
}

/// A server that takes TLS connections only: the store reaches it with
/// `sslmode=require` and the private CA, through rustls, and runs the
/// whole contract there; without the CA, or without TLS, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let Some(postgres) = PostgresServer::start_tls_or_skip() else {
        return;
    };
    replicas::the_store_compares_and_swaps_on_the_refresh_token(postgres.spec()).await;
    let url = postgres.url();
    let without_ca = PostgresStore::connect(&url, "k").await.unwrap_err();
    assert!(without_ca.is_retryable(), "{without_ca}");
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let refused = PostgresStore::builder(&plain)
        .ca_pem(postgres.tls().unwrap().ca_pem.as_bytes())
        .connect("k")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("pg_hba"), "{refused}");
}

/// Runs SQL through the store's own driver (no psql needed).
fn run_sql(postgres: &PostgresServer, sql: &str) {
    let url = postgres.url();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute(&sql).await.unwrap();
            });
    })
    .join()
    .unwrap();
}
