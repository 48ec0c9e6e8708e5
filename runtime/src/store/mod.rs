//! [`Store`]: where a session's tokens survive restarts.
//!
//! [`MemoryStore`] keeps them for the life of the process (and lets several
//! sessions share them); [`FileStore`] writes them atomically to a file;
//! `RedisStore` (feature `redis`) and `PostgresStore` (feature `postgres`)
//! share them between processes and let only one of them refresh at a time.

mod file;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use file::{DEFAULT_LOCK_TIMEOUT, FileStore};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{CREATE_TABLE, DEFAULT_TABLE, PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_PREFIX, RedisStore, RedisStoreBuilder};

#[cfg(any(feature = "redis", feature = "postgres"))]
pub use shared::{DEFAULT_LEASE_TTL, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT};
#[cfg(any(feature = "redis", feature = "postgres"))]
use shared::{FIRST_POLL, holder_token, json_error_kind};

/// What the shared stores (Redis, PostgreSQL) have in common: the lease's
/// defaults and holder tokens.
#[cfg(any(feature = "redis", feature = "postgres"))]
mod shared {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// How long a shared store's lease lives unless its holder extends it.
    /// The holder extends it every third of this while it refreshes, so this
    /// is how long a crashed holder blocks the others, not a limit on the
    /// refresh.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
    /// How long [`Store::lease`](super::Store::lease) waits for another
    /// process's refresh.
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(45);
    /// How often a waiting process looks at the store again, at most: it
    /// starts at 2 ms and doubles up to this.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(25);
    /// The first wait between two looks.
    pub(super) const FIRST_POLL: Duration = Duration::from_millis(2);

    /// A lease holder token no other process or call will draw: this
    /// process's id, then 128 random bits.
    pub(super) fn holder_token() -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let random = |salt: u64| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed) ^ salt);
            hasher.finish()
        };
        format!(
            "{}.{:016x}{:016x}",
            std::process::id(),
            random(0),
            random(u64::MAX)
        )
    }

    /// What kind of JSON error, without the input (which holds tokens).
    pub(super) fn json_error_kind(error: &serde_json::Error) -> &'static str {
        match error.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "wrong fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

use futures_util::future::{BoxFuture, FutureExt};

use crate::tokens::Tokens;
use crate::{Error, Secret};

/// What [`Store::save`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// The tokens were written.
    Written,
    /// The store held another refresh token than expected: someone else
    /// refreshed first. These are the tokens it holds (`None`: it was cleared).
    Conflict(Option<Tokens>),
}

/// Persists one session's tokens, with compare-and-swap on the refresh token.
///
/// `save` writes only if the stored refresh token is `expected` (or the
/// store is empty when `expected` is `None`), so a stale writer can never
/// overwrite a newer refresh token. Implementations must make each write
/// atomic: a reader sees the old tokens or the new ones, never a mix.
pub trait Store: Send + Sync + 'static {
    /// The stored tokens, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>>;

    /// Writes `tokens` if the stored refresh token is `expected`.
    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>>;

    /// Removes the tokens if the stored refresh token is still `expected`
    /// (a newer session written by another process is kept).
    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>>;

    /// Takes the right to refresh `current` across every process that shares
    /// this store. A store used by one process grants it at once (the session
    /// already runs one refresh at a time); a shared store waits while
    /// another process holds it and answers [`Lease::Refreshed`] when that
    /// process stored newer tokens meanwhile.
    fn lease<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Lease, Error>> {
        let _ = current;
        async { Ok(Lease::Acquired(Box::new(LocalLease))) }.boxed()
    }
}

/// The answer of [`Store::lease`].
pub enum Lease {
    /// This process may refresh; it releases the guard once the result is saved.
    Acquired(Box<dyn LeaseGuard>),
    /// Another process refreshed while this one waited: the stored tokens.
    Refreshed(Tokens),
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lease::Acquired(_) => f.write_str("Lease::Acquired"),
            Lease::Refreshed(tokens) => f.debug_tuple("Lease::Refreshed").field(tokens).finish(),
        }
    }
}

/// Held while this process refreshes; see [`Store::lease`].
pub trait LeaseGuard: Send {
    /// Gives the lease up. A holder that dies without releasing loses the
    /// lease when it expires.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The lease of a store that only one process uses: nothing to hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLease;

impl LeaseGuard for LocalLease {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}
