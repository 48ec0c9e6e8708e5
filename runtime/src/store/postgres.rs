use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::{BoxFuture, FutureExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;

use super::{
    DEFAULT_LEASE_TTL, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT, FIRST_POLL, Lease, LeaseGuard,
    Saved, Store, holder_token, json_error_kind,
};
use crate::error::redact;
use crate::tokens::Tokens;
use crate::{Error, ErrorKind, Secret};

/// The default table: one row per session.
pub const DEFAULT_TABLE: &str = "refresh_endpoint_sessions";

/// The statement that creates the table (here with the default name), for
/// deployments whose application user may not create tables; the store runs
/// it itself on [`PostgresStoreBuilder::connect`] unless told not to with
/// [`PostgresStoreBuilder::create_table`]`(false)`.
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS refresh_endpoint_sessions (
///     key              text PRIMARY KEY,
///     tokens           text,        -- the tokens as JSON; NULL once signed out
///     refresh_token    text,        -- compared by save and clear
///     access_token     text,        -- compared by the lease
///     lease_holder     text,        -- "{pid}.{random}" of the process refreshing
///     lease_expires_at timestamptz  -- on the database's clock
/// )
/// ```
///
/// The application's user needs `SELECT`, `INSERT` and `UPDATE` on it.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS refresh_endpoint_sessions (
    key              text PRIMARY KEY,
    tokens           text,
    refresh_token    text,
    access_token     text,
    lease_holder     text,
    lease_expires_at timestamptz
)";

/// Keeps a session's tokens in a PostgreSQL table and coordinates its
/// refreshes across every process that uses the same key, with the same
/// contract as [`RedisStore`](super::RedisStore): compare-and-swap writes,
/// and a refresh lease with a TTL.
///
/// Behind the `postgres` feature. One row per session (many sessions per
/// table), in the table [`CREATE_TABLE`] describes. Each operation is one
/// statement, atomic in PostgreSQL:
///
/// - [`save`](Store::save) is an `UPDATE … WHERE refresh_token = $expected`
///   (or an `INSERT … ON CONFLICT DO UPDATE … WHERE tokens IS NULL` when no
///   token is expected): a process that refreshed with an old token can never
///   overwrite a newer one. [`clear`](Store::clear) likewise sets the tokens
///   to `NULL` only if the stored refresh token is still the dead one.
/// - **The lease is two columns, `lease_holder` and `lease_expires_at`,
///   with the expiry on the database's clock** (`clock_timestamp()`), so no
///   process's clock matters. [`lease`](Store::lease) takes it with one
///   `INSERT … ON CONFLICT DO UPDATE … WHERE` the lease is free, expired or
///   already this caller's, *and* the stored tokens are still the caller's;
///   the row lock of that statement makes two takers wait for each other,
///   never both win. Otherwise, if the tokens moved on, the answer is
///   [`Lease::Refreshed`]; if not, the caller polls like the Redis store. The
///   holder extends the expiry every third of the TTL while it refreshes and
///   clears the columns when done (only if still its own). A holder that is
///   killed stops extending: the lease expires after at most the TTL and
///   another process takes over, with the refresh token still in the table.
///
/// Why not an advisory lock (`pg_advisory_lock`)? It belongs to a database
/// connection, not to the process: with a pool it is held by whichever
/// connection took it, a connection lost mid-refresh frees it while the
/// holder still refreshes (two refreshes), and a holder stuck but connected
/// keeps it forever. An expiry that the holder must keep extending has
/// none of these problems and behaves exactly like the Redis lease.
///
/// Connections come from a pool (default 4, [`PostgresStoreBuilder::pool_size`]);
/// a connection found closed is replaced. When the database cannot be
/// reached, every call fails with a retryable [`ErrorKind::Store`] (its
/// message never holds a token or the password): the session keeps its
/// tokens, is not signed out, and no refresh is sent without the lease.
///
/// TLS follows the URL's `sslmode` (`disable`, `prefer` — the default —
/// or `require`), through rustls; the server's certificate is always
/// verified, against the system's roots or [`PostgresStoreBuilder::ca_pem`].
///
/// ```no_run
/// use refresh_endpoint::providers::atproto::AtpSession;
/// use refresh_endpoint::session::Session;
/// use refresh_endpoint::store::PostgresStore;
/// use refresh_endpoint::{Client, refresh_endpoint, tokens::Tokens};
///
/// #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
///                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
/// #[derive(Clone)]
/// struct RefreshSession;
///
/// # async fn run(signed_in: Tokens) -> Result<(), refresh_endpoint::Error> {
/// let store = PostgresStore::connect("postgres://app:secret@db.internal/app?sslmode=require", "bsky:alice")
///     .await?;
/// let session = Session::builder(Client::new("https://bsky.social")?, RefreshSession)
///     .tokens(signed_in) // used only if the table holds no tokens for this key yet
///     .store(store)
///     .build()
///     .await?;
/// let token = session.access_token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    statements: Arc<Statements>,
    key: Arc<str>,
    lease_ttl: Duration,
    wait_timeout: Duration,
    poll_interval: Duration,
    response_timeout: Duration,
}

