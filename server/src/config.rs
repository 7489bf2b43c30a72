//! Server configuration: flags with `ENVSEAL_*` environment variables and safe
//! defaults, resolved into a checked plan before anything is opened.
//!
//! Secrets (master passphrase, bootstrap token) are read only from the environment,
//! never from flags, so that they cannot appear on a command line.

use crate::crypto::MasterKeySource;
use crate::login::{AuthConfig, ProxyNet};
use clap::Parser;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `envseal-server` arguments.
#[derive(Debug, Clone, Parser)]
#[command(name = "envseal-server", version, about = "envseal secret server")]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "ENVSEAL_LISTEN", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
    /// Directory for the SQLite database, master key and generated certificate.
    #[arg(long, env = "ENVSEAL_DATA_DIR", default_value = "./envseal-data")]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://…` for several replicas; default SQLite in the data dir.
    #[arg(long, env = "ENVSEAL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Master key file (created 0600 if missing). Default: DATA_DIR/master.key. Set
    /// ENVSEAL_MASTER_PASSPHRASE instead to derive the key with argon2id.
    #[arg(long, env = "ENVSEAL_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "ENVSEAL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "ENVSEAL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate kept in DATA_DIR (clients trust
    /// DATA_DIR/tls-cert.pem through ENVSEAL_CA_CERT).
    #[arg(long, env = "ENVSEAL_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long, env = "ENVSEAL_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// Versions kept per secret; older ones are deleted.
    #[arg(long, env = "ENVSEAL_KEEP_VERSIONS", default_value_t = 10)]
    pub keep_versions: i64,
    /// Per-request timeout in seconds.
    #[arg(long, env = "ENVSEAL_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// How long token lookups and exports stay cached, in milliseconds (0: off).
    /// Default: 30000 on SQLite (every write invalidates at once; this only bounds how
    /// long plaintext stays in memory), 1000 on PostgreSQL (bounds how stale a replica
    /// can be after another replica's write or revocation).
    #[arg(long, env = "ENVSEAL_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "ENVSEAL_LOG", default_value = "info")]
    pub log: String,
    /// Redis URL: login rate limits and lockouts shared by every replica. Without it
    /// they are kept in this process only.
    #[arg(long, env = "ENVSEAL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this server uses.
    #[arg(long, env = "ENVSEAL_REDIS_PREFIX", default_value = "envseal")]
    pub redis_prefix: String,
    /// Reverse proxy whose X-Forwarded-For is believed (address or CIDR; repeat or
    /// comma-separate). Without it the socket peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "ENVSEAL_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ProxyNet>,
    /// Login attempts per client address per window.
    #[arg(long, env = "ENVSEAL_LOGIN_LIMIT_IP", default_value_t = 10)]
    pub login_limit_ip: u32,
    /// Login attempts per account name per window.
    #[arg(long, env = "ENVSEAL_LOGIN_LIMIT_ACCOUNT", default_value_t = 5)]
    pub login_limit_account: u32,
    /// Login attempts on the whole server per window.
    #[arg(long, env = "ENVSEAL_LOGIN_LIMIT_GLOBAL", default_value_t = 100)]
    pub login_limit_global: u32,
    /// Length of the sliding rate-limit window, in seconds.
    #[arg(long, env = "ENVSEAL_LOGIN_WINDOW", default_value_t = 60)]
    pub login_window_secs: u64,
    /// Consecutive failed logins that lock an account.
    #[arg(long, env = "ENVSEAL_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: u32,
    /// Lockout length in seconds (every failure during a lockout renews it).
    #[arg(long, env = "ENVSEAL_LOCKOUT_SECONDS", default_value_t = 900)]
    pub lockout_secs: u64,
    /// argon2id memory per password hash, KiB.
    #[arg(long, env = "ENVSEAL_ARGON2_MEMORY_KIB", default_value_t = 19 * 1024)]
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, env = "ENVSEAL_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "ENVSEAL_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Concurrent password hashes at most (default: half the CPUs, at least 1).
    #[arg(long, env = "ENVSEAL_ARGON2_WORKERS")]
    pub argon2_workers: Option<usize>,
    /// Minimum password length.
    #[arg(long, env = "ENVSEAL_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// Session lifetime in seconds.
    #[arg(long, env = "ENVSEAL_SESSION_TTL", default_value_t = 12 * 3600)]
    pub session_ttl_secs: u64,
    /// Admin users must enrol TOTP before they can do anything else.
    #[arg(long, env = "ENVSEAL_REQUIRE_ADMIN_MFA")]
    pub require_admin_mfa: bool,
    /// Webhook that receives lockout and brute-force alerts (JSON POST).
    #[arg(long, env = "ENVSEAL_ALERT_WEBHOOK", hide_env_values = true)]
    pub alert_webhook: Option<String>,
    /// Command run (by `sh -c`) on each alert, with the JSON event on stdin.
    #[arg(long, env = "ENVSEAL_ALERT_COMMAND")]
    pub alert_command: Option<String>,
    /// Failed logins per window, server-wide, that raise a brute-force alert.
    #[arg(long, env = "ENVSEAL_ALERT_FAILURES", default_value_t = 30)]
    pub alert_failures: u32,
    /// Key provider settings (`ENVSEAL_KEK`, `ENVSEAL_VAULT_*`, DEK cache).
    #[command(flatten)]
    pub kek: KekArgs,
    /// What to do; serving when absent.
    #[command(subcommand)]
    pub command: Option<crate::commands::ServerCommand>,
}

