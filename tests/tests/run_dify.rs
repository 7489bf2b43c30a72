//! `envseal run --profile dify` in front of a stand-in for Dify's api entrypoint, and
//! the launcher's promise never to show a value: canaries on every failure path.

use envseal_e2e::{create_env, launcher, machine_token, run, set_secret, Server};
use std::collections::BTreeMap;
use std::path::Path;

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----\n";
const SHIPPED_SECRET_KEY: &str = "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U";
const SHIPPED_INNER_KEY: &str = "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1";

fn canary(tag: &str) -> String {
    format!("canary-{tag}-5e0b8c1d9a")
}

/// A healthy Dify environment: every value a canary, the linked ones consistent.
fn good_secrets() -> Vec<(&'static str, String)> {
    let redis = format!("{}#@/:%", canary("redis"));
    vec![
        ("SECRET_KEY", canary("secret-key")),
        ("DB_PASSWORD", canary("db")),
        (
            "CELERY_BROKER_URL",
            format!("redis://:{}%23%40%2F%3A%25@redis:6379/1", canary("redis")),
        ),
        ("REDIS_PASSWORD", redis),
        ("CODE_EXECUTION_API_KEY", canary("sandbox")),
        ("SANDBOX_API_KEY", canary("sandbox")),
        ("PLUGIN_DAEMON_KEY", canary("daemon")),
        ("PLUGIN_DIFY_INNER_API_KEY", canary("inner")),
        ("OPENAI_API_KEY", format!("sk-{}", canary("openai"))),
        ("TLS_PRIVATE_KEY_PEM", format!("{PEM}{}\n", canary("pem"))),
    ]
}

struct Dify {
    server: Server,
    token: String,
    dir: tempfile::TempDir,
}

fn dify(secrets: &[(&str, String)]) -> Dify {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    for (name, value) in secrets {
        set_secret(&server, "dify", "prod", name, value.as_bytes());
    }
    let token = machine_token(&server, "dify", "prod");
    let dir = tempfile::tempdir().unwrap();
    write_entrypoint(dir.path());
    Dify { server, token, dir }
}

/// Dify's api `entrypoint.sh` in miniature: dispatch on MODE, `exec` the server. The
/// fake `gunicorn` dumps its environment NUL-separated, byte for byte.
fn write_entrypoint(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let scripts = [
        (
            dir.join("entrypoint.sh"),
            r#"#!/bin/bash
set -e
if [[ "${MIGRATION_ENABLED}" == "true" ]]; then
  echo "Running migrations"
fi
if [[ "${MODE}" == "worker" ]]; then
  exec celery -A app.celery worker -P gevent -c 1 --loglevel INFO
elif [[ "${MODE}" == "beat" ]]; then
  exec celery -A app.celery beat --loglevel INFO
else
  exec gunicorn --bind "0.0.0.0:5001" --workers 1 app:app
fi
"#,
        ),
        (
            bin.join("gunicorn"),
            "#!/bin/sh\necho \"gunicorn $*\" > \"$DUMP.argv\"\nexec env -0 > \"$DUMP\"\n",
        ),
        (
            bin.join("celery"),
            "#!/bin/sh\necho \"celery $*\" > \"$DUMP.argv\"\nexec env -0 > \"$DUMP\"\n",
        ),
    ];
    for (path, text) in scripts {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Dify {
    /// The launcher as compose would start it: `environment:` already holds the
    /// compose defaults for what the sanitised .env no longer has.
    fn launch(&self, extra: &[&str]) -> std::process::Command {
        let mut cmd = launcher(&self.server, &self.token, "dify", "prod");
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("DUMP", self.dump_path())
            .env("MODE", "api")
            .env("LOG_LEVEL", "INFO")
            .env("SECRET_KEY", SHIPPED_SECRET_KEY)
            .env("INNER_API_KEY_FOR_PLUGIN", SHIPPED_INNER_KEY)
            .env("S3_SECRET_KEY", "")
            .args(["--profile", "dify"])
            .args(extra)
            .arg("--")
            .arg("/bin/bash")
            .arg(self.dir.path().join("entrypoint.sh"));
        cmd
    }

    fn dump_path(&self) -> std::path::PathBuf {
        self.dir.path().join("env.dump")
    }

    fn dumped_env(&self) -> BTreeMap<String, Vec<u8>> {
        let bytes = std::fs::read(self.dump_path()).expect("the fake gunicorn ran");
        bytes
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let eq = e.iter().position(|&b| b == b'=').unwrap();
                (
                    String::from_utf8(e[..eq].to_vec()).unwrap(),
                    e[eq + 1..].to_vec(),
                )
            })
            .collect()
    }
}

fn assert_no_canary(out: &[u8], err: &str) {
    let out = String::from_utf8_lossy(out);
    for text in [&*out, err] {
        assert!(!text.contains("canary-"), "a value leaked: {text}");
        assert!(
            !text.contains("BEGIN PRIVATE KEY"),
            "a value leaked: {text}"
        );
    }
}

