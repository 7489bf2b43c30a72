//! TLS server configuration with rustls (ring provider): operator-supplied PEM files,
//! or a self-signed pair kept in the data directory.
//!
//! The self-signed certificate is valid for [`VALIDITY_DAYS`] and is renewed at start
//! when fewer than [`RENEW_WITHIN_DAYS`] remain, when its names (`--tls-san`) changed,
//! or when its record (`tls-cert.json`: expiry and names) is missing, as for
//! certificates made before validity was bounded. The key pair is kept across renewals.

use crate::config::TlsPlan;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

/// Builds the rustls server configuration (HTTP/2 and HTTP/1.1 via ALPN).
pub(crate) fn server_config(plan: &TlsPlan) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match plan {
        TlsPlan::Files { cert, key } => (cert.clone(), key.clone()),
        TlsPlan::SelfSigned { dir, names } => ensure_self_signed(dir, names, crate::now())?,
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

/// Days a self-signed certificate is valid.
pub(crate) const VALIDITY_DAYS: i64 = 90;
/// A self-signed certificate with fewer days left is renewed at start.
pub(crate) const RENEW_WITHIN_DAYS: i64 = 30;

/// What `tls-cert.json` records about the self-signed certificate.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct SelfSignedRecord {
    /// Unix seconds.
    not_after: i64,
    /// Subject alternative names, in order.
    names: Vec<String>,
}

/// `DIR/tls-cert.pem` and `DIR/tls-key.pem` (0600) for `names`, (re)generated when
/// missing, stale, or made for other names.
fn ensure_self_signed(
    dir: &Path,
    names: &[String],
    now: i64,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert_path = dir.join("tls-cert.pem");
    let key_path = dir.join("tls-key.pem");
    let record_path = dir.join("tls-cert.json");
    let record: Option<SelfSignedRecord> = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let reason = match &record {
        _ if !cert_path.exists() || !key_path.exists() => None,
        None => Some("it has no expiry record (made before validity was bounded)"),
        Some(r) if r.names != names => Some("its names changed"),
        Some(r) if r.not_after - now < RENEW_WITHIN_DAYS * 86_400 => {
            Some("it expires within the renewal window")
        }
        Some(r) => {
            tracing::info!(
                cert = %cert_path.display(),
                days_left = (r.not_after - now) / 86_400,
                "using the self-signed TLS certificate"
            );
            return Ok((cert_path, key_path));
        }
    };
    let key = match std::fs::read_to_string(&key_path) {
        Ok(pem) => rcgen::KeyPair::from_pem(&pem)
            .with_context(|| format!("reading TLS key {}", key_path.display()))?,
        Err(_) => {
            let key = rcgen::KeyPair::generate()?;
            write_private(
                &key_path,
                zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
            )?;
            key
        }
    };
    let not_before = time::OffsetDateTime::from_unix_timestamp(now - 300)?;
    let not_after = not_before + time::Duration::days(VALIDITY_DAYS);
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .context("a --tls-san name cannot be put in a certificate")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "envseal-server (self-signed)");
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key)?;
    let tmp = dir.join("tls-cert.pem.tmp");
    std::fs::write(&tmp, cert.pem()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &cert_path)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    let record = SelfSignedRecord {
        not_after: not_after.unix_timestamp(),
        names: names.to_vec(),
    };
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("writing {}", record_path.display()))?;
    match reason {
        None => tracing::info!(cert = %cert_path.display(), days = VALIDITY_DAYS,
            "generated a self-signed TLS certificate; clients trust it with ENVSEAL_CA_CERT"),
        Some(why) => {
            tracing::warn!(cert = %cert_path.display(), days = VALIDITY_DAYS, reason = why,
            "renewed the self-signed TLS certificate; clients that pin it need the new file")
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "localhost",
            "127.0.0.1",
            "::1",
            "envseal.internal",
            "10.1.2.3",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `openssl x509 -noout ARGS` on the certificate.
    fn openssl(cert: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-in"])
            .arg(cert)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn self_signed_certificate_validity_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::now();
        let (cert, _) = ensure_self_signed(dir.path(), &names(), now).unwrap();
        // Valid now, not in 89 days' time + a margin beyond 90.
        assert!(openssl(&cert, &["-checkend", "0"]).contains("will not expire"));
        let in_91_days = (91 * 86_400).to_string();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-in"])
            .arg(&cert)
            .args(["-checkend", &in_91_days])
            .output()
            .unwrap();
        assert!(!out.status.success(), "valid beyond 91 days");
        let sans = openssl(&cert, &["-ext", "subjectAltName"]);
        for want in [
            "DNS:localhost",
            "DNS:envseal.internal",
            "IP Address:10.1.2.3",
            "IP Address:127.0.0.1",
        ] {
            assert!(sans.contains(want), "{want} missing in {sans}");
        }
    }

    #[test]
    fn self_signed_certificate_renewed_near_expiry_or_on_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400;
        let start = crate::now() - 70 * day;
        let (cert, key) = ensure_self_signed(dir.path(), &names(), start).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let first_key = std::fs::read(&key).unwrap();
        // 50 days later: 40 left, kept.
        ensure_self_signed(dir.path(), &names(), start + 50 * day).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        // 70 days later (now): 20 left, renewed from now, same key.
        ensure_self_signed(dir.path(), &names(), crate::now()).unwrap();
        let second = std::fs::read(&cert).unwrap();
        assert_ne!(second, first);
        assert_eq!(std::fs::read(&key).unwrap(), first_key);
        assert!(openssl(&cert, &["-checkend", &(80 * day).to_string()]).contains("will not expire"));
        // New names: renewed.
        let mut more = names();
        more.push("dify.example".to_owned());
        ensure_self_signed(dir.path(), &more, crate::now()).unwrap();
        assert!(openssl(&cert, &["-ext", "subjectAltName"]).contains("DNS:dify.example"));
        // A certificate without a record (made before bounded validity) is replaced.
        std::fs::remove_file(dir.path().join("tls-cert.json")).unwrap();
        let before = std::fs::read(&cert).unwrap();
        ensure_self_signed(dir.path(), &more, crate::now()).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), before);
    }
}
