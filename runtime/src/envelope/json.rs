//! [`JsonEnvelope`]: an error shape declared, not coded. Every built-in
//! envelope is a preset of it, and `envelope = json(...)` on the attribute
//! declares one.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use memchr::memmem::Finder;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Envelope, RawResponse, decode_json};
use crate::error::{redact, status_is_retryable};
use crate::{ApiError, Error, ErrorKind};

/// How a provider wraps its answers: where the success value is, where an
/// error's code, message and trace id are, and which errors end the session
/// or may pass later.
///
/// Locations are JSON pointers (`/errors/0/code`) or top-level field names
/// (`error`); `""` for the data is the whole body.
///
/// An answer is an error when its status is not 2xx, or when it is 2xx and
/// the [`Success`] rule says so (by default: the code field is present, as in
/// GitHub's HTTP 200 `{"error":"bad_refresh_token"}`).
///
/// An error answer is classified by the first [`Rule`] that matches its
/// status and code; without a match it is an [`ErrorKind::Api`] (retryable
/// on 429 and 5xx). An error answer **without** the declared shape (no JSON,
/// no code) is never guessed at: a retryable status (408, 425, 429, 5xx,
/// such as a proxy's page) stays an [`ErrorKind::Status`]; any other is
/// [`ErrorKind::Unrecognized`], neither terminal nor retryable, logged once
/// at WARN with a hint to declare the provider's error shape.
///
/// ```
/// use refresh_endpoint::envelope::{JsonEnvelope, Outcome, RawResponse, Rule};
///
/// // `{"ok": false, "error": "invalid_refresh_token"}` with HTTP 200.
/// const SLACK: JsonEnvelope = JsonEnvelope::new("slack")
///     .ok_flag("ok")
///     .code("error")
///     .rules(&[Rule { status: 0, code: "invalid_refresh_token", outcome: Outcome::Terminal }]);
///
/// let dead = RawResponse {
///     endpoint: "oauth.v2.access",
///     status: 200,
///     headers: Default::default(),
///     body: br#"{"ok":false,"error":"invalid_refresh_token"}"#.to_vec(),
/// };
/// assert!(SLACK.unwrap::<serde_json::Value>(&dead).unwrap_err().is_terminal());
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct JsonEnvelope {
    /// The name errors carry in [`ApiError::provider`].
    pub name: &'static str,
    /// Where unset locations, the success rule and further rules come from.
    pub base: Option<&'static JsonEnvelope>,
    /// Where the success value is; `""` for the whole body.
    pub data: Option<&'static str>,
    /// Where the error code is; `""` for an envelope without error codes
    /// (every error answer is then without the shape).
    pub code: Option<&'static str>,
    /// Where the error message is: the first present one is used.
    pub message: Option<&'static [&'static str]>,
    /// Where the trace or correlation id is.
    pub trace_id: Option<&'static str>,
    /// How a 2xx answer is told to be a success.
    pub success: Option<Success>,
    /// The classification, tried in order before the base's.
    pub rules: &'static [Rule],
}

/// How a 2xx answer is told to be a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// Any 2xx answer.
    Status,
    /// A 2xx answer without an error code (the default).
    NoCode,
    /// A 2xx answer whose code is this one (written as JSON writes it
    /// without quotes: `0`, `ok`).
    Code(&'static str),
    /// A 2xx answer whose code is this integer (Cloudreve: `0`).
    Int(i64),
    /// A 2xx answer whose field at this location is `true` (Slack: `ok`).
    Flag(&'static str),
}

/// A classification rule: an error answer with this status (`0`: any) and
/// code (`""`: any; `*` matches any run of characters and `?` one, as in
/// `clerk_key_*`) has this outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The HTTP status, `0` for any.
    pub status: u16,
    /// The error code pattern, `""` for any.
    pub code: &'static str,
    /// What the error means.
    pub outcome: Outcome,
}

/// What an error answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The refresh token is dead: [`ErrorKind::SignInAgain`].
    Terminal,
    /// Trying again later may succeed: a retryable [`ErrorKind::Api`].
    Retryable,
    /// Neither: an [`ErrorKind::Api`] (stops further rules, such as a
    /// configuration error that a status rule would call terminal).
    Keep,
    /// On an authorized API call, the access token expired: refresh and
    /// replay. Not used for the refresh answer itself.
    Expired,
}

