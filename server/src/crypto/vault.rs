//! The `vault-transit` key provider: DEKs are wrapped and unwrapped by a HashiCorp
//! Vault (or OpenBao) Transit key. The KEK never leaves Vault; the database holds only
//! Transit ciphertexts (`vault:vN:…`), and the key version is recorded per row as
//! `vault-transit:<mount>/<key>:vN`.
//!
//! Authentication is a token or AppRole (role id plus a secret id read from a file at
//! every login); an AppRole token is replaced by a fresh login before two thirds of
//! its lifetime have passed, and once more when Vault refuses it. Batch endpoints make
//! an environment of many secrets one round trip.

use super::{CryptoError, Dek, KeyFuture, KeyProvider, WrappedDek};
use base64::Engine as _;
use rustify_derive::Endpoint;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

/// How the server authenticates to Vault.
pub enum VaultAuth {
    /// A token (from `ENVSEAL_VAULT_TOKEN` or a file).
    Token(SecretString),
    /// AppRole login.
    AppRole {
        /// Where the AppRole auth method is mounted (`approle`).
        mount: String,
        /// The role id (not secret by itself).
        role_id: String,
        /// File holding the secret id; read at every login so it can be replaced.
        secret_id_file: PathBuf,
    },
}

/// Where the Transit key lives and how to reach it. No `Debug`: it holds credentials.
pub struct VaultConfig {
    /// `https://vault.example:8200`.
    pub address: String,
    /// Transit mount (`transit`).
    pub mount: String,
    /// Transit key name.
    pub key: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed Vault's certificate.
    pub ca_cert: Option<PathBuf>,
    /// Credentials.
    pub auth: VaultAuth,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The Vault Transit KEK.
pub struct VaultTransitProvider {
    cfg: VaultConfig,
    /// `vault-transit:<mount>/<key>:`
    prefix: String,
    client: Mutex<Session>,
    login: tokio::sync::Mutex<()>,
}

struct Session {
    client: Arc<VaultClient>,
    /// When an AppRole token should be replaced (None: never, a plain token).
    renew_at: Option<Instant>,
}

#[derive(Serialize)]
struct PlainItem {
    plaintext: Zeroizing<String>,
}

#[derive(Serialize)]
struct CipherItem {
    ciphertext: String,
}

#[derive(Deserialize)]
struct BatchResponse {
    batch_results: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    #[serde(default)]
    ciphertext: Option<String>,
    #[serde(default)]
    plaintext: Option<Zeroizing<String>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Endpoint)]
#[endpoint(
    path = "{self.mount}/encrypt/{self.name}",
    method = "POST",
    response = "BatchResponse"
)]
struct BatchEncrypt {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    batch_input: Vec<PlainItem>,
}

#[derive(Endpoint)]
#[endpoint(
    path = "{self.mount}/decrypt/{self.name}",
    method = "POST",
    response = "BatchResponse"
)]
struct BatchDecrypt {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    batch_input: Vec<CipherItem>,
}

#[derive(Endpoint)]
#[endpoint(
    path = "{self.mount}/rewrap/{self.name}",
    method = "POST",
    response = "BatchResponse"
)]
struct BatchRewrap {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    batch_input: Vec<CipherItem>,
}

/// Vault's answer, without anything it echoed back.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } => {
            format!("Vault answered {code}: {}", errors.join("; "))
        }
        ClientError::RestClientError { .. } => "Vault could not be reached".to_owned(),
        other => other.to_string(),
    }
}

fn provider_err(what: &str, e: &ClientError) -> CryptoError {
    CryptoError::Provider(format!("vault-transit {what}: {}", describe(e)))
}

fn is_auth_refusal(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 403, .. })
}

/// `vault:v7:…` → 7.
fn ciphertext_version(ct: &str) -> Option<u64> {
    ct.strip_prefix("vault:v")?.split(':').next()?.parse().ok()
}

