//! Generated values: Dify's `SECRET_KEY` (42 random bytes, base64), passwords with a
//! policy (length, classes, URL-safe or not), hex and base64url tokens. All from the
//! operating system's CSPRNG; nothing here prints a value.

use anyhow::bail;
use base64::Engine as _;
use envseal_core::SecretValue;
use rand::rngs::OsRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, RngCore as _};
use serde::Deserialize;
use zeroize::Zeroizing;

/// How a password is made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PasswordPolicy {
    /// Characters.
    pub(super) length: usize,
    /// Use `a-z`.
    pub(super) lower: bool,
    /// Use `A-Z`.
    pub(super) upper: bool,
    /// Use `0-9`.
    pub(super) digits: bool,
    /// Use symbols.
    pub(super) symbols: bool,
    /// Only characters that need no encoding in a URL (symbols become `-._~`).
    pub(super) url_safe: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            length: 32,
            lower: true,
            upper: true,
            digits: true,
            symbols: false,
            url_safe: true,
        }
    }
}

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const URL_SAFE_SYMBOLS: &[u8] = b"-._~";
const SYMBOLS: &[u8] = b"!#$%&()*+,-./:;<=>?@[]^_{|}~";

impl PasswordPolicy {
    fn classes(&self) -> Vec<&'static [u8]> {
        let mut out = Vec::new();
        if self.lower {
            out.push(LOWER);
        }
        if self.upper {
            out.push(UPPER);
        }
        if self.digits {
            out.push(DIGITS);
        }
        if self.symbols {
            out.push(if self.url_safe {
                URL_SAFE_SYMBOLS
            } else {
                SYMBOLS
            });
        }
        out
    }

    pub(super) fn check(&self) -> anyhow::Result<()> {
        let classes = self.classes().len();
        if classes == 0 {
            bail!("a password policy needs at least one character class");
        }
        if !(8..=256).contains(&self.length) || self.length < classes {
            bail!("a password's length must be between 8 and 256");
        }
        Ok(())
    }
}

/// Dify's `SECRET_KEY` format: 42 random bytes, standard base64.
pub(super) fn secret_key() -> SecretValue {
    let mut bytes = Zeroizing::new([0u8; 42]);
    OsRng.fill_bytes(&mut bytes[..]);
    SecretValue::new(
        base64::engine::general_purpose::STANDARD
            .encode(&bytes[..])
            .into_bytes(),
    )
}

/// A password with at least one character of every class the policy names.
pub(super) fn password(p: &PasswordPolicy) -> anyhow::Result<SecretValue> {
    p.check()?;
    let classes = p.classes();
    let all: Vec<u8> = classes.iter().flat_map(|c| c.iter().copied()).collect();
    let mut out = Zeroizing::new(Vec::with_capacity(p.length));
    for class in &classes {
        out.push(class[OsRng.gen_range(0..class.len())]);
    }
    while out.len() < p.length {
        out.push(all[OsRng.gen_range(0..all.len())]);
    }
    out.shuffle(&mut OsRng);
    Ok(SecretValue::new(std::mem::take(&mut *out)))
}

/// `bytes` random bytes as lowercase hex.
pub(super) fn hex(bytes: usize) -> SecretValue {
    let raw = random(bytes);
    let mut out = Vec::with_capacity(bytes * 2);
    for b in raw.iter() {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    SecretValue::new(out)
}

/// `bytes` random bytes as unpadded base64url.
pub(super) fn base64url(bytes: usize) -> SecretValue {
    let raw = random(bytes);
    SecretValue::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&raw[..])
            .into_bytes(),
    )
}

fn random(n: usize) -> Zeroizing<Vec<u8>> {
    let mut raw = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut raw);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_is_42_bytes_of_base64() {
        let k = secret_key();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(k.expose())
            .unwrap();
        assert_eq!(raw.len(), 42);
        assert_ne!(secret_key().expose(), k.expose());
    }

    #[test]
    fn passwords_follow_their_policy() {
        let url_safe = PasswordPolicy {
            length: 40,
            symbols: true,
            ..PasswordPolicy::default()
        };
        let not_url_safe = PasswordPolicy {
            url_safe: false,
            ..url_safe.clone()
        };
        for _ in 0..200 {
            let v = password(&url_safe).unwrap();
            let s = v.as_str().unwrap();
            assert_eq!(s.len(), 40);
            assert!(s.bytes().any(|b| LOWER.contains(&b)));
            assert!(s.bytes().any(|b| UPPER.contains(&b)));
            assert!(s.bytes().any(|b| DIGITS.contains(&b)));
            assert!(s.bytes().any(|b| URL_SAFE_SYMBOLS.contains(&b)));
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || URL_SAFE_SYMBOLS.contains(&b)));
            let v = password(&not_url_safe).unwrap();
            assert!(v.as_str().unwrap().bytes().any(|b| SYMBOLS.contains(&b)));
        }
        let digits_only = PasswordPolicy {
            lower: false,
            upper: false,
            length: 12,
            ..PasswordPolicy::default()
        };
        assert!(password(&digits_only)
            .unwrap()
            .expose()
            .iter()
            .all(u8::is_ascii_digit));
    }

    #[test]
    fn tokens_have_their_length_and_alphabet() {
        let h = hex(16);
        assert_eq!(h.len(), 32);
        assert!(h.expose().iter().all(|b| b"0123456789abcdef".contains(b)));
        let b = base64url(32);
        assert_eq!(b.len(), 43);
        assert!(b
            .expose()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
    }
}