impl JsonEnvelope {
    /// An envelope with the defaults: data is the whole body, the code is
    /// `error`, the message `error_description` or `message`, a 2xx answer
    /// without a code is a success, no rules.
    pub const fn new(name: &'static str) -> Self {
        JsonEnvelope {
            name,
            base: None,
            data: None,
            code: None,
            message: None,
            trace_id: None,
            success: None,
            rules: &[],
        }
    }

    /// Starts from `base`: what is not set here is the base's, and the
    /// base's rules apply after these.
    pub const fn base(mut self, base: &'static JsonEnvelope) -> Self {
        self.base = Some(base);
        self
    }

    /// Where the success value is; `""` for the whole body.
    pub const fn data(mut self, at: &'static str) -> Self {
        self.data = Some(at);
        self
    }

    /// Where the error code is.
    pub const fn code(mut self, at: &'static str) -> Self {
        self.code = Some(at);
        self
    }

    /// Where the error message is; the first present location wins.
    pub const fn message(mut self, at: &'static [&'static str]) -> Self {
        self.message = Some(at);
        self
    }

    /// Where the trace or correlation id is.
    pub const fn trace_id(mut self, at: &'static str) -> Self {
        self.trace_id = Some(at);
        self
    }

    /// How a 2xx answer is told to be a success.
    pub const fn success(mut self, success: Success) -> Self {
        self.success = Some(success);
        self
    }

    /// A 2xx answer is a success when the code is `code` (written as JSON
    /// writes it without quotes: `0`, `ok`).
    pub const fn success_code(self, code: &'static str) -> Self {
        self.success(Success::Code(code))
    }

    /// A 2xx answer is a success when the field at `at` is `true`.
    pub const fn ok_flag(self, at: &'static str) -> Self {
        self.success(Success::Flag(at))
    }

    /// The classification rules, tried in order before the base's.
    pub const fn rules(mut self, rules: &'static [Rule]) -> Self {
        self.rules = rules;
        self
    }

    fn find<T>(&self, get: impl Fn(&JsonEnvelope) -> Option<T>) -> Option<T> {
        let mut at = Some(self);
        while let Some(envelope) = at {
            if let Some(value) = get(envelope) {
                return Some(value);
            }
            at = envelope.base;
        }
        None
    }

    fn data_at(&self) -> &'static str {
        self.find(|e| e.data).unwrap_or("")
    }

    fn code_at(&self) -> Option<&'static str> {
        self.find(|e| e.code)
    }

    fn success_rule(&self) -> Success {
        self.find(|e| e.success).unwrap_or(Success::NoCode)
    }

    /// The first rule, here then in the bases, matching `pick`.
    fn first_rule(&self, mut pick: impl FnMut(&Rule) -> bool) -> Option<Rule> {
        let mut at = Some(self);
        while let Some(envelope) = at {
            if let Some(rule) = envelope.rules.iter().find(|r| pick(r)) {
                return Some(*rule);
            }
            at = envelope.base;
        }
        None
    }

    /// The error code of a parsed answer, as text (numbers as JSON writes
    /// them); `None` when absent or null.
    fn code_of(&self, body: &Value) -> Option<String> {
        let at = self.code_at().unwrap_or("error");
        if at.is_empty() {
            return None;
        }
        let value = lookup(body, at)?;
        match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    fn message_of(&self, body: &Value) -> String {
        const DEFAULT: &[&str] = &["error_description", "message"];
        self.find(|e| e.message)
            .unwrap_or(DEFAULT)
            .iter()
            .find_map(|at| lookup(body, at).and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned()
    }

    /// Unwraps a whole response: the success value, or a classified error.
    pub fn unwrap<T: DeserializeOwned>(&self, response: &RawResponse) -> Result<T, Error> {
        // The common case in a few instructions: a success whose value is
        // the whole body, decoded once. Anything else, a body that does not
        // decode included, takes the whole way, which names what is wrong.
        if self.plainly_succeeded(response)
            && let Ok(value) = serde_json::from_slice(&response.body)
        {
            return Ok(value);
        }
        self.unwrap_in_full(response)
    }

    /// Whether `response` is a success whose value is the whole body, told
    /// without parsing it: a 2xx answer under [`Success::Status`], or under
    /// [`Success::NoCode`] when no key of the body can be a top-level code.
    fn plainly_succeeded(&self, response: &RawResponse) -> bool {
        if !response.is_success() || !self.data_at().is_empty() {
            return false;
        }
        match self.success_rule() {
            Success::Status => true,
            Success::NoCode => match self.code_at().unwrap_or("error") {
                "" => true,
                at => !at.starts_with('/') && !may_hold_key(&response.body, at),
            },
            _ => false,
        }
    }

    /// [`JsonEnvelope::unwrap`] for any answer.
    #[inline(never)]
    fn unwrap_in_full<T: DeserializeOwned>(&self, response: &RawResponse) -> Result<T, Error> {
        let success = self.success_rule();
        if response.is_success() && success == Success::Status {
            return self.decode_data(response, None);
        }
        if response.is_success() && self.succeeded_at_top_level(response, success) {
            return self.decode_data(response, None);
        }
        let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
        let code = parsed.as_ref().and_then(|body| self.code_of(body));
        if response.is_success() {
            let Some(body) = &parsed else {
                // Not JSON: a decode error names what is wrong.
                return self.decode_data(response, None);
            };
            let succeeded = match success {
                Success::Status => true,
                Success::NoCode => code.is_none(),
                Success::Code(expected) => code.as_deref() == Some(expected),
                Success::Int(expected) => {
                    code.as_deref().and_then(|c| c.parse::<i64>().ok()) == Some(expected)
                }
                Success::Flag(at) => lookup(body, at) == Some(&Value::Bool(true)),
            };
            if succeeded {
                return self.decode_data(response, parsed);
            }
        }
        let (Some(body), Some(code)) = (&parsed, code) else {
            return Err(self.shapeless(response, parsed.is_some()));
        };
        let trace_id = self
            .find(|e| e.trace_id)
            .and_then(|at| lookup(body, at))
            .and_then(Value::as_str)
            .map(|id| id.chars().take(128).collect());
        // Rules match the code as sent; the error keeps it capped and
        // without anything token-like, as the message.
        let rule = self.first_rule(|rule| {
            rule.outcome != Outcome::Expired && rule.matches(response.status, &code)
        });
        let error = ApiError::new(
            self.name,
            response.status,
            redact(&code, 100),
            self.message_of(body),
        )
        .with_trace_id(trace_id)
        .with_retry_after(response.retry_after());
        match rule.map(|r| r.outcome) {
            Some(Outcome::Terminal) => Err(ErrorKind::SignInAgain(Some(error)).into()),
            Some(Outcome::Retryable) => Err(ErrorKind::Api(error.with_retryable(true)).into()),
            _ => Err(ErrorKind::Api(error).into()),
        }
    }

    /// Whether an answer to an authorized API call means "the access token
    /// expired": HTTP 401, or an [`Outcome::Expired`] rule.
    pub fn access_token_expired(&self, response: &RawResponse) -> bool {
        if response.status == 401 {
            return true;
        }
        let mut rules = self
            .first_rule(|r| r.outcome == Outcome::Expired)
            .into_iter();
        if rules.next().is_none() {
            return false;
        }
        let code = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|body| self.code_of(&body));
        let Some(code) = code else {
            return false;
        };
        self.first_rule(|r| r.outcome == Outcome::Expired && r.matches(response.status, &code))
            .is_some()
    }

    fn decode_data<T: DeserializeOwned>(
        &self,
        response: &RawResponse,
        parsed: Option<Value>,
    ) -> Result<T, Error> {
        let at = self.data_at();
        if at.is_empty() {
            return response.json();
        }
        let body = match parsed {
            Some(body) => body,
            None => response.json::<Value>()?,
        };
        let data = lookup(&body, at).cloned().unwrap_or(Value::Null);
        let bytes = serde_json::to_vec(&data).unwrap_or_default();
        decode_json(response.endpoint, &bytes, at.trim_start_matches('/'))
    }

    /// Whether a successful answer is a success by its code, found without
    /// building the whole body as a `Value` (the common case: the code is a
    /// top-level field, the success value the whole body). `false` when that
    /// cannot be told this way: [`JsonEnvelope::unwrap`] then parses it all.
    fn succeeded_at_top_level(&self, response: &RawResponse, success: Success) -> bool {
        let at = self.code_at().unwrap_or("error");
        if at.is_empty() || at.starts_with('/') || !self.data_at().is_empty() {
            return false;
        }
        if success == Success::NoCode && !may_hold_key(&response.body, at) {
            // No field of that name anywhere: a success, decoded as such
            // (the body read once, not twice).
            return true;
        }
        let Ok(value) = top_level_field(&response.body, at) else {
            return false;
        };
        let code = match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        };
        match success {
            Success::NoCode => code.is_none(),
            Success::Code(expected) => code.as_deref() == Some(expected),
            Success::Int(expected) => {
                code.as_deref().and_then(|c| c.parse::<i64>().ok()) == Some(expected)
            }
            Success::Status | Success::Flag(_) => false,
        }
    }

    /// An error answer without the declared shape.
    fn shapeless(&self, response: &RawResponse, json: bool) -> Error {
        if !response.is_success() && status_is_retryable(response.status) {
            return response.status_error();
        }
        warn_once(self, response, json);
        ErrorKind::Unrecognized {
            endpoint: response.endpoint,
            status: response.status,
            excerpt: excerpt(response),
        }
        .into()
    }
}

