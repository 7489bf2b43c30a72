//! Secret operations: the one place where the store and the key provider meet.
//!
//! Every value is sealed with a fresh DEK bound (AAD) to its project, environment, name
//! and version before it reaches the store, and opened only here. Nothing in this
//! module logs or formats a value.

use crate::crypto::{self, CryptoError, Dek, KeyProvider, WrappedDek};
use crate::derived;
use crate::store::{EnvRow, NewVersion, SecretRow, Store, StoreError, VersionRow};
use base64::Engine as _;
use envseal_core::SecretValue;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value or key failed to decrypt, or the key provider failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// No such secret (or version).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Check-and-set failed.
    #[error("check-and-set failed: current version is {current}")]
    CasConflict {
        /// The version that is current now.
        current: i64,
    },
    /// The version was destroyed; its value is gone for good.
    #[error("version {0} was destroyed")]
    Destroyed(i64),
    /// The request is not allowed in this state.
    #[error("{0}")]
    Invalid(String),
    /// Concurrent writers kept winning; try again.
    #[error("too many concurrent writers to this secret; try again")]
    Busy,
}

/// One write: a new version of `name`.
pub struct Write<'a> {
    /// Secret name (already validated).
    pub name: &'a str,
    /// The value.
    pub value: &'a SecretValue,
    /// Check-and-set: the version expected to be current (0: must not exist).
    pub cas: Option<i64>,
    /// New description, if any.
    pub description: Option<&'a str>,
    /// Who writes (token or user name), recorded on the version.
    pub actor: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// `value` is a template over other secrets (`crate::derived`), checked here.
    pub derived: bool,
}

/// Secret operations over a store and a key provider.
pub struct Secrets {
    store: Arc<Store>,
    keys: Arc<dyn KeyProvider>,
    keep_versions: i64,
    fingerprint_key: tokio::sync::OnceCell<Zeroizing<Vec<u8>>>,
}

/// Where the fingerprint key lives in `meta`, sealed under the KEK.
const FINGERPRINT_KEY: &str = "fingerprint_key";
const FINGERPRINT_KEY_AAD: &[u8] = b"envseal/fingerprint-key/v1";

/// The key check record kept in `meta`: proves at start-up that the configured master
/// key is the one the database was written with.
const KEY_CHECK: &str = "kek_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"envseal key check v1";

