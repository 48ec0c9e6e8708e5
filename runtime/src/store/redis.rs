use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    ClientTlsConfig, Cmd, FromRedisValue, RedisError, RedisFuture, Script, ScriptInvocation,
    TlsCertificates, Value,
};

use super::{
    DEFAULT_LEASE_TTL, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT, FIRST_POLL, Lease, LeaseGuard,
    Saved, Store, holder_token, json_error_kind,
};
use crate::error::redact;
use crate::tokens::Tokens;
use crate::{Error, ErrorKind, Secret};

/// The default key prefix, so the store's keys are easy to find and
/// cannot collide with an application's own.
pub const DEFAULT_PREFIX: &str = "refresh-endpoint:";

/// Keeps a session's tokens in Redis and coordinates its refreshes across
/// every process that uses the same key: several replicas of a service, a
/// fleet of workers, a CLI next to a daemon.
///
/// Behind the `redis` feature. One URL chooses the deployment:
///
/// | URL | connects to |
/// |---|---|
/// | `redis://[user:password@]host[:port][/db]` | one standalone Redis (or a primary behind a failover proxy) |
/// | `rediss://…` | the same over TLS (rustls; the system's roots, or [`RedisStoreBuilder::ca_pem`]) |
/// | `redis+cluster://[user:password@]host:port[,host:port…]` | a Redis Cluster, through any of these seed nodes |
/// | `rediss+cluster://…` | a Redis Cluster over TLS |
///
/// The user and password are Redis ACL credentials (`AUTH user password`);
/// with a password only, the `default` user. A private CA and a client
/// certificate (mutual TLS) are set with [`RedisStore::builder`].
///
/// Two Redis keys per session, hash-tagged on the session key so that both
/// live in one cluster slot (the scripts below touch both at once):
///
/// - `{prefix}{{key}}:tokens`, for example `refresh-endpoint:{bsky:alice}:tokens`:
///   the [`Tokens`] as JSON (the same shape as
///   [`FileStore`](super::FileStore)'s file).
/// - `{prefix}{{key}}:lease`: who may refresh right now (a random holder
///   token starting with the holder's process id), with an expiry.
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
/// [`ErrorKind::Store`] (its message never holds a token or the password):
/// the session keeps its tokens, is not signed out, and no refresh is sent
/// without the lease. The standalone connection reconnects on its own; the
/// cluster connection follows `MOVED` and `ASK` redirections and reloads the
/// slot map when a node fails, so while a cluster elects a new primary calls
/// fail retryably and succeed again once it has.
///
/// A plain Redis keeps data in memory only: if it restarts empty, a session
/// saves its tokens again at its next refresh, but a replica holding an
/// older refresh token may then use it. Give Redis persistence (AOF) when
/// refresh tokens are single-use. Replication to a cluster replica is
/// asynchronous: a primary that dies right after a save may lose it in the
/// same way.
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
///     .prefix("myapp:") // keys myapp:{bsky:alice}:tokens and myapp:{bsky:alice}:lease
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
    connection: Connection,
    prefix: Arc<str>,
    key: Arc<str>,
    tokens_key: Arc<str>,
    lease_key: Arc<str>,
    lease_ttl: Duration,
    wait_timeout: Duration,
    poll_interval: Duration,
}

