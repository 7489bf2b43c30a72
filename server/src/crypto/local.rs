//! The `local` key provider: a 256-bit master key from a file (created with mode 0600
//! on first start) or derived from a passphrase with argon2id.

use super::{open_with, seal_with, CryptoError, Dek, KeyFuture, KeyProvider, WrappedDek, KEY_LEN};
use aes_gcm::{Aes256Gcm, Key, KeyInit};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const FILE_HEADER: &str = "envseal-master-key-v1";

/// Where the master key comes from.
pub enum MasterKeySource {
    /// A key file; created (0600) when missing.
    File(PathBuf),
    /// A passphrase stretched with argon2id; salt and parameters are kept by the store.
    Passphrase(SecretString),
}

/// Argon2id parameters and salt for a passphrase-derived master key. Not secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Salt, base64.
    pub salt: String,
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Fresh parameters: random 16-byte salt, 64 MiB, 3 passes, 1 lane.
    pub fn generate() -> Self {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        KdfParams {
            salt: base64::engine::general_purpose::STANDARD.encode(salt),
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// Errors loading the master key.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not in the expected format.
    #[error("master key file {0} is not an envseal master key (expected '{FILE_HEADER}' and 32 base64 bytes)")]
    Format(PathBuf),
    /// The key file can be read by other users.
    #[error("master key file {0} is readable by group or others; chmod 600 it")]
    Permissions(PathBuf),
    /// The KDF parameters are unusable.
    #[error("passphrase key derivation failed: {0}")]
    Kdf(String),
}

/// The local KEK: one 256-bit key in memory.
pub struct LocalKeyProvider {
    cipher: Aes256Gcm,
    kek_id: String,
}

impl LocalKeyProvider {
    /// Loads the key from `path`, creating it (mode 0600, never overwritten) if absent.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                let text = Zeroizing::new(text);
                let mut lines = text.lines();
                let (Some(FILE_HEADER), Some(b64)) = (lines.next(), lines.next()) else {
                    return Err(MasterKeyError::Format(path.to_owned()));
                };
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| MasterKeyError::Format(path.to_owned()))?,
                );
                let key: &[u8; KEY_LEN] = bytes[..]
                    .try_into()
                    .map_err(|_| MasterKeyError::Format(path.to_owned()))?;
                Ok(Self::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                rand::rngs::OsRng.fill_bytes(&mut key[..]);
                let encoded =
                    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&key[..]));
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut file = create_private(path).map_err(io)?;
                file.write_all(format!("{FILE_HEADER}\n{}\n", encoded.as_str()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Derives the key from a passphrase with argon2id.
    pub fn from_passphrase(
        passphrase: &SecretString,
        params: &KdfParams,
    ) -> Result<Self, MasterKeyError> {
        let salt = base64::engine::general_purpose::STANDARD
            .decode(&params.salt)
            .map_err(|e| MasterKeyError::Kdf(format!("salt: {e}")))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(KEY_LEN))
                .map_err(|e| MasterKeyError::Kdf(e.to_string()))?,
        );
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase.expose_secret().as_bytes(), &salt, &mut key[..])
            .map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
        Ok(Self::from_key(&key))
    }

    fn from_key(key: &[u8; KEY_LEN]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(b"envseal/kek-id/v1");
        let tag = mac.finalize().into_bytes();
        LocalKeyProvider {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            kek_id: format!("local:{}", hex::encode(&tag[..6])),
        }
    }

    /// The identifier of this KEK, recorded on every row it wraps.
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    fn aad(kek_id: &str) -> Vec<u8> {
        format!("envseal/dek/v1\0{kek_id}").into_bytes()
    }
}

impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
        let blob = seal_with(&self.cipher, &Self::aad(&self.kek_id), &dek.0[..]);
        Box::pin(std::future::ready(Ok(WrappedDek {
            kek_id: self.kek_id.clone(),
            blob,
        })))
    }

    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
        let result = if wrapped.kek_id != self.kek_id {
            Err(CryptoError::UnknownKek(wrapped.kek_id.clone()))
        } else {
            open_with(&self.cipher, &Self::aad(&self.kek_id), &wrapped.blob)
                .and_then(|bytes| Dek::from_unwrapped(&bytes))
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), MasterKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::Permissions(path.to_owned()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), MasterKeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: KeyFuture<'_, T>) -> Result<T, CryptoError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn key_file_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = LocalKeyProvider::from_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = LocalKeyProvider::from_file(&path).unwrap();
        assert_eq!(a.kek_id(), b.kek_id());
        let dek = Dek::generate();
        let wrapped = block(a.wrap(&dek)).unwrap();
        let back = block(b.unwrap(&wrapped)).unwrap();
        assert_eq!(&back.0[..], &dek.0[..]);
    }

    #[test]
    fn other_key_cannot_unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalKeyProvider::from_file(&dir.path().join("a")).unwrap();
        let b = LocalKeyProvider::from_file(&dir.path().join("b")).unwrap();
        let wrapped = block(a.wrap(&Dek::generate())).unwrap();
        assert!(matches!(
            block(b.unwrap(&wrapped)),
            Err(CryptoError::UnknownKek(_))
        ));
        // Even under a forged id the wrong key fails authentication.
        let forged = WrappedDek {
            kek_id: b.kek_id().to_owned(),
            blob: wrapped.blob,
        };
        assert!(matches!(
            block(b.unwrap(&forged)),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn rejects_garbage_and_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(matches!(
                LocalKeyProvider::from_file(&path),
                Err(MasterKeyError::Format(_))
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                LocalKeyProvider::from_file(&path),
                Err(MasterKeyError::Permissions(_))
            ));
        }
    }

    #[test]
    fn passphrase_is_deterministic_per_salt() {
        let mut params = KdfParams::generate();
        params.m_cost = 1024;
        params.t_cost = 1;
        let pass = SecretString::from("correct horse");
        let a = LocalKeyProvider::from_passphrase(&pass, &params).unwrap();
        let b = LocalKeyProvider::from_passphrase(&pass, &params).unwrap();
        assert_eq!(a.kek_id(), b.kek_id());
        let mut other = params.clone();
        other.salt = KdfParams::generate().salt;
        let c = LocalKeyProvider::from_passphrase(&pass, &other).unwrap();
        assert_ne!(a.kek_id(), c.kek_id());
    }
}
