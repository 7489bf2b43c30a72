//! Crash consistency on SQLite: the server is SIGKILLed again and again while clients
//! write, and after every restart each acknowledged write is there, every secret
//! decrypts, and the audit chain verifies. Also: one server per data directory.

use envseal_e2e::{http, Server, ServerOptions};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const WRITERS: usize = 4;

fn restart(data_dir: &std::path::Path, admin: &str) -> Server {
    Server::start_with(ServerOptions {
        data_dir: Some(data_dir.to_path_buf()),
        admin_token: Some(admin.to_owned()),
        ..ServerOptions::default()
    })
}

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every acknowledged write is readable with its value, the whole environment
/// exports (every current version decrypts), and the audit chain verifies.
fn check_everything(server: &Server, acked: &BTreeMap<String, String>, round: usize) {
    let bearer = auth(&server.admin_token);
    let export = http(
        &server.url,
        "GET",
        "/v1/projects/crash/environments/prod/export",
        &[("Authorization", bearer.as_str())],
        None,
    )
    .expect("export");
    assert_eq!(export.status, 200, "round {round}: export {}", export.body);
    let secrets = export.json()["secrets"].clone();
    for (name, value) in acked {
        assert_eq!(
            secrets[name]["value"].as_str(),
            Some(value.as_str()),
            "round {round}: acknowledged write {name} is missing or wrong after SIGKILL"
        );
    }
    let verify = http(
        &server.url,
        "GET",
        "/v1/audit/verify",
        &[("Authorization", bearer.as_str())],
        None,
    )
    .expect("verify");
    assert_eq!(verify.status, 200, "round {round}: {}", verify.body);
    assert_eq!(verify.json()["ok"], true, "round {round}: {}", verify.body);
}

#[test]
fn sigkill_during_concurrent_writes_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_with(ServerOptions {
        data_dir: Some(data_dir.clone()),
        ..ServerOptions::default()
    });
    let admin = server.admin_token.clone();
    create_project_env(&server, "crash", "prod");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (url, bearer) = (server.url.clone(), auth(&admin));
            let (acked, stop) = (acked.clone(), stop.clone());
            writers.push(std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("K_{round}_{w}_{i}");
                    let value = format!("v-{round}-{w}-{i}-{}", "x".repeat(i % 50));
                    let body = serde_json::json!({ "value": value }).to_string();
                    let path = format!("/v1/projects/crash/environments/prod/secrets/{name}");
                    match http(
                        &url,
                        "PUT",
                        &path,
                        &[("Authorization", bearer.as_str())],
                        Some(&body),
                    ) {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().insert(name, value);
                        }
                        // The connection died with the server: not acknowledged.
                        Ok(_) | Err(_) => {}
                    }
                    i += 1;
                }
            }));
        }
        // Kill at a different moment each round, while the writers are busy.
        std::thread::sleep(Duration::from_millis(150 + 37 * round as u64 % 200));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        server = restart(&data_dir, &admin);
        check_everything(&server, &acked.lock().unwrap(), round);
    }
    let total = acked.lock().unwrap().len();
    assert!(
        total > ROUNDS * WRITERS,
        "too few writes were acknowledged to prove anything ({total})"
    );
}

#[test]
fn second_server_on_one_data_dir_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut first = Server::start_with(ServerOptions {
        data_dir: Some(data_dir.clone()),
        ..ServerOptions::default()
    });
    let mut second = Command::new(envseal_e2e::bin("envseal-server"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("ENVSEAL_DATABASE_URL")
        .env("ENVSEAL_BOOTSTRAP_TOKEN", &first.admin_token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server on the same data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("another envseal-server"), "{err}");
    assert!(err.contains("already using the database"), "{err}");
    let pid = first.pid().unwrap();
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    // The lock dies with its holder, even on SIGKILL: a restart is not blocked.
    let admin = first.admin_token.clone();
    first.kill();
    let again = restart(&data_dir, &admin);
    let r = http(&again.url, "GET", "/healthz", &[], None).unwrap();
    assert_eq!(r.status, 200);
}

/// Project and environment through the API (admin token).
fn create_project_env(server: &Server, project: &str, env: &str) {
    let auth = format!("Bearer {}", server.admin_token);
    let h = [("Authorization", auth.as_str())];
    let body = serde_json::json!({ "name": project }).to_string();
    let r = http(&server.url, "POST", "/v1/projects", &h, Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let body = serde_json::json!({ "name": env }).to_string();
    let path = format!("/v1/projects/{project}/environments");
    let r = http(&server.url, "POST", &path, &h, Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
}