/// Start-up verification failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The master key is not the one this database was created with.
    #[error(
        "the master key does not match this database (it was written with KEK {stored}, \
         this server holds {current}); refusing to start. Check ENVSEAL_MASTER_KEY_FILE / \
         ENVSEAL_MASTER_PASSPHRASE"
    )]
    Mismatch {
        /// KEK id recorded in the database.
        stored: String,
        /// KEK id of the configured key.
        current: String,
    },
    /// The record is unreadable.
    #[error("the key check record in the database is corrupt")]
    Corrupt,
    /// Storage or provider failure.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl Secrets {
    /// Wires the service.
    pub fn new(store: Arc<Store>, keys: Arc<dyn KeyProvider>, keep_versions: i64) -> Self {
        Secrets {
            store,
            keys,
            keep_versions: keep_versions.max(1),
            fingerprint_key: tokio::sync::OnceCell::new(),
        }
    }

    /// How many versions each secret keeps.
    pub fn keep_versions(&self) -> i64 {
        self.keep_versions
    }

    /// The key provider.
    pub fn keys(&self) -> &dyn KeyProvider {
        &*self.keys
    }

    /// The keyed fingerprint of a value: HMAC-SHA256 under a random server key that is
    /// stored only sealed under the KEK. Equal values have equal fingerprints; without
    /// the key a fingerprint says nothing about the value.
    pub async fn fingerprint(&self, value: &[u8]) -> Result<Vec<u8>, SecretsError> {
        use hmac::Mac as _;
        let key = self
            .fingerprint_key
            .get_or_try_init(|| self.load_fingerprint_key())
            .await?;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).expect("any key length");
        mac.update(value);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn load_fingerprint_key(&self) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let record = match self.store.meta_get(FINGERPRINT_KEY).await? {
            Some(r) => r,
            None => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key[..]);
                let dek = Dek::generate();
                let wrapped = self.keys.wrap(&dek).await?;
                let sealed = crypto::seal(&dek, FINGERPRINT_KEY_AAD, &key[..]);
                let fresh = format!(
                    "{}|{}|{}",
                    wrapped.kek_id,
                    b64.encode(&wrapped.blob),
                    b64.encode(sealed)
                );
                // Concurrent first starts agree on whichever record landed first.
                self.store.meta_init(FINGERPRINT_KEY, &fresh).await?
            }
        };
        let corrupt = || SecretsError::Invalid("the stored fingerprint key is corrupt".to_owned());
        let mut parts = record.splitn(3, '|');
        let (Some(kek_id), Some(blob), Some(sealed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt());
        };
        let (Ok(blob), Ok(sealed)) = (b64.decode(blob), b64.decode(sealed)) else {
            return Err(corrupt());
        };
        let dek = self
            .keys
            .unwrap(&WrappedDek {
                kek_id: kek_id.to_owned(),
                blob,
            })
            .await?;
        Ok(crypto::open(&dek, FINGERPRINT_KEY_AAD, &sealed)?)
    }

    /// Fingerprints current versions written before fingerprints existed. Returns how
    /// many were filled in.
    pub async fn backfill_fingerprints(&self) -> Result<usize, SecretsError> {
        let rows = self.store.versions_without_fingerprint().await?;
        let n = rows.len();
        for r in rows {
            let env = EnvRow {
                id: r.environment_id,
                project_id: r.project_id,
                project_name: String::new(),
                name: String::new(),
                revision: 0,
                created_at: 0,
            };
            let value = self
                .open(
                    &env,
                    &r.name,
                    r.version,
                    r.kek_id,
                    r.wrapped_dek,
                    r.ciphertext,
                )
                .await?;
            let fp = self.fingerprint(value.expose()).await?;
            self.store
                .set_fingerprint(r.secret_id, r.version, &fp)
                .await?;
        }
        Ok(n)
    }

    /// On first start records a value sealed under the master key; on later starts
    /// proves the configured key opens it. Reads only, unless the record is missing.
    pub async fn verify_master_key(&self) -> Result<(), KeyCheckError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stored = match self
            .store
            .meta_get(KEY_CHECK)
            .await
            .map_err(SecretsError::from)?
        {
            Some(s) => s,
            None => {
                let dek = Dek::generate();
                let wrapped = self.keys.wrap(&dek).await.map_err(SecretsError::from)?;
                let sealed = crypto::seal(&dek, b"envseal/key-check", KEY_CHECK_PLAINTEXT);
                let record = format!(
                    "{}|{}|{}",
                    wrapped.kek_id,
                    b64.encode(&wrapped.blob),
                    b64.encode(sealed)
                );
                self.store
                    .meta_init(KEY_CHECK, &record)
                    .await
                    .map_err(SecretsError::from)?
            }
        };
        let mut parts = stored.splitn(3, '|');
        let (Some(kek_id), Some(blob), Some(sealed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyCheckError::Corrupt);
        };
        let (Ok(blob), Ok(sealed)) = (b64.decode(blob), b64.decode(sealed)) else {
            return Err(KeyCheckError::Corrupt);
        };
        let wrapped = WrappedDek {
            kek_id: kek_id.to_owned(),
            blob,
        };
        let opened = match self.keys.unwrap(&wrapped).await {
            Ok(dek) => crypto::open(&dek, b"envseal/key-check", &sealed).ok(),
            Err(CryptoError::Decrypt | CryptoError::UnknownKek(_)) => None,
            Err(e) => return Err(SecretsError::from(e).into()),
        };
        if opened.is_some_and(|p| &p[..] == KEY_CHECK_PLAINTEXT) {
            return Ok(());
        }
        // Wrapping a throwaway key is the provider-neutral way to learn the current id.
        let current = match self.keys.wrap(&Dek::generate()).await {
            Ok(w) => w.kek_id,
            Err(_) => "unknown".to_owned(),
        };
        Err(KeyCheckError::Mismatch {
            stored: kek_id.to_owned(),
            current,
        })
    }

    async fn seal(
        &self,
        env: &EnvRow,
        name: &str,
        version: i64,
        value: &SecretValue,
    ) -> Result<(WrappedDek, Vec<u8>), SecretsError> {
        let dek = Dek::generate();
        let aad = crypto::secret_aad(env.project_id, env.id, name, version);
        let sealed = crypto::seal(&dek, &aad, value.expose());
        let wrapped = self.keys.wrap(&dek).await?;
        Ok((wrapped, sealed))
    }

    async fn open(
        &self,
        env: &EnvRow,
        name: &str,
        version: i64,
        kek_id: String,
        wrapped_dek: Option<Vec<u8>>,
        ciphertext: Option<Vec<u8>>,
    ) -> Result<SecretValue, SecretsError> {
        let (Some(blob), Some(ciphertext)) = (wrapped_dek, ciphertext) else {
            return Err(SecretsError::Destroyed(version));
        };
        let dek = self.keys.unwrap(&WrappedDek { kek_id, blob }).await?;
        let aad = crypto::secret_aad(env.project_id, env.id, name, version);
        let mut plain = crypto::open(&dek, &aad, &ciphertext)?;
        Ok(SecretValue::new(std::mem::take(&mut *plain)))
    }

    /// Writes a new version. With `cas`, only if the current version is `cas` (0: only
    /// if the secret does not exist). Returns the new version number.
    pub async fn put(&self, env: &EnvRow, w: Write<'_>) -> Result<i64, SecretsError> {
        let Write {
            name,
            value,
            cas,
            description,
            actor,
            now,
            derived,
        } = w;
        if derived {
            self.check_template(env, name, value).await?;
        }
        let fingerprint = self.fingerprint(value.expose()).await?;
        for attempt in 0..64u32 {
            if attempt > 0 {
                // Lost a race with another writer: back off a little, with jitter.
                let ms = rand::random::<u64>() % (1 + u64::from(attempt.min(20)));
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let current = self
                .store
                .secret(env.id, name)
                .await?
                .map_or(0, |s| s.current_version);
            if let Some(expected) = cas {
                if expected != current {
                    return Err(SecretsError::CasConflict { current });
                }
            }
            let (wrapped, sealed) = self.seal(env, name, current + 1, value).await?;
            let result = self
                .store
                .write_version(NewVersion {
                    env_id: env.id,
                    name,
                    expected_current: current,
                    kek_id: &wrapped.kek_id,
                    wrapped_dek: &wrapped.blob,
                    ciphertext: &sealed,
                    fingerprint: &fingerprint,
                    created_by: actor,
                    description,
                    now,
                    keep_versions: self.keep_versions,
                    derived,
                })
                .await;
            match result {
                Ok(v) => return Ok(v),
                Err(StoreError::Conflict) if cas.is_none() => continue,
                Err(StoreError::Conflict) => {
                    let current = self
                        .store
                        .secret(env.id, name)
                        .await?
                        .map_or(0, |s| s.current_version);
                    return Err(SecretsError::CasConflict { current });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SecretsError::Busy)
    }

    /// The secret row, live or soft-deleted.
    pub async fn meta(&self, env: &EnvRow, name: &str) -> Result<SecretRow, SecretsError> {
        self.store
            .secret(env.id, name)
            .await?
            .ok_or(SecretsError::NotFound("secret"))
    }

    async fn live(&self, env: &EnvRow, name: &str) -> Result<SecretRow, SecretsError> {
        let row = self.meta(env, name).await?;
        if row.deleted_at.is_some() {
            return Err(SecretsError::NotFound("secret"));
        }
        Ok(row)
    }

    async fn version_row(
        &self,
        secret: &SecretRow,
        version: i64,
    ) -> Result<VersionRow, SecretsError> {
        self.store
            .version(secret.id, version)
            .await?
            .ok_or(SecretsError::NotFound("version"))
    }

    /// Reads the current value, or a given version.
    pub async fn get(
        &self,
        env: &EnvRow,
        name: &str,
        version: Option<i64>,
    ) -> Result<(i64, SecretValue), SecretsError> {
        let secret = self.live(env, name).await?;
        let v = self
            .version_row(&secret, version.unwrap_or(secret.current_version))
            .await?;
        let value = self
            .open(env, name, v.version, v.kek_id, v.wrapped_dek, v.ciphertext)
            .await?;
        Ok((v.version, value))
    }

    /// Every live secret's current value and the environment's revision.
    pub async fn export(
        &self,
        env: &EnvRow,
    ) -> Result<(i64, Vec<(String, SecretValue)>), SecretsError> {
        let rows = self.store.export_rows(env.id).await?;
        let revision = rows.first().map_or(env.revision, |r| r.revision);
        // One provider call for every DEK the cache does not hold.
        let mut wrapped = Vec::with_capacity(rows.len());
        for r in &rows {
            let (Some(blob), Some(_)) = (&r.wrapped_dek, &r.ciphertext) else {
                return Err(SecretsError::Destroyed(r.version));
            };
            wrapped.push(WrappedDek {
                kek_id: r.kek_id.clone(),
                blob: blob.clone(),
            });
        }
        let deks = self.keys.unwrap_many(&wrapped).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, dek) in rows.into_iter().zip(deks) {
            let aad = crypto::secret_aad(env.project_id, env.id, &r.name, r.version);
            let sealed = r.ciphertext.as_deref().unwrap_or_default();
            let mut plain = crypto::open(&dek, &aad, sealed)?;
            out.push((
                r.name,
                derived::Stored {
                    value: SecretValue::new(std::mem::take(&mut *plain)),
                    derived: r.derived != 0,
                },
            ));
        }
        let out = derived::resolve(out).map_err(|e| SecretsError::Invalid(e.to_string()))?;
        Ok((revision, out))
    }

    /// Every live secret of the snapshot as stored (templates unresolved).
    async fn stored(&self, env: &EnvRow) -> Result<Vec<(String, derived::Stored)>, SecretsError> {
        let rows = self.store.export_rows(env.id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let value = self
                .open(
                    env,
                    &r.name,
                    r.version,
                    r.kek_id,
                    r.wrapped_dek,
                    r.ciphertext,
                )
                .await?;
            out.push((
                r.name,
                derived::Stored {
                    value,
                    derived: r.derived != 0,
                },
            ));
        }
        Ok(out)
    }

    /// The environment's templates, name → parsed template (`None`: a plain value).
    async fn templates(
        &self,
        env: &EnvRow,
    ) -> Result<std::collections::BTreeMap<String, Option<derived::Template>>, SecretsError> {
        let mut out = std::collections::BTreeMap::new();
        for (name, s) in self.stored(env).await? {
            let t = if s.derived {
                let text = s.value.as_str().ok_or_else(|| {
                    SecretsError::Invalid(derived::DerivedError::NotText(name.clone()).to_string())
                })?;
                Some(
                    derived::Template::parse(text)
                        .map_err(|e| SecretsError::Invalid(e.to_string()))?,
                )
            } else {
                None
            };
            out.insert(name, t);
        }
        Ok(out)
    }

    /// Rejects a template with unknown references or one that closes a cycle.
    async fn check_template(
        &self,
        env: &EnvRow,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretsError> {
        let invalid = |e: derived::DerivedError| SecretsError::Invalid(e.to_string());
        let text = value
            .as_str()
            .ok_or_else(|| invalid(derived::DerivedError::NotText(name.to_owned())))?;
        let template = derived::Template::parse(text).map_err(invalid)?;
        let mut others = self.templates(env).await?;
        others.remove(name);
        derived::check(name, &template, &others).map_err(invalid)
    }

    /// Kept versions, newest first.
    pub async fn versions(
        &self,
        env: &EnvRow,
        name: &str,
    ) -> Result<(SecretRow, Vec<VersionRow>), SecretsError> {
        let secret = self.meta(env, name).await?;
        let versions = self.store.versions(secret.id).await?;
        Ok((secret, versions))
    }

    /// Writes the value of `version` again as a new current version.
    pub async fn rollback(
        &self,
        env: &EnvRow,
        name: &str,
        version: i64,
        actor: &str,
        now: i64,
    ) -> Result<i64, SecretsError> {
        let secret = self.live(env, name).await?;
        if version == secret.current_version {
            return Err(SecretsError::Invalid(
                "the requested version is already current".to_owned(),
            ));
        }
        let (_, value) = self.get(env, name, Some(version)).await?;
        let derived = self.version_row(&secret, version).await?.derived != 0;
        self.put(
            env,
            Write {
                name,
                value: &value,
                cas: Some(secret.current_version),
                description: None,
                actor,
                now,
                derived,
            },
        )
        .await
    }

    /// Soft-deletes a live secret.
    pub async fn delete(&self, env: &EnvRow, name: &str, now: i64) -> Result<(), SecretsError> {
        let secret = self.live(env, name).await?;
        let users: Vec<String> = self
            .templates(env)
            .await?
            .into_iter()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| t.references().contains(name)))
            .map(|(n, _)| n)
            .collect();
        if !users.is_empty() {
            return Err(SecretsError::Invalid(format!(
                "{name} is used by the derived value(s) {}; change or delete them first",
                users.join(", ")
            )));
        }
        self.store
            .set_deleted(env.id, secret.id, Some(now))
            .await
            .map_err(|e| match e {
                StoreError::NotFound => SecretsError::NotFound("secret"),
                e => e.into(),
            })
    }

    /// Restores a soft-deleted secret.
    pub async fn undelete(&self, env: &EnvRow, name: &str) -> Result<(), SecretsError> {
        let secret = self.meta(env, name).await?;
        self.store
            .set_deleted(env.id, secret.id, None)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    SecretsError::Invalid("the secret is not deleted".to_owned())
                }
                e => e.into(),
            })
    }

    /// Crypto-erases versions. The current version of a live secret cannot be
    /// destroyed (delete the secret first, or write a new version).
    pub async fn destroy(
        &self,
        env: &EnvRow,
        name: &str,
        versions: &[i64],
        now: i64,
    ) -> Result<u64, SecretsError> {
        let secret = self.meta(env, name).await?;
        if secret.deleted_at.is_none() && versions.contains(&secret.current_version) {
            return Err(SecretsError::Invalid(format!(
                "version {} is current; delete the secret or write a new version before destroying it",
                secret.current_version
            )));
        }
        for v in versions {
            self.version_row(&secret, *v).await?;
        }
        Ok(self
            .store
            .destroy_versions(secret.id, versions, now)
            .await?)
    }
}