/// The SQL, with the table's name in it.
struct Statements {
    table: String,
    load: String,
    update: String,
    insert: String,
    clear: String,
    try_lease: String,
    lease_state: String,
    extend: String,
    release: String,
    holder: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        let expires = "clock_timestamp() + $3::bigint * interval '1 millisecond'";
        Statements {
            table: table.to_owned(),
            load: format!("SELECT tokens FROM {table} WHERE key = $1"),
            update: format!(
                "UPDATE {table} SET tokens = $2, refresh_token = $3, access_token = $4 \
                 WHERE key = $1 AND refresh_token = $5"
            ),
            insert: format!(
                "INSERT INTO {table} AS s (key, tokens, refresh_token, access_token) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE \
                 SET tokens = EXCLUDED.tokens, refresh_token = EXCLUDED.refresh_token, \
                 access_token = EXCLUDED.access_token WHERE s.tokens IS NULL"
            ),
            clear: format!(
                "UPDATE {table} SET tokens = NULL, refresh_token = NULL, access_token = NULL \
                 WHERE key = $1 AND refresh_token = $2"
            ),
            try_lease: format!(
                "INSERT INTO {table} AS s (key, lease_holder, lease_expires_at) \
                 VALUES ($1, $2, {expires}) ON CONFLICT (key) DO UPDATE \
                 SET lease_holder = EXCLUDED.lease_holder, lease_expires_at = EXCLUDED.lease_expires_at \
                 WHERE (s.lease_holder IS NULL OR s.lease_expires_at <= clock_timestamp() \
                        OR s.lease_holder = EXCLUDED.lease_holder) \
                   AND (s.tokens IS NULL OR (s.refresh_token = $4 AND s.access_token = $5)) \
                 RETURNING 1"
            ),
            lease_state: format!(
                "SELECT tokens, refresh_token = $2 AND access_token = $3 FROM {table} WHERE key = $1"
            ),
            extend: format!(
                "UPDATE {table} SET lease_expires_at = {expires} WHERE key = $1 AND lease_holder = $2"
            ),
            release: format!(
                "UPDATE {table} SET lease_holder = NULL, lease_expires_at = NULL \
                 WHERE key = $1 AND lease_holder = $2"
            ),
            holder: format!(
                "SELECT lease_holder FROM {table} \
                 WHERE key = $1 AND lease_expires_at > clock_timestamp()"
            ),
        }
    }

    fn create(&self) -> String {
        CREATE_TABLE.replacen(DEFAULT_TABLE, &self.table, 1)
    }
}

