//! A found secret value: kept out of `Debug`, logs and panics; only redacted forms
//! and the keyed fingerprint leave this type unless a caller asks for `expose`.

use sha2::{Digest, Sha256};
use std::fmt;

/// A candidate secret value. `Debug` and `Display` print a redacted form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The plain value. Call sites: `--reveal` output, `--check-server` and the
    /// matching filters inside this crate.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first four characters followed by `…` (or only `…` for short values).
    pub fn redacted(&self) -> String {
        let n = self.0.chars().count();
        if n < 12 {
            return "…".to_owned();
        }
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…")
    }

    /// A stable identifier of the value that does not reveal it to a casual reader:
    /// 32 hex digits of SHA-256 over a fixed domain tag and the value. It is what
    /// baselines store. Low-entropy values (passwords) remain guessable from it by
    /// brute force, as from any unkeyed hash.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"envseal-scan-fingerprint-v1\0");
        h.update(self.0.as_bytes());
        hex::encode(&h.finalize()[..16])
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({})", self.redacted())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let v = SecretValue::new("abcdefghijklmnopqrstuvwxyz0123456789");
        assert_eq!(format!("{v}"), "abcd…");
        assert_eq!(format!("{v:?}"), "SecretValue(abcd…)");
        let short = SecretValue::new("hunter2");
        assert_eq!(format!("{short}"), "…");
    }

    #[test]
    fn fingerprint_is_stable_and_value_dependent() {
        let a = SecretValue::new("one").fingerprint();
        assert_eq!(a, SecretValue::new("one").fingerprint());
        assert_ne!(a, SecretValue::new("two").fingerprint());
        assert_eq!(a.len(), 32);
    }
}
