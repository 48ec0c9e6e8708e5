//! A mock Bluesky / AT Protocol PDS: `com.atproto.server.createSession`,
//! `refreshSession`, `getSession` and `deleteSession`, answering as the
//! reference server (`@atproto/pds` 0.4, default configuration) does: the
//! same statuses, error names, messages and body keys. The differential test
//! `tests/tests/realpds.rs` sends the same requests to both and compares.
//!
//! Refresh tokens rotate: a refresh issues a new pair and cuts the old
//! refresh token's life to `min(its exp, now + grace period)`. Reusing the
//! old token inside the grace period answers a pair for the *same* successor
//! (the same refresh token id, `jti`; freshly signed, so the strings only
//! match within the same second) and revives that successor if it was
//! deleted meanwhile; after the grace period it answers
//! `400 ExpiredToken "Token has been revoked"`. A zero grace period makes
//! refresh tokens strictly single-use.
//!
//! Access JWTs are stateless, as on the real server: they stay valid until
//! their `exp` even after `deleteSession`. Once the account is taken down,
//! `getSession` no longer finds it (`400 InvalidRequest`) and its refresh
//! tokens are gone.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::clock::{Now, from_unix_secs, system_clock, unix_secs};
use crate::ids;
use crate::jwt;
use crate::server::{
    self, MockServer, Provider, authorization, common_methods, json_response, lock,
};

/// `POST` — log in with `{identifier, password}`.
pub const CREATE_SESSION_ROUTE: &str = "/xrpc/com.atproto.server.createSession";
/// `POST` — the refresh route (`Authorization: Bearer <refreshJwt>`, no body).
pub const REFRESH_ROUTE: &str = "/xrpc/com.atproto.server.refreshSession";
/// `GET` — an authorized route (`Authorization: Bearer <accessJwt>`).
pub const GET_SESSION_ROUTE: &str = "/xrpc/com.atproto.server.getSession";
/// `POST` — sign out (`Authorization: Bearer <refreshJwt>`).
pub const DELETE_SESSION_ROUTE: &str = "/xrpc/com.atproto.server.deleteSession";

/// The password [`AtprotoMock::create_account`] gives accounts.
pub const DEFAULT_PASSWORD: &str = "hunter2";

/// The `aud` claim of every token: the PDS's service DID.
pub const SERVICE_DID: &str = "did:web:localhost";

const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const ACCESS_SCOPE: &str = "com.atproto.access";
const REFRESH_SCOPE: &str = "com.atproto.refresh";
const ACCESS_TYP: &str = "at+jwt";
const REFRESH_TYP: &str = "refresh+jwt";

/// A session's tokens and the account they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtpTokens {
    /// The access JWT (`typ: at+jwt`), sent as `Authorization: Bearer`.
    pub access_jwt: String,
    /// The refresh JWT (`typ: refresh+jwt`), sent to `refreshSession`.
    pub refresh_jwt: String,
    /// The account's DID, `did:plc:…`.
    pub did: String,
    /// The account's handle.
    pub handle: String,
}

/// A mock PDS on `127.0.0.1`; it stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use refresh_endpoint_testkit::AtprotoMock;
///
/// let pds = AtprotoMock::start().await;
/// let alice = pds.create_account("alice.test");
/// let response = reqwest::Client::new()
///     .post(format!("{}/xrpc/com.atproto.server.refreshSession", pds.url()))
///     .bearer_auth(&alice.refresh_jwt)
///     .send()
///     .await
///     .unwrap();
/// assert_eq!(response.status(), 200);
/// let session: serde_json::Value = response.json().await.unwrap();
/// assert_ne!(session["refreshJwt"], alice.refresh_jwt.as_str());
/// assert_eq!(pds.refresh_count(), 1);
/// # }
/// ```
pub struct AtprotoMock {
    server: MockServer,
    inner: Arc<Inner>,
}

/// Configures an [`AtprotoMock`] before starting it.
#[must_use = "a builder does nothing until `.start().await`"]
pub struct AtprotoMockBuilder {
    clock: Now,
    grace_period: Duration,
    access_ttl: Duration,
    refresh_ttl: Duration,
    did_doc_with_session: bool,
}

