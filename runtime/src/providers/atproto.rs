//! Bluesky / AT Protocol: `com.atproto.server.refreshSession`: the response
//! type [`AtpSession`], the [`Xrpc`] envelope and the ready-made
//! [`RefreshSession`] endpoint.
//!
//! ```no_run
//! use refresh_endpoint::providers::atproto::RefreshSession;
//! use refresh_endpoint::{Client, session::Session, tokens::Tokens};
//!
//! # async fn run(saved: Tokens) -> Result<(), refresh_endpoint::Error> {
//! let client = Client::new("https://bsky.social")?;
//! let session = Session::builder(client, RefreshSession).tokens(saved).build().await?;
//! # let _ = session; Ok(()) }
//! ```

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::tokens::{IntoTokens, Issued};
use crate::{Error, Secret};

/// `POST /xrpc/com.atproto.server.refreshSession`: the refresh JWT as
/// `Authorization: Bearer`, no body; the answer is an [`AtpSession`].
#[crate::refresh_endpoint(crate = crate, path = "/xrpc/com.atproto.server.refreshSession",
                          auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshSession;

impl IntoTokens for AtpSession {
    fn into_tokens(self, _: SystemTime) -> Result<Issued, Error> {
        Ok(Issued::access(self.access_jwt).with_refresh_token(Some(self.refresh_jwt)))
    }
}

/// The output of `com.atproto.server.refreshSession` (and `createSession`).
///
/// ```
/// use refresh_endpoint::providers::atproto::{AccountStatus, AtpSession};
///
/// let session: AtpSession = serde_json::from_str(r#"{
///     "accessJwt": "a.b.c", "refreshJwt": "d.e.f",
///     "handle": "alice.test", "did": "did:plc:abc", "status": "archived"
/// }"#).unwrap();
/// assert_eq!(session.handle, "alice.test");
/// assert_eq!(session.status, Some(AccountStatus::Other("archived".into())));
/// assert!(!format!("{session:?}").contains("a.b.c"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AtpSession {
    /// The access JWT (about 2 hours).
    pub access_jwt: Secret,
    /// The new refresh JWT (about 90 days); the old one stops working after a grace period.
    pub refresh_jwt: Secret,
    /// The account's handle.
    pub handle: String,
    /// The account's DID.
    pub did: String,
    /// The DID document, as the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did_doc: Option<serde_json::Value>,
    /// The account's email, when the server shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_confirmed: Option<bool>,
    /// Whether sign-in needs an emailed code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_auth_factor: Option<bool>,
    /// Whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Why the account is not active; absent means active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AccountStatus>,
}

/// The hosting status of an account. Values this crate does not know are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AccountStatus {
    /// `takendown`
    Takendown,
    /// `suspended`
    Suspended,
    /// `deactivated`
    Deactivated,
    /// Any other value.
    Other(String),
}

impl From<String> for AccountStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "takendown" => AccountStatus::Takendown,
            "suspended" => AccountStatus::Suspended,
            "deactivated" => AccountStatus::Deactivated,
            _ => AccountStatus::Other(value),
        }
    }
}

impl From<AccountStatus> for String {
    fn from(value: AccountStatus) -> Self {
        match value {
            AccountStatus::Takendown => "takendown".into(),
            AccountStatus::Suspended => "suspended".into(),
            AccountStatus::Deactivated => "deactivated".into(),
            AccountStatus::Other(other) => other,
        }
    }
}

/// The AT Protocol (XRPC) envelope: a 2xx body is the response, an error is
/// `{"error": "Name", "message": "text"}`.
///
/// `ExpiredToken`, `InvalidToken`, `AccountTakedown` and any 401 end the
/// session ([`ErrorKind::SignInAgain`](crate::ErrorKind::SignInAgain)), as in
/// the reference client; 429 and 5xx are retryable; other errors are
/// [`ErrorKind::Api`](crate::ErrorKind::Api). An authorized call is
/// refreshed and replayed on 401, or on 400 `ExpiredToken`. A preset of
/// [`JsonEnvelope`]: [`Xrpc::ENVELOPE`].
///
/// ```
/// use refresh_endpoint::envelope::{Envelope, RawResponse, Xrpc};
///
/// let revoked = RawResponse {
///     endpoint: "refreshSession",
///     status: 400,
///     headers: Default::default(),
///     body: br#"{"error":"ExpiredToken","message":"Token has been revoked"}"#.to_vec(),
/// };
/// let error = Xrpc::unwrap::<serde_json::Value>(&revoked).unwrap_err();
/// assert!(error.is_terminal());
/// assert_eq!(error.api().unwrap().code, "ExpiredToken");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Xrpc;

impl Xrpc {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("xrpc")
        .code("error")
        .message(&["message"])
        .rules(&[
            Rule::code("ExpiredToken", Outcome::Terminal),
            Rule::code("InvalidToken", Outcome::Terminal),
            Rule::code("AccountTakedown", Outcome::Terminal),
            Rule {
                status: 401,
                code: "",
                outcome: Outcome::Terminal,
            },
            Rule {
                status: 400,
                code: "ExpiredToken",
                outcome: Outcome::Expired,
            },
        ]);
}

impl Envelope for Xrpc {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        Self::ENVELOPE.access_token_expired(response)
    }
}
