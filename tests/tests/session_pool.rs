//! A pool of sessions for many accounts: one load and one refresh per key
//! however many callers, eviction that never loses a rotated token, and
//! sign-outs that touch only their own key. Real HTTP to the OAuth 2.0 mock,
//! whose refresh tokens are strictly single-use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use refresh_endpoint::clock::{Clock, ManualClock};
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::{MemoryStores, Sessions, StoreFor};
use refresh_endpoint::store::{FileStore, Store};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, Secret, refresh_endpoint};
use refresh_endpoint_testkit::{OAuth2Mock, OAuth2Tokens};

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
#[derive(Clone)]
struct Refresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
    client_secret: Secret,
}

struct Setup {
    mock: OAuth2Mock,
    clock: Arc<ManualClock>,
    stores: Arc<MemoryStores<u32>>,
}

async fn setup() -> Setup {
    let clock = Arc::new(ManualClock::starting_now());
    let mock_clock = Arc::clone(&clock);
    let mock = OAuth2Mock::builder()
        .clock(Arc::new(move || mock_clock.now()))
        .start()
        .await;
    Setup {
        mock,
        clock,
        stores: Arc::new(MemoryStores::default()),
    }
}

impl Setup {
    fn pool(&self, capacity: usize) -> Sessions<u32, Refresh> {
        let (id, secret) = (
            self.mock.client_id().to_owned(),
            self.mock.client_secret().to_owned(),
        );
        let clock = Arc::clone(&self.clock);
        // A long timeout: a refresh answer lost to a timeout on a loaded CI
        // machine would be retried with the spent single-use token.
        let client = Client::builder(self.mock.url())
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        Sessions::builder(client, move |_| Refresh {
            grant_type: "refresh_token",
            refresh_token: Secret::new(""),
            client_id: id.clone(),
            client_secret: Secret::new(secret.as_str()),
        })
        .stores(Arc::clone(&self.stores))
        .capacity(capacity)
        .configure(move |builder| builder.clock(clock.clone()))
        .build()
    }

