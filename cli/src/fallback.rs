//! The launcher's encrypted fallback file: the last environment fetched, so a container
//! can still start while the server is unreachable.
//!
//! Format, version 1 (all integers big-endian):
//!
//! ```text
//! 0   8   magic "ESFALLBK"
//! 8   1   format version (1)
//! 9   1   key derivation: 1 = HKDF-SHA256 over the machine token,
//!                         2 = argon2id over a passphrase (m=19456 KiB, t=2, p=1)
//! 10  16  salt
//! 26  12  AES-GCM nonce
//! 38  8   fetch time, Unix milliseconds
//! 46  …   AES-256-GCM ciphertext and tag of the environment as JSON
//! ```
//!
//! The 46-byte header, followed by the project and environment names, is the
//! associated data: changing the fetch time, the parameters, or using the file for
//! another environment makes decryption fail. Staleness is judged only after the
//! file has authenticated. Files are written to a temporary file (mode 0600) in the
//! same directory and renamed into place (not fsynced: see `write`).
//!
//! This module knows nothing about HTTP or processes, and no error it returns holds a
//! value, the token or the passphrase.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use envseal_core::wire::EnvironmentExport;
use rand::RngCore as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"ESFALLBK";
const VERSION: u8 = 1;
const KDF_TOKEN: u8 = 1;
const KDF_PASSPHRASE: u8 = 2;
const HEADER_LEN: usize = 46;
const HKDF_INFO: &[u8] = b"envseal fallback file v1";

/// Where the key comes from. Neither variant has `Debug`.
pub enum KeySource {
    /// The machine token (high entropy): HKDF-SHA256.
    Token(Zeroizing<String>),
    /// A passphrase from a file or `ENVSEAL_FALLBACK_PASSPHRASE`: argon2id.
    Passphrase(Zeroizing<Vec<u8>>),
}

impl KeySource {
    fn kdf_id(&self) -> u8 {
        match self {
            KeySource::Token(_) => KDF_TOKEN,
            KeySource::Passphrase(_) => KDF_PASSPHRASE,
        }
    }

    fn derive(&self, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>, FallbackError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match self {
            KeySource::Token(token) => {
                hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), token.as_bytes())
                    .expand(HKDF_INFO, key.as_mut())
                    .map_err(|_| FallbackError::Kdf)?;
            }
            KeySource::Passphrase(pass) => {
                let params =
                    argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|_| FallbackError::Kdf)?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(pass, salt, key.as_mut())
                    .map_err(|_| FallbackError::Kdf)?;
            }
        }
        Ok(key)
    }
}

/// Which environment a file belongs to; bound into the associated data.
pub struct Scope<'a> {
    /// Project slug.
    pub project: &'a str,
    /// Environment slug.
    pub environment: &'a str,
}

impl Scope<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = header.to_vec();
        aad.extend_from_slice(self.project.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.environment.as_bytes());
        aad
    }
}

/// Why a fallback file could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    /// Reading or writing the file failed.
    #[error("fallback file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// There is no fallback file yet.
    #[error("no fallback file at {0}")]
    Missing(PathBuf),
    /// Not a fallback file at all.
    #[error("{0} is not an envseal fallback file")]
    NotAFallbackFile(PathBuf),
    /// Written by a newer envseal.
    #[error("fallback file {path} has format version {version}; this envseal reads version 1")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version byte.
        version: u8,
    },
    /// Written with the other kind of key.
    #[error(
        "fallback file {path} was written with a {written}, but a {given} was given to read it"
    )]
    KeyKindMismatch {
        /// The file.
        path: PathBuf,
        /// What wrote it.
        written: &'static str,
        /// What is reading it.
        given: &'static str,
    },
    /// Authentication failed.
    #[error(
        "fallback file {0} does not authenticate: it was modified, belongs to another \
         project/environment, or was written with another token or passphrase"
    )]
    Tampered(PathBuf),
    /// Authenticated, but too old.
    #[error(
        "fallback file {path} is stale: fetched {} ago, older than \
         --fallback-max-age {}", crate::duration::show(*.age), crate::duration::show(*.max)
    )]
    Stale {
        /// The file.
        path: PathBuf,
        /// Its age.
        age: Duration,
        /// The limit.
        max: Duration,
    },
    /// Authenticated but the content is not an environment (a bug, not an attack).
    #[error("fallback file {0} holds no readable environment")]
    BadPayload(PathBuf),
    /// Key derivation failed.
    #[error("deriving the fallback key failed")]
    Kdf,
}

