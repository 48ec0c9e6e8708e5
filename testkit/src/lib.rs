//! Faithful mock "refresh my session" providers on loopback, for end-to-end
//! tests, examples and benchmarks.
//!
//! Each mock starts on `127.0.0.1:0` in one line, inside the caller's tokio
//! runtime, and stops when dropped:
//!
//! | mock | provider | refresh route |
//! |---|---|---|
//! | [`AtprotoMock`] | Bluesky PDS (AT Protocol) | `POST /xrpc/com.atproto.server.refreshSession` |
//! | [`CloudreveMock`] | Cloudreve v4 | `POST /api/v4/session/token/refresh` |
//! | [`ClerkMock`] | Clerk Backend API | `POST /v1/sessions/{session_id}/refresh` |
//! | [`OAuth2Mock`] | any OAuth 2.0 server (RFC 6749 §6) | `POST /oauth/token` |
//! | [`OAuth2Mock`] with a [`Dialect`] | GitHub App user tokens, Slack `oauth.v2.access`, Spotify, Microsoft Entra ID | each provider's documented route |
//!
//! Every mock
//! - answers like the real server, status codes, headers and error
//!   envelopes included, and issues real HS256 JWTs ([`jwt`]) signed with a
//!   per-mock random secret (`jwt_secret()`);
//! - judges expiry and grace periods with an injectable clock ([`Now`],
//!   [`ManualClock`]), so tests never sleep;
//! - counts requests per route (`requests(route)`, `refresh_count()`);
//! - suffers [`Fault`]s injected on its refresh route (`inject`,
//!   `inject_times`, `clear_faults`): error statuses, HTML pages, broken or
//!   oversized JSON, delays, hangs, dropped connections, rate limiting.
//!
//! For Bluesky there is also the real thing: [`realpds`] runs the AT
//! Protocol's reference PDS on loopback (node and the workspace's `realpds/`
//! folder needed), and a differential test keeps [`AtprotoMock`] answering
//! as it does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use refresh_endpoint_testkit::{AtprotoMock, Fault, ManualClock};
//!
//! let clock = ManualClock::default();
//! let pds = AtprotoMock::builder().clock(clock.now_fn()).start().await;
//! let alice = pds.create_account("alice.test");
//! let refresh = format!("{}/xrpc/com.atproto.server.refreshSession", pds.url());
//! let http = reqwest::Client::new();
//!
//! // A proxy in front of the PDS fails once...
//! pds.inject(Fault::Html(502));
//! let first = http.post(&refresh).bearer_auth(&alice.refresh_jwt).send().await.unwrap();
//! assert_eq!(first.status(), 502);
//!
//! // ...then the refresh goes through and rotates the refresh token.
//! let second = http.post(&refresh).bearer_auth(&alice.refresh_jwt).send().await.unwrap();
//! assert_eq!(second.status(), 200);
//!
//! // Past the 2 hour grace period, the old refresh token is revoked.
//! clock.advance(Duration::from_secs(3 * 60 * 60));
//! let third = http.post(&refresh).bearer_auth(&alice.refresh_jwt).send().await.unwrap();
//! assert_eq!(third.status(), 400);
//! let error: serde_json::Value = third.json().await.unwrap();
//! assert_eq!(error["message"], "Token has been revoked");
//! assert_eq!(pds.refresh_count(), 3);
//! # }
//! ```
#![deny(missing_docs)]

pub mod atproto;
pub mod clerk;
mod clock;
pub mod cloudreve;
mod fault;
pub mod hostile;
mod ids;
pub mod jwt;
pub mod oauth2;
pub mod realpds;
mod server;

pub use atproto::{AtpTokens, AtprotoMock, AtprotoMockBuilder};
pub use clerk::{ClerkMock, ClerkMockBuilder, ClerkSession};
pub use clock::{ManualClock, Now, system_clock};
pub use cloudreve::{CloudreveMock, CloudreveMockBuilder, CloudreveTokens};
pub use fault::Fault;
pub use oauth2::{Dialect, OAuth2Mock, OAuth2MockBuilder, OAuth2Tokens};