fn excerpt(response: &RawResponse) -> String {
    redact(
        &String::from_utf8_lossy(&response.body[..response.body.len().min(1024)]),
        200,
    )
}

/// Logs, once per endpoint, that an error answer did not have the shape.
fn warn_once(envelope: &JsonEnvelope, response: &RawResponse, json: bool) {
    static WARNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let first = WARNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(response.endpoint);
    if first {
        tracing::warn!(
            endpoint = response.endpoint,
            status = response.status,
            envelope = envelope.name,
            body_is_json = json,
            "an error answer does not have the envelope's error shape, so it is neither terminal nor retryable; \
             declare the provider's error shape, e.g. `envelope = json(code = \"error\", message = \"message\", terminal = [\"invalid_grant\"])`"
        );
    }
}

impl Rule {
    /// A rule for any status.
    pub const fn code(code: &'static str, outcome: Outcome) -> Rule {
        Rule {
            status: 0,
            code,
            outcome,
        }
    }

    /// Whether an error with this status and code matches.
    pub fn matches(&self, status: u16, code: &str) -> bool {
        (self.status == 0 || self.status == status)
            && (self.code.is_empty() || glob(self.code, code))
    }
}

/// `*` matches any run of characters, `?` one; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a JSON body may have an object key `name`: false only when
/// `"name"` appears nowhere in it and nothing in it is escaped (an escaped
/// key, `"\u0065rror"`, holds a backslash).
fn may_hold_key(body: &[u8], name: &'static str) -> bool {
    // The standard library's search: little code, which the HTTP stack
    // runs too.
    if body.contains(&b'\\') {
        return true;
    }
    // Building a searcher costs more than a search of a small body: the one
    // for the first name asked about (most processes use one) is kept.
    static KEPT: OnceLock<(&str, Finder<'static>)> = OnceLock::new();
    let (kept, finder) = KEPT.get_or_init(|| (name, quoted_key(name)));
    if *kept == name {
        finder.find(body).is_some()
    } else {
        quoted_key(name).find(body).is_some()
    }
}

/// A searcher for `"name"`.
fn quoted_key(name: &str) -> Finder<'static> {
    Finder::new(&format!("\"{name}\"")).into_owned()
}