impl Default for AtprotoMockBuilder {
    fn default() -> Self {
        Self {
            clock: system_clock(),
            grace_period: Duration::from_secs(2 * 60 * 60),
            access_ttl: Duration::from_secs(120 * 60),
            refresh_ttl: Duration::from_secs(90 * 24 * 60 * 60),
            did_doc_with_session: false,
        }
    }
}

impl AtprotoMockBuilder {
    /// The clock the mock judges expiry and grace periods with
    /// (default: the wall clock).
    pub fn clock(mut self, now: Now) -> Self {
        self.clock = now;
        self
    }

    /// How long a rotated refresh token keeps answering with its successor
    /// pair (default: 2 hours, as the real server). Zero makes refresh
    /// tokens strictly single-use.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Access JWT lifetime (default: 120 minutes).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh JWT lifetime (default: 90 days).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Whether `createSession`, `refreshSession` and `getSession` include
    /// the account's `didDoc`, as a PDS started with
    /// `PDS_ENABLE_DID_DOC_WITH_SESSION=true` does (default: `false`, the
    /// reference server's default, which leaves the key out).
    pub fn did_doc_with_session(mut self, include: bool) -> Self {
        self.did_doc_with_session = include;
        self
    }

    /// Starts the mock on `127.0.0.1:0` in the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; see [`try_start`](Self::try_start).
    pub async fn start(self) -> AtprotoMock {
        server::started("atproto", self.try_start().await)
    }

    /// Starts the mock on `127.0.0.1:0`, reporting a bind failure.
    pub async fn try_start(self) -> io::Result<AtprotoMock> {
        let listener = MockServer::bind().await?;
        let inner = Arc::new(Inner {
            clock: self.clock,
            secret: ids::random_bytes(32),
            grace_period: self.grace_period,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            did_doc_with_session: self.did_doc_with_session,
            url: MockServer::url_of(&listener)?,
            state: Mutex::default(),
        });
        let router = Router::new()
            .route(CREATE_SESSION_ROUTE, only("POST", post(create_session)))
            .route(REFRESH_ROUTE, only("POST", post(refresh_session)))
            .route(GET_SESSION_ROUTE, only("GET", get(get_session)))
            .route(DELETE_SESSION_ROUTE, only("POST", post(delete_session)))
            .fallback(not_implemented)
            .with_state(Arc::clone(&inner));
        let provider = Provider {
            is_refresh: |path| path == REFRESH_ROUTE,
            rate_limited: |_| {
                xrpc_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RateLimitExceeded",
                    "Rate Limit Exceeded",
                )
                .into_response()
            },
        };
        Ok(AtprotoMock {
            server: MockServer::spawn(listener, router, provider)?,
            inner,
        })
    }
}

impl AtprotoMock {
    /// Starts a mock with the defaults: wall clock, 2 h grace period, 120 min
    /// access tokens, 90 day refresh tokens.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder to set the clock, grace period and token lifetimes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use refresh_endpoint_testkit::{AtprotoMock, ManualClock};
    ///
    /// let clock = ManualClock::default();
    /// let pds = AtprotoMock::builder()
    ///     .clock(clock.now_fn())
    ///     .grace_period(Duration::ZERO) // strictly single-use refresh tokens
    ///     .access_ttl(Duration::from_secs(60))
    ///     .start()
    ///     .await;
    /// # let _ = pds;
    /// # }
    /// ```
    pub fn builder() -> AtprotoMockBuilder {
        AtprotoMockBuilder::default()
    }

    common_methods!("/xrpc/com.atproto.server.refreshSession");

    /// The HS256 secret every token is signed with.
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// Creates an account (password [`DEFAULT_PASSWORD`]) and a session for
    /// it, directly, without HTTP.
    pub fn create_account(&self, handle: &str) -> AtpTokens {
        self.create_account_with_password(handle, DEFAULT_PASSWORD)
    }

