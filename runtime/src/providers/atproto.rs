//! Bluesky / AT Protocol: `com.atproto.server.refreshSession`.

use serde::{Deserialize, Serialize};

use crate::Secret;

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