/// The value of the top-level field `name` of a JSON object body (the last
/// one if repeated, as `Value` keeps), the rest skipped without being built;
/// `Err` when the body is not one JSON object.
fn top_level_field(body: &[u8], name: &str) -> Result<Option<Value>, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    struct KeyIs<'n>(&'n str);
    impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for KeyIs<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E>(self, key: &str) -> Result<bool, E> {
            Ok(key == self.0)
        }
    }

    struct Field<'n>(&'n str);
    impl<'de> Visitor<'de> for Field<'_> {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(is_it) = map.next_key_seed(KeyIs(self.0))? {
                match is_it {
                    true => found = Some(map.next_value::<Value>()?),
                    false => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let found = deserializer.deserialize_map(Field(name))?;
    deserializer.end()?;
    Ok(found)
}

/// A JSON pointer (`/a/0/b`) or a top-level field name.
fn lookup<'v>(body: &'v Value, at: &str) -> Option<&'v Value> {
    if at.is_empty() {
        Some(body)
    } else if at.starts_with('/') {
        body.pointer(at)
    } else {
        body.get(at)
    }
}

/// Implemented by the attribute for `envelope = json(...)` and for a
/// built-in envelope with options: the declaration [`Declared`] reads.
pub trait Declares {
    /// The declared envelope.
    const ENVELOPE: JsonEnvelope;
}