    /// Creates an account with this password and a session for it.
    pub fn create_account_with_password(&self, handle: &str, password: &str) -> AtpTokens {
        let did = format!("did:plc:{}", ids::random_string(24, ids::BASE32_LOWER));
        let mut state = lock(&self.inner.state);
        state.accounts.insert(
            did.clone(),
            Account {
                handle: handle.to_owned(),
                email: format!(
                    "{}@example.test",
                    handle.split('.').next().unwrap_or(handle)
                ),
                password: password.to_owned(),
                taken_down: false,
            },
        );
        let (access_jwt, refresh_jwt) = self.inner.new_session(&mut state, &did);
        AtpTokens {
            access_jwt,
            refresh_jwt,
            did,
            handle: handle.to_owned(),
        }
    }

    /// Mints an access JWT for `did` expiring at `exp` (which may be in the
    /// past, to drive the "access token expired" path).
    pub fn mint_access_token(&self, did: &str, exp: SystemTime) -> String {
        self.inner.access_jwt(did, unix_secs(exp))
    }

    /// Takes the account down, as `com.atproto.admin.updateSubjectStatus`
    /// does on the real server: its refresh tokens are revoked,
    /// `refreshSession` and `createSession` answer `401 AccountTakedown`, and
    /// `getSession` no longer finds the account (`400 InvalidRequest`).
    /// Returns whether the account exists.
    pub fn takedown(&self, did: &str) -> bool {
        let mut state = lock(&self.inner.state);
        let Some(account) = state.accounts.get_mut(did) else {
            return false;
        };
        account.taken_down = true;
        state.refresh_tokens.retain(|_, record| record.did != did);
        true
    }

    /// Lifts a takedown. As on the real server, the sessions revoked by the
    /// takedown stay revoked. Returns whether the account exists.
    pub fn lift_takedown(&self, did: &str) -> bool {
        let mut state = lock(&self.inner.state);
        match state.accounts.get_mut(did) {
            Some(account) => {
                account.taken_down = false;
                true
            }
            None => false,
        }
    }

    /// Revokes a refresh JWT, as `deleteSession` does. Returns whether it was
    /// live.
    pub fn revoke(&self, refresh_jwt: &str) -> bool {
        let Ok(claims) = jwt::verify(&self.inner.secret, refresh_jwt) else {
            return false;
        };
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return false;
        };
        lock(&self.inner.state).refresh_tokens.remove(jti).is_some()
    }
}

impl fmt::Debug for AtprotoMock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtprotoMock")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Now,
    secret: Vec<u8>,
    grace_period: Duration,
    access_ttl: Duration,
    refresh_ttl: Duration,
    did_doc_with_session: bool,
    url: String,
    state: Mutex<AtpState>,
}

#[derive(Default)]
struct AtpState {
    /// By DID.
    accounts: HashMap<String, Account>,
    /// Live refresh tokens, by `jti`.
    refresh_tokens: HashMap<String, RefreshRecord>,
}

struct Account {
    handle: String,
    email: String,
    password: String,
    taken_down: bool,
}

struct RefreshRecord {
    did: String,
    /// The JWT's `exp`, cut to the end of the grace period once rotated.
    expires_at: SystemTime,
    /// Set once rotated: the `jti` of its successor.
    next: Option<String>,
}

/// A freshly signed access and refresh JWT.
struct Pair {
    access_jwt: String,
    refresh_jwt: String,
}

/// Which token a route wants.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Access,
    Refresh,
}

impl Kind {
    fn typ(self) -> &'static str {
        match self {
            Kind::Access => ACCESS_TYP,
            Kind::Refresh => REFRESH_TYP,
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Kind::Access => ACCESS_SCOPE,
            Kind::Refresh => REFRESH_SCOPE,
        }
    }
}

/// What a verified token says.
struct Verified {
    did: String,
    jti: Option<String>,
}

impl Inner {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn access_jwt(&self, did: &str, exp: u64) -> String {
        jwt::sign(
            &self.secret,
            &json!({"typ": ACCESS_TYP, "alg": "HS256"}),
            &json!({
                "scope": ACCESS_SCOPE,
                "aud": SERVICE_DID,
                "sub": did,
                "iat": unix_secs(self.now()),
                "exp": exp,
            }),
        )
    }