fn kdf_name(id: u8) -> &'static str {
    if id == KDF_PASSPHRASE {
        "passphrase"
    } else {
        "token-derived key"
    }
}

fn unix_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Encrypts `export` and writes it atomically to `path` (mode 0600).
pub fn write(
    path: &Path,
    key: &KeySource,
    scope: &Scope<'_>,
    export: &EnvironmentExport,
    now: SystemTime,
) -> Result<(), FallbackError> {
    let io = |source| FallbackError::Io {
        path: path.to_owned(),
        source,
    };
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.push(key.kdf_id());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    header.extend_from_slice(&unix_ms(now).to_be_bytes());
    debug_assert_eq!(header.len(), HEADER_LEN);

    let plaintext = Zeroizing::new(serde_json::to_vec(export).map_err(|_| FallbackError::Kdf)?);
    let key_bytes = key.derive(&salt)?;
    let cipher = Aes256Gcm::new_from_slice(key_bytes.as_ref()).map_err(|_| FallbackError::Kdf)?;
    let aad = scope.aad(&header);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| FallbackError::Kdf)?;

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("not a file path")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&header)?;
        file.write_all(&ciphertext)?;
        // No fsync: it would cost every container start several milliseconds, and a
        // file torn by a power cut fails authentication and is refused like any
        // other damaged file. The rename still means readers see old or new, whole.
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads, authenticates and age-checks the file. Returns the environment and its age.
pub fn read(
    path: &Path,
    key: &KeySource,
    scope: &Scope<'_>,
    max_age: Duration,
    now: SystemTime,
) -> Result<(EnvironmentExport, Duration), FallbackError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FallbackError::Missing(path.to_owned()))
        }
        Err(source) => {
            return Err(FallbackError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    if bytes.len() < HEADER_LEN + 16 || &bytes[..8] != MAGIC {
        return Err(FallbackError::NotAFallbackFile(path.to_owned()));
    }
    let (header, ciphertext) = bytes.split_at(HEADER_LEN);
    if header[8] != VERSION {
        return Err(FallbackError::UnsupportedVersion {
            path: path.to_owned(),
            version: header[8],
        });
    }
    let kdf = header[9];
    if kdf != KDF_TOKEN && kdf != KDF_PASSPHRASE {
        return Err(FallbackError::Tampered(path.to_owned()));
    }
    if kdf != key.kdf_id() {
        return Err(FallbackError::KeyKindMismatch {
            path: path.to_owned(),
            written: kdf_name(kdf),
            given: kdf_name(key.kdf_id()),
        });
    }
    let salt: [u8; 16] = header[10..26].try_into().expect("16 bytes");
    let nonce = Nonce::from_slice(&header[26..38]);
    let fetched_at = u64::from_be_bytes(header[38..46].try_into().expect("8 bytes"));
    let key_bytes = key.derive(&salt)?;
    let cipher = Aes256Gcm::new_from_slice(key_bytes.as_ref()).map_err(|_| FallbackError::Kdf)?;
    let aad = scope.aad(header);
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| FallbackError::Tampered(path.to_owned()))?,
    );
    // Authenticated: now the time can be trusted.
    let age = Duration::from_millis(unix_ms(now).saturating_sub(fetched_at));
    if age > max_age {
        return Err(FallbackError::Stale {
            path: path.to_owned(),
            age,
            max: max_age,
        });
    }
    let export: EnvironmentExport = serde_json::from_slice(&plaintext)
        .map_err(|_| FallbackError::BadPayload(path.to_owned()))?;
    if export.project != scope.project || export.environment != scope.environment {
        return Err(FallbackError::Tampered(path.to_owned()));
    }
    Ok((export, age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envseal_core::SecretValue;

    fn export() -> EnvironmentExport {
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert(
            "PEM".to_owned(),
            SecretValue::new(b"-----BEGIN KEY-----\nabc\n-----END KEY-----\n".to_vec()).to_wire(),
        );
        secrets.insert(
            "BIN".to_owned(),
            SecretValue::new(vec![0, 255, 10]).to_wire(),
        );
        EnvironmentExport {
            project: "dify".into(),
            environment: "prod".into(),
            revision: 7,
            secrets,
        }
    }

    const SCOPE: Scope<'static> = Scope {
        project: "dify",
        environment: "prod",
    };

    fn token() -> KeySource {
        KeySource::Token(Zeroizing::new("est_token_for_tests".into()))
    }

    fn written() -> (tempfile::TempDir, PathBuf, SystemTime) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fallback.bin");
        let now = SystemTime::now();
        write(&path, &token(), &SCOPE, &export(), now).unwrap();
        (dir, path, now)
    }

    #[test]
    fn round_trip_with_token_and_passphrase() {
        let (_d, path, now) = written();
        let (got, age) = read(&path, &token(), &SCOPE, Duration::from_secs(60), now).unwrap();
        assert_eq!(age, Duration::ZERO);
        assert_eq!(got.revision, 7);
        assert_eq!(
            got.secrets["BIN"].decode().unwrap().expose(),
            &[0u8, 255, 10][..]
        );
        let pass = KeySource::Passphrase(Zeroizing::new(b"correct horse".to_vec()));
        write(&path, &pass, &SCOPE, &export(), now).unwrap();
        read(&path, &pass, &SCOPE, Duration::from_secs(60), now).unwrap();
        let err = read(&path, &token(), &SCOPE, Duration::from_secs(60), now).unwrap_err();
        assert!(
            matches!(err, FallbackError::KeyKindMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn file_mode_is_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_d, path, _) = written();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn tampering_with_any_byte_fails() {
        let (_d, path, now) = written();
        let original = std::fs::read(&path).unwrap();
        for i in 9..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let err = read(&path, &token(), &SCOPE, Duration::from_secs(600), now).unwrap_err();
            assert!(
                matches!(
                    err,
                    FallbackError::Tampered(_) | FallbackError::KeyKindMismatch { .. }
                ),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn making_a_stale_file_look_fresh_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let old = SystemTime::now() - Duration::from_secs(3600);
        write(&path, &token(), &SCOPE, &export(), old).unwrap();
        let err = read(
            &path,
            &token(),
            &SCOPE,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, FallbackError::Stale { .. }), "{err}");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[38..46].copy_from_slice(&unix_ms(SystemTime::now()).to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read(
            &path,
            &token(),
            &SCOPE,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, FallbackError::Tampered(_)), "{err}");
    }

    #[test]
    fn other_environment_or_token_fails() {
        let (_d, path, now) = written();
        let other = Scope {
            project: "dify",
            environment: "staging",
        };
        let err = read(&path, &token(), &other, Duration::from_secs(60), now).unwrap_err();
        assert!(matches!(err, FallbackError::Tampered(_)));
        let other_token = KeySource::Token(Zeroizing::new("est_other".into()));
        let err = read(&path, &other_token, &SCOPE, Duration::from_secs(60), now).unwrap_err();
        assert!(matches!(err, FallbackError::Tampered(_)));
    }

    #[test]
    fn plaintext_is_not_in_the_file() {
        let (_d, path, _) = written();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(9).any(|w| w == b"BEGIN KEY"));
        assert!(!bytes.windows(3).any(|w| w == b"PEM"));
    }
}