/// TLS material to load or generate.
#[derive(Debug, Clone)]
pub enum TlsPlan {
    /// Files given by the operator.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A self-signed pair kept in the data directory.
    SelfSigned {
        /// Where the pair lives.
        dir: PathBuf,
    },
}

/// Checked configuration.
pub struct Resolved {
    /// sqlx URL.
    pub database_url: String,
    /// The URL with any password removed, for messages.
    pub database_display: String,
    /// Directory to create (the data dir when something lives in it).
    pub create_dir: Option<PathBuf>,
    /// Where the KEK comes from.
    pub master_key: MasterKeySource,
    /// TLS, if any.
    pub tls: Option<TlsPlan>,
}

impl ServerArgs {
    /// Checks the combination of options.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let tls = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), _) => Some(TlsPlan::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (_, _, true) => Some(TlsPlan::SelfSigned {
                dir: self.data_dir.clone(),
            }),
            _ => None,
        };
        if tls.is_none() && !self.listen.ip().is_loopback() && !self.insecure_http {
            anyhow::bail!(
                "refusing plain HTTP on non-loopback address {}: give --tls-cert/--tls-key or \
                 --tls-self-signed, or --insecure-http behind a TLS-terminating proxy",
                self.listen
            );
        }
        if self.keep_versions < 1 {
            anyhow::bail!("--keep-versions must be at least 1");
        }
        self.auth_config()?;
        let (database_url, database_display, uses_dir) = match &self.database_url {
            Some(url) => (url.clone(), redact_url(url), false),
            None => {
                let path = self.data_dir.join("envseal.db");
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    path.display().to_string(),
                    true,
                )
            }
        };
        let master_key = match std::env::var("ENVSEAL_MASTER_PASSPHRASE") {
            Ok(p) if !p.is_empty() => {
                if p.len() < 12 {
                    anyhow::bail!("ENVSEAL_MASTER_PASSPHRASE must be at least 12 characters");
                }
                MasterKeySource::Passphrase(SecretString::from(p))
            }
            _ => MasterKeySource::File(
                self.master_key_file
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("master.key")),
            ),
        };
        let uses_dir = uses_dir
            || matches!(tls, Some(TlsPlan::SelfSigned { .. }))
            || (self.master_key_file.is_none() && matches!(master_key, MasterKeySource::File(_)));
        Ok(Resolved {
            database_url,
            database_display,
            create_dir: uses_dir.then(|| self.data_dir.clone()),
            master_key,
            tls,
        })
    }
}

