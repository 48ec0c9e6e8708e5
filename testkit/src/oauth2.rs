//! A mock OAuth 2.0 authorization server's token endpoint
//! (RFC 6749 §6, "Refreshing an Access Token") and one protected resource.
//!
//! `POST /oauth/token` takes `application/x-www-form-urlencoded`
//! `grant_type=refresh_token&refresh_token=…[&scope=…]`, with the client
//! authenticated by HTTP Basic or by `client_id`/`client_secret` in the body
//! (a public client sends only `client_id`). Errors follow §5.2:
//! `{"error", "error_description"}`, status 400, or 401 with
//! `WWW-Authenticate: Basic` for `invalid_client`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::clock::{Now, exp_passed, system_clock, unix_secs};
use crate::ids;
use crate::jwt;
use crate::server::{
    self, MockServer, Provider, authorization, common_methods, json_response, lock, strip_scheme,
};

/// `POST` — the token endpoint, the refresh route.
pub const TOKEN_ROUTE: &str = "/oauth/token";
/// `POST` — GitHub's token endpoint ([`Dialect::GitHub`]).
pub const GITHUB_ROUTE: &str = "/login/oauth/access_token";
/// `POST` — Slack's `oauth.v2.access` ([`Dialect::Slack`]).
pub const SLACK_ROUTE: &str = "/api/oauth.v2.access";
/// `POST` — Spotify's token endpoint ([`Dialect::Spotify`]).
pub const SPOTIFY_ROUTE: &str = "/api/token";
/// `POST` — Microsoft Entra ID's v2.0 token endpoint, with the tenant as the
/// first path segment ([`Dialect::Entra`]).
pub const ENTRA_ROUTE: &str = "/{tenant}/oauth2/v2.0/token";
/// The tenant an [`Dialect::Entra`] mock serves.
pub const ENTRA_TENANT: &str = "contoso.onmicrosoft.com";

/// How a real provider speaks OAuth 2.0 refresh, as its public
/// documentation describes it. The grant bookkeeping (rotation, expiry,
/// client authentication) is the same; routes and answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// RFC 6749 as written, at [`TOKEN_ROUTE`].
    #[default]
    Standard,
    /// GitHub App user tokens, at [`GITHUB_ROUTE`]: client id and secret in
    /// the body; every answer is HTTP 200, errors included
    /// (`{"error":"bad_refresh_token",...}`); the answer is form-encoded
    /// unless the request has `Accept: application/json`.
    GitHub,
    /// Slack `oauth.v2.access`, at [`SLACK_ROUTE`]: HTTP 200 with
    /// `{"ok":true,...}` or `{"ok":false,"error":"invalid_refresh_token"}`;
    /// scopes comma-separated.
    Slack,
    /// Spotify, at [`SPOTIFY_ROUTE`]: RFC 6749 with HTTP Basic client
    /// authentication; `scope` a space-separated string; the refresh token
    /// may be left out (configure with `omit_refresh_token`).
    Spotify,
    /// Microsoft Entra ID v2.0, at [`ENTRA_ROUTE`] for [`ENTRA_TENANT`]:
    /// credentials in the body, `scope` required, errors with
    /// `error_codes`, `trace_id`, `correlation_id` (`invalid_grant` with
    /// AADSTS70008 for an expired or revoked refresh token).
    Entra,
}
/// `GET` — a protected resource (`Authorization: Bearer <access_token>`).
pub const ME_ROUTE: &str = "/api/me";
/// The id of the confidential client every mock has.
pub const DEFAULT_CLIENT_ID: &str = "testkit-client";

const CONTENT_TYPE: &str = "application/json;charset=UTF-8";
const REALM: &str = "testkit";

/// Tokens as a token response carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Tokens {
    /// The access token (an HS256 JWT), sent as `Authorization: Bearer`.
    pub access_token: String,
    /// The refresh token (opaque).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scope, space-separated.
    pub scope: String,
    /// The client the tokens were issued to.
    pub client_id: String,
}

