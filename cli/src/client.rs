//! A small blocking HTTP(S) client for the envseal API (ureq + rustls).
//!
//! It never logs, prints or formats a value or the token: errors carry the server's
//! stable code and message, or the transport failure, and nothing else.

use envseal_core::wire::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How to reach the server.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://envseal:8420`.
    pub addr: String,
    /// Bearer token.
    pub token: Zeroizing<String>,
    /// Extra trusted CA (PEM), e.g. the server's self-signed certificate.
    pub ca_cert: Option<PathBuf>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Allow plain HTTP to a host that is not loopback.
    pub insecure_http: bool,
}

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("server answered {status} {code}: {message}{}", hint(.code, *.retry_after))]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Server message.
        message: String,
        /// The server's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The server could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach the envseal server at {addr}: {reason}")]
    Unreachable {
        /// Base URL.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// Local configuration problem (CA file…).
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// Whether trying again later (or falling back) makes sense.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, .. } => *status >= 502,
            _ => false,
        }
    }
}

/// An answer to a conditional GET.
pub enum Conditional<T> {
    /// New content and its ETag.
    Fresh(T, Option<String>),
    /// The ETag still matches.
    NotModified,
}

/// The API client.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Zeroizing<String>,
}

impl Client {
    /// Builds a client; loads the CA file if any.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let base = config.addr.trim_end_matches('/').to_owned();
        check_address(&base, config.insecure_http)?;
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(config.connect_timeout)
            .timeout(config.timeout)
            .redirects(0)
            .user_agent(concat!("envseal/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("https://") {
            builder = builder.tls_config(tls_config(config.ca_cert.as_deref())?);
        }
        Ok(Client {
            agent: builder.build(),
            base,
            auth: Zeroizing::new(format!("Bearer {}", config.token.as_str())),
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &self.auth)
            .set("Accept", "application/json")
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, ClientError> {
        let response = self.check(result)?;
        if response.status() == 204 {
            return serde_json::from_str("null").map_err(|e| ClientError::Protocol(e.to_string()));
        }
        response
            .into_json()
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn check(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ClientError> {
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body: Option<ErrorBody> = response.into_json().ok();
                Err(match body {
                    Some(b) => ClientError::Api {
                        status,
                        code: b.code,
                        message: b.message,
                        retry_after,
                    },
                    None => ClientError::Api {
                        status,
                        code: "http_error".into(),
                        message: format!("HTTP {status}"),
                        retry_after,
                    },
                })
            }
            Err(ureq::Error::Transport(t)) => Err(ClientError::Unreachable {
                addr: self.base.clone(),
                reason: transport_reason(&t),
            }),
        }
    }

    /// `GET path` → JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.finish(self.request("GET", path).call())
    }

    /// `GET path` with `If-None-Match`.
    pub fn get_conditional<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<T>, ClientError> {
        let mut req = self.request("GET", path);
        if let Some(tag) = etag {
            req = req.set("If-None-Match", tag);
        }
        let response = self.check(req.call())?;
        if response.status() == 304 {
            return Ok(Conditional::NotModified);
        }
        let tag = response.header("ETag").map(str::to_owned);
        let body = response
            .into_json()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Conditional::Fresh(body, tag))
    }

    /// `method path` with a JSON body → JSON.
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.finish(self.request(method, path).send_json(body))
    }

    /// `method path` without a body → JSON.
    pub fn send_empty<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
    ) -> Result<T, ClientError> {
        self.finish(self.request(method, path).call())
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.finish(self.request("DELETE", path).call())?;
        Ok(())
    }
}

/// What the CLI adds to a server error: when to retry, and CLI spellings for fields
/// the server names in its API terms.
fn hint(code: &str, retry_after: Option<u64>) -> String {
    let mut out = String::new();
    if let Some(secs) = retry_after {
        out.push_str(&format!(
            " (retry after {})",
            crate::duration::show(Duration::from_secs(secs.max(1)))
        ));
    }
    if code == "mfa_required" || code == "mfa_invalid" {
        out.push_str(" (pass the code with --totp)");
    }
    out
}

/// Accepts `http(s)://host[:port][/path]`; plain HTTP only to a loopback host
/// unless `insecure_http`, because the bearer token would cross the network in clear.
pub fn check_address(base: &str, insecure_http: bool) -> Result<(), ClientError> {
    let url = url::Url::parse(base).map_err(|e| {
        ClientError::Config(format!(
            "the server address is not a URL ({e}); use e.g. https://envseal:8420"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback && !insecure_http {
                return Err(ClientError::Config(format!(
                    "refusing plain http:// to {}: the token would cross the network \
                     unencrypted. Use https://, or pass --insecure-http (ENVSEAL_INSECURE_HTTP=1) \
                     if this network is trusted",
                    url.host_str().unwrap_or("")
                )));
            }
        }
        _ => {
            return Err(ClientError::Config(
                "the server address must start with http:// or https://".into(),
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientError::Config(
            "the server address must not carry credentials; use ENVSEAL_TOKEN or --token-file"
                .into(),
        ));
    }
    Ok(())
}

fn transport_reason(t: &ureq::Transport) -> String {
    // A TLS server answering a plain-HTTP request sends a TLS alert record
    // (content type 21, version 3.x) where ureq expects a status line.
    // ureq reports it as a bad header or status line, or as a network error whose
    // source carries the bytes, so the whole reason is looked at.
    // ureq's Display includes the URL, which holds no secret; keep its kind and message.
    let mut reason = t.kind().to_string();
    if let Some(m) = t.message() {
        reason.push_str(": ");
        reason.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        reason.push_str(": ");
        reason.push_str(&src.to_string());
    }
    if reason.contains("[21, 3,") {
        return "this server speaks TLS; use https:// in --addr / ENVSEAL_ADDR".into();
    }
    reason
}

pub(crate) fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let file = std::fs::File::open(path).map_err(|e| {
            ClientError::Config(format!(
                "cannot read CA certificate {}: {e}",
                path.display()
            ))
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| {
                ClientError::Config(format!("bad CA certificate {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                ClientError::Config(format!("bad CA certificate {}: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::Config(format!(
                "no certificate found in {}",
                path.display()
            )));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Percent-encodes one path segment (names are already restricted, but be exact).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