impl ServerArgs {
    /// Login, session and alert settings, checked.
    pub fn auth_config(&self) -> anyhow::Result<AuthConfig> {
        use std::time::Duration;
        for (flag, v) in [
            ("--login-limit-ip", self.login_limit_ip),
            ("--login-limit-account", self.login_limit_account),
            ("--login-limit-global", self.login_limit_global),
            ("--lockout-threshold", self.lockout_threshold),
        ] {
            if v == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        if self.login_window_secs == 0 || self.lockout_secs == 0 || self.session_ttl_secs == 0 {
            anyhow::bail!(
                "--login-window-secs, --lockout-secs and --session-ttl-secs must be positive"
            );
        }
        if self.password_min_length < 8 {
            anyhow::bail!("--password-min-length must be at least 8");
        }
        if let Some(url) = &self.alert_webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("--alert-webhook must be an http:// or https:// URL");
            }
        }
        let defaults = AuthConfig::default();
        Ok(AuthConfig {
            limits: crate::limiter::LimitConfig {
                per_ip: self.login_limit_ip,
                per_account: self.login_limit_account,
                global: self.login_limit_global,
                window: Duration::from_secs(self.login_window_secs),
                lockout_threshold: self.lockout_threshold,
                lockout: Duration::from_secs(self.lockout_secs),
            },
            hash: crate::password::HashParams {
                m_cost: self.argon2_memory_kib,
                t_cost: self.argon2_iterations,
                p_cost: self.argon2_parallelism,
            },
            hash_workers: self.argon2_workers.unwrap_or(defaults.hash_workers).max(1),
            policy: crate::password::PasswordPolicy {
                min_len: self.password_min_length,
            },
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            require_admin_mfa: self.require_admin_mfa,
            trusted_proxies: self.trusted_proxies.clone(),
            alerts: crate::alert::AlertConfig {
                webhook: self.alert_webhook.clone(),
                command: self.alert_command.clone(),
                quiet_period: defaults.alerts.quiet_period,
            },
            alert_failures: self.alert_failures.max(1),
            secure_cookie: true,
        })
    }
}

// ---- key provider -----------------------------------------------------------------

/// Which key provider holds the KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KekKind {
    /// A master key file or passphrase on this machine.
    Local,
    /// A HashiCorp Vault / OpenBao Transit key.
    VaultTransit,
}

impl KekKind {
    /// The name used in KEK ids and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KekKind::Local => "local",
            KekKind::VaultTransit => "vault-transit",
        }
    }
}

/// Key provider flags. Credentials (Vault token, AppRole secret id) come only from the
/// environment or files.
#[derive(Debug, Clone, clap::Args)]
pub struct KekArgs {
    /// Key provider that wraps new data keys.
    #[arg(long = "kek", env = "ENVSEAL_KEK", value_enum, default_value = "local")]
    pub kind: KekKind,
    /// Providers kept only to unwrap what they wrapped before (during `kek migrate`).
    #[arg(
        long = "kek-previous",
        env = "ENVSEAL_KEK_PREVIOUS",
        value_enum,
        value_delimiter = ','
    )]
    pub previous: Vec<KekKind>,
    /// Unwrapped data keys kept in memory (0: none).
    #[arg(long, env = "ENVSEAL_DEK_CACHE_SIZE", default_value_t = 10_000)]
    pub dek_cache_size: usize,
    /// How long an unwrapped data key is reused, in seconds; also how long reads
    /// survive a key provider outage.
    #[arg(long, env = "ENVSEAL_DEK_CACHE_TTL", default_value_t = 300)]
    pub dek_cache_ttl_secs: u64,
    /// Vault address.
    #[arg(long, env = "ENVSEAL_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// Transit mount.
    #[arg(long, env = "ENVSEAL_VAULT_TRANSIT_MOUNT", default_value = "transit")]
    pub vault_transit_mount: String,
    /// Transit key name.
    #[arg(long, env = "ENVSEAL_VAULT_TRANSIT_KEY", default_value = "envseal")]
    pub vault_transit_key: String,
    /// Vault namespace (`X-Vault-Namespace`).
    #[arg(long, env = "ENVSEAL_VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,
    /// PEM file of the CA that signed Vault's certificate.
    #[arg(long, env = "ENVSEAL_VAULT_CACERT")]
    pub vault_cacert: Option<PathBuf>,
    /// File holding a Vault token (or set ENVSEAL_VAULT_TOKEN).
    #[arg(long, env = "ENVSEAL_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// AppRole role id; with it the server logs in with AppRole.
    #[arg(long, env = "ENVSEAL_VAULT_ROLE_ID")]
    pub vault_role_id: Option<String>,
    /// File holding the AppRole secret id (read at every login).
    #[arg(long, env = "ENVSEAL_VAULT_SECRET_ID_FILE")]
    pub vault_secret_id_file: Option<PathBuf>,
    /// AppRole auth mount.
    #[arg(long, env = "ENVSEAL_VAULT_APPROLE_MOUNT", default_value = "approle")]
    pub vault_approle_mount: String,
    /// Timeout of each Vault request, in seconds.
    #[arg(long, env = "ENVSEAL_KMS_TIMEOUT", default_value_t = 10)]
    pub kms_timeout_secs: u64,
}