/// A mock OAuth 2.0 token endpoint on `127.0.0.1`; it stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use refresh_endpoint_testkit::OAuth2Mock;
///
/// let auth = OAuth2Mock::start().await;
/// let tokens = auth.issue_tokens();
/// let response = reqwest::Client::new()
///     .post(format!("{}/oauth/token", auth.url()))
///     .basic_auth(auth.client_id(), Some(auth.client_secret()))
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(format!("grant_type=refresh_token&refresh_token={}", tokens.refresh_token))
///     .send()
///     .await
///     .unwrap();
/// assert_eq!(response.status(), 200);
/// let answer: serde_json::Value = response.json().await.unwrap();
/// assert_eq!(answer["token_type"], "Bearer");
/// # }
/// ```
pub struct OAuth2Mock {
    server: MockServer,
    inner: Arc<Inner>,
}

/// Configures an [`OAuth2Mock`] before starting it.
#[must_use = "a builder does nothing until `.start().await`"]
pub struct OAuth2MockBuilder {
    clock: Now,
    access_ttl: Duration,
    refresh_ttl: Duration,
    rotate: bool,
    omit_refresh_token: bool,
    scope: String,
    clients: HashMap<String, Option<String>>,
    dialect: Dialect,
}

impl Default for OAuth2MockBuilder {
    fn default() -> Self {
        let mut clients = HashMap::new();
        clients.insert(
            DEFAULT_CLIENT_ID.to_owned(),
            Some(ids::random_string(32, ids::ALNUM)),
        );
        Self {
            clock: system_clock(),
            access_ttl: Duration::from_secs(60 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            rotate: true,
            omit_refresh_token: false,
            scope: "read".to_owned(),
            clients,
            dialect: Dialect::Standard,
        }
    }
}

impl OAuth2MockBuilder {
    /// The clock the mock judges expiry with (default: the wall clock).
    pub fn clock(mut self, now: Now) -> Self {
        self.clock = now;
        self
    }

    /// Access token lifetime, `expires_in` (default: 1 hour).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh token lifetime (default: 30 days).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Whether a refresh issues a new refresh token and invalidates the old
    /// one at once (default: `true`). When off, the refresh token stays the
    /// same and keeps working.
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate = rotate;
        self
    }

    /// Leave `refresh_token` out of refresh responses ("keep the one you
    /// have"). Only takes effect when rotation is off (default: `false`).
    pub fn omit_refresh_token(mut self, omit: bool) -> Self {
        self.omit_refresh_token = omit;
        self
    }

    /// The scope [`OAuth2Mock::issue_tokens`] grants (default: `read`).
    pub fn scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.scope);
        self
    }

    /// Speak like this provider (default: [`Dialect::Standard`]).
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Registers a confidential client, authenticated by `secret` (HTTP
    /// Basic or `client_secret` in the body).
    pub fn client(mut self, id: &str, secret: &str) -> Self {
        self.clients.insert(id.to_owned(), Some(secret.to_owned()));
        self
    }

    /// Registers a public client, which sends its `client_id` in the body
    /// and no secret.
    pub fn public_client(mut self, id: &str) -> Self {
        self.clients.insert(id.to_owned(), None);
        self
    }

    /// Starts the mock on `127.0.0.1:0` in the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; see [`try_start`](Self::try_start).
    pub async fn start(self) -> OAuth2Mock {
        server::started("OAuth 2.0", self.try_start().await)
    }

    /// Starts the mock on `127.0.0.1:0`, reporting a bind failure.
    pub async fn try_start(self) -> io::Result<OAuth2Mock> {
        let listener = MockServer::bind().await?;
        let inner = Arc::new(Inner {
            clock: self.clock,
            secret: ids::random_bytes(32),
            url: MockServer::url_of(&listener)?,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            rotate: self.rotate,
            omit_refresh_token: self.omit_refresh_token && !self.rotate,
            scope: self.scope,
            clients: self.clients,
            grants: Mutex::default(),
            dialect: self.dialect,
        });
        let router = match self.dialect {
            Dialect::Standard => Router::new().route(TOKEN_ROUTE, post(token)),
            Dialect::GitHub => Router::new().route(GITHUB_ROUTE, post(token)),
            Dialect::Slack => Router::new().route(SLACK_ROUTE, post(token)),
            Dialect::Spotify => Router::new().route(SPOTIFY_ROUTE, post(token)),
            Dialect::Entra => Router::new().route(ENTRA_ROUTE, post(entra_token)),
        }
        .route(ME_ROUTE, get(me))
        .with_state(Arc::clone(&inner));
        let provider = Provider {
            is_refresh: |path| {
                [TOKEN_ROUTE, GITHUB_ROUTE, SLACK_ROUTE, SPOTIFY_ROUTE].contains(&path)
                    || path.ends_with("/oauth2/v2.0/token")
            },
            rate_limited: |_| {
                token_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({
                        "error": "temporarily_unavailable",
                        "error_description": "Too many requests; retry later",
                    }),
                )
            },
        };
        Ok(OAuth2Mock {
            server: MockServer::spawn(listener, router, provider)?,
            inner,
        })
    }
}

