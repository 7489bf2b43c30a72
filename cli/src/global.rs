//! Options every subcommand shares: where the server is and how to authenticate.
//!
//! The token is read from `ENVSEAL_TOKEN` or a file, never from a flag, so it cannot
//! show up in `ps` or shell history.

use crate::client::{Client, ClientConfig};
use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// Connection options.
#[derive(clap::Args, Clone)]
pub struct Global {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "ENVSEAL_ADDR",
        default_value = "http://127.0.0.1:8420"
    )]
    pub addr: String,
    /// File holding the token (instead of ENVSEAL_TOKEN).
    #[arg(long, global = true, env = "ENVSEAL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, e.g. the server's self-signed one.
    #[arg(long, global = true, env = "ENVSEAL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Request timeout (seconds, or 500ms, 30s, 2m…).
    #[arg(
        long,
        global = true,
        env = "ENVSEAL_TIMEOUT",
        default_value = "10",
        value_parser = crate::duration::parse,
        value_name = "DURATION"
    )]
    pub timeout: Duration,
    /// Allow plain http:// to a server that is not on this machine (the token then
    /// crosses the network unencrypted).
    #[arg(long, global = true, env = "ENVSEAL_INSECURE_HTTP")]
    pub insecure_http: bool,
}

/// Which environment a command works on.
#[derive(clap::Args, Clone)]
pub struct EnvTarget {
    /// Project.
    #[arg(long, short = 'p', env = "ENVSEAL_PROJECT")]
    pub project: String,
    /// Environment.
    #[arg(long, short = 'e', env = "ENVSEAL_ENV")]
    pub env: String,
}

impl EnvTarget {
    /// `/v1/projects/P/environments/E`.
    pub fn path(&self) -> String {
        format!(
            "/v1/projects/{}/environments/{}",
            crate::client::seg(&self.project),
            crate::client::seg(&self.env)
        )
    }
}

impl Global {
    /// The bearer token from `ENVSEAL_TOKEN` or `--token-file`.
    pub fn token(&self) -> anyhow::Result<Zeroizing<String>> {
        if let Some(path) = &self.token_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading token file {}", path.display()))?,
            );
            let token = text.trim();
            anyhow::ensure!(!token.is_empty(), "token file {} is empty", path.display());
            return Ok(Zeroizing::new(token.to_owned()));
        }
        match std::env::var("ENVSEAL_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Ok(Zeroizing::new(t.trim().to_owned())),
            _ => anyhow::bail!("no token: set ENVSEAL_TOKEN or --token-file"),
        }
    }

    /// Client settings.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let timeout = self.timeout;
        Ok(ClientConfig {
            addr: self.addr.clone(),
            token: self.token()?,
            ca_cert: self.ca_cert.clone(),
            connect_timeout: timeout.min(Duration::from_secs(5)),
            timeout,
            insecure_http: self.insecure_http,
        })
    }

    /// A ready client.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.client_config()?)?)
    }
}
