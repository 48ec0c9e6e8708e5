//! Random identifiers and secrets for the mocks.
//!
//! Drawn from the standard library's randomly keyed SipHash, fed through
//! SHA-256 with a counter and the time: unpredictable enough for a mock on
//! loopback, with no extra dependency. Not for production secrets.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `n` random bytes.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        let mut hasher = RandomState::new().build_hasher();
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        hasher.write_u64(count);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let block = Sha256::new()
            .chain_update(hasher.finish().to_le_bytes())
            .chain_update(count.to_le_bytes())
            .chain_update(nanos.to_le_bytes())
            .finalize();
        out.extend_from_slice(&block);
    }
    out.truncate(n);
    out
}

/// A random string of `len` characters drawn from `alphabet` (ASCII only).
pub(crate) fn random_string(len: usize, alphabet: &[u8]) -> String {
    // Rejection-free and slightly biased for alphabets that do not divide
    // 256; irrelevant for a mock.
    random_bytes(len)
        .into_iter()
        .map(|b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

/// Lower-case letters and digits.
pub(crate) const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Upper- and lower-case letters and digits.
pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The base32 alphabet `did:plc` identifiers use.
pub(crate) const BASE32_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A random UUID (version 4 layout), e.g. `b4351ecc-ee1a-4455-bc94-2c3dbcc58538`.
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_v4_shape() {
        let id = uuid_v4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn strings_use_the_alphabet_and_differ() {
        let a = random_string(24, BASE32_LOWER);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| BASE32_LOWER.contains(&c)));
        assert_ne!(a, random_string(24, BASE32_LOWER));
    }
}