#[test]
fn dify_api_entrypoint_gets_every_secret_byte_exact() {
    let secrets = good_secrets();
    let d = dify(&secrets);
    let (code, out, err) = run(&mut d.launch(&[]), b"");
    assert_eq!(code, 0, "{err}");
    assert_no_canary(&out, &err);
    let argv = std::fs::read_to_string(format!("{}.argv", d.dump_path().display())).unwrap();
    assert!(argv.starts_with("gunicorn --bind 0.0.0.0:5001"), "{argv}");
    let env = d.dumped_env();
    for (name, value) in &secrets {
        assert_eq!(
            env.get(*name).map(Vec::as_slice),
            Some(value.as_bytes()),
            "{name} did not arrive byte-exact"
        );
    }
    // Compose aliases are published, and compose's shipped defaults were replaced.
    assert_eq!(
        env["INNER_API_KEY_FOR_PLUGIN"],
        canary("inner").into_bytes()
    );
    assert_eq!(env["SECRET_KEY"], canary("secret-key").into_bytes());
    assert_eq!(env["LOG_LEVEL"], b"INFO");
    assert_eq!(env["MODE"], b"api");
    assert!(
        !env.contains_key("ENVSEAL_TOKEN"),
        "the token must not reach Dify"
    );
    assert!(err.contains("replaced empty or shipped-default values inherited for"));
    assert!(err.contains("SECRET_KEY"), "{err}");
}

#[test]
fn worker_mode_dispatches_too() {
    let d = dify(&good_secrets());
    let mut cmd = d.launch(&[]);
    cmd.env("MODE", "worker");
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 0, "{err}");
    let argv = std::fs::read_to_string(format!("{}.argv", d.dump_path().display())).unwrap();
    assert!(argv.starts_with("celery -A app.celery worker"), "{argv}");
}

fn refused(d: &Dify, extra: &[&str]) -> String {
    let (code, out, err) = run(&mut d.launch(extra), b"");
    assert_eq!(code, 2, "expected a refusal: {err}");
    assert_no_canary(&out, &err);
    assert!(!d.dump_path().exists(), "the entrypoint must not have run");
    err
}

#[test]
fn missing_required_secret_is_refused_and_named_without_values() {
    let secrets: Vec<_> = good_secrets()
        .into_iter()
        .filter(|(n, _)| *n != "DB_PASSWORD")
        .collect();
    let d = dify(&secrets);
    let err = refused(&d, &[]);
    assert!(err.contains("DB_PASSWORD is required"), "{err}");
}

#[test]
fn shipped_defaults_are_refused_unless_allowed() {
    let mut secrets = good_secrets();
    for (name, value) in secrets.iter_mut() {
        if name.ends_with("SANDBOX_API_KEY") || *name == "CODE_EXECUTION_API_KEY" {
            *value = "dify-sandbox".into();
        }
    }
    let d = dify(&secrets);
    let err = refused(&d, &[]);
    assert!(
        err.contains("SANDBOX_API_KEY (from envseal) is one of Dify's shipped default"),
        "{err}"
    );
    assert!(!err.contains("dify-sandbox"), "{err}");
    // An inherited default the server has no value for is refused as well.
    let mut cmd = d.launch(&[]);
    cmd.env("WEAVIATE_API_KEY", "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih");
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 2);
    assert!(err.contains("WEAVIATE_API_KEY (inherited"), "{err}");
    // Allowing one name is not allowing the others.
    let (code, _, err) = run(
        &mut d.launch(&["--allow-defaults", "CODE_EXECUTION_API_KEY"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SANDBOX_API_KEY (from envseal)"), "{err}");
    assert!(
        !err.contains("CODE_EXECUTION_API_KEY (from envseal)"),
        "{err}"
    );
    let (code, out, err) = run(
        &mut d.launch(&["--allow-defaults", "SANDBOX_API_KEY,CODE_EXECUTION_API_KEY"]),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_no_canary(&out, &err);
}

#[test]
fn linked_values_must_agree() {
    let mut secrets = good_secrets();
    for (name, value) in secrets.iter_mut() {
        match *name {
            "SANDBOX_API_KEY" => *value = canary("other-sandbox"),
            "CELERY_BROKER_URL" => {
                *value = format!("redis://:{}#@/:%@redis:6379/1", canary("redis"))
            }
            _ => {}
        }
    }
    let d = dify(&secrets);
    let err = refused(&d, &[]);
    assert!(
        err.contains("CODE_EXECUTION_API_KEY and SANDBOX_API_KEY must be equal"),
        "{err}"
    );
    assert!(
        err.contains("CELERY_BROKER_URL does not carry REDIS_PASSWORD"),
        "{err}"
    );
}

#[test]
fn canary_never_printed_on_any_path() {
    let secrets = good_secrets();
    let d = dify(&secrets);
    // --require of a missing name, --only, --dry-run, a file collision: names only.
    let (code, out, err) = run(
        &mut d.launch(&["--only", "SECRET_KEY,DB_PASSWORD", "--require", "NOPE"]),
        b"",
    );
    assert_eq!(code, 2);
    assert_no_canary(&out, &err);
    assert!(
        err.contains("required secrets missing from dify/prod: NOPE"),
        "{err}"
    );
    let (code, out, err) = run(
        &mut d.launch(&[
            "--only",
            "SECRET_KEY,DB_PASSWORD,REDIS_PASSWORD,CELERY_BROKER_URL,CODE_EXECUTION_API_KEY,\
             PLUGIN_DAEMON_KEY,PLUGIN_DIFY_INNER_API_KEY,TLS_PRIVATE_KEY_PEM",
            "--dry-run",
        ]),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_no_canary(&out, &err);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("SECRET_KEY\tenv"), "{out}");
    assert!(out.contains("TLS_PRIVATE_KEY_PEM\tenv"), "{out}");
    let (code, out, err) = run(
        &mut d.launch(&[
            "--file",
            "SECRET_KEY=/dev/shm/x",
            "--file",
            "DB_PASSWORD=/dev/shm/x",
        ]),
        b"",
    );
    assert_eq!(code, 2);
    assert_no_canary(&out, &err);
    assert!(err.contains("already used by another --file"), "{err}");
}