impl KekArgs {
    /// The DEK cache settings.
    pub fn dek_cache(&self) -> crate::crypto::DekCacheConfig {
        crate::crypto::DekCacheConfig {
            capacity: self.dek_cache_size,
            ttl: std::time::Duration::from_secs(self.dek_cache_ttl_secs),
        }
    }

    /// The Vault settings, checked; secrets from files or the environment only.
    pub fn vault_config(&self) -> anyhow::Result<crate::crypto::VaultConfig> {
        use crate::crypto::{VaultAuth, VaultConfig};
        let address = self
            .vault_addr
            .clone()
            .ok_or_else(|| anyhow::anyhow!("ENVSEAL_KEK=vault-transit needs ENVSEAL_VAULT_ADDR"))?;
        match url::Url::parse(&address) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => anyhow::bail!("ENVSEAL_VAULT_ADDR must be an http:// or https:// URL"),
        }
        let auth = match (&self.vault_role_id, &self.vault_secret_id_file) {
            (Some(role_id), Some(file)) => VaultAuth::AppRole {
                mount: self.vault_approle_mount.clone(),
                role_id: role_id.clone(),
                secret_id_file: file.clone(),
            },
            (Some(_), None) | (None, Some(_)) => anyhow::bail!(
                "AppRole needs both ENVSEAL_VAULT_ROLE_ID and ENVSEAL_VAULT_SECRET_ID_FILE"
            ),
            (None, None) => {
                let token = match (&self.vault_token_file, std::env::var("ENVSEAL_VAULT_TOKEN")) {
                    (Some(file), _) => std::fs::read_to_string(file)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "reading ENVSEAL_VAULT_TOKEN_FILE {}: {e}",
                                file.display()
                            )
                        })?
                        .trim()
                        .to_owned(),
                    (None, Ok(t)) if !t.is_empty() => t,
                    _ => anyhow::bail!(
                        "Vault credentials missing: set ENVSEAL_VAULT_ROLE_ID and \
                         ENVSEAL_VAULT_SECRET_ID_FILE (AppRole), or ENVSEAL_VAULT_TOKEN(_FILE)"
                    ),
                };
                VaultAuth::Token(SecretString::from(token))
            }
        };
        Ok(VaultConfig {
            address,
            mount: self.vault_transit_mount.clone(),
            key: self.vault_transit_key.clone(),
            namespace: self.vault_namespace.clone(),
            ca_cert: self.vault_cacert.clone(),
            auth,
            timeout: std::time::Duration::from_secs(self.kms_timeout_secs.max(1)),
        })
    }
}

/// `scheme://user:***@host/…`: never show a database password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServerArgs {
        let mut v = vec!["envseal-server"];
        v.extend_from_slice(extra);
        ServerArgs::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_are_loopback_sqlite() {
        let a = args(&[]);
        assert_eq!(a.listen.to_string(), "127.0.0.1:8420");
        let r = a.resolve().unwrap();
        assert!(r.database_url.starts_with("sqlite://"));
        assert!(r.tls.is_none());
    }

    #[test]
    fn plain_http_refused_off_loopback() {
        let err = args(&["--listen", "0.0.0.0:8420"]).resolve().err().unwrap();
        assert!(err.to_string().contains("refusing plain HTTP"));
        assert!(args(&["--listen", "0.0.0.0:8420", "--insecure-http"])
            .resolve()
            .is_ok());
        assert!(args(&["--listen", "0.0.0.0:8420", "--tls-self-signed"])
            .resolve()
            .is_ok());
    }

    #[test]
    fn login_settings_parse_and_are_checked() {
        let a = args(&[
            "--trusted-proxy",
            "127.0.0.1,10.0.0.0/8",
            "--login-limit-ip",
            "20",
        ]);
        let c = a.auth_config().unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.limits.per_ip, 20);
        assert_eq!(c.limits.per_account, 5);
        assert_eq!(c.limits.global, 100);
        assert_eq!(c.limits.lockout_threshold, 5);
        assert_eq!(c.limits.lockout.as_secs(), 900);
        assert!(ServerArgs::try_parse_from(["envseal-server", "--trusted-proxy", "nope"]).is_err());
        assert!(args(&["--login-limit-global", "0"]).resolve().is_err());
        assert!(args(&["--alert-webhook", "ftp://x"]).resolve().is_err());
    }

    #[test]
    fn database_password_never_displayed() {
        assert_eq!(
            redact_url("postgres://envseal:hunter2@db:5432/envseal"),
            "postgres://envseal:***@db:5432/envseal"
        );
    }
}
