//! One home per provider: its response type, `IntoTokens` impl, envelope
//! preset and ready-made refresh endpoint.
//!
//! | provider | module | ready-made endpoint | response | envelope |
//! |---|---|---|---|---|
//! | Bluesky / AT Protocol | [`atproto`] | [`atproto::RefreshSession`] | [`atproto::AtpSession`] | [`atproto::Xrpc`] |
//! | Cloudreve v4 | [`cloudreve`] | [`cloudreve::RefreshToken`] | [`cloudreve::Token`] | [`cloudreve::CodeMsgData`] |
//! | Clerk Backend API | [`clerk`] | [`clerk::RefreshSession`] | [`clerk::SessionRefresh`] | [`clerk::Clerk`] |
//! | any OAuth 2.0 server | [`oauth2`] | [`oauth2::Refresh`] | [`oauth2::TokenResponse`] | [`oauth2::OAuth2`] |
//!
//! Adding a provider touches one file here and one mock in the testkit.

pub mod atproto;
pub mod clerk;
pub mod cloudreve;
pub mod oauth2;
