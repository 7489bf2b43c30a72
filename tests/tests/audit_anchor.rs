//! `envseal audit verify --anchors` against the real server writing anchors to its
//! file sink, on SQLite and PostgreSQL: the untouched chain passes; a truncated tail,
//! a restored older copy of the database and a chain rewritten from its first entry
//! (every hash recomputed, so the chain alone still verifies) are each detected.

use envseal_e2e::{ok, postgres_url, run, Server, ServerOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the database is, for the test's own tampering.
#[derive(Clone)]
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn sql(&self, sql: &str) -> String {
        let mut cmd = match self {
            Db::Sqlite(path) => {
                let mut c = Command::new("sqlite3");
                c.arg("-cmd").arg(".timeout 10000").arg(path);
                c
            }
            Db::Postgres(url) => {
                let mut c = Command::new("psql");
                c.arg(url).arg("-qAt").arg("-v").arg("ON_ERROR_STOP=1");
                c
            }
        };
        let (code, out, err) = run(cmd.stdin(Stdio::piped()), sql.as_bytes());
        assert_eq!(code, 0, "sql failed: {err}");
        String::from_utf8(out).unwrap()
    }
}

struct Deployment {
    server: Server,
    db: Db,
    opts: ServerOptions,
    anchors: PathBuf,
    _dir: tempfile::TempDir,
}

impl Deployment {
    fn start(test: &str, postgres: bool) -> Option<Deployment> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let anchors = dir.path().join("sink/audit.jsonl");
        let mut opts = ServerOptions {
            data_dir: Some(data.clone()),
            admin_token: Some(format!(
                "est_admin_anchor_test_{}_0123456789",
                std::process::id()
            )),
            args: vec![
                "--audit-file".into(),
                anchors.display().to_string(),
                "--audit-anchor-interval-ms".into(),
                "100".into(),
                // The signing key lives apart from the database.
                "--audit-anchor-key".into(),
                dir.path().join("keys/anchor.key").display().to_string(),
            ],
            ..Default::default()
        };
        std::fs::create_dir_all(anchors.parent().unwrap()).unwrap();
        let db = if postgres {
            let url = postgres_url(test)?;
            opts.database_url = Some(url.clone());
            Db::Postgres(url)
        } else {
            Db::Sqlite(data.join("envseal.db"))
        };
        let server = Server::start_with(opts.clone());
        Some(Deployment {
            server,
            db,
            opts,
            anchors,
            _dir: dir,
        })
    }

    fn key(&self) -> PathBuf {
        self._dir.path().join("keys/anchor.key.pub")
    }

    /// Some audited work: a project and an environment.
    fn activity(&self, tag: &str) {
        envseal_e2e::create_env(&self.server, tag, "prod");
    }

    fn head(&self) -> i64 {
        let out = ok(self.server.cli().args(["audit", "verify"]), b"");
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("ok: "), "{out}");
        out.split("head ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Waits until the current head is anchored in the sink file.
    fn anchored(&self) -> i64 {
        let head = self.head();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&self.anchors).unwrap_or_default();
            let found = envseal_core::audit_anchor::anchors_in(&text)
                .iter()
                .any(|(_, a)| a.seq == head);
            if found {
                return head;
            }
            assert!(
                Instant::now() < deadline,
                "entry {head} was never anchored:\n{}",
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn verify(&self) -> (i32, String) {
        let (code, out, err) = run(
            self.server
                .cli()
                .args(["audit", "verify", "--anchors"])
                .arg(&self.anchors)
                .arg("--anchor-key")
                .arg(self.key()),
            b"",
        );
        (code, format!("{}{err}", String::from_utf8_lossy(&out)))
    }
}

fn deployments(test: &str) -> Vec<(&'static str, Deployment)> {
    let mut v = Vec::new();
    v.extend(Deployment::start(test, false).map(|d| ("sqlite", d)));
    v.extend(Deployment::start(test, true).map(|d| ("postgres", d)));
    v
}

#[test]
fn untouched_chain_matches_its_anchors() {
    for (name, d) in deployments("untouched_chain_matches_its_anchors") {
        d.activity("alpha");
        let head = d.anchored();
        let (code, out) = d.verify();
        assert_eq!(code, 0, "{name}: {out}");
        assert!(
            out.contains(&format!("latest: entry {head}")),
            "{name}: {out}"
        );
        // The key file is a real Ed25519 public key; the private key is not in the DB.
        assert!(std::fs::read_to_string(d.key())
            .unwrap()
            .contains("BEGIN PUBLIC KEY"));
        // A key that did not sign them finds no anchor.
        let other = d._dir.path().join("other.pub");
        std::fs::write(&other, "11".repeat(32)).unwrap();
        let (code, out, _) = run(
            d.server
                .cli()
                .args(["audit", "verify", "--anchors"])
                .arg(&d.anchors)
                .arg("--anchor-key")
                .arg(&other),
            b"",
        );
        let out = String::from_utf8_lossy(&out);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("no anchor signed by this key"),
            "{name}: {out}"
        );
    }
}

