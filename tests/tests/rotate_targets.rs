//! `envseal rotate` against real PostgreSQL and Redis: the old password is refused
//! after rotation, the new one works, `current`/`previous` follow; a failure at each
//! step (and a SIGKILL between steps) leaves the old password working and `current`
//! unchanged, and a later run finishes; rollback restores store and target.
//!
//! The shared PostgreSQL on a development machine trusts every local login, which
//! would make "the old password is refused" untestable, so these tests start a
//! private cluster with SCRAM authentication (and a private `redis-server` for
//! `requirepass`, which must not change the shared Redis's default user).

use envseal_e2e::{create_env, ok, run, set_secret, skip_or_fail, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn unique(tag: &str) -> String {
    format!("{tag}_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(1)
}

/// A private PostgreSQL cluster with password (SCRAM) authentication on loopback.
struct Pg {
    dir: tempfile::TempDir,
    port: u16,
    admin_password: String,
}

impl Pg {
    fn start(test: &str) -> Option<Pg> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            skip_or_fail(
                test,
                "PostgreSQL server binaries (initdb) are not installed",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let admin_password = format!("adm{}", rand_suffix());
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &admin_password).unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
        }
        let port = free_port();
        let initdb = Pg::as_owner(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            "--pwfile",
            pwfile.to_str().unwrap(),
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
        assert!(initdb.success(), "initdb failed");
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            dir.path().display()
        );
        let start = Pg::as_owner(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            dir.path().join("log").to_str().unwrap(),
            "-w",
            "start",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
        assert!(start.success(), "pg_ctl start failed");
        Some(Pg {
            dir,
            port,
            admin_password,
        })
    }

    fn as_owner(argv: &[&str]) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(argv);
            c
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    }

    fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.admin_password, self.port
        )
    }

    /// Runs SQL as the admin.
    fn sql(&self, sql: &str) {
        let status = Command::new("psql")
            .arg(format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                self.port
            ))
            .args(["-qv", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &self.admin_password)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "SQL failed: {sql}");
    }

    /// Whether `role` can log in with `password`.
    fn login(&self, role: &str, password: &str) -> bool {
        Command::new("psql")
            .arg(format!(
                "postgres://{role}@127.0.0.1:{}/postgres",
                self.port
            ))
            .args(["-qtAc", "SELECT 1"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Pg::as_owner(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

/// A private `redis-server` on a free port (no persistence).
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(test: &str, password: &str) -> Option<PrivateRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            skip_or_fail(test, "redis-server is not installed");
            return None;
        }
        let port = free_port();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\nrequirepass \"{password}\"\n"
        );
        let mut child = Command::new("redis-server")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let r = PrivateRedis { child, port };
        envseal_e2e::wait_until("redis-server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(r)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `AUTH [user] password` works on `port`.
fn redis_auth(port: u16, user: Option<&str>, password: &str) -> bool {
    let mut cmd = Command::new("redis-cli");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--no-auth-warning",
    ]);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    let out = cmd
        .env("REDISCLI_AUTH", password)
        .arg("PING")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

fn reveal(server: &Server, name: &str, version: Option<i64>) -> String {
    let mut cmd = server.cli();
    cmd.args([
        "secrets", "get", "-p", "dify", "-e", "prod", name, "--reveal",
    ]);
    if let Some(v) = version {
        cmd.args(["--version", &v.to_string()]);
    }
    String::from_utf8(ok(&mut cmd, b"")).unwrap()
}

fn rotate(server: &Server, args: &[&str], fault: Option<&str>, stdin: &[u8]) -> (i32, String) {
    let mut cmd = server.cli();
    cmd.args(["rotate", "-p", "dify", "-e", "prod"]).args(args);
    match fault {
        Some(f) => cmd.env("ENVSEAL_ROTATE_FAULT", f),
        None => cmd.env_remove("ENVSEAL_ROTATE_FAULT"),
    };
    let (code, out, err) = run(&mut cmd, stdin);
    assert!(out.is_empty(), "rotate printed on stdout");
    (code, err)
}

fn set_policy(server: &Server, name: &str, policy: serde_json::Value) {
    let (code, err) = rotate(
        server,
        &["--set-policy", name],
        None,
        policy.to_string().as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
}

fn labels(server: &Server) -> String {
    let mut cmd = server.cli();
    cmd.args(["rotate", "-p", "dify", "-e", "prod", "--status"]);
    String::from_utf8(ok(&mut cmd, b"")).unwrap()
}

#[test]
fn postgres_role_rotation_faults_kill_resume_and_rollback() {
    let test = "postgres_role_rotation_faults_kill_resume_and_rollback";
    let Some(pg) = Pg::start(test) else { return };
    let role = unique("es_rot");
    pg.sql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'old-pass-1'"));
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(
        &server,
        "dify",
        "prod",
        "PG_ADMIN_URL",
        pg.admin_url().as_bytes(),
    );
    set_secret(&server, "dify", "prod", "DB_PASSWORD", b"old-pass-1");
    set_policy(
        &server,
        "DB_PASSWORD",
        serde_json::json!({
            "rotate_every": "30d",
            "rotator": { "kind": "postgres", "admin_secret": "PG_ADMIN_URL", "role": role }
        }),
    );
    // A failure injected at each step: the old password still works and `current`
    // is unchanged, and nothing blocks the next run.
    for fault in ["create", "set", "test", "finish"] {
        let (code, err) = rotate(&server, &["DB_PASSWORD", "--lease", "1"], Some(fault), b"");
        assert_ne!(code, 0, "{fault}: {err}");
        assert!(err.contains("injected fault"), "{fault}: {err}");
        assert!(
            pg.login(&role, "old-pass-1"),
            "{fault}: the old password stopped working"
        );
        assert_eq!(
            reveal(&server, "DB_PASSWORD", None),
            "old-pass-1",
            "{fault}"
        );
        assert!(
            !err.contains("old-pass-1"),
            "{fault}: a value reached stderr"
        );
    }
    // SIGKILL right after create: the old password works, current is unchanged...
    let (code, _) = rotate(
        &server,
        &["DB_PASSWORD", "--lease", "1"],
        Some("kill-after-create"),
        b"",
    );
    assert_eq!(code, -1, "killed by a signal");
    assert!(pg.login(&role, "old-pass-1"));
    assert_eq!(reveal(&server, "DB_PASSWORD", None), "old-pass-1");
    std::thread::sleep(Duration::from_millis(2100));
    assert!(
        labels(&server).contains("created (abandoned)"),
        "{}",
        labels(&server)
    );
    // ...and the next run resumes and finishes it.
    let (code, err) = rotate(&server, &["DB_PASSWORD"], None, b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming"), "{err}");
    let new = reveal(&server, "DB_PASSWORD", None);
    assert_ne!(new, "old-pass-1");
    assert_eq!(new.len(), 32);
    assert!(pg.login(&role, &new), "the new password works");
    assert!(
        !pg.login(&role, "old-pass-1"),
        "the old password is refused"
    );
    assert_eq!(
        reveal(&server, "DB_PASSWORD", Some(1)),
        "old-pass-1",
        "previous keeps the old value"
    );
    let status = labels(&server);
    let line = status
        .lines()
        .find(|l| l.starts_with("DB_PASSWORD"))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["2", "1", "-"], "{status}");
    // Rollback restores `previous` on the target and in the store.
    let (code, err) = rotate(&server, &["--rollback", "DB_PASSWORD"], None, b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(reveal(&server, "DB_PASSWORD", None), "old-pass-1");
    assert!(pg.login(&role, "old-pass-1"));
    assert!(!pg.login(&role, &new));
    // The server log never saw a value.
    let log = server.log();
    assert!(!log.contains("old-pass-1") && !log.contains(&new));
    pg.sql(&format!("DROP ROLE {role}"));
}

#[test]
fn a_second_rotation_while_one_runs_gets_a_conflict() {
    let test = "a_second_rotation_while_one_runs_gets_a_conflict";
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "SANDBOX_KEY", b"old");
    set_policy(
        &server,
        "SANDBOX_KEY",
        serde_json::json!({ "rotator": { "kind": "hex", "bytes": 16 } }),
    );
    let (code, _) = rotate(
        &server,
        &["SANDBOX_KEY", "--lease", "60"],
        Some("kill-after-set"),
        b"",
    );
    assert_eq!(code, -1, "{test}: killed");
    let (code, err) = rotate(&server, &["SANDBOX_KEY"], None, b"");
    assert_ne!(code, 0);
    assert!(err.contains("in progress in another run"), "{err}");
    assert_eq!(reveal(&server, "SANDBOX_KEY", None), "old");
    let (code, err) = rotate(&server, &["--cancel", "SANDBOX_KEY", "--force"], None, b"");
    assert_eq!(code, 0, "{err}");
    let (code, err) = rotate(&server, &["SANDBOX_KEY"], None, b"");
    assert_eq!(code, 0, "{err}");
    let v = reveal(&server, "SANDBOX_KEY", None);
    assert_eq!(v.len(), 32);
    assert!(v.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn manual_values_are_checked_by_their_verify_command() {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "OPENAI_API_KEY", b"sk-old");
    set_policy(
        &server,
        "OPENAI_API_KEY",
        serde_json::json!({ "rotator": { "kind": "manual",
            "verify": ["sh", "-c", "case \"$OPENAI_API_KEY\" in sk-good*) exit 0;; *) exit 1;; esac"] } }),
    );
    let (code, err) = rotate(
        &server,
        &["OPENAI_API_KEY", "--value-stdin"],
        None,
        b"sk-bad\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("rejected"), "{err}");
    assert!(!err.contains("sk-bad"));
    assert_eq!(reveal(&server, "OPENAI_API_KEY", None), "sk-old");
    let (code, err) = rotate(&server, &["OPENAI_API_KEY"], None, b"");
    assert_ne!(code, 0);
    assert!(err.contains("--value-stdin"), "{err}");
    let (code, err) = rotate(
        &server,
        &["OPENAI_API_KEY", "--value-stdin"],
        None,
        b"sk-good-1\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(reveal(&server, "OPENAI_API_KEY", None), "sk-good-1");
}

#[test]
fn secret_key_rotation_asks_first_and_restart_hook_runs() {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"old-key");
    let dir = tempfile::tempdir().unwrap();
    let marker: PathBuf = dir.path().join("restarted");
    let (code, err) = rotate(&server, &["SECRET_KEY"], None, b"");
    assert_ne!(code, 0);
    assert!(
        err.contains("--yes") && err.contains("signs every user out"),
        "{err}"
    );
    assert_eq!(reveal(&server, "SECRET_KEY", None), "old-key");
    set_policy(
        &server,
        "SECRET_KEY",
        serde_json::json!({ "rotator": { "kind": "secret_key" },
            "restart": { "command": ["sh", "-c", "echo \"$ENVSEAL_ROTATED $ENVSEAL_ROTATED_VERSION\" > \"$0\"", marker.to_str().unwrap()] } }),
    );
    let (code, err) = rotate(&server, &["SECRET_KEY", "--yes"], None, b"");
    assert_eq!(code, 0, "{err}");
    let key = reveal(&server, "SECRET_KEY", None);
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap()
            .len(),
        42
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "SECRET_KEY 2"
    );
}

fn watch_child(server: &Server, script: &str, envs: &[(&str, String)]) -> std::process::Child {
    let token = envseal_e2e::machine_token(server, "dify", "prod");
    let mut cmd = envseal_e2e::launcher(server, &token, "dify", "prod");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(["--quiet", "--watch", "--watch-interval", "0.1", "--"])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn alternating_users_rotate_with_zero_failed_queries_under_watch() {
    let test = "alternating_users_rotate_with_zero_failed_queries_under_watch";
    let Some(pg) = Pg::start(test) else { return };
    let (a, b) = (unique("es_alt_a"), unique("es_alt_b"));
    let group = unique("es_alt_app");
    pg.sql(&format!(
        "CREATE ROLE {group} NOLOGIN; CREATE ROLE {a} LOGIN PASSWORD 'alt-a-0' IN ROLE {group}; \
         CREATE ROLE {b} LOGIN PASSWORD 'alt-b-0' IN ROLE {group}; \
         CREATE TABLE rot_probe (n int); INSERT INTO rot_probe VALUES (1); \
         GRANT SELECT ON rot_probe TO {group}"
    ));
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(
        &server,
        "dify",
        "prod",
        "PG_ADMIN_URL",
        pg.admin_url().as_bytes(),
    );
    set_secret(&server, "dify", "prod", "DB_USERNAME", a.as_bytes());
    set_secret(&server, "dify", "prod", "DB_PASSWORD", b"alt-a-0");
    set_policy(
        &server,
        "DB_PASSWORD",
        serde_json::json!({ "rotator": { "kind": "postgres_alternating",
            "admin_secret": "PG_ADMIN_URL", "roles": [a, b], "username_secret": "DB_USERNAME" } }),
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each child holds one connection that queries every 20 ms for its whole life,
    // and opens a fresh connection per query in a loop; every outcome is counted.
    let script = r#"export PGPASSWORD="$DB_PASSWORD"
URL="postgres://$DB_USERNAME@127.0.0.1:$PGPORT/postgres"
(while :; do echo "SELECT n FROM rot_probe;"; sleep 0.02; done) | psql -qtA -v ON_ERROR_STOP=1 "$URL" > "$LOG.held.$$" 2>&1 &
HOLD=$!
trap 'kill $HOLD 2>/dev/null; echo "stop $DB_USERNAME" >> "$LOG"; exit 0' TERM
echo "start $DB_USERNAME" >> "$LOG"
while :; do
  if psql -qtAc "SELECT n FROM rot_probe" "$URL" > /dev/null 2>&1; then echo ok >> "$LOG.q"; else echo FAIL >> "$LOG.q"; fi
done"#;
    let mut child = watch_child(
        &server,
        script,
        &[
            ("LOG", log.display().to_string()),
            ("PGPORT", pg.port.to_string()),
        ],
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let q = dir.path().join("log.q");
    let oks = |q: &Path| read(q).lines().filter(|l| *l == "ok").count();
    envseal_e2e::wait_until("the first child's queries", Duration::from_secs(20), || {
        oks(&q) >= 5
    });
    for (round, to) in [(1, &b), (2, &a)] {
        let before = oks(&q);
        let (code, err) = rotate(&server, &["DB_PASSWORD"], None, b"");
        assert_eq!(code, 0, "round {round}: {err}");
        assert_eq!(&reveal(&server, "DB_USERNAME", None), to);
        envseal_e2e::wait_until(
            "the restart on the new user",
            Duration::from_secs(20),
            || read(&log).contains(&format!("start {to}")),
        );
        envseal_e2e::wait_until("queries as the new user", Duration::from_secs(20), || {
            oks(&q) >= before + 10
        });
        let password = reveal(&server, "DB_PASSWORD", None);
        assert!(
            pg.login(to, &password),
            "round {round}: the new user logs in"
        );
    }
    envseal_e2e::send_signal(child.id(), "TERM");
    let _ = child.wait();
    let results = read(&q);
    let failed = results.lines().filter(|l| *l == "FAIL").count();
    let total = results.lines().count();
    assert!(total >= 25, "{total} queries ran");
    assert_eq!(
        failed, 0,
        "{failed} of {total} fresh-connection queries failed"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".held.") {
            let held = read(&path);
            assert!(
                !held.contains("ERROR") && !held.contains("FATAL") && !held.contains("closed"),
                "a held connection failed: {held}"
            );
            assert!(
                held.lines().filter(|l| *l == "1").count() >= 3,
                "the held connection kept querying"
            );
        }
    }
    pg.sql(&format!(
        "DROP TABLE rot_probe; DROP ROLE {a}; DROP ROLE {b}; DROP ROLE {group}"
    ));
}

#[test]
fn dify_db_and_redis_passwords_rotate_end_to_end_under_watch() {
    let test = "dify_db_and_redis_passwords_rotate_end_to_end_under_watch";
    let Some(pg) = Pg::start(test) else { return };
    let Some(redis) = PrivateRedis::start(test, "redis-old-1") else {
        return;
    };
    let role = unique("es_dify");
    pg.sql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'db-old-1'"));
    let server = Server::start();
    create_env(&server, "dify", "prod");
    let port = redis.port;
    set_secret(
        &server,
        "dify",
        "prod",
        "PG_ADMIN_URL",
        pg.admin_url().as_bytes(),
    );
    set_secret(&server, "dify", "prod", "DB_USERNAME", role.as_bytes());
    set_secret(&server, "dify", "prod", "DB_PASSWORD", b"db-old-1");
    set_secret(&server, "dify", "prod", "REDIS_PASSWORD", b"redis-old-1");
    let broker = format!("redis://:redis-old-1@127.0.0.1:{port}/1");
    set_secret(
        &server,
        "dify",
        "prod",
        "CELERY_BROKER_URL",
        broker.as_bytes(),
    );
    set_policy(
        &server,
        "DB_PASSWORD",
        serde_json::json!({ "rotator": { "kind": "postgres", "admin_secret": "PG_ADMIN_URL", "role": role } }),
    );
    set_policy(
        &server,
        "REDIS_PASSWORD",
        serde_json::json!({
            "rotator": { "kind": "redis_requirepass", "url": format!("redis://127.0.0.1:{port}") },
            "links": [{ "name": "CELERY_BROKER_URL", "embed": "url_password" }]
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // The child connects with what it was given, as Dify's api and worker do: the
    // database with DB_PASSWORD, Redis with REDIS_PASSWORD, and Celery's broker with
    // the (percent-decoded) password inside CELERY_BROKER_URL.
    let script = r#"db=fail; redis=fail; broker=fail
PGPASSWORD="$DB_PASSWORD" psql -qtAc "SELECT 1" "postgres://$DB_USERNAME@127.0.0.1:$PGPORT/postgres" >/dev/null 2>&1 && db=ok
[ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning -p "$RPORT" ping)" = PONG ] && redis=ok
BPW=$(/usr/bin/python3 -c 'import os, urllib.parse as u; print(u.unquote(u.urlsplit(os.environ["CELERY_BROKER_URL"]).password))')
[ "$(REDISCLI_AUTH="$BPW" redis-cli --no-auth-warning -p "$RPORT" -n 1 ping)" = PONG ] && broker=ok
echo "start db=$db redis=$redis broker=$broker" >> "$LOG"
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;
    let mut child = watch_child(
        &server,
        script,
        &[
            ("LOG", log.display().to_string()),
            ("PGPORT", pg.port.to_string()),
            ("RPORT", port.to_string()),
        ],
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let log_ref = &log;
    let starts = |n: usize| move || read_lines(log_ref) >= n;
    envseal_e2e::wait_until("the first child", Duration::from_secs(20), starts(1));
    assert_eq!(read(), "start db=ok redis=ok broker=ok\n");
    let db_new = "d#b@n/e%w-1";
    let (code, err) = rotate(
        &server,
        &["DB_PASSWORD", "--value-stdin"],
        None,
        format!("{db_new}\n").as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    envseal_e2e::wait_until(
        "the restart after DB_PASSWORD",
        Duration::from_secs(20),
        starts(2),
    );
    let redis_new = "r#e@d/i%s-2";
    let (code, err) = rotate(
        &server,
        &["REDIS_PASSWORD", "--value-stdin"],
        None,
        format!("{redis_new}\n").as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("CELERY_BROKER_URL"), "{err}");
    envseal_e2e::wait_until(
        "the restart after REDIS_PASSWORD",
        Duration::from_secs(20),
        starts(3),
    );
    assert_eq!(
        read(),
        "start db=ok redis=ok broker=ok\nstart db=ok redis=ok broker=ok\nstart db=ok redis=ok broker=ok\n"
    );
    assert!(
        !pg.login(&role, "db-old-1"),
        "the old database password is refused"
    );
    assert!(pg.login(&role, db_new));
    assert!(
        !redis_auth(port, None, "redis-old-1"),
        "the old Redis password is refused"
    );
    assert!(redis_auth(port, None, redis_new));
    assert_eq!(
        reveal(&server, "CELERY_BROKER_URL", None),
        format!("redis://:r%23e%40d%2Fi%25s-2@127.0.0.1:{port}/1")
    );
    envseal_e2e::send_signal(child.id(), "TERM");
    let _ = child.wait();
    let log_text = server.log();
    for v in ["db-old-1", db_new, "redis-old-1", redis_new] {
        assert!(!log_text.contains(v), "a value reached the server log");
    }
    pg.sql(&format!("DROP ROLE {role}"));
}

fn read_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}
