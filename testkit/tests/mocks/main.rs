//! The mocks over real HTTP on loopback, driven by reqwest and a manual clock.

mod atproto;
mod clerk;
mod cloudreve;
mod faults;
mod oauth2;

use refresh_endpoint_testkit::ManualClock;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// An HTTP answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body unreadable");
    Answer {
        status,
        headers,
        body,
    }
}

/// A manual clock at the instant of the Cloudreve seed example,
/// 2025-04-26T06:58:28.456762Z.
pub fn clock() -> ManualClock {
    ManualClock::new(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_745_650_708_456_762_000),
    )
}