impl VaultTransitProvider {
    /// Logs in (AppRole) and checks that the Transit key exists and can encrypt.
    /// Fails with a clear message and touches nothing otherwise.
    pub async fn connect(cfg: VaultConfig) -> Result<Self, CryptoError> {
        let token = match &cfg.auth {
            VaultAuth::Token(t) => Zeroizing::new(t.expose_secret().to_owned()),
            VaultAuth::AppRole { .. } => Zeroizing::new(String::new()),
        };
        let client = Arc::new(Self::build_client(&cfg, &token)?);
        let prefix = format!("vault-transit:{}/{}:", cfg.mount, cfg.key);
        let provider = VaultTransitProvider {
            cfg,
            prefix,
            client: Mutex::new(Session {
                client,
                renew_at: None,
            }),
            login: tokio::sync::Mutex::new(()),
        };
        if matches!(provider.cfg.auth, VaultAuth::AppRole { .. }) {
            provider.relogin().await?;
        }
        let key = provider.read_key().await?;
        if !key.supports_encryption || !key.supports_decryption {
            return Err(CryptoError::Provider(format!(
                "Transit key {} on mount {} cannot encrypt and decrypt (type {:?})",
                provider.cfg.key, provider.cfg.mount, key.key_type
            )));
        }
        Ok(provider)
    }

    fn build_client(cfg: &VaultConfig, token: &str) -> Result<VaultClient, CryptoError> {
        let mut b = VaultClientSettingsBuilder::default();
        b.address(cfg.address.as_str())
            .token(token)
            .timeout(Some(cfg.timeout))
            .verify(true)
            .ca_certs(
                cfg.ca_cert
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            );
        if let Some(ns) = &cfg.namespace {
            b.set_namespace(ns.clone());
        }
        let settings = b
            .build()
            .map_err(|e| CryptoError::Provider(format!("Vault settings: {e}")))?;
        VaultClient::new(settings).map_err(|e| provider_err("client", &e))
    }

    /// A fresh AppRole login; replaces the session's token.
    async fn relogin(&self) -> Result<(), CryptoError> {
        let VaultAuth::AppRole {
            mount,
            role_id,
            secret_id_file,
        } = &self.cfg.auth
        else {
            return Ok(());
        };
        let _one = self.login.lock().await;
        let secret_id = Zeroizing::new(
            std::fs::read_to_string(secret_id_file)
                .map_err(|e| {
                    CryptoError::Provider(format!(
                        "reading the AppRole secret id file {}: {e}",
                        secret_id_file.display()
                    ))
                })?
                .trim()
                .to_owned(),
        );
        let current = self.session().client;
        let auth = vaultrs::auth::approle::login(&*current, mount, role_id, &secret_id)
            .await
            .map_err(|e| match e {
                ClientError::APIError {
                    code: 400 | 403, ..
                } => CryptoError::Provider(format!(
                    "AppRole login refused (role id {role_id} on mount {mount}): {}",
                    describe(&e)
                )),
                e => provider_err("AppRole login", &e),
            })?;
        let token = Zeroizing::new(auth.client_token);
        let client = Arc::new(Self::build_client(&self.cfg, &token)?);
        let lifetime = Duration::from_secs(auth.lease_duration);
        let renew_at = (auth.lease_duration > 0).then(|| Instant::now() + lifetime * 2 / 3);
        *self.client.lock().expect("vault session lock") = Session { client, renew_at };
        tracing::debug!(lease_secs = auth.lease_duration, "Vault AppRole login");
        Ok(())
    }

    fn session(&self) -> Session {
        let s = self.client.lock().expect("vault session lock");
        Session {
            client: s.client.clone(),
            renew_at: s.renew_at,
        }
    }

    /// The client to use, logging in again first when the token is near its end.
    async fn client(&self) -> Arc<VaultClient> {
        let s = self.session();
        if s.renew_at.is_some_and(|t| Instant::now() >= t) {
            // A failed early renewal keeps the old token, which is still valid.
            if let Err(e) = self.relogin().await {
                tracing::warn!(error = %e, "Vault AppRole renewal failed; keeping the current token");
            }
            return self.session().client;
        }
        s.client
    }

