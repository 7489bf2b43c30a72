//! The sinks' transports, blocking (each runs on its own delivery thread): syslog
//! (RFC 5424 messages with RFC 6587 octet-counting framing over TCP, or over TLS as in
//! RFC 5425), an HTTP endpoint that takes JSON lines, and a local file.
//!
//! Error messages name the sink's kind and the failure, never its URL (an HTTP sink's
//! URL can carry credentials).

use envseal_core::audit_anchor::rfc3339_ms;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Delivery failed; the batch stays queued and is retried.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP endpoint answered with a status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The HTTP request did not complete.
    #[error("HTTP transport: {0}")]
    Transport(String),
}

/// Something that accepts stream lines.
pub trait Sink: Send {
    /// Delivers every line or fails (then the whole batch is retried).
    fn deliver(&mut self, lines: &[String]) -> Result<(), SinkError>;
}

/// Appends lines to a file (for log shippers that tail it).
pub struct FileSink {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl FileSink {
    /// A sink writing to `path` (created 0600 if missing).
    pub fn new(path: PathBuf) -> Self {
        FileSink { path, file: None }
    }
}

impl Sink for FileSink {
    fn deliver(&mut self, lines: &[String]) -> Result<(), SinkError> {
        if self.file.is_none() {
            let mut o = std::fs::OpenOptions::new();
            o.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            self.file = Some(o.open(&self.path)?);
        }
        let file = self.file.as_mut().expect("opened above");
        let result = file.write_all(join_lines(lines).as_bytes());
        if result.is_err() {
            self.file = None;
        }
        Ok(result?)
    }
}

fn join_lines(lines: &[String]) -> String {
    let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    body
}

/// POSTs each batch as `application/x-ndjson`; any 2xx answer accepts it.
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    bearer: Option<secrecy::SecretString>,
}

impl HttpSink {
    /// A sink posting to `url`, with `Authorization: Bearer` when a token is given.
    pub fn new(url: String, bearer: Option<secrecy::SecretString>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirects(0)
            .user_agent(concat!("envseal-server/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpSink { agent, url, bearer }
    }
}

impl Sink for HttpSink {
    fn deliver(&mut self, lines: &[String]) -> Result<(), SinkError> {
        use secrecy::ExposeSecret as _;
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/x-ndjson");
        if let Some(t) = &self.bearer {
            req = req.set("Authorization", &format!("Bearer {}", t.expose_secret()));
        }
        match req.send_string(&join_lines(lines)) {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(()),
            Ok(resp) => Err(SinkError::Status(resp.status())),
            Err(ureq::Error::Status(code, _)) => Err(SinkError::Status(code)),
            // ureq's Display names the URL; keep only the kind of failure.
            Err(ureq::Error::Transport(t)) => Err(SinkError::Transport(t.kind().to_string())),
        }
    }
}

/// Where a syslog sink connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// RFC 5425 (TLS) instead of plain TCP.
    pub tls: bool,
}

impl std::str::FromStr for SyslogTarget {
    type Err = String;

    /// `tcp://HOST:PORT` or `tls://HOST:PORT` (default ports 601 and 6514).
    fn from_str(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("tls://") {
            (true, r)
        } else {
            return Err("a syslog target is tcp://HOST:PORT or tls://HOST:PORT".to_owned());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("syslog port {p:?} is not a number from 1 to 65535"))?,
            ),
            _ => (rest, if tls { 6514 } else { 601 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err("a syslog target needs a host and a port from 1 to 65535".to_owned());
        }
        Ok(SyslogTarget {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

trait Conn: Write + Send {
    /// True when the peer has closed or reset the connection.
    fn is_closed(&mut self) -> bool;
}

impl Conn for TcpStream {
    fn is_closed(&mut self) -> bool {
        peer_closed(self)
    }
}

impl Conn for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn is_closed(&mut self) -> bool {
        peer_closed(&self.sock)
    }
}

/// A syslog receiver sends nothing back, so a closed connection shows only as EOF on a
/// non-blocking read; writing to it would lose lines into the kernel buffer.
fn peer_closed(sock: &TcpStream) -> bool {
    if sock.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match sock.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    sock.set_nonblocking(false).is_err() || closed
}

/// Sends each line as the message of one RFC 5424 record (facility 13, log audit).
pub struct SyslogSink {
    target: SyslogTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Box<dyn Conn>>,
    hostname: String,
}

impl SyslogSink {
    /// A sink for `target`; `tls` is the client configuration when it is `tls://`.
    pub fn new(target: SyslogTarget, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b)))
            .unwrap_or_else(|| "-".to_owned());
        SyslogSink {
            target,
            tls,
            conn: None,
            hostname,
        }
    }

