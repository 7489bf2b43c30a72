//! README's "Secure Dify in 10 minutes", run command by command by
//! `tests/quickstart-dify.sh` against a copy of Dify's files: the api's entrypoint ends
//! up with envseal's values, the files without them.

use envseal_e2e::{bin, skip_or_fail};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dify_files() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ENVSEAL_DIFY_FILES") {
        return Some(PathBuf::from(dir));
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while dir.pop() {
        if dir.join("shared/dify/2026/entrypoint.sh").is_file() {
            return Some(dir.join("shared/dify"));
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let Some(files) = dify_files() else {
        skip_or_fail(
            "the_readme_quickstart_runs_as_written",
            "Dify's files (shared/dify) not found; set ENVSEAL_DIFY_FILES",
        );
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let bin_dir = bin("envseal").parent().unwrap().to_path_buf();
    assert!(bin("envseal-server").exists());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("quickstart-dify.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("DIFY_FILES", &files)
        .env("WORK", work.path())
        .env("ENVSEAL_BIN_DIR", &bin_dir)
        .env("QUICKSTART_PORT", free_port().to_string())
        .env_remove("ENVSEAL_TOKEN")
        .env_remove("ENVSEAL_PROJECT")
        .env_remove("ENVSEAL_ENV")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{stderr}"
    );

    // The api's stand-in gunicorn saw envseal's values.
    let dump = std::fs::read(work.path().join("gunicorn.env")).expect("gunicorn ran");
    let env: BTreeMap<String, String> = dump
        .split(|&b| b == 0)
        .filter_map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    assert_eq!(env["REDIS_PASSWORD"], "n3w#p@ss/w%rd");
    assert_eq!(
        env["CELERY_BROKER_URL"],
        "redis://:n3w%23p%40ss%2Fw%25rd@redis:6379/1"
    );
    assert_ne!(
        env["SECRET_KEY"],
        "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U"
    );
    assert_eq!(
        env["INNER_API_KEY_FOR_PLUGIN"],
        env["PLUGIN_DIFY_INNER_API_KEY"]
    );
    assert!(!env.contains_key("ENVSEAL_TOKEN"));

    // The .env holds no secret any more; the original is kept, 0600.
    let docker = work.path().join("docker");
    let sanitised = std::fs::read_to_string(docker.join(".env")).unwrap();
    let vars =
        envseal_core::dotenv::to_map(&envseal_core::dotenv::parse(&sanitised, &|_| None).unwrap());
    assert!(
        !vars.values().any(|v| v == "difyai123456"),
        "a default left in .env"
    );
    assert!(!vars.contains_key("SECRET_KEY") && !vars.contains_key("DB_PASSWORD"));
    let backup = docker.join(".env.envseal-backup");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !docker.join(".env.envseal-backup.1").exists(),
        "second import rewrote"
    );
    // Nothing printed a value.
    for v in [&env["SECRET_KEY"], &env["REDIS_PASSWORD"]] {
        assert!(!stdout.contains(v.as_str()) && !stderr.contains(v.as_str()));
    }
}
