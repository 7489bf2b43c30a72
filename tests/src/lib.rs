//! Harness for end-to-end tests: starts the real `envseal-server` binary on a free
//! loopback port with a throwaway data directory, and builds `envseal` CLI commands
//! pointed at it.
//!
//! Binaries are found next to the test executable (`target/<profile>/`), so run the
//! tests with `cargo test --workspace`, which builds them.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary (`envseal`, `envseal-server`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing; run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// Environment variables that must not leak from the developer's shell into tests.
const SCRUB: &[&str] = &[
    "ENVSEAL_ADDR",
    "ENVSEAL_TOKEN",
    "ENVSEAL_TOKEN_FILE",
    "ENVSEAL_CA_CERT",
    "ENVSEAL_PROJECT",
    "ENVSEAL_ENV",
    "ENVSEAL_DATABASE_URL",
    "ENVSEAL_MASTER_PASSPHRASE",
    "ENVSEAL_MASTER_KEY_FILE",
    "ENVSEAL_LISTEN",
    "ENVSEAL_DATA_DIR",
    "ENVSEAL_REDIS_URL",
];

/// How to start a server.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Serve TLS with a generated certificate.
    pub tls: bool,
    /// Use this database URL instead of SQLite in the data dir.
    pub database_url: Option<String>,
    /// Reuse this data directory (for restarts).
    pub data_dir: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Extra arguments.
    pub args: Vec<String>,
    /// The admin token to bootstrap with (or that a previous start bootstrapped).
    pub admin_token: Option<String>,
}

/// A running `envseal-server`.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The admin token.
    pub admin_token: String,
    /// The data directory.
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log_path: PathBuf,
    ca_cert: Option<PathBuf>,
}

