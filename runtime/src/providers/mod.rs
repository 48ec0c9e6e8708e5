//! Response types of the seed providers, ready for `response = …`.
//!
//! | provider | module | refresh response |
//! |---|---|---|
//! | Bluesky / AT Protocol | [`atproto`] | [`atproto::AtpSession`] |
//! | Cloudreve v4 | [`cloudreve`] | [`cloudreve::Token`] |
//! | Clerk Backend API | [`clerk`] | [`clerk::SessionRefresh`] |
//! | any OAuth 2.0 server | [`oauth2`] | [`oauth2::TokenResponse`] |

pub mod atproto;
pub mod clerk;
pub mod cloudreve;
pub mod oauth2;