    /// Signs a fresh pair for `did` whose refresh token has the id `jti`, and
    /// records that refresh token unless it is recorded already (as the
    /// reference server's insert does: on conflict, nothing).
    fn mint_pair(&self, state: &mut AtpState, did: &str, jti: &str) -> Pair {
        let now = self.now();
        let access_jwt = self.access_jwt(did, unix_secs(now + self.access_ttl));
        let exp = unix_secs(now + self.refresh_ttl);
        let refresh_jwt = jwt::sign(
            &self.secret,
            &json!({"typ": REFRESH_TYP, "alg": "HS256"}),
            &json!({
                "scope": REFRESH_SCOPE,
                "aud": SERVICE_DID,
                "sub": did,
                "jti": jti,
                "iat": unix_secs(now),
                "exp": exp,
            }),
        );
        state
            .refresh_tokens
            .entry(jti.to_owned())
            .or_insert_with(|| RefreshRecord {
                did: did.to_owned(),
                expires_at: from_unix_secs(exp),
                next: None,
            });
        Pair {
            access_jwt,
            refresh_jwt,
        }
    }

    fn new_session(&self, state: &mut AtpState, did: &str) -> (String, String) {
        let pair = self.mint_pair(state, did, &new_jti());
        (pair.access_jwt, pair.refresh_jwt)
    }

    /// Checks a bearer JWT as the reference server does (`jose.jwtVerify`,
    /// then its own checks), with its answers, in its order: signature,
    /// audience, `nbf`, expiry (unless `allow_expired`), the header's `typ`,
    /// the claims' shapes, the scope, and for refresh tokens the `jti`.
    fn verify(&self, token: &str, kind: Kind, allow_expired: bool) -> Result<Verified, XrpcError> {
        let unverifiable = || {
            xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Token could not be verified",
            )
        };
        let malformed = || xrpc_error(StatusCode::BAD_REQUEST, "InvalidToken", "Malformed token");
        let claims = jwt::verify(&self.secret, token).map_err(|_| unverifiable())?;
        let header = jwt::decode_header(token).map_err(|_| unverifiable())?;

        // jose: the audience, then the time claims.
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == SERVICE_DID,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud == SERVICE_DID),
            _ => false,
        };
        if !audience_ok {
            return Err(unverifiable());
        }
        let now = unix_secs(self.now()) as f64;
        if claims.get("iat").is_some_and(|iat| !iat.is_number()) {
            return Err(unverifiable());
        }
        if let Some(nbf) = claims.get("nbf") {
            match nbf.as_f64() {
                Some(nbf) if nbf <= now => {}
                _ => return Err(unverifiable()),
            }
        }
        if let Some(exp) = claims.get("exp") {
            let exp = exp.as_f64().ok_or_else(unverifiable)?;
            if exp <= now && !allow_expired {
                return Err(xrpc_error(
                    StatusCode::BAD_REQUEST,
                    "ExpiredToken",
                    "Token has expired",
                ));
            }
        }

        // The server's own checks.
        if header
            .get("typ")
            .is_some_and(|typ| typ.as_str() != Some(kind.typ()))
        {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Invalid token type",
            ));
        }
        if claims.get("lxm").is_some() || claims.get("cnf").is_some() {
            return Err(malformed());
        }
        let did = match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if sub.starts_with("did:") => sub.to_owned(),
            _ => return Err(malformed()),
        };
        if !claims
            .get("aud")
            .and_then(Value::as_str)
            .is_some_and(|aud| aud.starts_with("did:"))
        {
            return Err(malformed());
        }
        let jti = match claims.get("jti") {
            None => None,
            Some(Value::String(jti)) => Some(jti.clone()),
            Some(_) => return Err(malformed()),
        };
        if claims.get("scope").and_then(Value::as_str) != Some(kind.scope()) {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Bad token scope",
            ));
        }
        if kind == Kind::Refresh && jti.is_none() {
            return Err(xrpc_error(
                StatusCode::UNAUTHORIZED,
                "MissingTokenId",
                "Unexpected missing refresh token id",
            ));
        }
        Ok(Verified { did, jti })
    }

    /// The account behind a verified refresh token, refusing taken-down
    /// accounts (refreshSession looks taken-down accounts up, then refuses).
    fn live_account<'a>(&self, state: &'a AtpState, did: &str) -> Result<&'a Account, XrpcError> {
        match state.accounts.get(did) {
            None => Err(user_not_found(did)),
            Some(account) if account.taken_down => Err(takedown_error()),
            Some(account) => Ok(account),
        }
    }

    /// The account for getSession, which does not see taken-down accounts.
    fn visible_account<'a>(
        &self,
        state: &'a AtpState,
        did: &str,
    ) -> Result<&'a Account, XrpcError> {
        match state.accounts.get(did) {
            Some(account) if !account.taken_down => Ok(account),
            _ => Err(user_not_found(did)),
        }
    }

    /// Rotates the refresh token `jti`: a pair for its successor, the same
    /// successor on every use inside the grace period (revived if it was
    /// deleted), as the reference server's `rotateRefreshToken`.
    fn rotate(&self, state: &mut AtpState, did: &str, jti: &str) -> Result<Pair, XrpcError> {
        let now = self.now();
        let revoked = || {
            xrpc_error(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "Token has been revoked",
            )
        };
        let Some(record) = state.refresh_tokens.get(jti) else {
            return Err(revoked());
        };
        if record.expires_at <= now {
            state.refresh_tokens.remove(jti);
            return Err(revoked());
        }
        let grace_end = now
            .checked_add(self.grace_period)
            .unwrap_or(record.expires_at);
        let cut = grace_end.min(record.expires_at);
        let next = record.next.clone().unwrap_or_else(new_jti);
        let pair = self.mint_pair(state, did, &next);
        if let Some(record) = state.refresh_tokens.get_mut(jti) {
            record.expires_at = cut;
            record.next = Some(next);
        }
        Ok(pair)
    }

    fn did_doc(&self, did: &str, handle: &str) -> Value {
        json!({
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/multikey/v1",
                "https://w3id.org/security/suites/secp256k1-2019/v1"
            ],
            "id": did,
            "alsoKnownAs": [format!("at://{handle}")],
            "verificationMethod": [{
                "id": format!("{did}#atproto"),
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
            }],
            "service": [{
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": self.url
            }]
        })
    }

    /// Adds `didDoc` to a session output when the mock is configured to.
    fn with_did_doc(&self, mut output: Value, did: &str, handle: &str) -> Value {
        if self.did_doc_with_session {
            output["didDoc"] = self.did_doc(did, handle);
        }
        output
    }
}

