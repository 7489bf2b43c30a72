//! `envseal scan` end to end: exit codes, redaction, JSON, SARIF (validated against
//! the SARIF 2.1.0 schema), baselines, state files, staged scans and the
//! `--check-server` client half against a stub server.

#[path = "../../scanner/tests/common/corpus.rs"]
mod corpus;
#[path = "../../scanner/tests/common/git.rs"]
mod git;

use corpus::{github_token, password};
use git::Repo;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Output};

fn envseal(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envseal"))
        .args(args)
        .current_dir(dir)
        .env_remove("ENVSEAL_TOKEN")
        .env("ENVSEAL_ADDR", "http://127.0.0.1:9")
        .output()
        .expect("envseal runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("stdout is JSON")
}

#[test]
fn exit_codes_and_redaction() {
    let mut repo = Repo::new();
    repo.write("README.md", "clean\n");
    repo.commit("clean");
    let clean = envseal(&["scan"], repo.path());
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));

    let key = github_token('p');
    repo.write("deploy.sh", &format!("export GITHUB_TOKEN={key}\n"));
    repo.commit("leak");
    for format in ["human", "json", "sarif"] {
        let out = envseal(&["scan", "--format", format], repo.path());
        assert_eq!(out.status.code(), Some(1), "{format}");
        assert!(
            !stdout(&out).contains(&key),
            "{format} output must not reveal the value"
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains(&key));
    }
    let report = json(&envseal(&["scan", "--format", "json"], repo.path()));
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "github-token");
    assert_eq!(f["file"], "deploy.sh");
    assert_eq!(f["line"], 1);
    assert_eq!(f["commit"].as_str().unwrap().len(), 40);
    assert_eq!(f["fingerprint"].as_str().unwrap().len(), 32);
    assert!(f["locations"].is_array());
    assert!(f.get("secret").is_none());
    let revealed = json(&envseal(
        &["scan", "--format", "json", "--reveal"],
        repo.path(),
    ));
    assert_eq!(revealed["findings"][0]["secret"], key.as_str());

    let dir = tempfile::tempdir().unwrap();
    let err = envseal(&["scan"], dir.path());
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("--no-git"));
    let missing = envseal(&["scan", "--no-git", "does-not-exist"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn no_git_directory_finds_every_true_secret_and_no_decoy() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus::cases();
    for c in &cases {
        let p = dir.path().join(&c.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &c.content).unwrap();
    }
    let out = envseal(&["scan", "--no-git", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let files: std::collections::BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["locations"].as_array().unwrap().clone())
        .map(|l| l["file"].as_str().unwrap().to_owned())
        .collect();
    for c in &cases {
        assert_eq!(files.contains(&c.path), !c.is_decoy(), "{}", c.path);
    }
}

#[test]
fn sarif_is_valid_sarif_2_1_0() {
    let dir = tempfile::tempdir().unwrap();
    for c in corpus::cases().iter().filter(|c| !c.is_decoy()).take(12) {
        let p = dir.path().join(&c.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &c.content).unwrap();
    }
    let out = envseal(&["scan", "--no-git", "--format", "sarif"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "SARIF errors: {errors:#?}");
    assert_eq!(log["version"], "2.1.0");
    assert!(log["runs"][0]["results"].as_array().unwrap().len() >= 12);
    // A broken log is rejected, so the check above can fail.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(validator.iter_errors(&broken).next().is_some());
}

#[test]
fn baseline_is_keyed_by_fingerprint_not_line() {
    let mut repo = Repo::new();
    let key = github_token('p');
    repo.write("a.sh", &format!("T={key}\n"));
    repo.commit("one");
    let baseline = repo.path().join(".envseal-baseline.json");
    let b = baseline.to_str().unwrap();
    let w = envseal(&["scan", "--write-baseline", b], repo.path());
    assert_eq!(w.status.code(), Some(0));
    assert!(!std::fs::read_to_string(&baseline).unwrap().contains(&key));
    assert_eq!(
        envseal(&["scan", "--baseline", b], repo.path())
            .status
            .code(),
        Some(0)
    );
    // Moving the value elsewhere keeps it accepted; a new value is reported.
    repo.write("other/place.sh", &format!("# moved\n\nT={key}\n"));
    repo.commit("move");
    assert_eq!(
        envseal(&["scan", "--baseline", b], repo.path())
            .status
            .code(),
        Some(0)
    );
    let new = github_token('s');
    repo.write("b.sh", &format!("T={new}\n"));
    repo.commit("new");
    let out = envseal(&["scan", "--baseline", b, "--format", "json"], repo.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["findings"].as_array().unwrap().len(), 1);
}

#[test]
fn state_file_scans_only_new_commits() {
    let mut repo = Repo::new();
    repo.write("a.sh", &format!("T={}\n", github_token('p')));
    repo.commit("one");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json");
    let s = state.to_str().unwrap();
    assert_eq!(
        envseal(&["scan", "--state", s], repo.path()).status.code(),
        Some(1)
    );
    assert_eq!(
        envseal(&["scan", "--state", s], repo.path()).status.code(),
        Some(0)
    );
    let pw = password();
    repo.write("b/.env", &format!("DB_PASSWORD={pw}\n"));
    repo.commit("two");
    let out = envseal(
        &["scan", "--state", s, "--format", "json", "--reveal"],
        repo.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);
    assert_eq!(report["findings"][0]["secret"], pw.as_str());
    let since = envseal(&["scan", "--since", "HEAD~1"], repo.path());
    assert_eq!(since.status.code(), Some(1));
    let since = envseal(&["scan", "--since", "HEAD"], repo.path());
    assert_eq!(since.status.code(), Some(0));
    let bad = envseal(&["scan", "--since", "no-such-rev"], repo.path());
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn staged_blocks_an_added_key() {
    let mut repo = Repo::new();
    repo.write("README.md", "x\n");
    repo.commit("init");
    assert_eq!(
        envseal(&["scan", "--staged"], repo.path()).status.code(),
        Some(0)
    );
    repo.write("x.py", &format!("KEY = \"{}\"\n", github_token('p')));
    repo.git(&["add", "x.py"]);
    assert_eq!(
        envseal(&["scan", "--staged"], repo.path()).status.code(),
        Some(1)
    );
}

/// A one-request HTTP server: records the request, answers with `body`.
fn stub_server(body: String) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.to_ascii_lowercase().starts_with("content-length:") {
                len = line[15..].trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut req_body = vec![0; len];
        reader.read_exact(&mut req_body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (head, String::from_utf8(req_body).unwrap())
    });
    (addr, handle)
}

#[test]
fn check_server_marks_live_findings() {
    let mut repo = Repo::new();
    let key = github_token('p');
    repo.write("a.sh", &format!("T={key}\n"));
    repo.commit("leak");
    let (addr, server) = stub_server(
        r#"{"matches":[{"id":0,"project":"dify","environment":"prod","name":"GITHUB_TOKEN"}]}"#
            .to_owned(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_envseal"))
        .args(["scan", "--check-server", "--format", "json"])
        .current_dir(repo.path())
        .env("ENVSEAL_ADDR", &addr)
        .env("ENVSEAL_TOKEN", "test-token")
        .output()
        .unwrap();
    let (head, body) = server.join().unwrap();
    assert!(head.starts_with("POST /v1/leaks/check HTTP/1.1"), "{head}");
    assert!(head.contains("Bearer test-token"));
    let req: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(req["candidates"][0]["value"], key.as_str());
    assert_eq!(req["candidates"][0]["id"], 0);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["findings"][0]["live"], "dify/prod/GITHUB_TOKEN");
    assert!(!stdout(&out).contains(&key));
}

#[test]
fn without_check_server_nothing_is_sent() {
    let mut repo = Repo::new();
    repo.write("a.sh", &format!("T={}\n", github_token('p')));
    repo.commit("leak");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_envseal"))
        .args(["scan"])
        .current_dir(repo.path())
        .env("ENVSEAL_ADDR", &addr)
        .env("ENVSEAL_TOKEN", "test-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

/// The version 1 fingerprint: unkeyed SHA-256 of a domain tag and the value.
fn v1_fingerprint(value: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"envseal-scan-fingerprint-v1\0");
    h.update(value.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn baseline_fingerprints_are_salted_argon2id_not_a_dictionary_reversible_hash() {
    let mut repo = Repo::new();
    let pw = password();
    repo.write("app/.env", &format!("DB_PASSWORD={pw}\n"));
    repo.commit("one");
    let baseline = repo.path().join("baseline.json");
    let b = baseline.to_str().unwrap();
    assert_eq!(
        envseal(&["scan", "--write-baseline", b], repo.path())
            .status
            .code(),
        Some(0)
    );
    let text = std::fs::read_to_string(&baseline).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["version"], 2);
    let params = &file["fingerprint"];
    assert_eq!(params["algorithm"], "argon2id");
    assert!(params["m_kib"].as_u64().unwrap() >= 8 * 1024);
    assert_eq!(params["salt"].as_str().unwrap().len(), 32);
    let fp = file["findings"][0]["fingerprint"].as_str().unwrap();
    // A dictionary that holds the password cannot confirm it with one cheap hash.
    assert_ne!(fp, v1_fingerprint(&pw));
    assert!(!text.contains(&pw));
    // Rewriting keeps the salt, so the file is stable; the baseline still applies.
    envseal(&["scan", "--write-baseline", b], repo.path());
    assert_eq!(std::fs::read_to_string(&baseline).unwrap(), text);
    assert_eq!(
        envseal(&["scan", "--baseline", b], repo.path())
            .status
            .code(),
        Some(0)
    );
    // Another repository's baseline gets another salt: no shared table.
    let mut other = Repo::new();
    other.write("app/.env", &format!("DB_PASSWORD={pw}\n"));
    other.commit("one");
    let b2 = other.path().join("baseline.json");
    envseal(
        &["scan", "--write-baseline", b2.to_str().unwrap()],
        other.path(),
    );
    let file2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&b2).unwrap()).unwrap();
    assert_ne!(file2["fingerprint"]["salt"], params["salt"]);
    assert_ne!(file2["findings"][0]["fingerprint"].as_str().unwrap(), fp);
}

#[test]
fn version_1_baseline_is_read_once_with_a_migration_message() {
    let mut repo = Repo::new();
    let key = github_token('p');
    repo.write("a.sh", &format!("T={key}\n"));
    repo.commit("one");
    let baseline = repo.path().join("old-baseline.json");
    let b = baseline.to_str().unwrap();
    std::fs::write(
        &baseline,
        format!(
            "{{\"version\":1,\"findings\":[{{\"fingerprint\":\"{}\",\"rule\":\"github-token\",\"file\":\"a.sh\"}}]}}\n",
            v1_fingerprint(&key)
        ),
    )
    .unwrap();
    let out = envseal(&["scan", "--baseline", b], repo.path());
    assert_eq!(out.status.code(), Some(0), "the old baseline still applies");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("version 1"), "{err}");
    assert!(err.contains("--write-baseline"), "{err}");
    // Migrating writes version 2; afterwards no message.
    let m = envseal(
        &["scan", "--baseline", b, "--write-baseline", b],
        repo.path(),
    );
    assert_eq!(m.status.code(), Some(0));
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(file["version"], 2);
    let again = envseal(&["scan", "--baseline", b], repo.path());
    assert_eq!(again.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&again.stderr).contains("version 1"));
    // An unknown version is a clear error, not a silent pass.
    std::fs::write(&baseline, "{\"version\":7,\"findings\":[]}\n").unwrap();
    let bad = envseal(&["scan", "--baseline", b], repo.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("version 7"));
}

#[test]
fn sarif_carries_salted_fingerprints_and_their_parameters_only() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password();
    std::fs::write(dir.path().join(".env"), format!("DB_PASSWORD={pw}\n")).unwrap();
    let out = envseal(&["scan", "--no-git", "--format", "sarif"], dir.path());
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &log["runs"][0];
    assert_eq!(run["properties"]["fingerprint"]["algorithm"], "argon2id");
    let fp = run["results"][0]["partialFingerprints"]["envsealValue/v2"]
        .as_str()
        .unwrap();
    assert_eq!(fp.len(), 32);
    assert_ne!(fp, v1_fingerprint(&pw));
    assert!(run["results"][0]["partialFingerprints"]
        .get("envsealValue/v1")
        .is_none());
}
