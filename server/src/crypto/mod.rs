//! Envelope encryption: each secret version is sealed with its own random data key
//! (DEK) under AES-256-GCM, and the DEK is wrapped by a key-encryption key (KEK) held by
//! a [`KeyProvider`].
//!
//! This module knows nothing about HTTP or SQL. Key material lives in zeroizing
//! buffers with no `Debug`, `Clone` or `Serialize`; a [`Dek`] can only be made by
//! generating a fresh one or by a provider unwrapping one.

mod dek_cache;
mod keyring;
mod local;
mod vault;

pub use dek_cache::{DekCache, DekCacheConfig};
pub use keyring::Keyring;
pub use local::{KdfParams, LocalKeyProvider, MasterKeyError, MasterKeySource};
pub use vault::{VaultAuth, VaultConfig, VaultTransitProvider};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use std::future::Future;
use std::pin::Pin;
use zeroize::Zeroizing;

/// Length of AES-256 keys.
pub const KEY_LEN: usize = 32;
/// Length of AES-GCM nonces.
pub const NONCE_LEN: usize = 12;

/// A 256-bit data key. Wiped on drop; cannot be printed, cloned or serialised.
pub struct Dek(Zeroizing<[u8; KEY_LEN]>);

impl Dek {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        Dek(key)
    }

    /// Only key providers build a `Dek` from bytes they have unwrapped.
    fn from_unwrapped(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Decrypt)?;
        Ok(Dek(Zeroizing::new(arr)))
    }

    /// A second copy of the same key (for the DEK cache); both copies are wiped.
    fn duplicate(&self) -> Self {
        Dek(Zeroizing::new(*self.0))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0[..]))
    }
}

/// A DEK as stored: the KEK that wrapped it and the wrapped bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDek {
    /// Which KEK (provider and key version) wrapped it, e.g. `local:3f2a9c01`.
    pub kek_id: String,
    /// Provider-specific wrapped bytes.
    pub blob: Vec<u8>,
}

/// What went wrong in the crypto layer. Messages say nothing about keys or values.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, tampered ciphertext or wrong binding.
    #[error("decryption failed: the ciphertext, its key or its binding does not match")]
    Decrypt,
    /// The DEK was wrapped by a KEK this provider does not hold.
    #[error("data key was wrapped by KEK {0:?}, which this server's key provider does not hold")]
    UnknownKek(String),
    /// The key provider could not be reached or refused.
    #[error("key provider error: {0}")]
    Provider(String),
    /// The provider cannot do this (e.g. rotate a passphrase-derived key).
    #[error("{0}")]
    Unsupported(String),
}

impl CryptoError {
    /// True when the provider is unreachable or failing (a retry may succeed), as
    /// opposed to data that does not authenticate.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CryptoError::Provider(_))
    }
}

/// Boxed future returned by [`KeyProvider`] methods.
pub type KeyFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CryptoError>> + Send + 'a>>;

/// Holds the KEK and wraps / unwraps DEKs. Every provider records a KEK id on each row
/// it wraps: `<provider>:<key>:<version>` (the provider name is the id's prefix), so
/// the rows on each version can be counted and re-wrapped.
pub trait KeyProvider: Send + Sync + 'static {
    /// Short provider name for logs and `/readyz` (`local`, `vault-transit`, …).
    fn name(&self) -> &'static str;
    /// Wraps `dek` under the current KEK version.
    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek>;
    /// Unwraps a DEK wrapped by any KEK version this provider still holds.
    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek>;
    /// Whether `kek_id` names a key of this provider (any version).
    fn holds(&self, kek_id: &str) -> bool {
        kek_id
            .strip_prefix(self.name())
            .is_some_and(|rest| rest.starts_with(':'))
    }
    /// Wraps several DEKs under the current KEK version; remote providers answer in one
    /// round trip.
    fn wrap_many<'a>(&'a self, deks: &'a [Dek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(deks.len());
            for d in deks {
                out.push(self.wrap(d).await?);
            }
            Ok(out)
        })
    }
    /// Unwraps several DEKs; remote providers answer in one round trip.
    fn unwrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<Dek>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(wrapped.len());
            for w in wrapped {
                out.push(self.unwrap(w).await?);
            }
            Ok(out)
        })
    }
    /// The KEK id new wraps are recorded under.
    fn current_kek_id(&self) -> KeyFuture<'_, String> {
        Box::pin(async move { Ok(self.wrap(&Dek::generate()).await?.kek_id) })
    }
    /// Makes a new KEK version current; returns its id. Older versions keep
    /// unwrapping.
    fn rotate(&self) -> KeyFuture<'_, String> {
        let name = self.name();
        Box::pin(async move {
            Err(CryptoError::Unsupported(format!(
                "the {name} key provider cannot rotate its key"
            )))
        })
    }
    /// Re-wraps DEKs under the current KEK version. Remote providers do it without the
    /// plaintext DEK leaving them.
    fn rewrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        Box::pin(async move {
            let deks = self.unwrap_many(wrapped).await?;
            self.wrap_many(&deks).await
        })
    }
}

/// Associated data binding a ciphertext to the row it belongs to. A ciphertext moved
/// to another project, environment, name or version no longer decrypts.
pub fn secret_aad(project_id: i64, environment_id: i64, name: &str, version: i64) -> Vec<u8> {
    format!("envseal/secret/v1\0{project_id}\0{environment_id}\0{name}\0{version}").into_bytes()
}

/// Seals `plaintext` under `dek`: returns `nonce ‖ ciphertext ‖ tag`.
pub fn seal(dek: &Dek, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with(&dek.cipher(), aad, plaintext)
}

/// Opens what [`seal`] produced. The plaintext comes back in a wiped buffer.
pub fn open(dek: &Dek, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    open_with(&dek.cipher(), aad, sealed)
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers under 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let dek = Dek::generate();
        let aad = secret_aad(1, 2, "SECRET_KEY", 3);
        let sealed = seal(&dek, &aad, b"hello\nworld");
        assert_eq!(&open(&dek, &aad, &sealed).unwrap()[..], b"hello\nworld");
    }

    #[test]
    fn ciphertext_bound_to_its_row() {
        let dek = Dek::generate();
        let sealed = seal(&dek, &secret_aad(1, 2, "A", 1), b"v");
        for other in [
            secret_aad(9, 2, "A", 1),
            secret_aad(1, 9, "A", 1),
            secret_aad(1, 2, "B", 1),
            secret_aad(1, 2, "A", 2),
        ] {
            assert!(matches!(
                open(&dek, &other, &sealed),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn tampering_and_wrong_key_fail() {
        let dek = Dek::generate();
        let aad = secret_aad(1, 1, "A", 1);
        let mut sealed = seal(&dek, &aad, b"value");
        assert!(open(&Dek::generate(), &aad, &sealed).is_err());
        sealed[NONCE_LEN + 1] ^= 1;
        assert!(open(&dek, &aad, &sealed).is_err());
        assert!(open(&dek, &aad, &sealed[..5]).is_err());
    }

    #[test]
    fn nonces_differ() {
        let dek = Dek::generate();
        let a = seal(&dek, b"", b"same");
        let b = seal(&dek, b"", b"same");
        assert_ne!(a, b);
    }
}