/// A standalone connection (reconnecting by itself) or a cluster one
/// (following redirections); both are cheap to clone and multiplexed.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Sets up a [`RedisStore`]: the URL, TLS material, timeouts; made by
/// [`RedisStore::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), refresh_endpoint::Error> {
/// use refresh_endpoint::store::RedisStore;
///
/// let ca = std::fs::read("/etc/myapp/redis-ca.pem").unwrap();
/// let cert = std::fs::read("/etc/myapp/client.pem").unwrap();
/// let key = std::fs::read("/etc/myapp/client-key.pem").unwrap();
/// let store = RedisStore::builder("rediss+cluster://myapp:s3cret@redis-0:6380,redis-1:6380")
///     .ca_pem(ca)                 // trust this CA instead of the system's roots
///     .client_cert_pem(cert, key) // mutual TLS
///     .connect("bsky:alice")
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: Secret,
    ca_pem: Option<Vec<u8>>,
    client_cert_pem: Option<(Vec<u8>, Secret)>,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert_pem", &self.client_cert_pem.is_some())
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Trusts the certificates in this PEM (one or more CA certificates)
    /// instead of the system's roots, for `rediss://` and
    /// `rediss+cluster://` URLs.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain) and its private key
    /// (PEM, PKCS#8, PKCS#1 or SEC1) when the server asks for one (Redis's
    /// `tls-auth-clients yes`, the default).
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        let key = String::from_utf8_lossy(&key.into()).into_owned();
        self.client_cert_pem = Some((cert.into(), Secret::new(key)));
        self
    }

    /// How long making a connection may take (default 1 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long a command may wait for its answer (default 3 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects and returns the store for the session under `key` (see
    /// [`RedisStore::connect`] for the errors).
    pub async fn connect(self, key: impl Into<String>) -> Result<RedisStore, Error> {
        let url = self.url.expose();
        let certificates = self.certificates();
        let connection = if let Some((tls, nodes)) = cluster_nodes(url)? {
            let mut builder = ClusterClient::builder(nodes)
                .connection_timeout(self.connection_timeout)
                .response_timeout(self.response_timeout)
                .retries(4)
                .min_retry_wait(20)
                .max_retry_wait(500);
            if tls {
                builder = builder.certs(certificates.unwrap_or(TlsCertificates {
                    client_tls: None,
                    root_cert: None,
                }));
            } else if certificates.is_some() {
                return Err(tls_material_without_tls());
            }
            let client = builder.build().map_err(invalid_url)?;
            Connection::Cluster(client.get_async_connection().await.map_err(redis_error)?)
        } else {
            let client = match certificates {
                Some(certificates) => {
                    if !url.starts_with("rediss://") {
                        return Err(tls_material_without_tls());
                    }
                    redis::Client::build_with_tls(url, certificates)
                }
                None => redis::Client::open(url),
            }
            .map_err(invalid_url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connection_timeout))
                .set_response_timeout(Some(self.response_timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(1));
            Connection::Standalone(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(redis_error)?,
            )
        };
        Ok(RedisStore::with_connection(connection, key.into()))
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        if self.ca_pem.is_none() && self.client_cert_pem.is_none() {
            return None;
        }
        Some(TlsCertificates {
            client_tls: self
                .client_cert_pem
                .as_ref()
                .map(|(cert, key)| ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.expose().as_bytes().to_vec(),
                }),
            root_cert: self.ca_pem.clone(),
        })
    }
}

fn tls_material_without_tls() -> Error {
    ErrorKind::Store {
        message: "redis store: a CA or client certificate was given for a URL without TLS (use rediss:// or rediss+cluster://)".into(),
        retryable: false,
    }
    .into()
}

fn invalid_url(error: RedisError) -> Error {
    ErrorKind::Store {
        message: format!("redis store: invalid URL: {}", describe(&error)),
        retryable: false,
    }
    .into()
}

/// For a `redis+cluster://` or `rediss+cluster://` URL: whether it uses TLS,
/// and one `redis://` or `rediss://` URL per seed node, each with the
/// URL's credentials. `None` for any other URL.
fn cluster_nodes(url: &str) -> Result<Option<(bool, Vec<String>)>, Error> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        (true, rest)
    } else {
        return Ok(None);
    };
    let invalid = |why: &str| -> Error {
        ErrorKind::Store {
            message: format!("redis store: invalid cluster URL: {why}"),
            retryable: false,
        }
        .into()
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() && path != "0" {
        return Err(invalid("a cluster has database 0 only"));
    }
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, authority),
    };
    let scheme = if tls { "rediss" } else { "redis" };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| match credentials {
            Some(credentials) => format!("{scheme}://{credentials}@{host}"),
            None => format!("{scheme}://{host}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(invalid("no host"));
    }
    Ok(Some((tls, nodes)))
}

impl RedisStore {
    /// Connects to the Redis at `url` for the session stored under `key`,
    /// with the defaults: prefix [`DEFAULT_PREFIX`], lease TTL
    /// [`DEFAULT_LEASE_TTL`], wait timeout [`DEFAULT_WAIT_TIMEOUT`], poll
    /// interval [`DEFAULT_POLL_INTERVAL`]. The URL's scheme chooses
    /// standalone (`redis://`, `rediss://`) or cluster (`redis+cluster://`,
    /// `rediss+cluster://`); see [`RedisStore`]. For a private CA or a client
    /// certificate, use [`RedisStore::builder`].
    ///
    /// The connection reconnects by itself; each attempt times out after
    /// 1 s, and a command after 3 s. Fails with a retryable
    /// [`ErrorKind::Store`] if Redis cannot be reached now, and a non-retryable
    /// one if the URL is invalid (the message never repeats the URL, which
    /// may hold a password).
    pub async fn connect(url: &str, key: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect(key).await
    }