    fn connect(&self) -> Result<Box<dyn Conn>, SinkError> {
        let addr = (self.target.host.as_str(), self.target.port);
        let sock = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "cannot connect")
            })?;
        sock.set_write_timeout(Some(Duration::from_secs(30)))?;
        sock.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(sock)),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                    .map_err(|_| rustls::Error::General("bad syslog host name".to_owned()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)?;
                let mut stream = rustls::StreamOwned::new(conn, sock);
                // Handshake now, so that a bad certificate fails here.
                stream.conn.complete_io(&mut stream.sock)?;
                Ok(Box::new(stream))
            }
        }
    }

    /// One framed record: `LEN SP <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`.
    fn frame(&self, line: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let kind = v["type"].as_str().unwrap_or("entry");
        let (severity, msgid) = match kind {
            "gap" => (4, "gap"),
            "anchor" => (6, "anchor"),
            _ if matches!(v["result"].as_str(), Some("failure" | "denied")) => (5, "audit"),
            _ => (6, "audit"),
        };
        let ts = v["ts"]
            .as_i64()
            .or_else(|| v["since"].as_i64())
            .map(rfc3339_ms)
            .unwrap_or_else(|| "-".to_owned());
        let msg = format!(
            "<{}>1 {ts} {} envseal-server {} {msgid} - {line}",
            13 * 8 + severity,
            self.hostname,
            std::process::id()
        );
        format!("{} {msg}", msg.len())
    }
}

impl Sink for SyslogSink {
    fn deliver(&mut self, lines: &[String]) -> Result<(), SinkError> {
        if self.conn.as_mut().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let mut body = String::new();
        for l in lines {
            body.push_str(&self.frame(l));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let result = conn.write_all(body.as_bytes()).and_then(|()| conn.flush());
        if result.is_err() {
            self.conn = None;
        }
        Ok(result?)
    }
}

/// rustls client configuration for a `tls://` syslog target: the system's usual
/// public roots, or only the CA certificates in `ca` when given.
pub fn syslog_tls_config(
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening syslog CA certificate {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
                roots
                    .add(cert.with_context(|| format!("reading {}", path.display()))?)
                    .with_context(|| format!("bad CA certificate in {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("no certificate found in {}", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_targets_parse() {
        let t: SyslogTarget = "tls://logs.example:6514".parse().unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("logs.example", 6514, true)
        );
        let t: SyslogTarget = "tcp://10.0.0.1".parse().unwrap();
        assert_eq!((t.port, t.tls), (601, false));
        let t: SyslogTarget = "tcp://[::1]:514".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 514));
        assert!("udp://x:514".parse::<SyslogTarget>().is_err());
        assert!("tcp://x:0".parse::<SyslogTarget>().is_err());
        assert!("tcp://x:port".parse::<SyslogTarget>().is_err());
    }

    #[test]
    fn syslog_frames_count_octets() {
        let s = SyslogSink::new("tcp://h:1".parse().unwrap(), None);
        let line = r#"{"type":"entry","seq":1,"ts":0,"result":"denied"}"#;
        let f = s.frame(line);
        let (len, msg) = f.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(msg.starts_with("<109>1 1970-01-01T00:00:00.000Z "));
        assert!(msg.ends_with(&format!(" audit - {line}")));
    }
}
