//! Regressions of an attack pass against the real server binary over TCP: slow and idle
//! connections are closed within the header timeout, error answers produced by the
//! connection layer keep the JSON shape, and a server that lost its last admin is
//! recovered locally with `envseal-server admin recover`, audited.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOTSTRAP: &str = "est_bootstrap_token_for_serve_tests_0123456789";

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envseal-server"));
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("ENVSEAL_MASTER_PASSPHRASE")
        .env_remove("ENVSEAL_DATABASE_URL")
        .env_remove("ENVSEAL_REDIS_URL")
        .env("ENVSEAL_LOG", "info");
    c
}

/// Starts the server on a free loopback port and waits for it to listen.
fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = command(dir)
        .args(["--listen", "127.0.0.1:0", "--header-timeout-secs", "1"])
        .args(extra)
        .env("ENVSEAL_BOOTSTRAP_TOKEN", BOOTSTRAP)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server starts listening");
    Server {
        child,
        addr: addr.parse().unwrap(),
    }
}

/// One HTTP/1.1 request on a fresh connection: status and body.
fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    request(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    )
}

/// How long the server keeps a connection that sends a header line every 200 ms and
/// never finishes; `None` if it is still open after `give_up`.
fn slow_header_lifetime(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    while start.elapsed() < give_up {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
        if s.write_all(b"X-Slow: a\r\n").is_err() {
            return Some(start.elapsed());
        }
    }
    None
}

#[test]
fn slow_header_connections_are_closed_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.addr;
    let threads: Vec<_> = (0..30)
        .map(|_| std::thread::spawn(move || slow_header_lifetime(addr, Duration::from_secs(8))))
        .collect();
    for t in threads {
        let lived = t
            .join()
            .unwrap()
            .expect("a slow-header connection stayed open for 8 s");
        assert!(
            lived < Duration::from_secs(4),
            "closed only after {lived:?}"
        );
    }
    // The server still answers.
    assert_eq!(get(addr, "/healthz", BOOTSTRAP).0, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("an idle keep-alive connection stayed open: {e}"),
        }
    }
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn connection_layer_errors_keep_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let big = "c".repeat(48 * 1024);
    let (status, body) = request(
        server.addr,
        &format!("GET /v1/projects HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 431);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["code"], "headers_too_large");
    let (status, body) = request(
        server.addr,
        "DELETE /v1/projects HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["code"], "method_not_allowed");
}

#[test]
fn admin_recover_issues_an_audited_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    // An empty directory holds no deployment to recover, and is left without a key.
    let empty = tempfile::tempdir().unwrap();
    let out = command(empty.path())
        .args(["admin", "recover"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!empty.path().join("master.key").exists());
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    {
        let server = start(dir.path(), &[]);
        assert_eq!(get(server.addr, "/v1/tokens", BOOTSTRAP).0, 200);
    }
    // With the server's data directory and key: a new admin token, shown once.
    let out = command(dir.path())
        .args(["admin", "recover"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .find(|l| l.starts_with("est_"))
        .expect("the new token on stdout")
        .to_owned();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    let server = start(dir.path(), &[]);
    let (status, body) = get(server.addr, "/v1/audit?tail=20", &token);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let recover = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "admin.recover")
        .expect("the recovery is audited");
    assert!(!recover.to_string().contains(&token));
    // The old admin may now go: the recovered one remains.
    let (status, body) = get(server.addr, "/v1/tokens", &token);
    assert_eq!(status, 200, "{body}");
    // A wrong master key cannot recover.
    let other = dir.path().join("other.key");
    std::fs::write(&other, [7u8; 32]).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    drop(server);
    let out = command(dir.path())
        .arg("--master-key-file")
        .arg(dir.path().join("other.key"))
        .args(["admin", "recover"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("est_"));
}