    /// A builder, for TLS material or other timeouts:
    /// [`RedisStoreBuilder::ca_pem`], [`RedisStoreBuilder::client_cert_pem`].
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: Secret::new(url.into()),
            ca_pem: None,
            client_cert_pem: None,
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(3),
        }
    }

    fn with_connection(connection: Connection, key: String) -> Self {
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
        self.tokens_key = format!("{}{{{}}}:tokens", self.prefix, self.key).into();
        self.lease_key = format!("{}{{{}}}:lease", self.prefix, self.key).into();
    }

    /// Whether both keys hash to one cluster slot; not so only for an
    /// empty key or a prefix holding `{}`.
    fn check_keys(&self) -> Result<(), Error> {
        match (hash_tag(&self.tokens_key), hash_tag(&self.lease_key)) {
            (Some(a), Some(b)) if a == b => Ok(()),
            _ => Err(ErrorKind::Store {
                message: "redis store: the session key must not be empty, and the prefix must not contain `{}`".into(),
                retryable: false,
            }
            .into()),
        }
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
    /// assert_eq!(bob.tokens_key(), "refresh-endpoint:{bsky:bob}:tokens");
    /// # Ok(()) }
    /// ```
    pub fn for_key(&self, key: impl Into<String>) -> Self {
        let mut store = self.clone();
        store.key = key.into().into();
        store.name_keys();
        store
    }

    /// Whether this store talks to a Redis Cluster (a `redis+cluster://` or
    /// `rediss+cluster://` URL).
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
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

    /// The key holding the tokens: `{prefix}{{key}}:tokens`.
    pub fn tokens_key(&self) -> &str {
        &self.tokens_key
    }

    /// The key holding the refresh lease: `{prefix}{{key}}:lease`. Its value
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
    connection: &Connection,
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
async fn query<T: FromRedisValue>(connection: &Connection, command: &Cmd) -> Result<T, Error> {
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
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_cluster_error()
}

/// The part of `key` Redis Cluster hashes: the text between the first `{`
/// and the next `}`, if that is not empty; else the whole key (`None` here,
/// as two such keys would land in different slots).
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
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

impl Store for RedisStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        async move {
            self.check_keys()?;
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
            self.check_keys()?;
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
            self.check_keys()?;
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
            self.check_keys()?;
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
    connection: Connection,
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
async fn keep_alive(connection: Connection, lease_key: Arc<str>, holder: Arc<str>, ttl: Duration) {
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
    fn both_keys_of_a_session_share_one_hash_tag() {
        assert_eq!(
            hash_tag("refresh-endpoint:{bsky:alice}:tokens"),
            Some("bsky:alice")
        );
        assert_eq!(
            hash_tag("a{}b{c}"),
            None,
            "an empty tag hashes the whole key"
        );
        assert_eq!(hash_tag("no tag"), None);
        // A `{` or `}` in the prefix or the key moves the tag, but both keys
        // still share it: they differ only after the closing brace.
        for (prefix, key) in [
            ("app{", "k"),
            ("a}b{", "k"),
            ("p:", "we{ird}"),
            ("p:", "x}"),
        ] {
            let tokens = format!("{prefix}{{{key}}}:tokens");
            let lease = format!("{prefix}{{{key}}}:lease");
            assert!(hash_tag(&tokens).is_some(), "{tokens}");
            assert_eq!(hash_tag(&tokens), hash_tag(&lease), "{tokens}");
        }
    }

    #[test]
    fn cluster_urls_name_their_seed_nodes_with_the_credentials() {
        assert!(cluster_nodes("redis://127.0.0.1:6379").unwrap().is_none());
        assert!(cluster_nodes("rediss://h:1").unwrap().is_none());
        let (tls, nodes) = cluster_nodes("rediss+cluster://app:p%40ss@h1:7000,h2:7001/")
            .unwrap()
            .unwrap();
        assert!(tls);
        assert_eq!(
            nodes,
            ["rediss://app:p%40ss@h1:7000", "rediss://app:p%40ss@h2:7001"]
        );
        let (tls, nodes) = cluster_nodes("redis+cluster://h1:7000").unwrap().unwrap();
        assert!(!tls);
        assert_eq!(nodes, ["redis://h1:7000"]);
        for bad in [
            "redis+cluster://",
            "redis+cluster://:secret@/",
            "redis+cluster://h:1/3",
        ] {
            let error = cluster_nodes(bad).unwrap_err();
            assert!(!error.is_retryable());
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }

    #[tokio::test]
    async fn bad_urls_and_tls_material_are_typed_errors_without_the_password() {
        for url in [
            "http://u:secret@h",
            "redis://u:secret@h:notaport",
            "redis+cluster://u:secret@",
        ] {
            let error = RedisStore::connect(url, "k").await.unwrap_err();
            assert!(!error.is_retryable(), "{url}: {error}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        let error = RedisStore::builder("redis://u:secret@127.0.0.1:1")
            .ca_pem("-----BEGIN CERTIFICATE-----")
            .connect("k")
            .await
            .unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        assert!(error.to_string().contains("rediss://"), "{error}");
        let error = RedisStore::builder("rediss://u:secret@127.0.0.1:1")
            .ca_pem("not a pem")
            .connect("k")
            .await
            .unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn decode_errors_do_not_repeat_the_value() {
        let error = decode(r#"{"access_token":"secret-access-1234","refresh_token":"#).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(!error.is_retryable());
    }
}