fn new_jti() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(ids::random_bytes(32))
}

/// An XRPC error: `{"error": <name>, "message": <text>}` with a status.
struct XrpcError {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            CONTENT_TYPE,
            &json!({"error": self.error, "message": self.message}),
        )
    }
}

fn xrpc_error(status: StatusCode, error: &'static str, message: &str) -> XrpcError {
    XrpcError {
        status,
        error,
        message: message.to_owned(),
    }
}

fn takedown_error() -> XrpcError {
    xrpc_error(
        StatusCode::UNAUTHORIZED,
        "AccountTakedown",
        "Account has been taken down",
    )
}

fn user_not_found(did: &str) -> XrpcError {
    xrpc_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &format!("Could not find user info for account: {did}"),
    )
}

/// A route that answers other methods as the reference server does:
/// `400 InvalidRequest "Incorrect HTTP method (GET) expected POST"`.
fn only(expected: &'static str, route: MethodRouter<Arc<Inner>>) -> MethodRouter<Arc<Inner>> {
    route.fallback(move |method: Method| async move {
        xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("Incorrect HTTP method ({method}) expected {expected}"),
        )
    })
}

fn no_body_expected() -> XrpcError {
    xrpc_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "A request body was provided when none was expected",
    )
}

/// The bearer token, or the reference server's answer to a bad header: the
/// value must be exactly `<scheme> <credentials>` (one space); the scheme is
/// matched case-insensitively; `Basic` and `DPoP` are known schemes that
/// carry no bearer token.
fn bearer(headers: &HeaderMap) -> Result<&str, XrpcError> {
    let missing = || {
        xrpc_error(
            StatusCode::UNAUTHORIZED,
            "AuthMissing",
            "Authentication Required",
        )
    };
    let malformed = || {
        xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidToken",
            "Malformed authorization header",
        )
    };
    let value = match authorization(headers) {
        None => return Err(missing()),
        Some(Err(())) => return Err(malformed()),
        Some(Ok(value)) => value.trim_matches([' ', '\t']),
    };
    if value.is_empty() {
        return Err(missing());
    }
    let mut parts = value.split(' ');
    let (Some(scheme), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    match scheme.to_ascii_uppercase().as_str() {
        "BEARER" if token.is_empty() => Err(missing()),
        "BEARER" => Ok(token),
        "BASIC" | "DPOP" => Err(missing()),
        _ => Err(xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidToken",
            &format!("Unsupported authorization type: {scheme}"),
        )),
    }
}

