use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, Script, ScriptInvocation};

use super::{Lease, LeaseGuard, Saved, Store};
use crate::error::redact;
use crate::tokens::Tokens;
use crate::{Error, ErrorKind, Secret};

/// The default key prefix, so the store's keys are easy to find and
/// cannot collide with an application's own.
pub const DEFAULT_PREFIX: &str = "refresh-endpoint:";
/// How long a lease lives in Redis unless its holder extends it. The holder
/// extends it every third of this while it refreshes, so this is how long a
/// crashed holder blocks the others, not a limit on the refresh.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// How long [`Store::lease`] waits for another process's refresh.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(45);
/// How often a waiting process looks at Redis again, at most: it starts at
/// 2 ms and doubles up to this.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The first wait between two looks.
const FIRST_POLL: Duration = Duration::from_millis(2);

/// Keeps a session's tokens in Redis and coordinates its refreshes across
/// every process that uses the same key: several replicas of a service, a
/// fleet of workers, a CLI next to a daemon.
///
/// Behind the `redis` feature. Two Redis keys per session:
///
/// - `{prefix}{key}:tokens`: the [`Tokens`] as JSON (the same shape as
///   [`FileStore`](super::FileStore)'s file).
/// - `{prefix}{key}:lease`: who may refresh right now (a random holder token
///   starting with the holder's process id), with an expiry.
///
/// Every write is one Lua script, so it is atomic in Redis:
///
/// - [`save`](Store::save) compares the stored refresh token with the
///   expected one (or checks the key is absent) and only then writes: a
///   process that refreshed with an old token can never overwrite a newer one.
/// - [`clear`](Store::clear) deletes only if the stored refresh token is
///   still the dead one.
/// - [`lease`](Store::lease) looks at the stored tokens and, if they are
///   still the ones the caller wants to refresh, takes the lease with
///   `SET … NX PX`. While another process holds it, the caller polls (after
///   2 ms, then twice as long each time up to
///   [`poll_interval`](Self::poll_interval)) until that process has stored
///   new tokens, answered as [`Lease::Refreshed`], or the lease is free again.
///   After [`wait_timeout`](Self::wait_timeout) it gives up with a retryable
///   [`ErrorKind::Store`].
/// - The holder extends its lease every third of
///   [`lease_ttl`](Self::lease_ttl) while it refreshes, and releases it with
///   a compare-and-delete. A holder that dies stops extending it: the lease
///   expires and another process takes over, with the refresh token that is
///   still in Redis.
///
/// When Redis cannot be reached, every call fails with a retryable
/// [`ErrorKind::Store`] (its message never holds a token): the session keeps its
/// tokens, is not signed out, and no refresh is sent without the lease. The
/// connection is a [`ConnectionManager`] that reconnects on its own; the next
/// call after Redis is back succeeds.
///
/// A plain Redis keeps data in memory only: if it restarts empty, a session
/// saves its tokens again at its next refresh, but a replica holding an
/// older refresh token may then use it. Give Redis persistence (AOF) when
/// refresh tokens are single-use.
///
/// ```no_run
/// use std::time::Duration;
/// use refresh_endpoint::providers::atproto::AtpSession;
/// use refresh_endpoint::session::Session;
/// use refresh_endpoint::store::RedisStore;
/// use refresh_endpoint::{Client, refresh_endpoint, tokens::Tokens};
///
/// #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
///                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
/// #[derive(Clone)]
/// struct RefreshSession;
///
/// # async fn run(signed_in: Tokens) -> Result<(), refresh_endpoint::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379", "bsky:alice")
///     .await?
///     .prefix("myapp:") // keys myapp:bsky:alice:tokens and myapp:bsky:alice:lease
///     .lease_ttl(Duration::from_secs(10));
/// let session = Session::builder(Client::new("https://bsky.social")?, RefreshSession)
///     .tokens(signed_in) // used only if Redis holds no tokens for this key yet
///     .store(store)
///     .build()
///     .await?;
/// // Every replica runs the same code; however many of them find the token
/// // expired at once, one refreshes and the others use its tokens.
/// let token = session.access_token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    key: Arc<str>,
    tokens_key: Arc<str>,
    lease_key: Arc<str>,
    lease_ttl: Duration,
    wait_timeout: Duration,
    poll_interval: Duration,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// for the session stored under `key`, with the defaults: prefix
    /// [`DEFAULT_PREFIX`], lease TTL [`DEFAULT_LEASE_TTL`], wait timeout
    /// [`DEFAULT_WAIT_TIMEOUT`], poll interval [`DEFAULT_POLL_INTERVAL`].
    ///
    /// The connection reconnects by itself; each attempt times out after
    /// 1 s, and a command after 3 s. Fails with a retryable
    /// [`ErrorKind::Store`] if Redis cannot be reached now, and a non-retryable
    /// one if the URL is invalid (the message never repeats the URL, which
    /// may hold a password).
    pub async fn connect(url: &str, key: impl Into<String>) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|error| ErrorKind::Store {
            message: format!("redis store: invalid URL: {}", describe(&error)),
            retryable: false,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_error)?;
        Ok(Self::with_connection(connection, key.into()))
    }

    fn with_connection(connection: ConnectionManager, key: String) -> Self {
        let mut store = RedisStore {
            connection,
            prefix: DEFAULT_PREFIX.into(),
            key: key.into(),
            tokens_key: "".into(),
            lease_key: "".into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        };
        store.name_keys();
        store
    }

    fn name_keys(&mut self) {
        self.tokens_key = format!("{}{}:tokens", self.prefix, self.key).into();
        self.lease_key = format!("{}{}:lease", self.prefix, self.key).into();
    }

    /// The same Redis connection, for another session (another account):
    /// many sessions can share one connection, each under its own key.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), refresh_endpoint::Error> {
    /// use refresh_endpoint::store::RedisStore;
    ///
    /// let alice = RedisStore::connect("redis://127.0.0.1:6379", "bsky:alice").await?;
    /// let bob = alice.for_key("bsky:bob");
    /// assert_eq!(bob.tokens_key(), "refresh-endpoint:bsky:bob:tokens");
    /// # Ok(()) }
    /// ```
    pub fn for_key(&self, key: impl Into<String>) -> Self {
        let mut store = self.clone();
        store.key = key.into().into();
        store.name_keys();
        store
    }

    /// Puts `prefix` in front of both keys (default [`DEFAULT_PREFIX`]), so
    /// several applications or environments can share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self.name_keys();
        self
    }

    /// How long the lease lives in Redis unless extended (default
    /// [`DEFAULT_LEASE_TTL`]; at least 10 ms). The holder extends it every
    /// third of this while it refreshes, so a long refresh keeps it; a
    /// holder that crashed blocks the others for at most this long.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(10));
        self
    }

    /// How long [`Store::lease`] waits for another process's refresh before
    /// failing with a retryable error (default [`DEFAULT_WAIT_TIMEOUT`]).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The longest wait between two looks at Redis while another process
    /// refreshes (default [`DEFAULT_POLL_INTERVAL`]; at least 1 ms). The
    /// first look comes after 2 ms and the wait doubles from there, so a
    /// quick refresh is seen quickly. Each look is one small script call.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The key holding the tokens: `{prefix}{key}:tokens`.
    pub fn tokens_key(&self) -> &str {
        &self.tokens_key
    }

    /// The key holding the refresh lease: `{prefix}{key}:lease`. Its value
    /// starts with the holder's process id and a dot.
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }

    /// Who holds the refresh lease now, if anyone: the holder token,
    /// `"{process id}.{random}"`, for monitoring ("which replica is
    /// refreshing?"). It is not a secret and grants nothing.
    pub async fn lease_holder(&self) -> Result<Option<String>, Error> {
        query(&self.connection, redis::cmd("GET").arg(&*self.lease_key)).await
    }

    fn ttl_millis(&self) -> u64 {
        u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("tokens_key", &self.tokens_key)
            .field("lease_key", &self.lease_key)
            .field("lease_ttl", &self.lease_ttl)
            .field("wait_timeout", &self.wait_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// `KEYS[1]` tokens; `ARGV[1]` "1" if a refresh token is expected, `ARGV[2]`
/// the expected refresh token, `ARGV[3]` the new JSON.
/// Answers `{"written"}`, `{"conflict", stored}` or `{"conflict"}`.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('GET', KEYS[1])
local matches
if stored then
  matches = ARGV[1] == '1' and cjson.decode(stored)['refresh_token'] == ARGV[2]
else
  matches = ARGV[1] == '0'
end
if not matches then
  if stored then return {'conflict', stored} end
  return {'conflict'}
end
redis.call('SET', KEYS[1], ARGV[3])
return {'written'}
"#,
    )
});