    /// Runs `op`; on a 403 with AppRole, logs in again and retries once.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CryptoError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        match op(self.client().await).await {
            Ok(v) => Ok(v),
            Err(e) if is_auth_refusal(&e) && matches!(self.cfg.auth, VaultAuth::AppRole { .. }) => {
                self.relogin().await?;
                op(self.session().client)
                    .await
                    .map_err(|e| provider_err(what, &e))
            }
            Err(e) => Err(provider_err(what, &e)),
        }
    }

    async fn read_key(
        &self,
    ) -> Result<vaultrs::api::transit::responses::ReadKeyResponse, CryptoError> {
        let (mount, key) = (&self.cfg.mount, &self.cfg.key);
        let r = self.client().await;
        vaultrs::transit::key::read(&*r, mount, key)
            .await
            .map_err(|e| match e {
                ClientError::APIError { code: 404, .. } => CryptoError::Provider(format!(
                    "Transit key {key} does not exist on mount {mount} (create it: \
                     vault write -f {mount}/keys/{key})"
                )),
                // Policies name the key, so a missing key usually shows as a refusal.
                ClientError::APIError { code: 403, .. } => CryptoError::Provider(format!(
                    "cannot read Transit key {key} on mount {mount}: it does not exist, the token is not valid, or \
                     the policy does not grant read on {mount}/keys/{key} ({})",
                    describe(&e)
                )),
                e => provider_err("reading the Transit key", &e),
            })
    }

    fn kek_id_of(&self, ciphertext: &str) -> Result<String, CryptoError> {
        let v = ciphertext_version(ciphertext)
            .ok_or_else(|| CryptoError::Provider("Vault returned a malformed ciphertext".into()))?;
        Ok(format!("{}v{v}", self.prefix))
    }

    fn check_ids(&self, wrapped: &[WrappedDek]) -> Result<Vec<CipherItem>, CryptoError> {
        wrapped
            .iter()
            .map(|w| {
                if !w.kek_id.starts_with(&self.prefix) {
                    return Err(CryptoError::UnknownKek(w.kek_id.clone()));
                }
                let ciphertext =
                    String::from_utf8(w.blob.clone()).map_err(|_| CryptoError::Decrypt)?;
                Ok(CipherItem { ciphertext })
            })
            .collect()
    }

    async fn encrypt_many(&self, deks: &[Dek]) -> Result<Vec<WrappedDek>, CryptoError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let batch = || BatchEncrypt {
            mount: self.cfg.mount.clone(),
            name: self.cfg.key.clone(),
            batch_input: deks
                .iter()
                .map(|d| PlainItem {
                    plaintext: Zeroizing::new(b64.encode(&d.0[..])),
                })
                .collect(),
        };
        let r = self
            .call("encrypt", |c| {
                let e = batch();
                async move { vaultrs::api::exec_with_result(&*c, e).await }
            })
            .await?;
        self.collect_ciphertexts(r, deks.len())
    }

    fn collect_ciphertexts(
        &self,
        r: BatchResponse,
        n: usize,
    ) -> Result<Vec<WrappedDek>, CryptoError> {
        if r.batch_results.len() != n {
            return Err(CryptoError::Provider(
                "Vault answered a batch with the wrong number of results".into(),
            ));
        }
        r.batch_results
            .into_iter()
            .map(|item| match (item.ciphertext, item.error) {
                (Some(ct), None) => Ok(WrappedDek {
                    kek_id: self.kek_id_of(&ct)?,
                    blob: ct.into_bytes(),
                }),
                (_, e) => Err(CryptoError::Provider(format!(
                    "vault-transit: {}",
                    e.unwrap_or_else(|| "no ciphertext in the answer".into())
                ))),
            })
            .collect()
    }
}

