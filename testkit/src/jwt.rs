//! HS256 JSON Web Tokens: the mocks issue real ones, and tests can mint or
//! check them with the mock's [`jwt_secret`](crate::AtprotoMock::jwt_secret).
//!
//! Only what the mocks need: compact serialization, base64url without
//! padding, HMAC-SHA256. [`verify`] checks the algorithm and the signature;
//! it does not judge `exp`, since expiry is judged against the mock's
//! injectable clock by the caller.
//!
//! ```
//! use refresh_endpoint_testkit::jwt;
//! use serde_json::json;
//!
//! let secret = b"not so secret";
//! let token = jwt::sign(secret, &json!({"alg": "HS256", "typ": "JWT"}), &json!({"sub": "alice"}));
//! assert_eq!(jwt::verify(secret, &token).unwrap()["sub"], "alice");
//! assert!(jwt::verify(b"another secret", &token).is_err());
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not three base64url segments holding a JSON header and JSON claims.
    Malformed,
    /// The header's `alg` is not `HS256`.
    UnsupportedAlgorithm,
    /// The signature does not match the secret.
    BadSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed JWT",
            Self::UnsupportedAlgorithm => "JWT algorithm is not HS256",
            Self::BadSignature => "JWT signature does not match",
        })
    }
}

impl std::error::Error for VerifyError {}

/// Signs `header` and `claims` with HMAC-SHA256 and returns the compact
/// token `header.claims.signature`.
///
/// The header is used as given: pass `"alg": "HS256"` in it.
pub fn sign(secret: &[u8], header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{signature}")
}

/// Checks that `token` is an HS256 JWT signed with `secret` and returns its
/// claims. Expiry is not checked.
pub fn verify(secret: &[u8], token: &str) -> Result<Value, VerifyError> {
    let parts = split(token)?;
    if decode_json(parts.header)?
        .get("alg")
        .and_then(Value::as_str)
        != Some("HS256")
    {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    let claims = decode_json(parts.claims)?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| VerifyError::Malformed)?;
    mac(secret, parts.signing_input.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(claims)
}

/// The header of `token`, decoded without checking the signature.
pub fn decode_header(token: &str) -> Result<Value, VerifyError> {
    decode_json(split(token)?.header)
}

/// The claims of `token`, decoded without checking the signature.
pub fn decode_claims(token: &str) -> Result<Value, VerifyError> {
    decode_json(split(token)?.claims)
}

struct Parts<'a> {
    signing_input: &'a str,
    header: &'a str,
    claims: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, VerifyError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let (header, claims) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed)?;
    if claims.contains('.') {
        return Err(VerifyError::Malformed);
    }
    Ok(Parts {
        signing_input,
        header,
        claims,
        signature,
    })
}

fn decode_json(segment: &str) -> Result<Value, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(VerifyError::Malformed),
    }
}

fn mac(secret: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn matches_the_rfc_7515_style_reference() {
        // The well-known jwt.io example: secret "your-256-bit-secret".
        let token = sign(
            b"your-256-bit-secret",
            &serde_json::from_str(HEADER).unwrap(),
            &json!({"sub": "1234567890", "name": "John Doe", "iat": 1516239022}),
        );
        let expected_sig = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        // serde_json orders keys alphabetically, so the claims segment differs
        // from jwt.io's; check the signature over jwt.io's exact bytes instead.
        let input = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ";
        let sig = URL_SAFE_NO_PAD.encode(
            mac(b"your-256-bit-secret", input.as_bytes())
                .finalize()
                .into_bytes(),
        );
        assert_eq!(sig, expected_sig);
        assert!(verify(b"your-256-bit-secret", &format!("{input}.{expected_sig}")).is_ok());
        assert!(verify(b"your-256-bit-secret", &token).is_ok());
    }

    #[test]
    fn rejects_tampering_and_garbage() {
        let token = sign(b"k", &json!({"alg": "HS256"}), &json!({"sub": "a"}));
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"b"}"#);
        let header = input.split('.').next().unwrap();
        let sig = token.rsplit('.').next().unwrap();
        assert_eq!(
            verify(b"k", &format!("{header}.{forged_claims}.{sig}")),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(verify(b"k", "garbage"), Err(VerifyError::Malformed));
        assert_eq!(verify(b"k", "a.b.c.d"), Err(VerifyError::Malformed));
        assert_eq!(verify(b"k", ""), Err(VerifyError::Malformed));
        let none = sign(b"k", &json!({"alg": "none"}), &json!({}));
        assert_eq!(verify(b"k", &none), Err(VerifyError::UnsupportedAlgorithm));
    }

    #[test]
    fn decodes_without_verifying() {
        let token = sign(
            b"k",
            &json!({"alg": "HS256", "typ": "at+jwt"}),
            &json!({"exp": 5}),
        );
        assert_eq!(decode_header(&token).unwrap()["typ"], "at+jwt");
        assert_eq!(decode_claims(&token).unwrap()["exp"], 5);
    }
}
