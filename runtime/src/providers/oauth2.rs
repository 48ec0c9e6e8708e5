//! OAuth 2.0 (RFC 6749 §6): refreshing at a token endpoint.
//!
//! [`Refresh`] is a ready-made refresh endpoint for any RFC 6749 server, used
//! by a [`Session`](crate::session::Session) directly; no declaration:
//!
//! ```no_run
//! use refresh_endpoint::providers::oauth2;
//! use refresh_endpoint::{Client, session::Session, tokens::Tokens};
//!
//! # async fn run(saved: Tokens) -> Result<(), refresh_endpoint::Error> {
//! let client = Client::builder("https://auth.example.com/oauth/token")
//!     .client_credentials("my-app", "s3cret").build()?;
//! let session = Session::builder(client, oauth2::Refresh::basic()).tokens(saved).build().await?;
//! # let _ = session; Ok(()) }
//! ```

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::{Auth, ClientBasic, ClientInBody, NoAuth};
use crate::endpoint::{Body, Endpoint};
use crate::envelope::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::tokens::{IntoTokens, Issued, expires_after};
use crate::{Error, Secret};

/// A successful token response (RFC 6749 §5.1), read leniently: `scope` as
/// a space-separated string or a JSON list, `expires_in` as a number or a
/// numeric string, any `token_type` (missing reads as empty).
///
/// ```
/// use refresh_endpoint::providers::oauth2::TokenResponse;
///
/// let token: TokenResponse =
///     serde_json::from_str(r#"{"access_token":"at","token_type":"Bearer","expires_in":3600}"#).unwrap();
/// assert_eq!(token.expires_in, Some(3600));
/// assert!(token.refresh_token.is_none()); // keep the old one
///
/// let lenient: TokenResponse = serde_json::from_str(
///     r#"{"access_token":"at","token_type":"N_A","expires_in":"60","scope":["read","write"]}"#,
/// ).unwrap();
/// assert_eq!(lenient.expires_in, Some(60));
/// assert_eq!(lenient.scope.as_deref(), Some("read write"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: Secret,
    /// Usually `Bearer`; any value is accepted.
    #[serde(default)]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[serde(
        default,
        deserialize_with = "lenient_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_in: Option<u64>,
    /// A new refresh token; absent means the old one stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// The granted scope, space-separated (a JSON list is joined).
    #[serde(
        default,
        deserialize_with = "lenient_scope",
        skip_serializing_if = "Option::is_none"
    )]
    pub scope: Option<String>,
}

impl IntoTokens for TokenResponse {
    fn into_tokens(self, received_at: SystemTime) -> Result<Issued, Error> {
        let expires_at = self
            .expires_in
            .and_then(|seconds| expires_after(received_at, Duration::from_secs(seconds)));
        Ok(Issued::access(self.access_token)
            .with_refresh_token(self.refresh_token)
            .with_access_expires_at(expires_at))
    }
}

/// A number, a numeric string, or null; anything else is an error.
fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Int(u64),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<Seconds>::deserialize(deserializer)? {
        None => None,
        Some(Seconds::Int(n)) => Some(n),
        Some(Seconds::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(Seconds::Float(_)) => None,
        Some(Seconds::Text(text)) => Some(
            text.trim()
                .parse()
                .map_err(|_| serde::de::Error::custom("expires_in is not a number of seconds"))?,
        ),
    })
}

/// A space-separated string or a list of strings.
fn lenient_scope<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scope {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Option::<Scope>::deserialize(deserializer)? {
        None => None,
        Some(Scope::Text(text)) => Some(text),
        Some(Scope::List(list)) => Some(list.join(" ")),
    })
}

/// A ready-made RFC 6749 §6 refresh: `POST` to the token endpoint with the
/// form `grant_type=refresh_token&refresh_token=…` and optional `scope`,
/// `audience` and `resource`; the client authenticated by `A`:
/// [`ClientBasic`] ([`Refresh::basic`]), [`ClientInBody`]
/// ([`Refresh::client_body`], also for a public client with a client id
/// alone) or [`NoAuth`] ([`Refresh::no_client_auth`]). The answer is
/// unwrapped with the [`OAuth2`] envelope (`invalid_grant` ends the session).
///
/// The token endpoint is the client's base URL, plus [`Refresh::path`] if
/// set. The refresh token is filled in by the session before each refresh.
///
/// ```
/// use refresh_endpoint::providers::oauth2::Refresh;
/// use refresh_endpoint::{Client, Secret, Endpoint};
///
/// let client = Client::builder("https://auth.example.com")
///     .client_credentials("app", "s3cret").build().unwrap();
/// let mut refresh = Refresh::basic().path("/oauth/token").scope("read");
/// refresh.set_refresh_token(&Secret::new("rt"));
/// let request = client.build_request(&refresh, None).unwrap();
/// assert_eq!(request.url().as_str(), "https://auth.example.com/oauth/token");
/// let body = request.body().unwrap().as_bytes().unwrap();
/// assert_eq!(body, b"grant_type=refresh_token&refresh_token=rt&scope=read");
/// ```
pub struct Refresh<A = ClientBasic> {
    path: String,
    refresh_token: Secret,
    scope: Option<String>,
    audience: Option<String>,
    resource: Vec<String>,
    auth: PhantomData<fn() -> A>,
}