/// Sets up a [`PostgresStore`]: made by [`PostgresStore::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), refresh_endpoint::Error> {
/// use refresh_endpoint::store::PostgresStore;
///
/// let ca = std::fs::read("/etc/myapp/db-ca.pem").unwrap();
/// let store = PostgresStore::builder("postgres://app:secret@db.internal/app?sslmode=require")
///     .ca_pem(ca)
///     .table("auth.refresh_sessions")
///     .create_table(false) // created by a migration, with the statement of CREATE_TABLE
///     .pool_size(8)
///     .connect("bsky:alice")
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: Secret,
    ca_pem: Option<Vec<u8>>,
    client_cert_pem: Option<(Vec<u8>, Secret)>,
    table: String,
    create_table: bool,
    pool_size: usize,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("pool_size", &self.pool_size)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert_pem", &self.client_cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// Trusts the certificates in this PEM instead of the system's roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain) and key (PEM) when the
    /// server asks for one.
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        let key = String::from_utf8_lossy(&key.into()).into_owned();
        self.client_cert_pem = Some((cert.into(), Secret::new(key)));
        self
    }

    /// The table (default [`DEFAULT_TABLE`]), optionally `schema.table`;
    /// letters, digits and `_` only (checked by `connect`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether `connect` runs `CREATE TABLE IF NOT EXISTS` (default yes).
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// At most this many connections (default 4, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long making a connection may take (default 2 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one operation may take, waiting for a connection included
    /// (default 5 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects, creates the table if asked, and returns the store for the
    /// session under `key`. A retryable [`ErrorKind::Store`] if the database
    /// cannot be reached now; a non-retryable one for an invalid URL, table
    /// name or TLS material (the message never repeats the URL).
    pub async fn connect(self, key: impl Into<String>) -> Result<PostgresStore, Error> {
        if !valid_table(&self.table) {
            return Err(config_error(
                "the table name may hold letters, digits, `_` and one `.`",
            ));
        }
        let mut config = tokio_postgres::Config::from_str(self.url.expose())
            .map_err(|_| config_error("invalid URL"))?;
        config.connect_timeout(self.connection_timeout);
        if config.get_application_name().is_none() {
            config.application_name("refresh-endpoint");
        }
        let tls = RustlsConnect(Arc::new(self.tls_config()?));
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.response_timeout))
            .create_timeout(Some(self.connection_timeout))
            .recycle_timeout(Some(self.connection_timeout))
            .build()
            .map_err(|error| config_error(&format!("pool: {error}")))?;
        let store = PostgresStore {
            pool,
            statements: Arc::new(Statements::new(&self.table)),
            key: key.into().into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            response_timeout: self.response_timeout,
        };
        let client = store.client().await?;
        if self.create_table {
            let created = store
                .timed(client.batch_execute(&store.statements.create()))
                .await?;
            match created {
                // Two processes creating the table at once: one wins.
                Err(error) if already_exists(&error) => {}
                other => other.map_err(pg_error)?,
            }
        }
        Ok(store)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, Error> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &self.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| config_error("the CA is not a PEM certificate"))?;
                roots
                    .add(cert)
                    .map_err(|_| config_error("the CA certificate is invalid"))?;
            }
            if roots.is_empty() {
                return Err(config_error("the CA PEM holds no certificate"));
            }
        } else {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        match &self.client_cert_pem {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| config_error("the client certificate is not PEM"))?;
                let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                    .map_err(|_| config_error("the client key is not a PEM private key"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|_| config_error("the client certificate does not fit its key"))
            }
        }
    }
}