/// `KEYS[1]` tokens; `ARGV[1]` the dead refresh token. Answers 1 if deleted.
static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('GET', KEYS[1])
if stored and cjson.decode(stored)['refresh_token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// `KEYS[1]` tokens, `KEYS[2]` lease; `ARGV[1]` the caller's refresh token,
/// `ARGV[2]` its access token, `ARGV[3]` the holder token, `ARGV[4]` the TTL
/// in milliseconds. Answers `{"refreshed", stored}` when the stored tokens
/// are not the caller's any more, else `{"acquired"}` or `{"busy"}`.
static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('GET', KEYS[1])
if stored then
  local tokens = cjson.decode(stored)
  if tokens['refresh_token'] ~= ARGV[1] or tokens['access_token'] ~= ARGV[2] then
    return {'refreshed', stored}
  end
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return {'acquired'}
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  -- Ours already: a retry after an answer lost with the connection.
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {'acquired'}
end
return {'busy'}
"#,
    )
});

/// `KEYS[1]` lease; `ARGV[1]` the holder token, `ARGV[2]` the TTL in ms.
/// Answers 1 if the lease was still this holder's and is extended.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// `KEYS[1]` lease; `ARGV[1]` the holder token. Answers 1 if deleted.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Runs a script; a connection failure is tried once more, on the
/// connection the manager has reconnected by then. Every script is safe to
/// run twice: a repeated save meets its own write and reports a conflict
/// holding the same tokens, a repeated lease finds itself the holder.
async fn invoke<T: FromRedisValue>(
    connection: &ConnectionManager,
    invocation: &ScriptInvocation<'_>,
) -> Result<T, Error> {
    let mut connection = connection.clone();
    match invocation.invoke_async(&mut connection).await {
        Err(error) if is_connection_error(&error) => invocation
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error),
        answer => answer.map_err(redis_error),
    }
}

