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
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
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

/// The local KEK: one or more 256-bit keys in memory, the last one current. A key file
/// may hold several keys (one base64 line each, after the header); `rotate` appends a
/// fresh one and every process reading the file picks it up within a second.
pub struct LocalKeyProvider {
    keys: RwLock<Arc<Vec<LocalKey>>>,
    path: Option<PathBuf>,
    checked: Mutex<(Instant, Option<FileStamp>)>,
}

struct LocalKey {
    id: String,
    cipher: Aes256Gcm,
    b64: Zeroizing<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// How often a process looks at its key file for a rotation.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

fn read_key_file(path: &Path) -> Result<Vec<LocalKey>, MasterKeyError> {
    let io = |source| MasterKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    check_permissions(path)?;
    let mut lines = text.lines();
    if lines.next() != Some(FILE_HEADER) {
        return Err(MasterKeyError::Format(path.to_owned()));
    }
    let mut keys = Vec::new();
    for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| MasterKeyError::Format(path.to_owned()))?,
        );
        let key: &[u8; KEY_LEN] = bytes[..]
            .try_into()
            .map_err(|_| MasterKeyError::Format(path.to_owned()))?;
        keys.push(LocalKey::new(key));
    }
    if keys.is_empty() {
        return Err(MasterKeyError::Format(path.to_owned()));
    }
    Ok(keys)
}

fn write_key_file(path: &Path, keys: &[LocalKey], create: bool) -> std::io::Result<()> {
    let mut text = Zeroizing::new(format!("{FILE_HEADER}\n"));
    for k in keys {
        text.push_str(&k.b64);
        text.push('\n');
    }
    if create {
        let mut file = create_private(path)?;
        return file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
    }
    // Replace atomically: a reader sees the old file or the new one, never a part.
    let tmp = path.with_extension(format!("rotate-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_private(&tmp)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl LocalKey {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(b"envseal/kek-id/v1");
        let tag = mac.finalize().into_bytes();
        LocalKey {
            id: format!("local:{}", hex::encode(&tag[..6])),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            b64: Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key)),
        }
    }

    fn random() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        LocalKey::new(&key)
    }
}

impl LocalKeyProvider {
    /// Loads the keys from `path`, creating it (mode 0600) with one fresh key if absent.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        let keys = match std::fs::metadata(path) {
            Ok(_) => read_key_file(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let keys = vec![LocalKey::random()];
                write_key_file(path, &keys, true).map_err(io)?;
                keys
            }
            Err(e) => return Err(io(e)),
        };
        Ok(LocalKeyProvider {
            keys: RwLock::new(Arc::new(keys)),
            path: Some(path.to_owned()),
            checked: Mutex::new((Instant::now(), stamp(path))),
        })
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
        Ok(LocalKeyProvider {
            keys: RwLock::new(Arc::new(vec![LocalKey::new(&key)])),
            path: None,
            checked: Mutex::new((Instant::now(), None)),
        })
    }

    /// The identifier of the current KEK, recorded on every row it wraps.
    pub fn kek_id(&self) -> String {
        self.current().last().expect("at least one key").id.clone()
    }

    fn current(&self) -> Arc<Vec<LocalKey>> {
        self.keys.read().expect("local keys lock").clone()
    }

    /// Re-reads the key file if it changed (at most once a second unless `now`).
    fn refresh(&self, now: bool) {
        let Some(path) = &self.path else { return };
        {
            let mut c = self.checked.lock().expect("local keys lock");
            if !now && c.0.elapsed() < RELOAD_EVERY {
                return;
            }
            let s = stamp(path);
            let changed = s != c.1;
            *c = (Instant::now(), s);
            if !changed && !now {
                return;
            }
        }
        match read_key_file(path) {
            Ok(keys) => *self.keys.write().expect("local keys lock") = Arc::new(keys),
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the master key file; keeping the keys in memory")
            }
        }
    }

    fn aad(kek_id: &str) -> Vec<u8> {
        format!("envseal/dek/v1\0{kek_id}").into_bytes()
    }

    fn open_with_keys(keys: &[LocalKey], wrapped: &WrappedDek) -> Option<Result<Dek, CryptoError>> {
        let k = keys.iter().find(|k| k.id == wrapped.kek_id)?;
        Some(
            open_with(&k.cipher, &Self::aad(&k.id), &wrapped.blob)
                .and_then(|bytes| Dek::from_unwrapped(&bytes)),
        )
    }
}

impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
        self.refresh(false);
        let keys = self.current();
        let k = keys.last().expect("at least one key");
        let blob = seal_with(&k.cipher, &Self::aad(&k.id), &dek.0[..]);
        Box::pin(std::future::ready(Ok(WrappedDek {
            kek_id: k.id.clone(),
            blob,
        })))
    }

    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
        let result = match Self::open_with_keys(&self.current(), wrapped) {
            Some(r) => r,
            None => {
                // Perhaps another process rotated the key file.
                self.refresh(true);
                Self::open_with_keys(&self.current(), wrapped)
                    .unwrap_or_else(|| Err(CryptoError::UnknownKek(wrapped.kek_id.clone())))
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn current_kek_id(&self) -> KeyFuture<'_, String> {
        self.refresh(true);
        Box::pin(std::future::ready(Ok(self.kek_id())))
    }

    fn rotate(&self) -> KeyFuture<'_, String> {
        let result = match &self.path {
            None => Err(CryptoError::Unsupported(
                "a passphrase-derived master key cannot be rotated in place; move to a key \
                 file or another provider with `envseal-server kek migrate`"
                    .to_owned(),
            )),
            Some(path) => {
                self.refresh(true);
                let old = self.current();
                let mut keys: Vec<LocalKey> = old
                    .iter()
                    .map(|k| {
                        let bytes = Zeroizing::new(
                            base64::engine::general_purpose::STANDARD
                                .decode(k.b64.as_bytes())
                                .expect("keys in memory are valid base64"),
                        );
                        let arr: &[u8; KEY_LEN] = bytes[..].try_into().expect("32-byte keys");
                        LocalKey::new(arr)
                    })
                    .collect();
                keys.push(LocalKey::random());
                match write_key_file(path, &keys, false) {
                    Ok(()) => {
                        let id = keys.last().expect("just pushed").id.clone();
                        *self.keys.write().expect("local keys lock") = Arc::new(keys);
                        *self.checked.lock().expect("local keys lock") =
                            (Instant::now(), stamp(path));
                        Ok(id)
                    }
                    Err(e) => Err(CryptoError::Provider(format!(
                        "writing the master key file {}: {e}",
                        path.display()
                    ))),
                }
            }
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
            kek_id: b.kek_id(),
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
    fn rotation_keeps_old_versions_and_reaches_other_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = LocalKeyProvider::from_file(&path).unwrap();
        let reader = LocalKeyProvider::from_file(&path).unwrap();
        let old = block(a.wrap(&Dek::generate())).unwrap();
        let new_id = block(a.rotate()).unwrap();
        assert_ne!(new_id, old.kek_id);
        let new = block(a.wrap(&Dek::generate())).unwrap();
        assert_eq!(new.kek_id, new_id);
        // Another process holding the file before the rotation opens both.
        block(reader.unwrap(&old)).unwrap();
        block(reader.unwrap(&new)).unwrap();
        // And a fresh load has both versions, the new one current.
        let fresh = LocalKeyProvider::from_file(&path).unwrap();
        assert_eq!(fresh.kek_id(), new_id);
        block(fresh.unwrap(&old)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn passphrase_key_refuses_rotation() {
        let mut params = KdfParams::generate();
        params.m_cost = 1024;
        params.t_cost = 1;
        let p = LocalKeyProvider::from_passphrase(&SecretString::from("correct horse"), &params)
            .unwrap();
        assert!(matches!(
            block(p.rotate()),
            Err(CryptoError::Unsupported(_))
        ));
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
