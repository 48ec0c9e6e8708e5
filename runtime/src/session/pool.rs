//! [`Sessions`]: many accounts' sessions in one process, loaded on demand,
//! refreshed one flight per key, evicted when idle.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::broadcast;

use super::{RefreshEndpoint, Session, SessionBuilder, Status};
use crate::clock;
use crate::store::{MemoryStore, Saved, Store};
use crate::tokens::Tokens;
use crate::{ApiError, Client, Error, ErrorKind, Secret};

/// The default number of sessions a pool keeps in memory.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Shards of the key map: callers of different keys rarely meet on a lock.
const SHARDS: usize = 64;

/// A session that was signed out, from [`Sessions::sign_outs`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedOut<K> {
    /// Whose session it was.
    pub key: K,
    /// The provider's reason, when it gave one.
    pub reason: Option<ApiError>,
}

/// Where each key's tokens live: a function from a key to its [`Store`]
/// (a file per key, a Redis or PostgreSQL row per key), or [`MemoryStores`].
pub trait StoreFor<K>: Send + Sync + 'static {
    /// The store of `key`'s tokens. Called when the key's session is loaded.
    fn store_for(&self, key: &K) -> Arc<dyn Store>;
}

impl<K, F, S> StoreFor<K> for F
where
    F: Fn(&K) -> S + Send + Sync + 'static,
    S: Store,
{
    fn store_for(&self, key: &K) -> Arc<dyn Store> {
        Arc::new(self(key))
    }
}

/// One [`MemoryStore`] per key, kept for the life of the process: a pool's
/// default, and what evicted sessions are reloaded from.
pub struct MemoryStores<K> {
    stores: Mutex<HashMap<K, MemoryStore>>,
}