/// Runs a command, like [`invoke`].
async fn query<T: FromRedisValue>(
    connection: &ConnectionManager,
    command: &Cmd,
) -> Result<T, Error> {
    let mut connection = connection.clone();
    match command.query_async(&mut connection).await {
        Err(error) if is_connection_error(&error) => command
            .query_async(&mut connection)
            .await
            .map_err(redis_error),
        answer => answer.map_err(redis_error),
    }
}

/// The connection broke or could not be made: after Redis comes back, the
/// first command may still meet the broken connection; the manager has
/// started a new one by then.
fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}

/// A Redis failure as a retryable store error, its text redacted.
fn redis_error(error: RedisError) -> Error {
    ErrorKind::Store {
        message: format!("redis store: {}", describe(&error)),
        retryable: true,
    }
    .into()
}

fn describe(error: &RedisError) -> String {
    redact(&error.to_string(), 200)
}

fn decode(json: &str) -> Result<Tokens, Error> {
    serde_json::from_str(json).map_err(|error| {
        ErrorKind::Store {
            message: format!(
                "redis store: the stored value is not a token set: {}",
                json_error_kind(&error)
            ),
            retryable: false,
        }
        .into()
    })
}

/// What kind of JSON error, without the input (which holds tokens).
fn json_error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "wrong fields",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// A lease holder token no other process or call will draw: this process's
/// id, then 128 random bits.
fn holder_token() -> String {
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

impl Store for RedisStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        async move {
            let stored: Option<String> =
                query(&self.connection, redis::cmd("GET").arg(&*self.tokens_key)).await?;
            stored.as_deref().map(decode).transpose()
        }
        .boxed()
    }

    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>> {
        async move {
            let json = serde_json::to_string(tokens).map_err(|error| ErrorKind::Store {
                message: format!(
                    "redis store: cannot encode the tokens: {}",
                    json_error_kind(&error)
                ),
                retryable: false,
            })?;
            let answer: Vec<String> = invoke(
                &self.connection,
                SAVE.key(&*self.tokens_key)
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(expected.map_or("", Secret::expose))
                    .arg(json),
            )
            .await?;
            match answer.as_slice() {
                [written] if written == "written" => Ok(Saved::Written),
                [_, stored] => Ok(Saved::Conflict(Some(decode(stored)?))),
                _ => Ok(Saved::Conflict(None)),
            }
        }
        .boxed()
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let _deleted: i64 = invoke(
                &self.connection,
                CLEAR.key(&*self.tokens_key).arg(expected.expose()),
            )
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn lease<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Lease, Error>> {
        async move {
            let holder: Arc<str> = holder_token().into();
            let ttl = self.ttl_millis();
            let started = tokio::time::Instant::now();
            let deadline = started + self.wait_timeout;
            let mut try_lease = TRY_LEASE.prepare_invoke();
            try_lease
                .key(&*self.tokens_key)
                .key(&*self.lease_key)
                .arg(current.refresh_token.expose())
                .arg(current.access_token.expose())
                .arg(&*holder)
                .arg(ttl);
            let mut waited = false;
            let mut pause = FIRST_POLL.min(self.poll_interval);
            loop {
                let answer: Vec<String> = invoke(&self.connection, &try_lease).await?;
                match answer.as_slice() {
                    [state, stored] if state == "refreshed" => {
                        return Ok(Lease::Refreshed(decode(stored)?));
                    }
                    [state] if state == "acquired" => {
                        if waited {
                            tracing::debug!(
                                key = %self.tokens_key,
                                waited_ms = started.elapsed().as_millis() as u64,
                                "took the refresh lease after waiting"
                            );
                        }
                        return Ok(Lease::Acquired(Box::new(RedisLease::start(
                            self,
                            holder,
                        ))));
                    }
                    _ => {}
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(ErrorKind::Store {
                        message: format!(
                            "redis store: another process held the refresh lease of `{}` for longer than the wait timeout ({} ms)",
                            self.key,
                            self.wait_timeout.as_millis()
                        ),
                        retryable: true,
                    }
                    .into());
                }
                waited = true;
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(self.poll_interval);
            }
        }
        .boxed()
    }
}

