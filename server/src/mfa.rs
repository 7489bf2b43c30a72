//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) and recovery codes.
//!
//! A TOTP secret is sealed like a secret value: a fresh DEK under AES-256-GCM, bound
//! to the user's id, wrapped by the key provider. It is opened only to check a code.
//! A code is accepted for the current step or one step either side, and only for a
//! step newer than the last one accepted, so a code cannot be replayed. Recovery
//! codes are stored as SHA-256 hashes (they carry 80 random bits) and work once.

use crate::crypto::{self, CryptoError, Dek, KeyProvider, WrappedDek};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

fn aad(user_id: &str) -> Vec<u8> {
    format!("envseal/totp/v1\0{user_id}").into_bytes()
}

/// A fresh 160-bit TOTP secret.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; 20]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut s[..]);
    s
}

/// The secret in base32, as authenticator apps take it.
pub fn base32(secret: &[u8]) -> Zeroizing<String> {
    match totp_rs::Secret::Raw(secret.to_vec()).to_encoded() {
        totp_rs::Secret::Encoded(s) => Zeroizing::new(s),
        totp_rs::Secret::Raw(_) => unreachable!("to_encoded returns an encoded secret"),
    }
}

/// An `otpauth://` URI for enrolment (QR code or manual entry).
pub fn otpauth_uri(username: &str, secret: &[u8]) -> Zeroizing<String> {
    let label: String = username
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Zeroizing::new(format!(
        "otpauth://totp/envseal:{label}?secret={}&issuer=envseal&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(secret).as_str()
    ))
}

fn totp(secret: &[u8]) -> totp_rs::TOTP {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret.to_vec(),
    )
}

/// The code for Unix time `unix_secs` (tests and clients use this too).
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    totp(secret).generate(unix_secs)
}

/// The step a code belongs to, if it matches the current step or one either side.
/// Compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now_secs: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret);
    let now_step = now_secs / STEP_SECS;
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = t.generate(step * STEP_SECS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step as i64);
        }
    }
    found
}

/// Seals a TOTP secret for `user_id`.
pub async fn seal(
    keys: &dyn KeyProvider,
    user_id: &str,
    secret: &[u8],
) -> Result<(WrappedDek, Vec<u8>), CryptoError> {
    let dek = Dek::generate();
    let sealed = crypto::seal(&dek, &aad(user_id), secret);
    Ok((keys.wrap(&dek).await?, sealed))
}

/// Opens a sealed TOTP secret of `user_id`.
pub async fn open(
    keys: &dyn KeyProvider,
    user_id: &str,
    kek_id: &str,
    wrapped_dek: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let dek = keys
        .unwrap(&WrappedDek {
            kek_id: kek_id.to_owned(),
            blob: wrapped_dek.to_vec(),
        })
        .await?;
    crypto::open(&dek, &aad(user_id), sealed)
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx-xxxx` (base32, 80 bits each).
pub fn recovery_codes() -> Vec<Zeroizing<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut raw = [0u8; 10];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
            let b32 = base32(&raw).to_lowercase();
            Zeroizing::new(format!(
                "{}-{}-{}-{}",
                &b32[0..4],
                &b32[4..8],
                &b32[8..12],
                &b32[12..16]
            ))
        })
        .collect()
}

fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a second factor looks like a recovery code rather than a TOTP code.
pub fn is_recovery_code(code: &str) -> bool {
    normalise_recovery(code).len() == 16
}

/// The stored form of a recovery code.
pub fn recovery_hash(code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"envseal-recovery-v1\0");
    h.update(normalise_recovery(code).as_bytes());
    h.finalize().to_vec()
}

/// A session token: `ess_` and 43 base64url characters; its public id.
pub fn new_session_token() -> (String, Zeroizing<String>) {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw[..]);
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    (
        hex::encode(id),
        Zeroizing::new(format!(
            "{SESSION_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..])
        )),
    )
}

/// Prefix of session tokens (machine tokens start with `est_`).
pub const SESSION_PREFIX: &str = "ess_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B, SHA-1 seed, T = 59 s: 94287082 (8 digits); the last 6.
        let seed = b"12345678901234567890";
        assert_eq!(code_at(seed, 59), "287082");
        assert_eq!(matching_step(seed, "287082", 59), Some(1));
        assert_eq!(matching_step(seed, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(seed, "287082", 59 + 90), None);
        assert_eq!(matching_step(seed, "28708", 59), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(is_recovery_code(&codes[0]));
        assert!(!is_recovery_code("123456"));
        assert_eq!(
            recovery_hash(&codes[0]),
            recovery_hash(&codes[0].to_uppercase().replace('-', " "))
        );
        assert_ne!(recovery_hash(&codes[0]), recovery_hash(&codes[1]));
    }
}