#[test]
fn truncated_tail_is_detected() {
    for (name, d) in deployments("truncated_tail_is_detected") {
        d.activity("alpha");
        let head = d.anchored();
        d.db.sql(&format!("DELETE FROM audit_log WHERE seq > {};", head - 3));
        // The chain alone still verifies: only the anchors show what is missing.
        assert_eq!(d.head(), head - 3, "{name}");
        let (code, out) = d.verify();
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains(&format!(
                "entries {}..{head} were removed (tail truncated)",
                head - 2
            )),
            "{name}: {out}"
        );
    }
}

#[test]
fn restored_older_database_copy_is_detected() {
    for (name, mut d) in deployments("restored_older_database_copy_is_detected") {
        d.activity("alpha");
        let saved = d.anchored();
        // Take a copy of the database as it is now.
        let backup = d._dir.path().join("backup");
        match d.db.clone() {
            Db::Sqlite(path) => {
                d.server.stop();
                copy_sqlite(&path, &backup);
                d.server = Server::start_with(d.opts.clone());
            }
            Db::Postgres(_) => {
                d.db.sql("CREATE TABLE audit_backup AS SELECT * FROM audit_log;");
            }
        }
        d.activity("beta");
        d.activity("gamma");
        let later = d.anchored();
        assert!(later >= saved + 4, "{name}");
        // Restore the older copy and carry on.
        d.server.stop();
        match d.db.clone() {
            Db::Sqlite(path) => copy_sqlite(&backup, &path),
            Db::Postgres(_) => {
                d.db.sql("BEGIN; DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup; COMMIT;");
            }
        }
        d.server = Server::start_with(d.opts.clone());
        for i in 0..4 {
            d.activity(&format!("delta{i}"));
        }
        // The restored chain is whole and even longer than the anchored one.
        assert!(d.head() > later, "{name}");
        let (code, out) = d.verify();
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("differs from its anchor"), "{name}: {out}");
        assert!(
            out.contains("an older copy of the database restored"),
            "{name}: {out}"
        );
    }
}

#[test]
fn whole_chain_rewritten_is_detected() {
    for (name, d) in deployments("whole_chain_rewritten_is_detected") {
        d.activity("alpha");
        d.anchored();
        // Rewrite history from the first entry and recompute every hash, as someone
        // with write access to the database could.
        let export = String::from_utf8(ok(d.server.cli().args(["audit", "export"]), b"")).unwrap();
        let mut prev = "0".repeat(64);
        let mut sql = String::from("BEGIN; DELETE FROM audit_log;\n");
        for line in export.lines() {
            let e: envseal_core::wire::AuditEntry = serde_json::from_str(line).unwrap();
            let mut row = envseal_server::store::AuditRow {
                seq: e.seq,
                ts: e.ts,
                actor: if e.seq == 1 {
                    "someone-else".into()
                } else {
                    e.actor
                },
                action: e.action,
                target: e.target,
                result: e.result,
                reason: e.reason,
                ip: e.ip,
                user_agent: e.user_agent,
                details: e.details,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = envseal_server::audit::entry_hash(&row);
            prev = row.hash.clone();
            let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
            sql.push_str(&format!(
                "INSERT INTO audit_log (seq, ts, actor, action, target, result, reason, ip, user_agent, details, prev_hash, hash) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n",
                row.seq, row.ts, q(&row.actor), q(&row.action), q(&row.target), q(&row.result),
                q(&row.reason), q(&row.ip), q(&row.user_agent), q(&row.details), q(&row.prev_hash), q(&row.hash)
            ));
        }
        sql.push_str("COMMIT;\n");
        d.db.sql(&sql);
        // Consistent on its own...
        d.head();
        // ...but not with what was anchored.
        let (code, out) = d.verify();
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("no earlier anchor matches: the chain was rewritten"),
            "{name}: {out}"
        );
    }
}

#[test]
fn altered_anchor_is_refused() {
    for (name, d) in deployments("altered_anchor_is_refused") {
        d.activity("alpha");
        let head = d.anchored();
        let text = std::fs::read_to_string(&d.anchors).unwrap();
        let forged = text.replace(
            &format!("\"seq\":{head},\"head_hash\""),
            &format!("\"seq\":{},\"head_hash\"", head - 1),
        );
        assert_ne!(forged, text);
        std::fs::write(&d.anchors, forged).unwrap();
        let (code, out) = d.verify();
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("does not carry a valid signature"),
            "{name}: {out}"
        );
    }
}

fn copy_sqlite(from: &Path, to: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{ext}", from.display()));
        let dst = PathBuf::from(format!("{}{ext}", to.display()));
        let _ = std::fs::remove_file(&dst);
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
