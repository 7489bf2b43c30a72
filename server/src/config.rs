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
    /// Extra names (DNS names or IP addresses) the self-signed certificate covers
    /// besides localhost, 127.0.0.1 and ::1, e.g. the compose service name `envseal`
    /// (comma-separated, repeatable). A certificate with other names is replaced.
    #[arg(
        long,
        env = "ENVSEAL_TLS_SAN",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub tls_san: Vec<String>,
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
        /// Extra names the certificate covers.
        names: Vec<String>,
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
                names: self.tls_san.clone(),
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
