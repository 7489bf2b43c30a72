//! The anchor signing key: Ed25519, kept in a PKCS#8 PEM file (never in the
//! database), created 0600 on first use with its public key next to it
//! (`FILE.pub`, SubjectPublicKeyInfo PEM), which is all `envseal audit verify
//! --anchors` needs.

use anyhow::Context as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use ed25519_dalek::{Signer as _, SigningKey};
use envseal_core::audit_anchor::Anchor;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Signs anchors. No `Debug`: it holds the private key.
pub struct AnchorSigner {
    key: SigningKey,
}

impl AnchorSigner {
    /// Loads the key in `path`, or creates it (and `path.pub`) when the file is missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
                    anyhow::anyhow!(
                        "{} is not an Ed25519 private key in PKCS#8 PEM",
                        path.display()
                    )
                })?;
                Ok(AnchorSigner { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let pem = key
                    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                    .map_err(|_| anyhow::anyhow!("encoding the anchor key"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                let mut f = o
                    .open(path)
                    .with_context(|| format!("creating anchor key {}", path.display()))?;
                f.write_all(pem.as_bytes())?;
                f.sync_all()?;
                let signer = AnchorSigner { key };
                let pub_path = public_path(path);
                std::fs::write(&pub_path, signer.public_pem()?)
                    .with_context(|| format!("writing {}", pub_path.display()))?;
                tracing::info!(
                    key = %path.display(),
                    public_key = %pub_path.display(),
                    "created the audit anchor signing key; keep a copy of the public key \
                     where the verifier can read it"
                );
                Ok(signer)
            }
            Err(e) => Err(e).with_context(|| format!("reading anchor key {}", path.display())),
        }
    }

    /// The public key as SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> anyhow::Result<String> {
        self.key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| anyhow::anyhow!("encoding the anchor public key"))
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs "entry `seq` has hash `head_hash`" at `ts`.
    pub fn sign(&self, seq: i64, head_hash: &str, ts: i64) -> Anchor {
        let sig = self.key.sign(&Anchor::signed_message(seq, head_hash, ts));
        Anchor {
            seq,
            head_hash: head_hash.to_owned(),
            ts,
            key: self.public_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// Where the public key of the key in `path` is written.
pub fn public_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::DecodePublicKey as _;

    #[test]
    fn key_is_created_once_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/anchor.key");
        let a = AnchorSigner::load_or_create(&path).unwrap();
        let b = AnchorSigner::load_or_create(&path).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let pem = std::fs::read_to_string(public_path(&path)).unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
        let anchor = a.sign(5, "abcd", 42);
        let sig =
            ed25519_dalek::Signature::from_slice(&hex::decode(&anchor.signature).unwrap()).unwrap();
        vk.verify_strict(&anchor.message(), &sig).unwrap();
        let mut forged = anchor.clone();
        forged.seq = 4;
        assert!(vk.verify_strict(&forged.message(), &sig).is_err());
        std::fs::write(&path, "garbage").unwrap();
        let err = AnchorSigner::load_or_create(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not an Ed25519 private key"), "{err}");
    }
}
