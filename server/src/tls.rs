//! TLS server configuration with rustls (ring provider): operator-supplied PEM files,
//! or a self-signed pair generated once and kept in the data directory.

use crate::config::TlsPlan;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

/// Builds the rustls server configuration (HTTP/2 and HTTP/1.1 via ALPN).
pub(crate) fn server_config(plan: &TlsPlan) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match plan {
        TlsPlan::Files { cert, key } => (cert.clone(), key.clone()),
        TlsPlan::SelfSigned { dir, names } => ensure_self_signed(dir, names)?,
    };
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path)
            .with_context(|| format!("opening TLS certificate {}", cert_path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("reading TLS certificate {}", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", cert_path.display());
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path)
            .with_context(|| format!("opening TLS key {}", key_path.display()))?,
    ))
    .with_context(|| format!("reading TLS key {}", key_path.display()))?
    .with_context(|| format!("no private key found in {}", key_path.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `DIR/tls-cert.pem` and `DIR/tls-key.pem` (0600), generated when missing, for
/// `localhost`, `127.0.0.1`, `::1` and `extra`. The names are recorded in
/// `DIR/tls-names.txt`; a pair made for other names is replaced.
fn ensure_self_signed(
    dir: &Path,
    extra: &[String],
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert_path = dir.join("tls-cert.pem");
    let key_path = dir.join("tls-key.pem");
    let names_path = dir.join("tls-names.txt");
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for n in extra {
        let n = n.trim();
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_owned());
        }
    }
    let recorded = std::fs::read_to_string(&names_path)
        .unwrap_or_else(|_| "localhost,127.0.0.1,::1".to_owned());
    if cert_path.exists() && key_path.exists() && recorded.trim() == names.join(",") {
        return Ok((cert_path, key_path));
    }
    if cert_path.exists() {
        tracing::warn!(cert = %cert_path.display(), names = %names.join(","), "replacing the self-signed TLS certificate: the names it covers changed");
    }
    let generated = rcgen::generate_simple_self_signed(names.clone())?;
    let key_pem = zeroize::Zeroizing::new(generated.key_pair.serialize_pem());
    write_private(&key_path, key_pem.as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    std::fs::write(&names_path, names.join(","))
        .with_context(|| format!("writing {}", names_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate; clients trust it with ENVSEAL_CA_CERT");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