fn valid_table(table: &str) -> bool {
    let part = |part: &str| {
        !part.is_empty()
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match table.split_once('.') {
        Some((schema, name)) => part(schema) && part(name),
        None => part(table),
    }
}

impl PostgresStore {
    /// Connects to the database at `url`
    /// (`postgres://user:password@host:port/database?sslmode=…`) for the
    /// session under `key`, creating the table [`DEFAULT_TABLE`] if it is
    /// missing; see [`PostgresStoreBuilder::connect`].
    pub async fn connect(url: &str, key: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect(key).await
    }

    /// A builder, for TLS material, the table, the pool.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: Secret::new(url.into()),
            ca_pem: None,
            client_cert_pem: None,
            table: DEFAULT_TABLE.into(),
            create_table: true,
            pool_size: 4,
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
        }
    }

    /// The same pool, for another session (another account).
    pub fn for_key(&self, key: impl Into<String>) -> Self {
        let mut store = self.clone();
        store.key = key.into().into();
        store
    }

    /// The session's key: its row's primary key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How long the lease lives unless extended (default
    /// [`DEFAULT_LEASE_TTL`](super::DEFAULT_LEASE_TTL); at least 10 ms).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(10));
        self
    }

    /// How long [`Store::lease`] waits for another process's refresh
    /// (default [`DEFAULT_WAIT_TIMEOUT`](super::DEFAULT_WAIT_TIMEOUT)).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The longest wait between two looks while another process refreshes
    /// (default [`DEFAULT_POLL_INTERVAL`](super::DEFAULT_POLL_INTERVAL); at
    /// least 1 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Who holds the refresh lease now, if anyone: `"{process id}.{random}"`.
    pub async fn lease_holder(&self) -> Result<Option<String>, Error> {
        let client = self.client().await?;
        let row = self
            .query_opt(&client, &self.statements.holder, &[&&*self.key])
            .await?;
        Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
    }

    fn ttl_millis(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn client(&self) -> Result<Object, Error> {
        self.pool.get().await.map_err(|error| match error {
            PoolError::Backend(error) => pg_error(error),
            PoolError::Timeout(_) => store_error("no database connection in time"),
            other => store_error(&redact(&other.to_string(), 200)),
        })
    }

    /// Runs `operation` within the response timeout.
    async fn timed<T>(
        &self,
        operation: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<Result<T, tokio_postgres::Error>, Error> {
        tokio::time::timeout(self.response_timeout, operation)
            .await
            .map_err(|_| store_error("no answer from the database in time"))
    }

    async fn query_opt(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, Error> {
        self.timed(async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        })
        .await?
        .map_err(pg_error)
    }

    async fn execute(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.timed(async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await?
        .map_err(pg_error)
    }

    async fn stored(&self, client: &Object) -> Result<Option<Tokens>, Error> {
        let row = self
            .query_opt(client, &self.statements.load, &[&&*self.key])
            .await?;
        row.and_then(|row| row.get::<_, Option<String>>(0))
            .as_deref()
            .map(decode)
            .transpose()
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.statements.table)
            .field("key", &self.key)
            .field("lease_ttl", &self.lease_ttl)
            .field("wait_timeout", &self.wait_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Store for PostgresStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        async move {
            let client = self.client().await?;
            self.stored(&client).await
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
                    "postgres store: cannot encode the tokens: {}",
                    json_error_kind(&error)
                ),
                retryable: false,
            })?;
            let client = self.client().await?;
            let key = &*self.key;
            let refresh = tokens.refresh_token.expose();
            let access = tokens.access_token.expose();
            let written = match expected {
                Some(expected) => {
                    let expected = expected.expose();
                    self.execute(
                        &client,
                        &self.statements.update,
                        &[&key, &json, &refresh, &access, &expected],
                    )
                    .await?
                }
                None => {
                    self.execute(
                        &client,
                        &self.statements.insert,
                        &[&key, &json, &refresh, &access],
                    )
                    .await?
                }
            };
            if written == 1 {
                Ok(Saved::Written)
            } else {
                Ok(Saved::Conflict(self.stored(&client).await?))
            }
        }
        .boxed()
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let client = self.client().await?;
            self.execute(
                &client,
                &self.statements.clear,
                &[&&*self.key, &expected.expose()],
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
            let refresh = current.refresh_token.expose();
            let access = current.access_token.expose();
            let key = &*self.key;
            let mut pause = FIRST_POLL.min(self.poll_interval);
            loop {
                {
                    let client = self.client().await?;
                    let acquired = self
                        .query_opt(
                            &client,
                            &self.statements.try_lease,
                            &[&key, &&*holder, &ttl, &refresh, &access],
                        )
                        .await?;
                    if acquired.is_some() {
                        return Ok(Lease::Acquired(Box::new(PostgresLease::start(
                            self, holder,
                        ))));
                    }
                    let state = self
                        .query_opt(
                            &client,
                            &self.statements.lease_state,
                            &[&key, &refresh, &access],
                        )
                        .await?;
                    if let Some(row) = state {
                        let tokens: Option<String> = row.get(0);
                        let same: Option<bool> = row.get(1);
                        if let (Some(tokens), false) = (tokens, same.unwrap_or(false)) {
                            return Ok(Lease::Refreshed(decode(&tokens)?));
                        }
                    }
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(store_error(&format!(
                        "another process held the refresh lease of `{}` for longer than the wait timeout ({} ms)",
                        self.key,
                        self.wait_timeout.as_millis()
                    )));
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(self.poll_interval);
            }
        }
        .boxed()
    }
}

/// This process's hold on a session's refresh lease: extended in the
/// background while held, released with a compare-and-clear.
struct PostgresLease {
    store: PostgresStore,
    holder: Arc<str>,
    keep_alive: tokio::task::JoinHandle<()>,
    released: bool,
}

impl PostgresLease {
    fn start(store: &PostgresStore, holder: Arc<str>) -> Self {
        let keep_alive = tokio::spawn(keep_alive(store.clone(), Arc::clone(&holder)));
        PostgresLease {
            store: store.clone(),
            holder,
            keep_alive,
            released: false,
        }
    }

