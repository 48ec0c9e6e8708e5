//! Faults a mock can be told to suffer on its refresh route.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// One way for a refresh request to go wrong, for
/// [`inject`](crate::AtprotoMock::inject)ion into a mock.
///
/// Each refresh request takes the oldest queued fault (if any) and suffers
/// it instead of being handled normally; it is still counted by
/// `requests()` / `refresh_count()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use refresh_endpoint_testkit::{AtprotoMock, Fault};
///
/// let pds = AtprotoMock::start().await;
/// pds.inject(Fault::Html(502)); // the next refresh meets an nginx error page
/// pds.inject_times(Fault::Delay(Duration::from_millis(5)), 2); // the two after it are slow
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an empty body. A code outside
    /// `100..=999` is answered as 500.
    Status(u16),
    /// Answer with this status and an nginx-style HTML error page
    /// (`Content-Type: text/html`), as a proxy in front of the provider would.
    Html(u16),
    /// Answer 200 with `Content-Type: application/json` and JSON cut off
    /// in the middle.
    BrokenJson,
    /// Answer 200 with a valid JSON object of exactly this many bytes (at
    /// least 2; smaller sizes are padded to `{}`), which is not the
    /// provider's success shape.
    Oversized(usize),
    /// Wait this long (on the tokio clock), then handle the request normally.
    Delay(Duration),
    /// Never answer; the connection stays open until the client gives up or
    /// the mock is dropped.
    Hang,
    /// Close the TCP connection without writing any HTTP response.
    Drop,
    /// Handle the request normally (a refresh rotates the token and the
    /// provider remembers it), then never send the answer: the client's
    /// view of a server that processed the refresh while the client died or
    /// lost the connection. The connection stays open until the client
    /// gives up or the mock is dropped.
    ProcessThenHang,
    /// Answer 429 with a `Retry-After: <secs>` header and the provider's
    /// error envelope where it has one.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
}

/// What the server does with a request that drew a fault.
pub(crate) enum Action {
    /// Send this response instead of handling the request.
    Respond(Response),
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Handle the request, then never answer.
    ProcessThenHang,
    /// Drop the connection.
    Drop,
}

impl Fault {
    /// Turns the fault into what the server does. `rate_limited` renders the
    /// provider's 429 body (status and `Retry-After` are added here).
    pub(crate) fn action(&self, rate_limited: fn(u64) -> Response) -> Action {
        match *self {
            Self::Status(code) => Action::Respond(
                Response::builder()
                    .status(status(code))
                    .body(Body::empty())
                    .unwrap_or_default(),
            ),
            Self::Html(code) => Action::Respond(html_page(status(code))),
            Self::BrokenJson => Action::Respond(json_200(
                r#"{"token":{"jwt":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc"#
                    .to_owned(),
            )),
            Self::Oversized(size) => Action::Respond(json_200(oversized_json(size))),
            Self::Delay(by) => Action::Delay(by),
            Self::Hang => Action::Hang,
            Self::ProcessThenHang => Action::ProcessThenHang,
            Self::Drop => Action::Drop,
            Self::RateLimited { retry_after_secs } => {
                let mut response = rate_limited(retry_after_secs);
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                Action::Respond(response)
            }
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_200(body: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn html_page(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html")
        .header(header::SERVER, "nginx")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// A JSON object of exactly `size` bytes (or `{}` when `size < 2`).
fn oversized_json(size: usize) -> String {
    const OPEN: &str = r#"{"padding":""#;
    const CLOSE: &str = r#""}"#;
    if size >= OPEN.len() + CLOSE.len() {
        let mut body = String::with_capacity(size);
        body.push_str(OPEN);
        body.extend(std::iter::repeat_n('x', size - OPEN.len() - CLOSE.len()));
        body.push_str(CLOSE);
        body
    } else {
        let mut body = String::from("{}");
        body.extend(std::iter::repeat_n(' ', size.saturating_sub(2)));
        body
    }
}

/// The FIFO of faults waiting for the refresh route.
#[derive(Default)]
pub(crate) struct FaultQueue {
    queue: VecDeque<(Fault, usize)>,
}

impl FaultQueue {
    /// Queues `fault` for the next `times` refresh requests.
    pub(crate) fn push(&mut self, fault: Fault, times: usize) {
        if times > 0 {
            self.queue.push_back((fault, times));
        }
    }

    /// The fault the next refresh request suffers, if any.
    pub(crate) fn pop(&mut self) -> Option<Fault> {
        let (fault, left) = self.queue.front_mut()?;
        let fault_now = fault.clone();
        *left -= 1;
        if *left == 0 {
            self.queue.pop_front();
        }
        Some(fault_now)
    }

    /// Forgets every queued fault.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_and_counts_repeats() {
        let mut q = FaultQueue::default();
        q.push(Fault::Hang, 2);
        q.push(Fault::Drop, 1);
        q.push(Fault::BrokenJson, 0);
        assert_eq!(q.pop(), Some(Fault::Hang));
        assert_eq!(q.pop(), Some(Fault::Hang));
        assert_eq!(q.pop(), Some(Fault::Drop));
        assert_eq!(q.pop(), None);
        q.push(Fault::Drop, 3);
        q.clear();
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn oversized_bodies_have_the_exact_size_and_parse() {
        for size in [0, 1, 2, 5, 14, 15, 1000, 70_000] {
            let body = oversized_json(size);
            assert_eq!(body.len(), size.max(2), "size {size}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&body)
                    .unwrap()
                    .is_object()
            );
        }
    }
}