impl Server {
    /// Starts a server with default options (SQLite, plain HTTP on loopback).
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server and waits until it listens.
    pub fn start_with(opts: ServerOptions) -> Server {
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let log_path = data_dir.with_extension(format!("log-{}", unique()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let admin_token = opts
            .admin_token
            .clone()
            .unwrap_or_else(|| format!("est_admin_e2e_{}", unique_long()));
        let mut cmd = Command::new(bin("envseal-server"));
        for k in SCRUB {
            cmd.env_remove(k);
        }
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("ENVSEAL_BOOTSTRAP_TOKEN", &admin_token)
            .env("ENVSEAL_LOG", "info,envseal_server=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if opts.tls {
            cmd.arg("--tls-self-signed");
        }
        if let Some(url) = &opts.database_url {
            cmd.env("ENVSEAL_DATABASE_URL", url);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.args(&opts.args);
        let child = cmd.spawn().expect("spawning envseal-server");
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            admin_token,
            data_dir: data_dir.clone(),
            _tmp: tmp,
            log_path,
            ca_cert: opts.tls.then(|| data_dir.join("tls-cert.pem")),
        };
        server.url = server.wait_listening();
        server
    }

    fn wait_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::File::open(&self.log_path).expect("log");
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.trim().to_owned();
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "envseal-server exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "envseal-server did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The CA certificate to trust when TLS is on.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// An `envseal` command pointed at this server with the admin token.
    pub fn cli(&self) -> Command {
        self.cli_with_token(&self.admin_token.clone())
    }

    /// An `envseal` command pointed at this server with `token`.
    pub fn cli_with_token(&self, token: &str) -> Command {
        let mut cmd = Command::new(bin("envseal"));
        for k in SCRUB {
            cmd.env_remove(k);
        }
        cmd.env("ENVSEAL_ADDR", &self.url)
            .env("ENVSEAL_TOKEN", token);
        if let Some(ca) = &self.ca_cert {
            cmd.env("ENVSEAL_CA_CERT", ca);
        }
        cmd
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL (no shutdown at all).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Runs a command with `stdin` bytes; returns (status code, stdout, stderr).
pub fn run(cmd: &mut Command, stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning command");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("waiting for command");
    writer.join().expect("stdin writer");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let (code, out, err) = run(cmd, stdin);
    assert_eq!(code, 0, "command failed ({code}): {cmd:?}\nstderr: {err}");
    out
}

/// A PostgreSQL URL with a fresh, empty schema, from `ENVSEAL_TEST_POSTGRES_URL`.
/// `None` (with a printed reason) when unset, unless `ENVSEAL_TEST_STRICT=1`.
pub fn postgres_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("ENVSEAL_TEST_POSTGRES_URL") else {
        skip_or_fail(test, "ENVSEAL_TEST_POSTGRES_URL is not set");
        return None;
    };
    let schema = format!("e2e_{}", unique());
    let status = Command::new("psql")
        .arg(&base)
        .arg("-qc")
        .arg(format!("CREATE SCHEMA {schema}"))
        .status()
        .expect("running psql");
    assert!(status.success(), "could not create schema {schema}");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Prints why a test is skipped, or fails it under `ENVSEAL_TEST_STRICT=1`.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("ENVSEAL_TEST_STRICT").as_deref() == Ok("1") {
        panic!("{test}: {reason}, and ENVSEAL_TEST_STRICT=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: {reason}");
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn unique_long() -> String {
    format!("{}x{}", unique(), unique())
}

/// Creates project `project` with environment `env` (admin token).
pub fn create_env(server: &Server, project: &str, env: &str) {
    let (code, _, err) = run(server.cli().args(["projects", "create", project]), b"");
    assert!(code == 0 || err.contains("exists"), "{err}");
    ok(
        server.cli().args(["projects", "add-env", project, env]),
        b"",
    );
}

/// Writes one secret value (bytes exact).
pub fn set_secret(server: &Server, project: &str, env: &str, name: &str, value: &[u8]) {
    ok(
        server
            .cli()
            .args(["secrets", "set", "-p", project, "-e", env, name, "--raw"]),
        value,
    );
}

/// A read-only machine token for one environment.
pub fn machine_token(server: &Server, project: &str, env: &str) -> String {
    let out = ok(
        server.cli().args([
            "tokens", "create", "--name", "launcher", "-p", project, "-e", env,
        ]),
        b"",
    );
    String::from_utf8(out).expect("token").trim().to_owned()
}

/// `envseal run -p project -e env` pointed at `server` with `token`, with the
/// launcher's own settings cleared from the inherited environment.
pub fn launcher(server: &Server, token: &str, project: &str, env: &str) -> Command {
    let mut cmd = server.cli_with_token(token);
    for k in [
        "ENVSEAL_TIMEOUT",
        "ENVSEAL_FALLBACK_PATH",
        "ENVSEAL_FALLBACK_MAX_AGE",
        "ENVSEAL_FALLBACK_PASSPHRASE",
        "ENVSEAL_FALLBACK_PASSPHRASE_FILE",
        "ENVSEAL_DIFY_SERVICE",
        "MODE",
    ] {
        cmd.env_remove(k);
    }
    cmd.args(["run", "-p", project, "-e", env]);
    cmd
}

/// Whether `unshare --pid --fork --mount-proc` works here. When it does not, prints
/// why the test is skipped, or fails it under `ENVSEAL_TEST_STRICT=1`.
pub fn pid_namespace_available(test: &str) -> bool {
    let probe = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            "test $$ -eq 1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "unshare --pid --fork --mount-proc failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => format!("cannot run unshare: {err}"),
    };
    skip_or_fail(test, &reason);
    false
}

/// The same command, run as PID 1 of a fresh PID namespace (with its own /proc).
pub fn as_pid1(cmd: &Command) -> Command {
    // --kill-child: if the test dies, PID 1 (and with it the namespace) dies too.
    wrapped(
        "unshare",
        &["--pid", "--fork", "--kill-child", "--mount-proc", "--"],
        cmd,
    )
}

/// `cmd` run through `program prefix… CMD ARGS…`, keeping its environment changes and
/// working directory.
pub fn wrapped(program: &str, prefix: &[&str], cmd: &Command) -> Command {
    let mut outer = Command::new(program);
    outer
        .args(prefix)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => outer.env(k, v),
            None => outer.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        outer.current_dir(dir);
    }
    outer
}

/// Direct children of `pid` (from `/proc/PID/task/PID/children`).
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The one-letter state of a process (`R`, `S`, `Z`…), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// Polls `cond` every few milliseconds until it holds; panics with `what` after
/// `timeout`. For conditions with no event to wait on (a file appearing, a process
/// going away).
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` (e.g. `"TERM"`) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

// ---- helpers for the auth tests: raw HTTP, Redis ----------------------------------------

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One plain-HTTP/1.1 request over a fresh connection (`base` is `http://host:port`).
/// No dependency beyond std, so that floods can be driven from many threads.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<HttpResponse> {
    use std::io::{Read as _, Write as _};
    let host = base
        .strip_prefix("http://")
        .expect("http() speaks plain HTTP only")
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `ENVSEAL_TEST_REDIS_URL`, or `None` with a printed reason (a failure under
/// `ENVSEAL_TEST_STRICT=1`).
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("ENVSEAL_TEST_REDIS_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            skip_or_fail(test, "ENVSEAL_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("envseal-e2e-{}", unique())
}