impl OAuth2Mock {
    /// Starts a mock with the defaults: wall clock, 1 h access tokens,
    /// 30 day rotating refresh tokens, one confidential client.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder to set the clock, lifetimes, rotation and clients.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use refresh_endpoint_testkit::OAuth2Mock;
    ///
    /// let auth = OAuth2Mock::builder()
    ///     .rotate_refresh_tokens(false)
    ///     .omit_refresh_token(true)
    ///     .public_client("cli")
    ///     .start()
    ///     .await;
    /// let tokens = auth.issue_tokens_for("cli", "read write").unwrap();
    /// assert_eq!(tokens.scope, "read write");
    /// # }
    /// ```
    pub fn builder() -> OAuth2MockBuilder {
        OAuth2MockBuilder::default()
    }

    common_methods!("/oauth/token");

    /// The HS256 secret access tokens are signed with.
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// The token endpoint's full URL, `http://127.0.0.1:PORT/oauth/token`
    /// (the dialect's route).
    pub fn token_url(&self) -> String {
        let route = match self.inner.dialect {
            Dialect::Standard => TOKEN_ROUTE.to_owned(),
            Dialect::GitHub => GITHUB_ROUTE.to_owned(),
            Dialect::Slack => SLACK_ROUTE.to_owned(),
            Dialect::Spotify => SPOTIFY_ROUTE.to_owned(),
            Dialect::Entra => ENTRA_ROUTE.replace("{tenant}", ENTRA_TENANT),
        };
        format!("{}{route}", self.url())
    }

    /// The default confidential client's id, [`DEFAULT_CLIENT_ID`].
    pub fn client_id(&self) -> &str {
        DEFAULT_CLIENT_ID
    }

    /// The default confidential client's secret.
    pub fn client_secret(&self) -> &str {
        self.inner
            .clients
            .get(DEFAULT_CLIENT_ID)
            .and_then(Option::as_deref)
            .unwrap_or_default()
    }

    /// Issues tokens to the default client with the default scope, as an
    /// authorization code exchange would, directly, without HTTP.
    pub fn issue_tokens(&self) -> OAuth2Tokens {
        let scope = self.inner.scope.clone();
        self.inner.issue(DEFAULT_CLIENT_ID, &new_subject(), &scope)
    }

    /// Issues tokens to a registered client with this scope. `None` if the
    /// client is not registered.
    pub fn issue_tokens_for(&self, client_id: &str, scope: &str) -> Option<OAuth2Tokens> {
        self.inner
            .clients
            .contains_key(client_id)
            .then(|| self.inner.issue(client_id, &new_subject(), scope))
    }

