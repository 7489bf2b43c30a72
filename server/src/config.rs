//! Server configuration: flags with `ENVSEAL_*` environment variables and safe
//! defaults, resolved into a checked plan before anything is opened.
//!
//! Secrets (master passphrase, bootstrap token) and URLs that can carry credentials
//! (database, Redis, alert webhook) are read only from the environment or from files,
//! never from flags, so that they cannot appear on a command line. Such URLs are held
//! as [`SecretUrl`], whose `Debug` and `Display` show only the scheme and host, and
//! every error that mentions one goes through [`SecretUrl::scrub`].

use crate::crypto::MasterKeySource;
use crate::login::{AuthConfig, ProxyNet};
use clap::Parser;
use secrecy::{ExposeSecret as _, SecretString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A URL that may carry a credential (a password in its user part, a token in its path
/// or query). Shown only as `scheme://host[:port]/…`.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(SecretString::from(url.into()))
    }

    /// The full URL, for the one library call that connects with it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `scheme://host[:port]` plus `/…` when anything followed; no user, password,
    /// path or query.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }

    /// `text` with the URL and each of its credential-bearing parts (password, path
    /// and query) replaced, for error messages from libraries that quote it.
    pub fn scrub(&self, text: &str) -> String {
        let url = self.expose();
        let mut out = text.replace(url, &self.redacted());
        for part in secret_parts(url) {
            if part.len() >= 4 {
                out = out.replace(&part, "***");
            }
        }
        out
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A credential-carrying URL from `var` or from the file named by `file` (first line,
/// trimmed). Both set is an error; neither is `None`.
pub fn url_from_env_or_file(var: &str, file: Option<&Path>) -> anyhow::Result<Option<SecretUrl>> {
    let from_env = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    match (from_env, file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("{var} and its file option are both set; give only one")
        }
        (Some(url), None) => Ok(Some(SecretUrl::new(url.trim()))),
        (None, Some(path)) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
            );
            let url = text.lines().next().unwrap_or("").trim();
            if url.is_empty() {
                anyhow::bail!(
                    "{} is empty (expected one value on its first line)",
                    path.display()
                );
            }
            Ok(Some(SecretUrl::new(url)))
        }
        (None, None) => Ok(None),
    }
}

/// The parts of a URL that may be credentials: the userinfo's password, the path and
/// the query, raw and percent-decoded.
fn secret_parts(url: &str) -> Vec<String> {
    let mut parts = Vec::new();
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password() {
            parts.push(p.to_owned());
            if let Ok(d) = percent_encoding::percent_decode_str(p).decode_utf8() {
                parts.push(d.into_owned());
            }
        }
        if !u.username().is_empty() {
            // A token given as the user part (`https://TOKEN@host`).
            if u.password().is_none() && u.username().len() >= 16 {
                parts.push(u.username().to_owned());
            }
        }
        let path = u.path();
        if path.len() > 1 {
            parts.push(path.to_owned());
        }
        if let Some(q) = u.query() {
            parts.push(q.to_owned());
        }
    }
    parts
}

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
    /// Refused: a URL on the command line is visible to every local user. Set
    /// ENVSEAL_DATABASE_URL (`postgres://…` for several replicas; default SQLite in the
    /// data dir) or --database-url-file.
    #[arg(long, hide = true)]
    pub database_url: Option<String>,
    /// File whose first line is the database URL (instead of ENVSEAL_DATABASE_URL).
    #[arg(long, env = "ENVSEAL_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
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
    /// Extra names of the self-signed certificate (DNS names or IP addresses, comma
    /// separated or repeated), besides localhost, 127.0.0.1 and ::1. A change of names
    /// renews the certificate at the next start.
    #[arg(long = "tls-san", env = "ENVSEAL_TLS_SAN", value_delimiter = ',')]
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
    /// Seconds a connection may take to send a request's headers, and may stay idle
    /// between requests (and the TLS handshake's bound); then it is closed.
    #[arg(long, env = "ENVSEAL_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// How long token lookups and exports stay cached, in milliseconds (0: off).
    /// Default: 30000 on SQLite (every write invalidates at once; this only bounds how
    /// long plaintext stays in memory), 1000 on PostgreSQL (bounds how stale a replica
    /// can be after another replica's write or revocation).
    #[arg(long, env = "ENVSEAL_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "ENVSEAL_LOG", default_value = "info")]
    pub log: String,
    /// Refused on the command line; set ENVSEAL_REDIS_URL (login rate limits and
    /// lockouts shared by every replica; without it they are kept in this process only)
    /// or --redis-url-file.
    #[arg(long, hide = true)]
    pub redis_url: Option<String>,
    /// File whose first line is the Redis URL (instead of ENVSEAL_REDIS_URL).
    #[arg(long, env = "ENVSEAL_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,
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
    /// Refused on the command line; set ENVSEAL_ALERT_WEBHOOK (receives lockout and
    /// brute-force alerts as a JSON POST) or --alert-webhook-file.
    #[arg(long, hide = true)]
    pub alert_webhook: Option<String>,
    /// File whose first line is the alert webhook URL (instead of ENVSEAL_ALERT_WEBHOOK).
    #[arg(long, env = "ENVSEAL_ALERT_WEBHOOK_FILE")]
    pub alert_webhook_file: Option<PathBuf>,
    /// Command run (by `sh -c`) on each alert, with the JSON event on stdin.
    #[arg(long, env = "ENVSEAL_ALERT_COMMAND")]
    pub alert_command: Option<String>,
    /// Failed logins per window, server-wide, that raise a brute-force alert.
    #[arg(long, env = "ENVSEAL_ALERT_FAILURES", default_value_t = 30)]
    pub alert_failures: u32,
    /// File holding the bearer token that `/metrics` requires (instead of
    /// ENVSEAL_METRICS_TOKEN). Without either, `/metrics` is off.
    #[arg(long, env = "ENVSEAL_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Audit streaming to external sinks and signed anchors of the chain head.
    #[command(flatten)]
    pub audit_stream: crate::audit_stream::StreamArgs,
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
        /// Its subject alternative names (DNS names and IP addresses).
        names: Vec<String>,
    },
}