async fn create_session(
    State(inner): State<Arc<Inner>>,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let invalid = |message: &str| xrpc_error(StatusCode::BAD_REQUEST, "InvalidRequest", message);
    let Ok(input @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return Err(invalid("Request body must be a JSON object"));
    };
    let field = |name: &str| {
        input
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("Input must have the property \"{name}\"")))
    };
    let identifier = field("identifier")?.to_lowercase();
    let password = field("password")?;
    let mut state = lock(&inner.state);
    let found = state.accounts.iter().find(|(did, account)| {
        **did == identifier
            || account.handle.to_lowercase() == identifier
            || account.email == identifier
    });
    let did = match found {
        Some((_, account)) if account.password == password && account.taken_down => {
            return Err(takedown_error());
        }
        Some((did, account)) if account.password == password => did.clone(),
        _ => {
            return Err(xrpc_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "Invalid identifier or password",
            ));
        }
    };
    let (access_jwt, refresh_jwt) = inner.new_session(&mut state, &did);
    let account = inner.live_account(&state, &did)?;
    let output = json!({
        "did": did,
        "handle": account.handle,
        "email": account.email,
        "emailConfirmed": false,
        "accessJwt": access_jwt,
        "refreshJwt": refresh_jwt,
        "active": true,
    });
    Ok(json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &inner.with_did_doc(output, &did, &account.handle),
    ))
}

async fn refresh_session(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, XrpcError> {
    refresh(&inner, &headers, &body)
}

/// Authentication first, then the input, then the handler: the reference
/// server's order.
fn refresh(inner: &Inner, headers: &HeaderMap, body: &[u8]) -> Result<Response, XrpcError> {
    let verified = inner.verify(bearer(headers)?, Kind::Refresh, false)?;
    if !body.is_empty() {
        return Err(no_body_expected());
    }
    let jti = verified.jti.unwrap_or_default();
    let mut state = lock(&inner.state);
    inner.live_account(&state, &verified.did)?;
    let pair = inner.rotate(&mut state, &verified.did, &jti)?;
    let account = inner.live_account(&state, &verified.did)?;
    let output = json!({
        "did": verified.did,
        "handle": account.handle,
        "accessJwt": pair.access_jwt,
        "refreshJwt": pair.refresh_jwt,
        "active": true,
    });
    Ok(json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &inner.with_did_doc(output, &verified.did, &account.handle),
    ))
}

async fn get_session(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
) -> Result<Response, XrpcError> {
    session(&inner, &headers)
}

fn session(inner: &Inner, headers: &HeaderMap) -> Result<Response, XrpcError> {
    let verified = inner.verify(bearer(headers)?, Kind::Access, false)?;
    let state = lock(&inner.state);
    let account = inner.visible_account(&state, &verified.did)?;
    let output = json!({
        "handle": account.handle,
        "did": verified.did,
        "email": account.email,
        "emailConfirmed": false,
        "active": true,
    });
    Ok(json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &inner.with_did_doc(output, &verified.did, &account.handle),
    ))
}

async fn delete_session(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, XrpcError> {
    sign_out(&inner, &headers, &body)
}

/// Revokes the refresh token; an expired one is accepted too, as on the
/// reference server.
fn sign_out(inner: &Inner, headers: &HeaderMap, body: &[u8]) -> Result<Response, XrpcError> {
    let verified = inner.verify(bearer(headers)?, Kind::Refresh, true)?;
    if !body.is_empty() {
        return Err(no_body_expected());
    }
    if let Some(jti) = verified.jti {
        lock(&inner.state).refresh_tokens.remove(&jti);
    }
    Ok(StatusCode::OK.into_response())
}

async fn not_implemented(uri: Uri) -> Response {
    if uri.path().starts_with("/xrpc/") {
        xrpc_error(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        )
        .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