/// This process's hold on a session's refresh lease: extended in the
/// background while held, released with a compare-and-delete.
struct RedisLease {
    connection: ConnectionManager,
    lease_key: Arc<str>,
    holder: Arc<str>,
    keep_alive: tokio::task::JoinHandle<()>,
    released: bool,
}

impl RedisLease {
    fn start(store: &RedisStore, holder: Arc<str>) -> Self {
        let keep_alive = tokio::spawn(keep_alive(
            store.connection.clone(),
            Arc::clone(&store.lease_key),
            Arc::clone(&holder),
            store.lease_ttl,
        ));
        RedisLease {
            connection: store.connection.clone(),
            lease_key: Arc::clone(&store.lease_key),
            holder,
            keep_alive,
            released: false,
        }
    }

    fn release_now(&mut self) -> BoxFuture<'static, ()> {
        self.released = true;
        self.keep_alive.abort();
        let connection = self.connection.clone();
        let lease_key = Arc::clone(&self.lease_key);
        let holder = Arc::clone(&self.holder);
        async move {
            let released: Result<i64, _> =
                invoke(&connection, RELEASE.key(&*lease_key).arg(&*holder)).await;
            if let Err(error) = released {
                tracing::warn!(key = %lease_key, %error, "could not release the refresh lease; it expires by itself");
            }
        }
        .boxed()
    }
}

/// Extends the lease every third of its TTL until aborted or lost.
async fn keep_alive(
    connection: ConnectionManager,
    lease_key: Arc<str>,
    holder: Arc<str>,
    ttl: Duration,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::time::sleep(ttl / 3).await;
        let extended: Result<i64, _> = invoke(
            &connection,
            EXTEND.key(&*lease_key).arg(&*holder).arg(ttl_ms),
        )
        .await;
        match extended {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(key = %lease_key, "the refresh lease expired while this process held it");
                return;
            }
            Err(error) => {
                tracing::debug!(key = %lease_key, %error, "could not extend the refresh lease");
            }
        }
    }
}

impl LeaseGuard for RedisLease {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        self.release_now()
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.keep_alive.abort();
        if !self.released {
            // Dropped without `release` (the refresh task panicked): give the
            // lease back rather than making the others wait for its expiry.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(self.release_now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_tokens_are_unique_and_name_the_process() {
        let a = holder_token();
        let b = holder_token();
        assert_ne!(a, b);
        let pid = std::process::id().to_string();
        assert_eq!(a.split_once('.').map(|(p, _)| p), Some(pid.as_str()));
        assert_eq!(a.len(), pid.len() + 1 + 32);
    }

    #[test]
    fn decode_errors_do_not_repeat_the_value() {
        let error = decode(r#"{"access_token":"secret-access-1234","refresh_token":"#).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(!error.is_retryable());
    }
}
