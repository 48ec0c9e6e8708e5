//! Scrubbing by value: every secret a request carried is removed from every
//! text derived from its response, however the server echoed it.
//!
//! A provider (or a proxy) may quote the request back in an error: the
//! refresh token in an OAuth 2.0 `error_description`, a JSON echo of the
//! body, an HTML page showing the form. The token-shape heuristic of
//! [`redact`](crate::error::redact) catches long token-like words; this module
//! catches the secrets the library *knows* — the refresh and access tokens,
//! the client secret, `Secret`-typed fields, secret headers — at any length,
//! plain, JSON-escaped, form- or percent-encoded.

use std::cell::RefCell;
use std::sync::OnceLock;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Secret;
use crate::error::ErrorKind;

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// Shorter secrets are still scrubbed when whole; a shorter *partial* echo at
/// the end of a shortened text is not a usable credential.
const MIN_PARTIAL: usize = 4;

/// The secrets of one request and, computed on first use, every form in
/// which a server might echo them.
#[derive(Default, Clone)]
pub(crate) struct Scrubber {
    secrets: Vec<Secret>,
    forms: OnceLock<Vec<Secret>>,
}

scoped_tls::scoped_thread_local!(
    /// The scrubber of the response being unwrapped on this thread, read by
    /// [`redact`](crate::error::redact) so that texts are scrubbed whole,
    /// before they are shortened.
    static ACTIVE: Scrubber
);
scoped_tls::scoped_thread_local!(
    /// Collects every `Secret` serialized while a request is being built.
    static CAPTURE: RefCell<Vec<Secret>>
);

impl Scrubber {
    /// Adds a secret (ignored when empty or already known).
    pub fn add(&mut self, secret: &Secret) {
        if !secret.is_empty() && !self.secrets.contains(secret) {
            self.secrets.push(secret.clone());
            self.forms = OnceLock::new();
        }
    }

    /// Adds a header value that carries a secret, and its credential part
    /// (`Bearer <token>` → the token too).
    pub fn add_header_value(&mut self, value: &[u8]) {
        let Ok(value) = std::str::from_utf8(value) else {
            return;
        };
        self.add(&Secret::new(value));
        if let Some((_scheme, credential)) = value.split_once(' ') {
            self.add(&Secret::new(credential.trim()));
        }
    }

    /// Runs `f`, adding every `Secret` it serializes (a request's fields);
    /// tells whether it serialized any.
    pub fn capture<R>(&mut self, f: impl FnOnce() -> R) -> (R, bool) {
        let known = self.secrets.len();
        let (result, mut secrets) = capture_into(std::mem::take(&mut self.secrets), f);
        let added = secrets.len() > known;
        if added {
            // As `add` would: no empty secret, no duplicate.
            let mut i = known;
            while i < secrets.len() {
                if secrets[i].is_empty() || secrets[..i].contains(&secrets[i]) {
                    secrets.remove(i);
                } else {
                    i += 1;
                }
            }
            self.forms = OnceLock::new();
        }
        self.secrets = secrets;
        (result, added)
    }

    /// Runs `f` with this scrubber active on this thread: texts that
    /// [`redact`](crate::error::redact) builds meanwhile are scrubbed first.
    /// The thread holds a reference for the length of `f`, also if it
    /// unwinds.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.secrets.is_empty() {
            return f();
        }
        ACTIVE.set(self, f)
    }

    /// Applies the active scrubber, if any, to `text`.
    pub fn scrub_active(text: &str) -> Option<String> {
        ACTIVE
            .is_set()
            .then(|| ACTIVE.with(|active| active.scrub(text)))
    }

    fn forms(&self) -> &[Secret] {
        self.forms.get_or_init(|| {
            let mut forms: Vec<Secret> = Vec::new();
            for secret in &self.secrets {
                for form in encodings(secret.expose()) {
                    if !form.is_empty() && !forms.iter().any(|f| f.expose() == form) {
                        forms.push(Secret::new(form));
                    }
                }
            }
            // Longest first, so a secret containing another is removed whole.
            forms.sort_by_key(|form| std::cmp::Reverse(form.expose().len()));
            forms
        })
    }

    /// `text` with every known secret, in every encoding, replaced by
    /// `[redacted]`. When `text` was shortened (it ends with `…`), a secret's
    /// beginning just before the cut is removed too.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if self.secrets.is_empty() {
            return out;
        }
        for form in self.forms() {
            if out.contains(form.expose()) {
                out = out.replace(form.expose(), REDACTED);
            }
        }
        if let Some(head) = out.strip_suffix('…') {
            let cut = self
                .forms()
                .iter()
                .filter_map(|form| partial_tail(head, form.expose()))
                .max()
                .unwrap_or(0);
            if cut > 0 {
                out = format!("{}{REDACTED}…", &head[..head.len() - cut]);
            }
        }
        out
    }

    /// Scrubs every text an error holds.
    pub fn scrub_error(&self, kind: &mut ErrorKind) {
        if self.secrets.is_empty() {
            return;
        }
        let fix = |text: &mut String| {
            let clean = self.scrub(text);
            if clean != *text {
                *text = clean;
            }
        };
        match kind {
            ErrorKind::Status { excerpt, .. } | ErrorKind::Unrecognized { excerpt, .. } => {
                fix(excerpt)
            }
            ErrorKind::Api(api) | ErrorKind::SignInAgain(Some(api)) => {
                fix(&mut api.code);
                fix(&mut api.message);
                if let Some(trace_id) = &mut api.trace_id {
                    fix(trace_id);
                }
            }
            ErrorKind::Decode { path, message, .. } => {
                fix(path);
                fix(message);
            }
            ErrorKind::Redirect { location, .. } => {
                if let Some(location) = location {
                    fix(location);
                }
            }
            ErrorKind::InsecureUrl { host, .. } => fix(host),
            ErrorKind::Invalid(message) | ErrorKind::Store { message, .. } => fix(message),
            ErrorKind::SignInAgain(None)
            | ErrorKind::Timeout { .. }
            | ErrorKind::Transport { .. }
            | ErrorKind::TooLarge { .. } => {}
        }
    }
}