    fn release_now(&mut self) -> BoxFuture<'static, ()> {
        self.released = true;
        self.keep_alive.abort();
        let store = self.store.clone();
        let holder = Arc::clone(&self.holder);
        async move {
            let released = async {
                let client = store.client().await?;
                store
                    .execute(
                        &client,
                        &store.statements.release,
                        &[&&*store.key, &&*holder],
                    )
                    .await
            }
            .await;
            if let Err(error) = released {
                tracing::warn!(key = %store.key, %error, "could not release the refresh lease; it expires by itself");
            }
        }
        .boxed()
    }
}

/// Extends the lease every third of its TTL until aborted or lost.
async fn keep_alive(store: PostgresStore, holder: Arc<str>) {
    let ttl = store.ttl_millis();
    loop {
        tokio::time::sleep(store.lease_ttl / 3).await;
        let extended = async {
            let client = store.client().await?;
            store
                .execute(
                    &client,
                    &store.statements.extend,
                    &[&&*store.key, &&*holder, &ttl],
                )
                .await
        }
        .await;
        match extended {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(key = %store.key, "the refresh lease expired while this process held it");
                return;
            }
            Err(error) => {
                tracing::debug!(key = %store.key, %error, "could not extend the refresh lease");
            }
        }
    }
}

impl LeaseGuard for PostgresLease {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        self.release_now()
    }
}

impl Drop for PostgresLease {
    fn drop(&mut self) {
        self.keep_alive.abort();
        if !self.released
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(self.release_now());
        }
    }
}

fn store_error(message: &str) -> Error {
    ErrorKind::Store {
        message: format!("postgres store: {message}"),
        retryable: true,
    }
    .into()
}

fn config_error(message: &str) -> Error {
    ErrorKind::Store {
        message: format!("postgres store: {message}"),
        retryable: false,
    }
    .into()
}

/// A database failure: retryable (a lost connection, a restart, a
/// timeout), except for errors in the schema or privileges (SQLSTATE class
/// 42), which a retry cannot fix.
fn pg_error(error: tokio_postgres::Error) -> Error {
    let fixed = error
        .code()
        .is_some_and(|code| code.code().starts_with("42"));
    let text = match error.as_db_error() {
        // The server's message, never its detail (which can quote values).
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    };
    ErrorKind::Store {
        message: format!("postgres store: {}", redact(&text, 200)),
        retryable: !fixed,
    }
    .into()
}

fn already_exists(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::DUPLICATE_TABLE
    })
}

fn decode(json: &str) -> Result<Tokens, Error> {
    serde_json::from_str(json).map_err(|error| {
        ErrorKind::Store {
            message: format!(
                "postgres store: the stored value is not a token set: {}",
                json_error_kind(&error)
            ),
            retryable: false,
        }
        .into()
    })
}

// ---------------------------------------------------------------------------
// TLS for tokio-postgres through rustls (the crate's TLS stack).

#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, Self::Error> {
        Ok(RustlsConnectOne {
            name: ServerName::try_from(domain.to_owned())?,
            connector: tokio_rustls::TlsConnector::from(Arc::clone(&self.0)),
        })
    }
}

struct RustlsConnectOne {
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<RustlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        async move {
            self.connector
                .connect(self.name, stream)
                .await
                .map(|stream| RustlsStream(Box::new(stream)))
        }
        .boxed()
    }
}

struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["refresh_endpoint_sessions", "auth.sessions", "T1"] {
            assert!(valid_table(good), "{good}");
        }
        for bad in ["", "a b", "x;drop table y", "a.b.c", "1abc", "\"q\"", "s."] {
            assert!(!valid_table(bad), "{bad}");
        }
        assert!(
            Statements::new("auth.s")
                .create()
                .starts_with("CREATE TABLE IF NOT EXISTS auth.s (")
        );
    }

    #[tokio::test]
    async fn bad_urls_and_tls_material_are_typed_errors_without_the_password() {
        for builder in [
            PostgresStore::builder("postgres://u:secret@h:notaport/db"),
            PostgresStore::builder("postgres://u:secret@127.0.0.1:1/db").table("x;y"),
            PostgresStore::builder("postgres://u:secret@127.0.0.1:1/db").ca_pem("not a pem"),
        ] {
            let error = builder.connect("k").await.unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        // Nobody listens there: retryable.
        let error = PostgresStore::connect("postgres://u:secret@127.0.0.1:1/db", "k")
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