    /// Tokens for a new sign-in whose access token expired a second ago.
    fn expired(&self, issued: &OAuth2Tokens) -> Tokens {
        Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str())
            .with_access_expires_at(self.clock.now() - Duration::from_secs(1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_each_refresh_once_for_all_their_callers() {
    const KEYS: u32 = 10_000;
    const CALLERS: usize = 3;
    let setup = setup().await;
    let pool = setup.pool(KEYS as usize);
    for key in 0..KEYS {
        let tokens = setup.expired(&setup.mock.issue_tokens());
        setup
            .stores
            .store_for(&key)
            .save(None, &tokens)
            .await
            .unwrap();
    }
    // Waves of 1,000 keys × 3 callers at once: every caller of a wave
    // awaits the same refresh as the other callers of its key.
    let mut seen: HashMap<u32, Secret> = HashMap::new();
    for wave in 0..KEYS / 1_000 {
        let mut tasks = tokio::task::JoinSet::new();
        for key in wave * 1_000..(wave + 1) * 1_000 {
            for _ in 0..CALLERS {
                let pool = pool.clone();
                tasks.spawn(async move { (key, pool.access_token(&key).await) });
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let (key, token) = joined.unwrap();
            let token = token.unwrap_or_else(|e| panic!("key {key}: {e}"));
            if let Some(first) = seen.insert(key, token.clone()) {
                assert_eq!(first, token, "key {key}: callers got different tokens");
            }
        }
    }
    assert_eq!(seen.len(), KEYS as usize);
    assert_eq!(
        setup.mock.refresh_count(),
        KEYS as usize,
        "one refresh per key"
    );
    assert_eq!(pool.len(), KEYS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_per_key_however_many_callers() {
    /// Counts loads.
    struct Counting(Arc<MemoryStores<u32>>, Arc<std::sync::atomic::AtomicUsize>);
    impl StoreFor<u32> for Counting {
        fn store_for(&self, key: &u32) -> Arc<dyn Store> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.store_for(key)
        }
    }
    let setup = setup().await;
    let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let issued = setup.mock.issue_tokens();
    let tokens = Tokens::new(issued.access_token.as_str(), issued.refresh_token.as_str());
    setup
        .stores
        .store_for(&1)
        .save(None, &tokens)
        .await
        .unwrap();
    let pool = Sessions::builder(Client::new(setup.mock.url()).unwrap(), |_: &u32| Refresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new(""),
        client_id: String::new(),
        client_secret: Secret::new(""),
    })
    .stores(Counting(Arc::clone(&setup.stores), Arc::clone(&loads)))
    .build();
    let calls = (0..500).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { pool.access_token(&1).await.unwrap() })
    });
    for call in calls {
        assert_eq!(call.await.unwrap().expose(), issued.access_token);
    }
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(setup.mock.refresh_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_under_pressure_never_loses_a_rotated_token() {
    const KEYS: u32 = 1_000;
    let setup = setup().await;
    let pool = setup.pool(100);
    let mut sign_outs = pool.sign_outs();
    for key in 0..KEYS {
        pool.sign_in(key, setup.expired(&setup.mock.issue_tokens()))
            .await
            .unwrap();
    }
    assert!(pool.len() <= 100, "{} sessions kept", pool.len());
    // Three rounds over every key, each after the access tokens expired:
    // each refresh spends a single-use refresh token, so a session reloaded
    // with an older one than its store's latest would be signed out.
    for round in 0..3 {
        for key in 0..KEYS {
            let session = pool.get(&key).await.unwrap();
            let token = session.access_token().await;
            assert!(token.is_ok(), "round {round}, key {key}: {token:?}");
        }
        assert!(pool.len() <= 100, "{} sessions kept", pool.len());
        setup.clock.advance(Duration::from_secs(2 * 3600));
    }
    assert_eq!(setup.mock.refresh_count(), 3 * KEYS as usize);
    assert!(sign_outs.try_recv().is_err(), "someone was signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_ends_one_key_only_and_is_announced() {
    let setup = setup().await;
    let pool = setup.pool(1_000);
    let mut sign_outs = pool.sign_outs();
    let mut issued = Vec::new();
    for key in 0..10 {
        let tokens = setup.mock.issue_tokens();
        pool.sign_in(key, setup.expired(&tokens)).await.unwrap();
        issued.push(tokens);
    }
    assert!(setup.mock.revoke(&issued[3].refresh_token));
    let error = pool.access_token(&3).await.unwrap_err();
    assert!(error.is_terminal(), "{error:?}");
    let event = sign_outs.recv().await.unwrap();
    assert_eq!(event.key, 3);
    assert!(event.reason.is_some());
    for key in (0..10).filter(|k| *k != 3) {
        pool.access_token(&key).await.unwrap();
    }
    // The key's store was cleared: the pool cannot load it until a new sign-in.
    assert!(pool.get(&3).await.unwrap_err().is_terminal());
    let again = setup.mock.issue_tokens();
    pool.sign_in(3, setup.expired(&again)).await.unwrap();
    pool.access_token(&3).await.unwrap();
    assert!(sign_outs.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_files_backs_a_pool() {
    let setup = setup().await;
    let dir = std::env::temp_dir().join(format!("re-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (id, secret) = (
        setup.mock.client_id().to_owned(),
        setup.mock.client_secret().to_owned(),
    );
    let files = dir.clone();
    let clock = Arc::clone(&setup.clock);
    let pool = Sessions::builder(Client::new(setup.mock.url()).unwrap(), move |_: &String| {
        Refresh {
            grant_type: "refresh_token",
            refresh_token: Secret::new(""),
            client_id: id.clone(),
            client_secret: Secret::new(secret.as_str()),
        }
    })
    .stores(move |user: &String| FileStore::new(files.join(format!("{user}.json"))))
    .capacity(2)
    .configure(move |builder| builder.clock(clock.clone()))
    .build();
    for user in ["ann", "bob", "cy", "dee"] {
        pool.sign_in(user.to_owned(), setup.expired(&setup.mock.issue_tokens()))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        for user in ["ann", "bob", "cy", "dee"] {
            pool.access_token(&user.to_owned()).await.unwrap();
        }
        setup.clock.advance(Duration::from_secs(2 * 3600));
    }
    assert_eq!(setup.mock.refresh_count(), 8);
    assert!(dir.join("cy.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