impl KeyProvider for VaultTransitProvider {
    fn name(&self) -> &'static str {
        "vault-transit"
    }

    fn holds(&self, kek_id: &str) -> bool {
        kek_id.starts_with(&self.prefix)
    }

    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
        Box::pin(async move {
            self.encrypt_many(std::slice::from_ref(dek))
                .await?
                .pop()
                .ok_or_else(|| CryptoError::Provider("empty Vault answer".into()))
        })
    }

    fn wrap_many<'a>(&'a self, deks: &'a [Dek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        Box::pin(async move {
            if deks.is_empty() {
                return Ok(Vec::new());
            }
            self.encrypt_many(deks).await
        })
    }

    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
        Box::pin(async move {
            self.unwrap_many(std::slice::from_ref(wrapped))
                .await?
                .pop()
                .ok_or_else(|| CryptoError::Provider("empty Vault answer".into()))
        })
    }

    fn unwrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<Dek>> {
        Box::pin(async move {
            if wrapped.is_empty() {
                return Ok(Vec::new());
            }
            let items = self.check_ids(wrapped)?;
            let items = &items;
            let r = self
                .call("decrypt", |c| {
                    let e = BatchDecrypt {
                        mount: self.cfg.mount.clone(),
                        name: self.cfg.key.clone(),
                        batch_input: items
                            .iter()
                            .map(|i| CipherItem {
                                ciphertext: i.ciphertext.clone(),
                            })
                            .collect(),
                    };
                    async move { vaultrs::api::exec_with_result(&*c, e).await }
                })
                .await
                .map_err(|e| match e {
                    // Vault answers 400 when a ciphertext does not authenticate.
                    CryptoError::Provider(m) if m.contains("answered 400") => CryptoError::Decrypt,
                    e => e,
                })?;
            if r.batch_results.len() != wrapped.len() {
                return Err(CryptoError::Provider(
                    "Vault answered a batch with the wrong number of results".into(),
                ));
            }
            let b64 = base64::engine::general_purpose::STANDARD;
            r.batch_results
                .into_iter()
                .map(|item| match (item.plaintext, item.error) {
                    (Some(p), None) => {
                        let bytes = Zeroizing::new(
                            b64.decode(p.as_bytes()).map_err(|_| CryptoError::Decrypt)?,
                        );
                        Dek::from_unwrapped(&bytes)
                    }
                    _ => Err(CryptoError::Decrypt),
                })
                .collect()
        })
    }

    fn current_kek_id(&self) -> KeyFuture<'_, String> {
        Box::pin(async move {
            let key = self.read_key().await?;
            let latest = match &key.keys {
                vaultrs::api::transit::responses::ReadKeyData::Symmetric(m) => {
                    m.keys().filter_map(|k| k.parse::<u64>().ok()).max()
                }
                vaultrs::api::transit::responses::ReadKeyData::Asymmetric(m) => {
                    m.keys().filter_map(|k| k.parse::<u64>().ok()).max()
                }
            }
            .ok_or_else(|| CryptoError::Provider("the Transit key has no versions".into()))?;
            Ok(format!("{}v{latest}", self.prefix))
        })
    }

    fn rotate(&self) -> KeyFuture<'_, String> {
        Box::pin(async move {
            let (mount, key) = (self.cfg.mount.clone(), self.cfg.key.clone());
            self.call("rotating the Transit key", |c| {
                let (mount, key) = (mount.clone(), key.clone());
                async move { vaultrs::transit::key::rotate(&*c, &mount, &key).await }
            })
            .await?;
            self.current_kek_id().await
        })
    }

    fn rewrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        Box::pin(async move {
            if wrapped.is_empty() {
                return Ok(Vec::new());
            }
            let items = self.check_ids(wrapped)?;
            let items = &items;
            let r = self
                .call("rewrap", |c| {
                    let e = BatchRewrap {
                        mount: self.cfg.mount.clone(),
                        name: self.cfg.key.clone(),
                        batch_input: items
                            .iter()
                            .map(|i| CipherItem {
                                ciphertext: i.ciphertext.clone(),
                            })
                            .collect(),
                    };
                    async move { vaultrs::api::exec_with_result(&*c, e).await }
                })
                .await?;
            self.collect_ciphertexts(r, wrapped.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsed_from_ciphertext() {
        assert_eq!(ciphertext_version("vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version("vault:v12:abc:def"), Some(12));
        assert_eq!(ciphertext_version("vault:x1:abc"), None);
        assert_eq!(ciphertext_version("local"), None);
    }
}