impl<A> Clone for Refresh<A> {
    fn clone(&self) -> Self {
        Refresh {
            path: self.path.clone(),
            refresh_token: self.refresh_token.clone(),
            scope: self.scope.clone(),
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            auth: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for Refresh<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("path", &self.path)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Refresh<ClientBasic> {
    /// The client authenticated with HTTP Basic (set the id and secret with
    /// [`ClientBuilder::client_credentials`](crate::ClientBuilder::client_credentials)).
    pub fn basic() -> Self {
        Self::new()
    }
}

impl Refresh<ClientInBody> {
    /// `client_id` and `client_secret` in the form body; a client with only
    /// an id ([`ClientBuilder::client_id`](crate::ClientBuilder::client_id))
    /// sends `client_id` alone, as a public client does.
    pub fn client_body() -> Self {
        Self::new()
    }
}

impl Refresh<NoAuth> {
    /// No client authentication at all.
    pub fn no_client_auth() -> Self {
        Self::new()
    }
}

impl<A> Refresh<A> {
    /// A refresh with client authentication `A`; see [`Refresh::basic`],
    /// [`Refresh::client_body`], [`Refresh::no_client_auth`].
    pub fn new() -> Self {
        Refresh {
            path: String::new(),
            refresh_token: Secret::default(),
            scope: None,
            audience: None,
            resource: Vec::new(),
            auth: PhantomData,
        }
    }

    /// The token endpoint's path, appended to the client's base URL
    /// (default: none, the base URL is the token endpoint).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `scope` to ask for (RFC 6749 §6: no wider than granted).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` (Auth0, RFC 8693 style servers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A `resource` indicator (RFC 8707); may be given more than once.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource.push(resource.into());
        self
    }

    /// The refresh token to send (a session sets it before each refresh).
    pub fn refresh_token(mut self, token: impl Into<Secret>) -> Self {
        self.refresh_token = token.into();
        self
    }
}

impl<A> Default for Refresh<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Auth> Endpoint for Refresh<A> {
    type Response = TokenResponse;
    type Auth = A;
    type Envelope = OAuth2;
    const NAME: &'static str = "oauth2_refresh";
    const METHOD: reqwest::Method = reqwest::Method::POST;
    const CARRIES_REFRESH_TOKEN: bool = true;

    fn write_path(&self, path: &mut String) -> Result<(), Error> {
        path.push_str(&self.path);
        Ok(())
    }

    fn body(&self) -> Result<Option<Body>, Error> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        for resource in &self.resource {
            form.push(("resource", resource));
        }
        crate::__private::form_body(&form)
    }

    fn set_refresh_token(&mut self, token: &Secret) {
        self.refresh_token.clone_from(token);
    }
}

/// The OAuth 2.0 token endpoint envelope (RFC 6749 §5.1, §5.2): a 2xx body
/// is the response; an error is `{"error", "error_description", "error_uri"}`.
///
/// `invalid_grant` (the refresh token is invalid, expired or revoked) ends
/// the session; `temporarily_unavailable`, `server_error`, 429 and 5xx are
/// retryable; other errors (`invalid_client`, `invalid_request`, …) are
/// [`ErrorKind::Api`](crate::ErrorKind::Api): configuration problems that
/// signing in again would not fix. A 2xx answer carrying an `error` is an
/// error too (GitHub answers HTTP 200 `{"error":"bad_refresh_token"}`).
///
/// A preset of [`JsonEnvelope`]: [`OAuth2::ENVELOPE`]; extend it with
/// `envelope = oauth2(terminal = ["bad_refresh_token"])`.
///
/// ```
/// use refresh_endpoint::envelope::{Envelope, OAuth2, RawResponse};
///
/// let dead = RawResponse {
///     endpoint: "token",
///     status: 400,
///     headers: Default::default(),
///     body: br#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#.to_vec(),
/// };
/// assert!(OAuth2::unwrap::<serde_json::Value>(&dead).unwrap_err().is_terminal());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OAuth2;

impl OAuth2 {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("oauth2")
        .code("error")
        .message(&["error_description"])
        .rules(&[
            Rule::code("invalid_grant", Outcome::Terminal),
            Rule::code("temporarily_unavailable", Outcome::Retryable),
            Rule::code("server_error", Outcome::Retryable),
        ]);
}

impl Envelope for OAuth2 {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }
}