/// The envelope of a type that [`Declares`] one.
pub struct Declared<D: ?Sized>(PhantomData<D>);

impl<D: Declares + ?Sized> Envelope for Declared<D> {
    /// A declared envelope may report an error in a 2xx answer.
    const EXPIRY_ON_SUCCESS: bool = true;

    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        D::ENVELOPE.unwrap(response)
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        D::ENVELOPE.access_token_expired(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawResponse {
        RawResponse {
            endpoint: "test",
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("clerk_key_*", "clerk_key_invalid"));
        assert!(glob("5????", "50001"));
        assert!(!glob("5????", "5000"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "ac"));
        assert!(glob("a*b*c", "aXbYbc"));
    }

    /// The quick look at a top-level code decides as the full parse does.
    #[test]
    fn the_top_level_code_is_read_as_the_whole_body_would_be() {
        const E: JsonEnvelope =
            JsonEnvelope::new("gh").rules(&[Rule::code("bad_refresh_token", Outcome::Terminal)]);
        let unwrap = |body: &str| E.unwrap::<Value>(&answer(200, body));
        // A code anywhere among the fields, escaped keys, the last of two.
        assert!(unwrap(r#"{"a":[1,{"error":0}],"error":"bad_refresh_token"}"#).is_err());
        assert!(unwrap(r#"{"\u0065rror":"bad_refresh_token"}"#).is_err());
        assert!(unwrap(r#"{"error":null,"error":"x"}"#).is_err());
        assert!(unwrap(r#"{"error":"x","error":null}"#).is_ok());
        // A null or nested code is no code.
        assert!(unwrap(r#"{"error":null,"access_token":"a"}"#).is_ok());
        assert!(unwrap(r#"{"data":{"error":"x"}}"#).is_ok());
        // The name as a value, or inside a longer key, is no code.
        assert!(unwrap(r#"{"token_type":"error","errors":"x","error_":1}"#).is_ok());
        assert!(unwrap(r#"{"access_token":"a\/b"}"#).is_ok());
        // Not one object: the full parse decides, and the decode names it.
        assert!(unwrap(r#"[1]"#).is_ok());
        assert!(unwrap(r#"{"access_token":"a"} trailing"#).is_err());
        let numeric = JsonEnvelope::new("n").code("code").success(Success::Int(0));
        assert!(
            numeric
                .unwrap::<Value>(&answer(200, r#"{"code":0,"x":1}"#))
                .is_ok()
        );
        assert!(
            numeric
                .unwrap::<Value>(&answer(200, r#"{"code":7,"x":1}"#))
                .is_err()
        );
    }

    /// The quick look skips the parse only when no key can be `name`.
    #[test]
    fn a_key_may_be_there_unless_its_quoted_name_is_absent_and_nothing_is_escaped() {
        assert!(may_hold_key(br#"{"error":"x"}"#, "error"));
        assert!(may_hold_key(br#"{"a":"error"}"#, "error"));
        assert!(may_hold_key(br#"{"\u0065rror":"x"}"#, "error"));
        assert!(may_hold_key(br#"{"a":"\/"}"#, "error"));
        assert!(!may_hold_key(
            br#"{"errors":"x","my_error":1,"error_":2}"#,
            "error"
        ));
        assert!(!may_hold_key(br#"{"access_token":"error"#, "error"));
        assert!(!may_hold_key(b"", "error"));
        // Whichever name's searcher is kept, another name is looked for as
        // itself.
        for (name, other) in [("error", "code"), ("code", "error")] {
            assert!(may_hold_key(br#"{"code":1,"error":2}"#, name));
            assert!(!may_hold_key(
                format!(r#"{{"{other}":1}}"#).as_bytes(),
                name
            ));
        }
    }

    #[test]
    fn a_2xx_with_a_code_is_an_error_by_default() {
        const E: JsonEnvelope =
            JsonEnvelope::new("gh").rules(&[Rule::code("bad_refresh_token", Outcome::Terminal)]);
        let error = E
            .unwrap::<Value>(&answer(200, r#"{"error":"bad_refresh_token"}"#))
            .unwrap_err();
        assert!(error.is_terminal());
        let ok: Value = E.unwrap(&answer(200, r#"{"access_token":"a"}"#)).unwrap();
        assert_eq!(ok["access_token"], "a");
    }

    #[test]
    fn a_shapeless_error_is_unrecognized_and_neither() {
        const E: JsonEnvelope = JsonEnvelope::new("x");
        let error = E
            .unwrap::<Value>(&answer(
                400,
                r#"{"status":400,"message":"Invalid refresh token"}"#,
            ))
            .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Unrecognized { status: 400, .. }),
            "{error:?}"
        );
        assert!(!error.is_terminal() && !error.is_retryable());
        let proxy = E
            .unwrap::<Value>(&answer(502, "<html>bad gateway</html>"))
            .unwrap_err();
        assert!(matches!(
            proxy.kind(),
            ErrorKind::Status { status: 502, .. }
        ));
        assert!(proxy.is_retryable());
        let garbage = E.unwrap::<Value>(&answer(200, "<html>")).unwrap_err();
        assert!(matches!(garbage.kind(), ErrorKind::Decode { .. }));
    }

    #[test]
    fn a_hostile_code_is_capped_and_redacted() {
        const E: JsonEnvelope = JsonEnvelope::new("x");
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let long = "x ".repeat(10_000);
        let body = format!(r#"{{"error":"{token} {long}"}}"#);
        let error = E.unwrap::<Value>(&answer(400, &body)).unwrap_err();
        let code = &error.api().unwrap().code;
        assert!(!code.contains(token), "{code}");
        assert!(code.chars().count() <= 101, "{}", code.len());
    }

    #[test]
    fn status_and_message_can_be_the_code() {
        const E: JsonEnvelope = JsonEnvelope::new("x").code("message").rules(&[Rule {
            status: 400,
            code: "Invalid refresh token",
            outcome: Outcome::Terminal,
        }]);
        let error = E
            .unwrap::<Value>(&answer(
                400,
                r#"{"status":400,"message":"Invalid refresh token"}"#,
            ))
            .unwrap_err();
        assert!(error.is_terminal());
    }

    #[test]
    fn data_pointer_and_success_code() {
        const E: JsonEnvelope = JsonEnvelope::new("cmd")
            .data("data")
            .code("code")
            .message(&["msg"])
            .success_code("0")
            .rules(&[Rule::code("5????", Outcome::Retryable)]);
        let ok: Value = E
            .unwrap(&answer(200, r#"{"code":0,"data":{"n":1},"msg":""}"#))
            .unwrap();
        assert_eq!(ok["n"], 1);
        let error = E
            .unwrap::<Value>(&answer(200, r#"{"code":50001,"msg":"db down"}"#))
            .unwrap_err();
        assert!(error.is_retryable());
        assert_eq!(error.api().unwrap().message, "db down");
    }

    #[test]
    fn expired_rules() {
        const E: JsonEnvelope = JsonEnvelope::new("x").rules(&[Rule {
            status: 400,
            code: "ExpiredToken",
            outcome: Outcome::Expired,
        }]);
        assert!(E.access_token_expired(&answer(400, r#"{"error":"ExpiredToken"}"#)));
        assert!(!E.access_token_expired(&answer(400, r#"{"error":"Other"}"#)));
        assert!(E.access_token_expired(&answer(401, "")));
        // An expired rule does not classify the refresh answer.
        let error = E
            .unwrap::<Value>(&answer(400, r#"{"error":"ExpiredToken"}"#))
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Api(_)));
    }
}
