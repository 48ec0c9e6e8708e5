//! OAuth 2.0 (RFC 6749 §6): refreshing at a token endpoint.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// A successful token response (RFC 6749 §5.1).
///
/// ```
/// use refresh_endpoint::providers::oauth2::TokenResponse;
///
/// let token: TokenResponse =
///     serde_json::from_str(r#"{"access_token":"at","token_type":"Bearer","expires_in":3600}"#).unwrap();
/// assert_eq!(token.expires_in, Some(3600));
/// assert!(token.refresh_token.is_none()); // keep the old one
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: Secret,
    /// Usually `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// A new refresh token; absent means the old one stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// The granted scope, when it differs from the one asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}