impl<K> Default for MemoryStores<K> {
    fn default() -> Self {
        MemoryStores {
            stores: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> StoreFor<K> for MemoryStores<K> {
    fn store_for(&self, key: &K) -> Arc<dyn Store> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::new(stores.entry(key.clone()).or_default().clone())
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> StoreFor<K> for Arc<MemoryStores<K>> {
    fn store_for(&self, key: &K) -> Arc<dyn Store> {
        (**self).store_for(key)
    }
}

type Load<E> = Shared<BoxFuture<'static, Result<Session<E>, Error>>>;

enum Slot<E: RefreshEndpoint> {
    /// Being loaded from the store: every caller awaits the same load.
    Loading(Load<E>),
    /// Loaded; `used` is when it was last handed out (coarse milliseconds).
    Ready {
        session: Session<E>,
        used: AtomicU64,
    },
}

type Shard<K, E> = Mutex<HashMap<K, Slot<E>>>;

struct Pool<K, E: RefreshEndpoint> {
    client: Client,
    endpoint: Box<dyn Fn(&K) -> E + Send + Sync>,
    stores: Box<dyn StoreFor<K>>,
    configure: Box<dyn Fn(SessionBuilder<E>) -> SessionBuilder<E> + Send + Sync>,
    hasher: RandomState,
    shards: Box<[Shard<K, E>]>,
    /// Slots in all shards.
    count: AtomicUsize,
    capacity: usize,
    sign_outs: broadcast::Sender<SignedOut<K>>,
}

/// Keeps the sessions of many accounts — a backend refreshing its users'
/// Clerk sessions, an app server holding thousands of Bluesky accounts —
/// behind one map, with one shared [`Client`].
///
/// - **Get or load.** [`Sessions::get`] hands out the key's [`Session`],
///   loading it from the key's store on first use; however many callers ask
///   at once, the store is read once.
/// - **One refresh per key.** Each key has one session in the pool, so one
///   refresh flight (and, with a shared store's lease, one across the fleet).
/// - **Bounded memory.** Beyond the capacity, the sessions idle the longest
///   are dropped. Nothing is lost: a session saves every rotated token to
///   its store before handing it out, and a session that is refreshing,
///   holds unsaved tokens, or is still held by a caller is never evicted.
/// - **Independent keys.** A sign-out ends that key's session only; the pool
///   forgets it and tells [`Sessions::sign_outs`].
///
/// ```
/// use refresh_endpoint::providers::oauth2::TokenResponse;
/// use refresh_endpoint::session::{MemoryStores, Sessions};
/// use refresh_endpoint::{Client, Secret, refresh_endpoint, tokens::Tokens};
///
/// #[refresh_endpoint(path = "/oauth/token", auth = body, body = form,
///                    envelope = oauth2, response = TokenResponse)]
/// #[derive(Clone)]
/// struct Refresh {
///     grant_type: &'static str,
///     #[refresh_token]
///     refresh_token: Secret,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), refresh_endpoint::Error> {
/// let client = Client::new("https://auth.example.com")?;
/// let sessions = Sessions::builder(client, |_user: &u64| Refresh {
///     grant_type: "refresh_token",
///     refresh_token: Secret::new(""),
/// })
/// .stores(MemoryStores::default())
/// .capacity(10_000)
/// .build();
/// sessions.sign_in(42, Tokens::new("access-42", "refresh-42")).await?;
/// assert_eq!(sessions.access_token(&42).await?.expose(), "access-42");
/// assert!(sessions.get(&7).await.unwrap_err().is_terminal()); // never signed in
/// # Ok(()) }
/// ```
pub struct Sessions<K, E: RefreshEndpoint> {
    inner: Arc<Pool<K, E>>,
}

impl<K, E: RefreshEndpoint> Clone for Sessions<K, E> {
    fn clone(&self) -> Self {
        Sessions {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, E> Sessions<K, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    E: RefreshEndpoint,
{
    /// Starts building a pool whose sessions refresh through `client` with
    /// the endpoint `endpoint(key)` makes (the `#[refresh_token]` is filled
    /// in by the session).
    pub fn builder(
        client: Client,
        endpoint: impl Fn(&K) -> E + Send + Sync + 'static,
    ) -> SessionsBuilder<K, E> {
        SessionsBuilder {
            client,
            endpoint: Box::new(endpoint),
            stores: None,
            configure: Box::new(|builder| builder),
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The session of `key`, loaded from its store if it is not in memory.
    /// Fails with [`ErrorKind::SignInAgain`] when the store holds no tokens
    /// for `key`, with a retryable error when the store cannot be reached.
    pub async fn get(&self, key: &K) -> Result<Session<E>, Error> {
        let load = {
            let mut shard = self.inner.shard(key);
            match shard.get(key) {
                Some(Slot::Ready { session, used }) => {
                    used.store(now_ms(), Ordering::Relaxed);
                    return Ok(session.clone());
                }
                Some(Slot::Loading(load)) => load.clone(),
                None => {
                    let load = Pool::load(Arc::downgrade(&self.inner), key.clone());
                    shard.insert(key.clone(), Slot::Loading(load.clone()));
                    self.inner.count.fetch_add(1, Ordering::Relaxed);
                    load
                }
            }
        };
        load.await
    }

    /// A valid access token for `key`; see [`Session::access_token`].
    pub async fn access_token(&self, key: &K) -> Result<Secret, Error> {
        self.get(key).await?.access_token().await
    }

    /// Stores the tokens of a new sign-in for `key` (replacing whatever its
    /// store held) and returns its session.
    pub async fn sign_in(&self, key: K, tokens: Tokens) -> Result<Session<E>, Error> {
        let store = self.inner.stores.store_for(&key);
        let mut expected = store.load().await?.map(|stored| stored.refresh_token);
        loop {
            match store.save(expected.as_ref(), &tokens).await? {
                Saved::Written => break,
                Saved::Conflict(current) => expected = current.map(|t| t.refresh_token),
            }
        }
        self.inner.remove(&mut self.inner.shard(&key), &key);
        self.get(&key).await
    }

    /// Forgets `key`'s session in memory (its store keeps the tokens; the
    /// next [`Sessions::get`] loads it again).
    pub fn evict(&self, key: &K) {
        self.inner.remove(&mut self.inner.shard(key), key);
    }

    /// Every sign-out in the pool, as it happens, with its key.
    pub fn sign_outs(&self) -> broadcast::Receiver<SignedOut<K>> {
        self.inner.sign_outs.subscribe()
    }

    /// How many sessions are in memory (loaded or loading).
    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// Whether no session is in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client every session shares.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl<K, E> Pool<K, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    E: RefreshEndpoint,
{
    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, Slot<E>>> {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    /// The one load of `key`: builds its session from its store and puts it
    /// in the map (or removes the slot on failure).
    fn load(pool: Weak<Self>, key: K) -> Load<E> {
        async move {
            let Some(this) = pool.upgrade() else {
                return Err(ErrorKind::Invalid("the session pool was dropped".into()).into());
            };
            let builder = Session::builder(this.client.clone(), (this.endpoint)(&key))
                .shared_store(this.stores.store_for(&key));
            let result = (this.configure)(builder).build().await;
            let mut shard = this.shard(&key);
            match &result {
                Ok(session) => {
                    shard.insert(
                        key.clone(),
                        Slot::Ready {
                            session: session.clone(),
                            used: AtomicU64::new(now_ms()),
                        },
                    );
                    this.evict_idle(&mut shard);
                    drop(shard);
                    this.watch(key, session);
                }
                Err(_) => {
                    if matches!(shard.get(&key), Some(Slot::Loading(_))) {
                        this.remove(&mut shard, &key);
                    }
                }
            }
            result
        }
        .boxed()
        .shared()
    }

    fn remove(&self, shard: &mut HashMap<K, Slot<E>>, key: &K) {
        if shard.remove(key).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Past the capacity, drops the idle sessions of this shard that were
    /// used the longest ago: an eighth of the shard at least, so that the
    /// scan is paid once per many inserts.
    fn evict_idle(&self, shard: &mut HashMap<K, Slot<E>>) {
        let count = self.count.load(Ordering::Relaxed);
        if count <= self.capacity {
            return;
        }
        let target = (count - self.capacity)
            .max(shard.len() / 8)
            .min(shard.len());
        let mut idle: Vec<(u64, &K)> = shard
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready { session, used } if session.is_idle() => {
                    Some((used.load(Ordering::Relaxed), key))
                }
                _ => None,
            })
            .collect();
        if idle.len() > target {
            idle.select_nth_unstable_by_key(target, |(used, _)| *used);
            idle.truncate(target);
        }
        let evict: Vec<K> = idle.into_iter().map(|(_, key)| key.clone()).collect();
        for key in evict {
            self.remove(shard, &key);
        }
    }

    /// Forwards the session's sign-out to the pool's stream and forgets it.
    /// The task ends with the session (its status sender is dropped).
    fn watch(self: &Arc<Self>, key: K, session: &Session<E>) {
        let mut status = session.watch_status();
        let pool = Arc::downgrade(self);
        let id = session.id();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let Status::SignedOut(reason) = status.borrow_and_update().clone() else {
                    continue;
                };
                if let Some(pool) = pool.upgrade() {
                    let mut shard = pool.shard(&key);
                    if matches!(shard.get(&key), Some(Slot::Ready { session, .. }) if session.id() == id)
                    {
                        pool.remove(&mut shard, &key);
                    }
                    drop(shard);
                    let _ = pool.sign_outs.send(SignedOut { key, reason });
                }
                return;
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    clock::coarse_unix_nanos() / 1_000_000
}

impl<K, E: RefreshEndpoint> fmt::Debug for Sessions<K, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("endpoint", &E::NAME)
            .finish_non_exhaustive()
    }
}

/// Builds [`Sessions`]; see [`Sessions::builder`].
#[must_use]
pub struct SessionsBuilder<K, E: RefreshEndpoint> {
    client: Client,
    endpoint: Box<dyn Fn(&K) -> E + Send + Sync>,
    stores: Option<Box<dyn StoreFor<K>>>,
    configure: Box<dyn Fn(SessionBuilder<E>) -> SessionBuilder<E> + Send + Sync>,
    capacity: usize,
}

impl<K, E> SessionsBuilder<K, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    E: RefreshEndpoint,
{
    /// Where each key's tokens live: [`MemoryStores`] (the default), or a
    /// function from a key to its store, such as
    /// `|user: &String| FileStore::new(dir.join(format!("{user}.json")))`.
    pub fn stores(mut self, stores: impl StoreFor<K>) -> Self {
        self.stores = Some(Box::new(stores));
        self
    }

    /// The most sessions kept in memory; idle ones beyond it are dropped
    /// (their tokens stay in their stores). Default [`DEFAULT_CAPACITY`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Settings for every session (clock, skew, retries, …), applied to each
    /// session's builder before it is loaded.
    pub fn configure(
        mut self,
        configure: impl Fn(SessionBuilder<E>) -> SessionBuilder<E> + Send + Sync + 'static,
    ) -> Self {
        self.configure = Box::new(configure);
        self
    }

    /// Builds the pool.
    pub fn build(self) -> Sessions<K, E> {
        let shards = SHARDS.min(self.capacity.div_ceil(16)).max(1);
        let (sign_outs, _) = broadcast::channel(1024);
        Sessions {
            inner: Arc::new(Pool {
                client: self.client,
                endpoint: self.endpoint,
                stores: self
                    .stores
                    .unwrap_or_else(|| Box::new(MemoryStores::<K>::default())),
                configure: self.configure,
                hasher: RandomState::new(),
                shards: (0..shards).map(|_| Mutex::default()).collect(),
                count: AtomicUsize::new(0),
                capacity: self.capacity,
                sign_outs,
            }),
        }
    }
}