/// Checked configuration.
pub struct Resolved {
    /// sqlx URL.
    pub database_url: SecretUrl,
    /// The URL with any password removed, for messages.
    pub database_display: String,
    /// Directory to create (the data dir when something lives in it).
    pub create_dir: Option<PathBuf>,
    /// Where the KEK comes from.
    pub master_key: MasterKeySource,
    /// TLS, if any.
    pub tls: Option<TlsPlan>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("database", &self.database_display)
            .field("create_dir", &self.create_dir)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ServerArgs {
    /// Checks the combination of options.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        self.refuse_url_flags()?;
        let tls = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), _) => Some(TlsPlan::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (_, _, true) => Some(TlsPlan::SelfSigned {
                dir: self.data_dir.clone(),
                names: self.san_names()?,
            }),
            _ => None,
        };
        if !self.tls_san.is_empty() && !self.tls_self_signed {
            anyhow::bail!(
                "--tls-san names the self-signed certificate: give --tls-self-signed too"
            );
        }
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
        self.audit_stream.check()?;
        let (database_url, database_display, uses_dir) = match self.database_url()? {
            Some(url) => {
                let shown = url.redacted();
                (url, shown, false)
            }
            None => {
                let path = self.data_dir.join("envseal.db");
                (
                    SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display())),
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
    /// A credential-carrying URL given as a flag is refused: the command line is
    /// visible to every local user and lands in shell history.
    fn refuse_url_flags(&self) -> anyhow::Result<()> {
        for (given, flag, var) in [
            (&self.database_url, "--database-url", "ENVSEAL_DATABASE_URL"),
            (&self.redis_url, "--redis-url", "ENVSEAL_REDIS_URL"),
            (
                &self.alert_webhook,
                "--alert-webhook",
                "ENVSEAL_ALERT_WEBHOOK",
            ),
        ] {
            if given.is_some() {
                anyhow::bail!(
                    "{flag} is not accepted: a URL can carry a credential and a command line \
                     is visible to every local user; set {var} or {flag}-file instead"
                );
            }
        }
        Ok(())
    }

    /// The database URL from ENVSEAL_DATABASE_URL or --database-url-file.
    pub fn database_url(&self) -> anyhow::Result<Option<SecretUrl>> {
        url_from_env_or_file("ENVSEAL_DATABASE_URL", self.database_url_file.as_deref())
    }

    /// The Redis URL from ENVSEAL_REDIS_URL or --redis-url-file.
    pub fn redis_url(&self) -> anyhow::Result<Option<SecretUrl>> {
        self.refuse_url_flags()?;
        url_from_env_or_file("ENVSEAL_REDIS_URL", self.redis_url_file.as_deref())
    }

    /// The alert webhook from ENVSEAL_ALERT_WEBHOOK or --alert-webhook-file.
    pub fn alert_webhook(&self) -> anyhow::Result<Option<SecretUrl>> {
        self.refuse_url_flags()?;
        url_from_env_or_file("ENVSEAL_ALERT_WEBHOOK", self.alert_webhook_file.as_deref())
    }

    /// The `/metrics` scrape token from ENVSEAL_METRICS_TOKEN or --metrics-token-file
    /// (at least 16 characters).
    pub fn metrics_token(&self) -> anyhow::Result<Option<SecretString>> {
        let Some(token) =
            url_from_env_or_file("ENVSEAL_METRICS_TOKEN", self.metrics_token_file.as_deref())?
        else {
            return Ok(None);
        };
        if token.expose().len() < 16 || token.expose().chars().any(char::is_whitespace) {
            anyhow::bail!("the metrics token must be at least 16 characters without spaces");
        }
        Ok(Some(SecretString::from(token.expose().to_owned())))
    }

    /// The self-signed certificate's names: the loopback ones, then `--tls-san`, each
    /// checked to be an IP address or a DNS name, without duplicates.
    fn san_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .map(str::to_owned)
            .to_vec();
        for raw in &self.tls_san {
            let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            let ok = name.parse::<std::net::IpAddr>().is_ok() || is_dns_name(&name);
            if !ok {
                anyhow::bail!(
                    "--tls-san: each name must be a DNS name (letters, digits, '-', dots, an \
                     optional leading \"*.\") or an IP address"
                );
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// A DNS name as a certificate may carry it: labels of 1–63 letters, digits and `-`
/// (not at either end), at most 253 characters, optionally `*.` first.
fn is_dns_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && name.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
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
        let webhook = self.alert_webhook()?;
        if let Some(url) = &webhook {
            let url = url.expose();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("ENVSEAL_ALERT_WEBHOOK must be an http:// or https:// URL");
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
                webhook,
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

/// `scheme://host[:port]` and `/…` when more followed: never a user, password, path
/// (webhook tokens live there) or query. Unparseable input shows only its scheme.
fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        // A local file path is not a credential; drop any query.
        return url.split('?').next().unwrap_or(url).to_owned();
    }
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let mut out = format!("{}://", u.scheme());
            if !u.username().is_empty() || u.password().is_some() {
                out.push_str("***@");
            }
            out.push_str(u.host_str().unwrap_or(""));
            if let Some(port) = u.port() {
                out.push_str(&format!(":{port}"));
            }
            if u.path().len() > 1 || u.query().is_some() {
                out.push_str("/…");
            }
            out
        }
        _ => match url.find("://") {
            Some(s) => format!("{}://…", &url[..s]),
            None => "…".to_owned(),
        },
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
    fn tls_san_names_are_checked_and_added() {
        let r = args(&[
            "--tls-self-signed",
            "--tls-san",
            "Dify.Example.,10.0.0.7",
            "--tls-san",
            "::1",
        ])
        .resolve()
        .unwrap();
        match r.tls {
            Some(TlsPlan::SelfSigned { names, .. }) => assert_eq!(
                names,
                vec!["localhost", "127.0.0.1", "::1", "dify.example", "10.0.0.7"]
            ),
            _ => panic!("expected a self-signed plan"),
        }
        for bad in ["exa mple.com", "-bad.example", "a..b", "x_y.example", ""] {
            assert!(
                args(&["--tls-self-signed", &format!("--tls-san={bad}")])
                    .resolve()
                    .is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(args(&["--tls-san", "dify.example"]).resolve().is_err());
    }

    #[test]
    fn defaults_are_loopback_sqlite() {
        let a = args(&[]);
        assert_eq!(a.listen.to_string(), "127.0.0.1:8420");
        let r = a.resolve().unwrap();
        assert!(r.database_url.expose().starts_with("sqlite://"));
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

    const CANARY: &str = "Canary7hunter2Zq";

    #[test]
    fn database_password_never_displayed() {
        let url = SecretUrl::new(format!("postgres://envseal:{CANARY}@db:5432/envseal"));
        assert_eq!(url.redacted(), "postgres://***@db:5432/…");
        assert!(!format!("{url:?}").contains(CANARY));
        assert!(!format!("{url}").contains(CANARY));
        let hook = SecretUrl::new(format!("https://hooks.example.com/services/{CANARY}?k=v"));
        assert_eq!(hook.redacted(), "https://hooks.example.com/…");
        let msg = format!("error sending request for url (https://hooks.example.com/services/{CANARY}?k=v): refused; path /services/{CANARY}");
        let scrubbed = hook.scrub(&msg);
        assert!(!scrubbed.contains(CANARY), "{scrubbed}");
        assert!(scrubbed.contains("hooks.example.com"), "{scrubbed}");
        let encoded = SecretUrl::new("redis://:p%40ssw0rd-canary@cache:6379/0");
        assert!(!encoded
            .scrub("auth failed for p@ssw0rd-canary")
            .contains("ssw0rd-canary"));
    }

    #[test]
    fn url_flags_are_refused_and_files_are_read() {
        for flag in ["--database-url", "--redis-url", "--alert-webhook"] {
            let err = args(&[flag, "postgres://u:p@h/x"]).resolve().err().unwrap();
            let text = format!("{err:#}");
            assert!(text.contains("not accepted"), "{text}");
            assert!(!text.contains("u:p@h"), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-url");
        std::fs::write(&file, format!("postgres://envseal:{CANARY}@db/envseal\n")).unwrap();
        let a = args(&["--database-url-file", file.to_str().unwrap()]);
        let url = a.database_url().unwrap().unwrap();
        assert_eq!(
            url.expose(),
            format!("postgres://envseal:{CANARY}@db/envseal")
        );
        let r = a.resolve().unwrap();
        assert!(!format!("{r:?}").contains(CANARY));
        assert!(!r.database_display.contains(CANARY));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(args(&["--redis-url-file", empty.to_str().unwrap()])
            .redis_url()
            .is_err());
    }
}