/// The length of the longest end of `head` (at least [`MIN_PARTIAL`] bytes)
/// that is the beginning of `form`.
fn partial_tail(head: &str, form: &str) -> Option<usize> {
    let longest = head.len().min(form.len().saturating_sub(1));
    (MIN_PARTIAL..=longest).rev().find(|&n| {
        head.is_char_boundary(head.len() - n)
            && form
                .as_bytes()
                .starts_with(&head.as_bytes()[head.len() - n..])
    })
}

/// Characters left alone by `encodeURIComponent`; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// What a URL's query leaves as it is but for spaces, quotes and controls
/// (the WHATWG query set).
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');

/// The forms in which `secret` may come back: as is, JSON-escaped (also with
/// `\/`), form-urlencoded, percent-encoded (upper- and lower-case hex, strict
/// and URI-component sets), and with only spaces, quotes and controls encoded.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if let Ok(json) = serde_json::to_string(secret) {
        let inner = json[1..json.len() - 1].to_owned();
        forms.push(inner.replace('/', "\\/"));
        forms.push(inner);
    }
    if let Ok(form) = serde_urlencoded::to_string([("", secret)]) {
        forms.push(form.trim_start_matches('=').to_owned());
    }
    for set in [NON_ALPHANUMERIC, COMPONENT, QUERY] {
        let upper = utf8_percent_encode(secret, set).to_string();
        forms.push(lower_hex(&upper));
        forms.push(upper);
    }
    forms
}

/// `%2F` → `%2f`.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `f` (which builds a request) and returns every [`Secret`] it
/// serialized: `Secret`-typed fields in the path, query, headers and body.
#[cfg(test)]
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Secret>) {
    capture_into(Vec::new(), f)
}

/// [`capture`], appending to `secrets`.
fn capture_into<R>(secrets: Vec<Secret>, f: impl FnOnce() -> R) -> (R, Vec<Secret>) {
    let captured = RefCell::new(secrets);
    let result = CAPTURE.set(&captured, f);
    (result, captured.into_inner())
}

/// Called by `Secret`'s `Serialize`: remembers the secret if a request is
/// being built on this thread.
pub(crate) fn note_serialized(secret: &Secret) {
    if CAPTURE.is_set() {
        CAPTURE.with(|captured| {
            if let Ok(mut captured) = captured.try_borrow_mut() {
                captured.push(secret.clone());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber(secrets: &[&str]) -> Scrubber {
        let mut scrubber = Scrubber::default();
        for secret in secrets {
            scrubber.add(&Secret::new(*secret));
        }
        scrubber
    }

    #[test]
    fn every_encoding_is_removed() {
        let s = scrubber(&["r/t+1 x&y\"z", "cs"]);
        for echo in [
            "r/t+1 x&y\"z",
            "r\\/t+1 x&y\\\"z",
            "r/t+1 x&y\\\"z",
            "r%2Ft%2B1+x%26y%22z",
            "r%2Ft%2B1%20x%26y%22z",
            "r%2ft%2b1%20x%26y%22z",
            "r/t+1%20x&y%22z",
        ] {
            let text = format!("error: got {echo} and cs.");
            let clean = s.scrub(&text);
            assert_eq!(clean, "error: got [redacted] and [redacted].", "{echo}");
        }
    }

    #[test]
    fn a_cut_secret_is_removed_at_the_cut() {
        let s = scrubber(&["abcdefgh123"]);
        assert_eq!(s.scrub("token abcdef…"), "token [redacted]…");
        assert_eq!(s.scrub("token abc…"), "token abc…");
        assert_eq!(s.scrub("token abcdef"), "token abcdef");
    }

    #[test]
    fn capture_collects_serialized_secrets_and_nests() {
        let (_, outer) = capture(|| {
            serde_json::to_string(&Secret::new("one")).unwrap();
            let (_, inner) = capture(|| serde_json::to_string(&Secret::new("two")).unwrap());
            assert_eq!(inner, vec![Secret::new("two")]);
            serde_json::to_string(&Secret::new("three")).unwrap();
        });
        assert_eq!(outer, vec![Secret::new("one"), Secret::new("three")]);
        serde_json::to_string(&Secret::new("nobody listens")).unwrap();
    }

    #[test]
    fn active_scrubber_applies_inside_run_only() {
        let s = scrubber(&["tok"]);
        assert_eq!(
            s.run(|| Scrubber::scrub_active("a tok b")),
            Some("a [redacted] b".into())
        );
        assert_eq!(Scrubber::scrub_active("a tok b"), None);
        // Taken back from the thread even when `f` panics.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.run(|| panic!("in user code"));
        }));
        assert!(panicked.is_err());
        assert_eq!(Scrubber::scrub_active("a tok b"), None);
        assert_eq!(s.scrub("a tok b"), "a [redacted] b");
    }
}