    /// Revokes a refresh token (as RFC 7009 revocation would). Returns
    /// whether it was live.
    pub fn revoke(&self, refresh_token: &str) -> bool {
        lock(&self.inner.grants).remove(refresh_token).is_some()
    }
}

fn new_subject() -> String {
    format!("user-{}", ids::random_string(8, ids::ALNUM_LOWER))
}

impl fmt::Debug for OAuth2Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Mock")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Now,
    secret: Vec<u8>,
    url: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    rotate: bool,
    omit_refresh_token: bool,
    scope: String,
    /// Client id to secret (`None` for public clients).
    clients: HashMap<String, Option<String>>,
    /// Live refresh tokens.
    grants: Mutex<HashMap<String, Grant>>,
    dialect: Dialect,
}

struct Grant {
    client_id: String,
    subject: String,
    scope: String,
    expires_at: SystemTime,
}

/// A token endpoint error (§5.2); 401 answers carry a Basic challenge.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = token_response(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"{REALM}\"");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_owned(),
    }
}

fn invalid_request(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client(description: &str) -> OAuthError {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// A token endpoint answer: JSON, never cached (§5.1).
fn token_response(status: StatusCode, body: &Value) -> Response {
    let mut response = json_response(status, CONTENT_TYPE, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Decodes one `application/x-www-form-urlencoded` component (HTTP Basic
/// credentials are form-encoded before base64, RFC 6749 §2.3.1).
fn form_decode(component: &str) -> Option<String> {
    let plus_as_space = component.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

impl Inner {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Mints an access token.
    fn access_token(&self, client_id: &str, subject: &str, scope: &str) -> String {
        let now = self.now();
        jwt::sign(
            &self.secret,
            &json!({"alg": "HS256", "typ": "at+jwt"}),
            &json!({
                "iss": self.url,
                "sub": subject,
                "client_id": client_id,
                "scope": scope,
                "iat": unix_secs(now),
                "exp": unix_secs(now + self.access_ttl),
                "jti": ids::random_string(16, ids::ALNUM),
            }),
        )
    }

    /// Records a new refresh token for this grant and returns it.
    fn new_refresh_token(&self, client_id: &str, subject: &str, scope: &str) -> String {
        let refresh_token = ids::random_string(43, ids::ALNUM);
        lock(&self.grants).insert(
            refresh_token.clone(),
            Grant {
                client_id: client_id.to_owned(),
                subject: subject.to_owned(),
                scope: scope.to_owned(),
                expires_at: self.now() + self.refresh_ttl,
            },
        );
        refresh_token
    }

    /// Issues a fresh access and refresh token pair.
    fn issue(&self, client_id: &str, subject: &str, scope: &str) -> OAuth2Tokens {
        OAuth2Tokens {
            access_token: self.access_token(client_id, subject, scope),
            refresh_token: self.new_refresh_token(client_id, subject, scope),
            expires_in: self.access_ttl.as_secs(),
            scope: scope.to_owned(),
            client_id: client_id.to_owned(),
        }
    }

    /// Authenticates the client (HTTP Basic or body credentials) and returns
    /// its id.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
    ) -> Result<String, OAuthError> {
        let basic = match authorization(headers) {
            Some(Ok(value)) => strip_scheme(value, "Basic"),
            _ => None,
        };
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        if let Some(encoded) = basic {
            if body_secret.is_some() {
                return Err(invalid_request(
                    "The client used more than one authentication method",
                ));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| invalid_client("Malformed HTTP Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .and_then(|(id, secret)| Some((form_decode(id)?, form_decode(secret)?)))
                .ok_or_else(|| invalid_client("Malformed HTTP Basic credentials"))?;
            if body_id.is_some_and(|body_id| *body_id != id) {
                return Err(invalid_request(
                    "client_id does not match the authenticated client",
                ));
            }
            return match self.clients.get(&id) {
                Some(Some(expected)) if *expected == secret => Ok(id),
                _ => Err(invalid_client("Client authentication failed")),
            };
        }
        let Some(id) = body_id else {
            return Err(invalid_client(
                "Client authentication failed: no client credentials",
            ));
        };
        match (self.clients.get(id), body_secret) {
            (Some(Some(expected)), Some(secret)) if expected == secret => Ok(id.clone()),
            (Some(None), None) => Ok(id.clone()),
            _ => Err(invalid_client("Client authentication failed")),
        }
    }

    /// The token endpoint.
    fn token(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(invalid_request(
                "The request body must be application/x-www-form-urlencoded",
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| invalid_request("Malformed form body"))?;
        let mut params = HashMap::new();
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(invalid_request(&format!(
                    "Parameter {name} is included more than once"
                )));
            }
            params.insert(name, value);
        }
        let Some(grant_type) = params.get("grant_type") else {
            return Err(invalid_request("Missing parameter: grant_type"));
        };
        if self.dialect == Dialect::Entra && !params.contains_key("scope") {
            return Err(invalid_request(
                "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            ));
        }
        let client_id = self.authenticate(headers, &params)?;
        if grant_type != "refresh_token" {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Grant type {grant_type} is not supported"),
            ));
        }
        let Some(refresh_token) = params
            .get("refresh_token")
            .filter(|token| !token.is_empty())
        else {
            return Err(invalid_request("Missing parameter: refresh_token"));
        };
        let invalid_grant = || {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked",
            )
        };
        let now = self.now();
        let (subject, granted_scope) = {
            let mut grants = lock(&self.grants);
            let grant = grants.get(refresh_token).ok_or_else(invalid_grant)?;
            if grant.expires_at <= now {
                grants.remove(refresh_token);
                return Err(invalid_grant());
            }
            if grant.client_id != client_id {
                return Err(invalid_grant());
            }
            (grant.subject.clone(), grant.scope.clone())
        };
        // A narrower scope may be asked for the access token; the refresh
        // token keeps the original grant (§6).
        let scope = match params.get("scope") {
            None => granted_scope.clone(),
            Some(requested) => {
                let granted: Vec<&str> = granted_scope.split_whitespace().collect();
                if let Some(extra) = requested.split_whitespace().find(|s| !granted.contains(s)) {
                    return Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        &format!("Scope {extra} exceeds the scope granted"),
                    ));
                }
                requested.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let refresh_token = if self.rotate {
            // Two racing refreshes with one token: only the first wins.
            if lock(&self.grants).remove(refresh_token).is_none() {
                return Err(invalid_grant());
            }
            self.new_refresh_token(&client_id, &subject, &granted_scope)
        } else {
            refresh_token.clone()
        };
        let mut answer = json!({
            "access_token": self.access_token(&client_id, &subject, &scope),
            "token_type": "Bearer",
            "expires_in": self.access_ttl.as_secs(),
            "scope": scope,
        });
        if !self.omit_refresh_token {
            answer["refresh_token"] = json!(refresh_token);
        }
        Ok(answer)
    }
}
async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = inner.token(&headers, &body);
    render(inner.dialect, &headers, answer)
}

async fn entra_token(
    State(inner): State<Arc<Inner>>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = if tenant == ENTRA_TENANT {
        inner.token(&headers, &body)
    } else {
        Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        ))
    };
    render(Dialect::Entra, &headers, answer)
}

/// The answer as the dialect's provider writes it.
fn render(dialect: Dialect, headers: &HeaderMap, answer: Result<Value, OAuthError>) -> Response {
    match (dialect, answer) {
        (Dialect::Standard | Dialect::Spotify, Ok(answer)) => {
            token_response(StatusCode::OK, &answer)
        }
        (Dialect::Standard | Dialect::Spotify, Err(error)) => error.into_response(),
        (Dialect::GitHub, answer) => {
            let body = match answer {
                Ok(mut answer) => {
                    answer["token_type"] = json!("bearer");
                    answer["scope"] = json!("");
                    answer["refresh_token_expires_in"] = json!(15_897_600);
                    answer
                }
                Err(error) => {
                    let (code, description) = match error.error {
                        "invalid_grant" => (
                            "bad_refresh_token",
                            "The refresh token passed is incorrect or expired.".to_owned(),
                        ),
                        "invalid_client" => (
                            "incorrect_client_credentials",
                            "The client_id and/or client_secret passed are incorrect.".to_owned(),
                        ),
                        other => (other, error.description),
                    };
                    json!({
                        "error": code,
                        "error_description": description,
                        "error_uri": format!("https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#{}", code.replace('_', "-")),
                    })
                }
            };
            let wants_json = headers
                .get(header::ACCEPT)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.contains("json"));
            if wants_json {
                json_response(StatusCode::OK, "application/json; charset=utf-8", &body)
            } else {
                let pairs: Vec<(String, String)> = body
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect();
                let text = serde_urlencoded::to_string(pairs).unwrap_or_default();
                let mut response = Response::new(axum::body::Body::from(text));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
                );
                response
            }
        }
        (Dialect::Slack, answer) => {
            let body = match answer {
                Ok(mut answer) => {
                    answer["ok"] = json!(true);
                    answer["token_type"] = json!("bot");
                    let scope = answer["scope"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(' ', ",");
                    answer["scope"] = json!(scope);
                    answer["app_id"] = json!("A0TESTKIT");
                    answer["team"] = json!({"id": "T0TESTKIT", "name": "Testkit"});
                    answer
                }
                Err(error) => {
                    let code = match error.error {
                        "invalid_grant" => "invalid_refresh_token",
                        "invalid_client" => "invalid_client_id",
                        "unsupported_grant_type" => "invalid_grant_type",
                        "invalid_request" => "invalid_arguments",
                        other => other,
                    };
                    json!({"ok": false, "error": code})
                }
            };
            json_response(StatusCode::OK, "application/json; charset=utf-8", &body)
        }
        (Dialect::Entra, Ok(mut answer)) => {
            let expires_in = answer["expires_in"].clone();
            answer["ext_expires_in"] = expires_in;
            token_response(StatusCode::OK, &answer)
        }
        (Dialect::Entra, Err(error)) => {
            let (aadsts, description) = match error.error {
                "invalid_grant" => (
                    70008,
                    "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.".to_owned(),
                ),
                "invalid_client" => (
                    7_000_215,
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".to_owned(),
                ),
                _ => (900_144, error.description),
            };
            let trace_id = ids::uuid_v4();
            let correlation_id = ids::uuid_v4();
            token_response(
                error.status,
                &json!({
                    "error": error.error,
                    "error_description": format!("{description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: 2025-01-01 00:00:00Z"),
                    "error_codes": [aadsts],
                    "timestamp": "2025-01-01 00:00:00Z",
                    "trace_id": trace_id,
                    "correlation_id": correlation_id,
                    "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
                }),
            )
        }
    }
}

async fn me(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let challenge = |error: Option<&str>| {
        let value = match error {
            Some(error) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{error}\""
            ),
            None => format!("Bearer realm=\"{REALM}\""),
        };
        let body = match error {
            Some(error) => json!({"error": "invalid_token", "error_description": error}),
            None => json!({"error": "unauthorized"}),
        };
        let mut response = json_response(StatusCode::UNAUTHORIZED, CONTENT_TYPE, &body);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let token = match authorization(&headers)
        .and_then(Result::ok)
        .and_then(|value| strip_scheme(value, "Bearer"))
    {
        Some(token) => token.trim(),
        None => return challenge(None),
    };
    let Ok(claims) = jwt::verify(&inner.secret, token) else {
        return challenge(Some("The access token is invalid"));
    };
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if !exp_passed(exp, inner.now()) => {}
        _ => return challenge(Some("The access token expired")),
    }
    json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &json!({
            "sub": claims.get("sub"),
            "client_id": claims.get("client_id"),
            "scope": claims.get("scope"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%FF"), None);
    }
}
