//! `envseal-server healthcheck`: asks the running server's `/healthz` over loopback
//! and exits 0 when it answers `ok`, 1 otherwise. Needs no shell or curl, so it works
//! as the `HEALTHCHECK` of the distroless image. It reads the same settings as the
//! server (listen address, TLS) and trusts the server's own certificate.

use crate::config::TlsPlan;
use crate::ServerArgs;
use anyhow::Context as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Options of `healthcheck`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Where the server listens, as seen from inside its container.
fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn tls_config(plan: &TlsPlan) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let cert = match plan {
        TlsPlan::Files { cert, .. } => cert.clone(),
        TlsPlan::SelfSigned { dir, .. } => dir.join("tls-cert.pem"),
    };
    let mut roots = rustls::RootCertStore::empty();
    let file = std::fs::File::open(&cert)
        .with_context(|| format!("opening the server certificate {}", cert.display()))?;
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
        roots
            .add(c.with_context(|| format!("reading {}", cert.display()))?)
            .with_context(|| format!("using {} as a trust anchor", cert.display()))?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ))
}

/// Runs the check.
pub fn run(server: &ServerArgs, args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let tls = match (&server.tls_cert, &server.tls_key, server.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(TlsPlan::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, true) => Some(TlsPlan::SelfSigned {
            dir: server.data_dir.clone(),
            names: Vec::new(),
        }),
        _ => None,
    };
    let addr = loopback(server.listen);
    let mut agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(args.timeout))
        .redirects(0);
    let url = match &tls {
        Some(plan) => {
            agent = agent.tls_config(tls_config(plan)?);
            format!("https://{addr}/healthz")
        }
        None => format!("http://{addr}/healthz"),
    };
    match agent.build().get(&url).call() {
        Ok(resp) if resp.status() == 200 => {
            let body = resp.into_string().unwrap_or_default();
            if body.trim() == "ok" {
                println!("ok");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("envseal-server healthcheck: {url} answered an unexpected body");
        }
        Ok(resp) => eprintln!(
            "envseal-server healthcheck: {url} answered {}",
            resp.status()
        ),
        Err(e) => eprintln!("envseal-server healthcheck: {url}: {e}"),
    }
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_become_loopback() {
        assert_eq!(
            loopback("0.0.0.0:8420".parse().unwrap()),
            "127.0.0.1:8420".parse().unwrap()
        );
        assert_eq!(
            loopback("[::]:1".parse().unwrap()),
            "[::1]:1".parse().unwrap()
        );
        assert_eq!(
            loopback("10.0.0.2:5".parse().unwrap()),
            "10.0.0.2:5".parse().unwrap()
        );
    }
}
