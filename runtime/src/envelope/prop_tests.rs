//! Property tests: arbitrary statuses, headers and bodies through every
//! built-in envelope never panic, and never leave a secret the request
//! carried in the error's `Display` or `Debug`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use super::{Clerk, CodeMsgData, Envelope, OAuth2, Plain, RawResponse, Xrpc};
use crate::Secret;
use crate::client::unwrap_scrubbed;
use crate::scrub::Scrubber;

/// A secret: a marker no envelope writes on its own, then token characters
/// (some of which every encoding changes).
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=_.~-]{0,24}".prop_map(|tail| format!("Zq{tail}"))
}

/// The forms in which the secret may be echoed.
fn echoes(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        serde_json::to_string(secret).unwrap(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        serde_urlencoded::to_string([("t", secret)]).unwrap(),
        format!(
            "https://cb.example/?token={}",
            utf8_percent_encode(secret, NON_ALPHANUMERIC)
        ),
    ]
}

/// A body: random bytes, or one of the envelopes' error shapes with the
/// secret echoed in a random form at a random place, around random text.
fn body(secret: String) -> impl Strategy<Value = Vec<u8>> {
    let forms = echoes(&secret);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0..forms.len(), 0..6usize, "[ -~]{0,40}", any::<i64>()).prop_map(
            move |(form, shape, noise, code)| {
                let echo = format!("{noise} {}", forms[form]);
                let value = match shape {
                    0 => serde_json::json!({"error": echo, "error_description": echo}),
                    1 => serde_json::json!({"error": "InvalidToken", "message": echo}),
                    2 => serde_json::json!({"code": code, "msg": echo, "data": echo, "correlation_id": echo}),
                    3 => serde_json::json!({"errors": [{"code": echo, "message": echo, "long_message": echo}], "clerk_trace_id": echo}),
                    4 => serde_json::json!({"code": 40020, "msg": echo}),
                    _ => return format!("<html><pre>{echo}</pre></html>").into_bytes(),
                };
                value.to_string().into_bytes()
            }
        ),
    ]
}

fn response(status: u16, retry_after: &str, body: Vec<u8>) -> RawResponse {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(retry_after) {
        headers.insert(RETRY_AFTER, value);
    }
    RawResponse {
        endpoint: "prop",
        status,
        headers,
        body,
    }
}

fn check<E: Envelope>(response: &RawResponse, scrubber: &mut Scrubber, secret: &str) {
    if let Err(error) = unwrap_scrubbed::<E, serde_json::Value>(response, scrubber) {
        let shown = format!("{error} {error:?}");
        for form in echoes(secret) {
            let form = form.trim_matches('"');
            assert!(!shown.contains(form), "{form:?} in {shown}");
        }
        let _ = (
            error.is_retryable(),
            error.is_terminal(),
            error.retry_after(),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn envelopes_never_panic_nor_leak(
        (secret, body) in secret().prop_flat_map(|s| (Just(s.clone()), body(s))),
        status in 100u16..600,
        retry_after in prop_oneof!["[0-9]{1,25}", "[ -~]{0,30}", Just("Wed, 21 Oct 2015 07:28:00 GMT".to_owned())],
    ) {
        let mut scrubber = Scrubber::default();
        scrubber.add(&Secret::new(secret.as_str()));
        let response = response(status, &retry_after, body);
        check::<Plain>(&response, &mut scrubber, &secret);
        check::<CodeMsgData>(&response, &mut scrubber, &secret);
        check::<Xrpc>(&response, &mut scrubber, &secret);
        check::<Clerk>(&response, &mut scrubber, &secret);
        check::<OAuth2>(&response, &mut scrubber, &secret);
    }
}
