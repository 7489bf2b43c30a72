//! A found secret value: kept out of `Debug`, logs and panics; only redacted forms
//! and the salted, memory-hard fingerprint leave this type unless a caller asks for
//! `expose`.

use sha2::{Digest, Sha256};
use std::fmt;

/// How fingerprints are computed: argon2id with these costs over a salt that the
/// baseline (or SARIF run) records next to the fingerprints, so the file stays
/// portable between machines and each guess of a dictionary attack costs one
/// argon2id evaluation instead of one SHA-256.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FingerprintParams {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Salt, hex.
    pub salt: String,
}

impl fmt::Debug for FingerprintParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} m={} t={} p={} salt={}",
            self.algorithm, self.m_kib, self.t, self.p, self.salt
        )
    }
}

/// Default memory cost (19 MiB, t = 2, p = 1: the OWASP minimum for argon2id).
pub const DEFAULT_M_KIB: u32 = 19 * 1024;
/// Default iterations.
pub const DEFAULT_T: u32 = 2;

/// Smallest costs a baseline may ask for; below them a file could make its own
/// fingerprints cheap to invert.
const MIN_M_KIB: u32 = 8 * 1024;
/// Largest memory cost accepted from a file (bounded so a hostile baseline cannot
/// exhaust memory).
const MAX_M_KIB: u32 = 1024 * 1024;

/// A fingerprint parameter set could not be used.
#[derive(Debug, thiserror::Error)]
#[error("fingerprint parameters: {0}")]
pub struct ParamsError(String);

impl ParamsError {
    pub(crate) fn missing() -> Self {
        ParamsError("version 2 needs a \"fingerprint\" parameter object".to_owned())
    }
}

impl FingerprintParams {
    /// Default costs with a fresh random 16-byte salt.
    pub fn generate() -> Self {
        FingerprintParams {
            algorithm: "argon2id".to_owned(),
            m_kib: DEFAULT_M_KIB,
            t: DEFAULT_T,
            p: 1,
            salt: hex::encode(rand::random::<[u8; 16]>()),
        }
    }

    /// Builds the hasher, refusing parameter sets that are cheap to invert or
    /// unreasonably expensive.
    pub fn fingerprinter(&self) -> Result<Fingerprinter, ParamsError> {
        if self.algorithm != "argon2id" {
            return Err(ParamsError(format!(
                "unknown algorithm (expected argon2id, {} bytes given)",
                self.algorithm.len()
            )));
        }
        if !(MIN_M_KIB..=MAX_M_KIB).contains(&self.m_kib) || !(1..=16).contains(&self.t) {
            return Err(ParamsError(format!(
                "memory cost must be {MIN_M_KIB}..={MAX_M_KIB} KiB and iterations 1..=16"
            )));
        }
        if !(1..=4).contains(&self.p) {
            return Err(ParamsError("lanes must be 1..=4".to_owned()));
        }
        let salt = hex::decode(&self.salt)
            .ok()
            .filter(|s| (16..=64).contains(&s.len()))
            .ok_or_else(|| ParamsError("salt must be 16 to 64 bytes of hex".to_owned()))?;
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(16))
            .map_err(|e| ParamsError(e.to_string()))?;
        Ok(Fingerprinter {
            argon: argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
            salt,
            params: self.clone(),
        })
    }
}

/// Computes fingerprints under one parameter set.
#[derive(Clone)]
pub struct Fingerprinter {
    argon: argon2::Argon2<'static>,
    salt: Vec<u8>,
    params: FingerprintParams,
}

impl Fingerprinter {
    /// The parameters (recorded in baselines and SARIF).
    pub fn params(&self) -> &FingerprintParams {
        &self.params
    }

    /// 32 hex digits of argon2id over a domain tag and the value.
    pub fn fingerprint(&self, value: &SecretValue) -> String {
        let mut input = Vec::with_capacity(value.0.len() + 24);
        input.extend_from_slice(b"envseal-scan-fingerprint-v2\0");
        input.extend_from_slice(value.0.as_bytes());
        let mut out = [0u8; 16];
        self.argon
            .hash_password_into(&input, &self.salt, &mut out)
            .expect("parameters were checked when the fingerprinter was built");
        hex::encode(out)
    }
}

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

    /// The version 1 fingerprint (unkeyed SHA-256 over a domain tag and the value),
    /// kept only to read old baselines: a dictionary reverses it cheaply, so nothing
    /// writes it any more.
    pub fn legacy_fingerprint(&self) -> String {
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
    fn fingerprint_is_stable_salted_and_value_dependent() {
        let params = FingerprintParams::generate();
        let fp = params.fingerprinter().unwrap();
        let a = fp.fingerprint(&SecretValue::new("one"));
        assert_eq!(a, fp.fingerprint(&SecretValue::new("one")));
        assert_ne!(a, fp.fingerprint(&SecretValue::new("two")));
        assert_eq!(a.len(), 32);
        let other = FingerprintParams::generate().fingerprinter().unwrap();
        assert_ne!(a, other.fingerprint(&SecretValue::new("one")));
        // Not the version 1 hash, nor the plain SHA-256 of the value.
        assert_ne!(a, SecretValue::new("one").legacy_fingerprint());
        assert_ne!(a, hex::encode(&Sha256::digest(b"one")[..16]));
    }

    #[test]
    fn cheap_or_hostile_fingerprint_parameters_are_refused() {
        let good = FingerprintParams::generate();
        for bad in [
            FingerprintParams {
                m_kib: 64,
                ..good.clone()
            },
            FingerprintParams {
                t: 0,
                ..good.clone()
            },
            FingerprintParams {
                m_kib: u32::MAX,
                ..good.clone()
            },
            FingerprintParams {
                salt: "00".to_owned(),
                ..good.clone()
            },
            FingerprintParams {
                algorithm: "sha256".to_owned(),
                ..good.clone()
            },
        ] {
            assert!(bad.fingerprinter().is_err(), "{bad:?}");
        }
    }
}
