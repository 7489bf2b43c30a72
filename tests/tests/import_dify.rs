//! `envseal import --dify`: Dify's real `.env.example` and a split layout built from
//! the same values, against the real server.

use envseal_e2e::{create_env, ok, run, set_secret, skip_or_fail, Server};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Dify's own files (`shared/dify/`), from `ENVSEAL_DIFY_FILES` or found above the
/// workspace.
fn dify_files(test: &str) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ENVSEAL_DIFY_FILES") {
        return Some(PathBuf::from(dir));
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while dir.pop() {
        let candidate = dir.join("shared/dify");
        if candidate.join("env.example").is_file() {
            return Some(candidate);
        }
    }
    skip_or_fail(
        test,
        "Dify's files (shared/dify) not found; set ENVSEAL_DIFY_FILES",
    );
    None
}

/// Every variable of Dify 1.13.3's `.env.example` that holds a secret value there.
const STORED: &[&str] = &[
    "ALIBABACLOUD_MYSQL_PASSWORD",
    "ALIYUN_OSS_ACCESS_KEY",
    "ALIYUN_OSS_SECRET_KEY",
    "ANALYTICDB_KEY_ID",
    "ANALYTICDB_KEY_SECRET",
    "ANALYTICDB_NAMESPACE_PASSWORD",
    "ANALYTICDB_PASSWORD",
    "AZURE_BLOB_ACCOUNT_KEY",
    "BAIDU_OBS_ACCESS_KEY",
    "BAIDU_OBS_SECRET_KEY",
    "BAIDU_VECTOR_DB_API_KEY",
    "CELERY_BROKER_URL",
    "CHROMA_SERVER_AUTHN_CREDENTIALS",
    "CODE_EXECUTION_API_KEY",
    "COUCHBASE_PASSWORD",
    "DB_PASSWORD",
    "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_PASSWORD",
    "HUAWEI_CLOUD_PASSWORD",
    "HUAWEI_OBS_ACCESS_KEY",
    "HUAWEI_OBS_SECRET_KEY",
    "IRIS_PASSWORD",
    "LINDORM_PASSWORD",
    "MATRIXONE_PASSWORD",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "OCEANBASE_VECTOR_PASSWORD",
    "OCI_ACCESS_KEY",
    "OCI_SECRET_KEY",
    "OPENGAUSS_PASSWORD",
    "OPENSEARCH_INITIAL_ADMIN_PASSWORD",
    "OPENSEARCH_PASSWORD",
    "ORACLE_PASSWORD",
    "ORACLE_PWD",
    "ORACLE_WALLET_PASSWORD",
    "PGVECTOR_PASSWORD",
    "PGVECTOR_POSTGRES_PASSWORD",
    "PGVECTO_RS_PASSWORD",
    "PLUGIN_DAEMON_KEY",
    "PLUGIN_DIFY_INNER_API_KEY",
    "QDRANT_API_KEY",
    "REDIS_PASSWORD",
    "RELYT_PASSWORD",
    "RESEND_API_KEY",
    "SANDBOX_API_KEY",
    "SECRET_KEY",
    "SUPABASE_API_KEY",
    "TABLESTORE_ACCESS_KEY_ID",
    "TABLESTORE_ACCESS_KEY_SECRET",
    "TENCENT_COS_SECRET_ID",
    "TENCENT_COS_SECRET_KEY",
    "TENCENT_VECTOR_DB_API_KEY",
    "TIDB_ON_QDRANT_API_KEY",
    "TIDB_PRIVATE_KEY",
    "TIDB_PUBLIC_KEY",
    "UPSTASH_VECTOR_TOKEN",
    "VASTBASE_PASSWORD",
    "VIKINGDB_ACCESS_KEY",
    "VIKINGDB_SECRET_KEY",
    "VOLCENGINE_TOS_ACCESS_KEY",
    "VOLCENGINE_TOS_SECRET_KEY",
    "WEAVIATE_API_KEY",
    "WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS",
];

/// Names the importer publishes from a stored secret (derived links), though the file
/// does not set them: the plugin daemon's and the api's names for the shared keys.
const LINKED: &[(&str, &str)] = &[
    ("DIFY_INNER_API_KEY", "PLUGIN_DIFY_INNER_API_KEY"),
    ("INNER_API_KEY_FOR_PLUGIN", "PLUGIN_DIFY_INNER_API_KEY"),
    ("SERVER_KEY", "PLUGIN_DAEMON_KEY"),
];

/// Look-alikes in the same file that are configuration and must stay there.
const CONFIG: &[&str] = &[
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "REFRESH_TOKEN_EXPIRE_DAYS",
    "RESET_PASSWORD_TOKEN_EXPIRY_MINUTES",
    "VECTOR_INDEX_NAME_PREFIX",
    "WEAVIATE_AUTHENTICATION_APIKEY_ENABLED",
    "ARCHIVE_STORAGE_ENABLED",
    "MIGRATION_ENABLED",
    "COUCHBASE_CONNECTION_STRING",
    "ORACLE_WALLET_LOCATION",
    "DB_USERNAME",
    "DB_HOST",
    "REDIS_HOST",
    "CONSOLE_API_URL",
    "TRIGGER_URL",
    "LOG_LEVEL",
    "STORAGE_TYPE",
    "VECTOR_STORE",
];

/// The shipped defaults the import must name.
const DEFAULTS: &[&str] = &[
    "SECRET_KEY",
    "DB_PASSWORD",
    "REDIS_PASSWORD",
    "CELERY_BROKER_URL",
    "SANDBOX_API_KEY",
    "CODE_EXECUTION_API_KEY",
    "PLUGIN_DAEMON_KEY",
    "PLUGIN_DIFY_INNER_API_KEY",
    "WEAVIATE_API_KEY",
    "MINIO_SECRET_KEY",
];

fn import(server: &Server, path: &Path, extra: &[&str]) -> (i32, String, String) {
    let path = path.to_str().unwrap();
    let mut args = vec!["import", "--dify", path, "-p", "dify", "-e", "prod"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(server.cli().args(&args), b"");
    (code, String::from_utf8(out).unwrap(), err)
}

fn export(server: &Server) -> BTreeMap<String, String> {
    let out = ok(
        server
            .cli()
            .args(["export", "-p", "dify", "-e", "prod", "--format", "json"]),
        b"",
    );
    serde_json::from_slice(&out).unwrap()
}

fn file_vars(text: &str) -> BTreeMap<String, String> {
    envseal_core::dotenv::to_map(&envseal_core::dotenv::parse(text, &|_| None).unwrap())
}

fn started() -> Server {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    server
}

/// The files of a directory, name → bytes, backups included.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn importing_env_example_stores_every_secret_and_no_config() {
    let Some(files) = dify_files("importing_env_example_stores_every_secret_and_no_config") else {
        return;
    };
    let original = std::fs::read_to_string(files.join("env.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, &original).unwrap();
    let server = started();

    let (code, out, err) = import(&server, dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let stored = export(&server);
    let names: Vec<&str> = stored
        .keys()
        .map(String::as_str)
        .filter(|n| !LINKED.iter().any(|(l, _)| l == n))
        .collect();
    assert_eq!(names, STORED, "stored set");
    for (linked, canonical) in LINKED {
        assert_eq!(
            stored[*linked], stored[*canonical],
            "{linked} follows {canonical}"
        );
    }
    for name in CONFIG {
        assert!(!stored.contains_key(*name), "{name} is config");
    }
    let vars = file_vars(&original);
    for name in STORED {
        assert_eq!(vars[*name], stored[*name], "{name} stored byte-exact");
    }

    // The table names every shipped default, and no value appears anywhere.
    for name in DEFAULTS {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("SHIPPED DEFAULT")),
            "{name} not reported as a shipped default:\n{out}"
        );
    }
    for value in stored.values().filter(|v| v.len() >= 6) {
        assert!(!out.contains(value.as_str()) && !err.contains(value.as_str()));
    }

    // The sanitised file keeps all config, no secret, and says where they went.
    let sanitised = std::fs::read_to_string(&env).unwrap();
    let left = file_vars(&sanitised);
    for name in STORED {
        assert!(!left.contains_key(*name), "{name} still in .env");
        assert!(sanitised.contains(&format!("# {name}: stored in envseal (project dify")));
    }
    for (name, value) in &vars {
        if !STORED.contains(&name.as_str()) {
            assert_eq!(left.get(name), Some(value), "{name} kept");
        }
    }
    let backup = dir.path().join(".env.envseal-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A second run changes nothing.
    let before = snapshot(dir.path());
    let (code, _, err) = import(&server, dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(export(&server), stored);
    assert_eq!(snapshot(dir.path()), before);
}

/// The split layout (`docker/.env` + `docker/envs/**/*.env`) of the same values, with
/// a variable set in several files: the result is the same as the single file's.
#[test]
fn split_layout_gives_the_same_result() {
    let Some(files) = dify_files("split_layout_gives_the_same_result") else {
        return;
    };
    let original = std::fs::read_to_string(files.join("env.example")).unwrap();
    let single = tempfile::tempdir().unwrap();
    std::fs::write(single.path().join(".env"), &original).unwrap();
    let server = started();
    assert_eq!(import(&server, single.path(), &[]).0, 0);
    let expected = export(&server);
    drop(server);

    let split = tempfile::tempdir().unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let third = lines.len() / 3;
    let envs = split.path().join("envs/core-services");
    std::fs::create_dir_all(&envs).unwrap();
    std::fs::write(
        envs.join("shared.env"),
        // An earlier value of DB_PASSWORD that .env overrides, and interpolation
        // against .env (compose's project environment).
        format!(
            "{}\nDB_PASSWORD=overridden-in-dotenv\n",
            lines[..third].join("\n")
        ),
    )
    .unwrap();
    std::fs::write(
        split.path().join("envs/security.env"),
        lines[third..2 * third].join("\n"),
    )
    .unwrap();
    std::fs::write(
        split.path().join(".env"),
        format!(
            "{}\nDB_PASSWORD=difyai123456\n",
            lines[2 * third..].join("\n")
        ),
    )
    .unwrap();
    let server = started();
    let (code, out, err) = import(&server, split.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(export(&server), expected);
    assert!(out.contains("set in several files"), "{out}");
    for file in [
        split.path().join(".env"),
        envs.join("shared.env"),
        split.path().join("envs/security.env"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let vars = file_vars(&text);
        assert!(
            !vars.values().any(|v| v == "difyai123456"),
            "{}",
            file.display()
        );
        assert!(!text.contains("overridden-in-dotenv"), "{}", file.display());
        let backup = PathBuf::from(format!("{}.envseal-backup", file.display()));
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", backup.display());
    }
}

/// Quotes, escapes, `#`, `$`, interpolation, CRLF and multi-line values arrive
/// byte-exact.
#[test]
fn compose_quoting_survives_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(
        &env,
        concat!(
            "export REDIS_PASSWORD='p#ss w$rd'\r\n",
            "DB_PASSWORD=\"q\\\"uote\\\\d \\$HOME\"   # comment\r\n",
            "CELERY_BROKER_URL=redis://:${DB_HOST:-x}@redis:6379/1\r\n",
            "SMTP_PASSWORD=plain#not-a-comment\r\n",
            "RESEND_API_KEY=\"line1\nline2\"\n",
            "LOG_LEVEL=INFO\n",
        ),
    )
    .unwrap();
    let server = started();
    let (code, _, err) = import(&server, &env, &[]);
    assert_eq!(code, 0, "{err}");
    let stored = export(&server);
    assert_eq!(stored["REDIS_PASSWORD"], "p#ss w$rd");
    assert_eq!(stored["DB_PASSWORD"], "q\"uote\\d $HOME");
    assert_eq!(stored["CELERY_BROKER_URL"], "redis://:x@redis:6379/1");
    assert_eq!(stored["SMTP_PASSWORD"], "plain#not-a-comment");
    assert_eq!(stored["RESEND_API_KEY"], "line1\nline2");
    assert!(!stored.contains_key("LOG_LEVEL"));
    let left = std::fs::read_to_string(&env).unwrap();
    assert!(
        left.contains("LOG_LEVEL=INFO\n") && !left.contains("line2"),
        "{left}"
    );
    assert!(
        left.contains("# REDIS_PASSWORD: stored in envseal"),
        "{left}"
    );
}

#[test]
fn dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DB_PASSWORD=canary-dry-7f3a\nLOG_LEVEL=INFO\n",
    )
    .unwrap();
    let before = snapshot(dir.path());
    let server = started();
    let (code, out, err) = import(&server, dir.path(), &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would be stored"), "{out}");
    assert!(export(&server).is_empty());
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_differing_stored_value_is_refused_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let text = "DB_PASSWORD=canary-new-1c2d\nREDIS_PASSWORD=canary-redis-9e8f\n";
    std::fs::write(&env, text).unwrap();
    let server = started();
    set_secret(&server, "dify", "prod", "DB_PASSWORD", b"canary-old-5a6b");
    let (code, out, err) = import(&server, dir.path(), &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("DB_PASSWORD") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(
        !err.contains("canary") && !out.contains("canary"),
        "{err}{out}"
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);
    assert_eq!(export(&server).len(), 1, "nothing else stored");

    let (code, _, err) = import(&server, dir.path(), &["--overwrite"]);
    assert_eq!(code, 0, "{err}");
    let stored = export(&server);
    assert_eq!(stored["DB_PASSWORD"], "canary-new-1c2d");
    assert_eq!(stored["REDIS_PASSWORD"], "canary-redis-9e8f");
}

#[test]
fn an_empty_secret_key_takes_the_key_dify_generated() {
    let dir = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    std::fs::write(
        storage.path().join(".dify_secret_key"),
        "canary-generated-by-dify-0a1b2c\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET_KEY=\nLOG_LEVEL=INFO\n").unwrap();
    let server = started();
    let storage_arg = storage.path().to_str().unwrap();
    let (code, _, err) = import(&server, dir.path(), &["--dify-storage", storage_arg]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        export(&server)["SECRET_KEY"],
        "canary-generated-by-dify-0a1b2c"
    );
    assert!(!err.contains("canary-generated"), "{err}");
}

#[test]
fn an_empty_secret_key_without_storage_is_generated_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET_KEY=\n").unwrap();
    let server = started();
    let (code, _, err) = import(&server, dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let key = &export(&server)["SECRET_KEY"];
    assert_eq!(key.len(), 64, "token_urlsafe(48)");
    assert!(err.contains("signs users out"), "{err}");
    assert!(!err.contains(key.as_str()));
}

#[test]
fn replace_defaults_changes_free_defaults_together_and_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        concat!(
            "DB_PASSWORD=difyai123456\n",
            "PLUGIN_DAEMON_KEY=lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi\n",
            "CODE_EXECUTION_API_KEY=dify-sandbox\n",
            "SANDBOX_API_KEY=dify-sandbox\n",
        ),
    )
    .unwrap();
    let server = started();
    let (code, _, err) = import(&server, dir.path(), &["--replace-defaults"]);
    assert_eq!(code, 0, "{err}");
    let stored = export(&server);
    assert_eq!(stored["DB_PASSWORD"], "difyai123456");
    assert!(
        err.contains("envseal rotate") && err.contains("DB_PASSWORD"),
        "{err}"
    );
    assert_ne!(stored["CODE_EXECUTION_API_KEY"], "dify-sandbox");
    assert_eq!(stored["CODE_EXECUTION_API_KEY"], stored["SANDBOX_API_KEY"]);
    assert!(stored["PLUGIN_DAEMON_KEY"].len() >= 43);
}

/// Derived values: the importer stores CELERY_BROKER_URL as a template over
/// REDIS_PASSWORD, so a new password with reserved characters reaches the URL in the
/// next export, percent-encoded; links follow their canonical secret.
#[test]
fn changing_redis_password_changes_the_derived_broker_url() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        concat!(
            "REDIS_PASSWORD=canary-redis-1\n",
            "CELERY_BROKER_URL=redis://:canary-redis-1@redis:6379/1\n",
            "PLUGIN_DAEMON_KEY=canary-daemon-1\n",
        ),
    )
    .unwrap();
    let server = started();
    let (code, out, err) = import(&server, dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("derived: redis://:${REDIS_PASSWORD|urlencode}@redis:6379/1"),
        "{out}"
    );
    set_secret(&server, "dify", "prod", "REDIS_PASSWORD", b"canary#@/%x");
    set_secret(
        &server,
        "dify",
        "prod",
        "PLUGIN_DAEMON_KEY",
        b"canary-daemon-2",
    );
    let stored = export(&server);
    assert_eq!(
        stored["CELERY_BROKER_URL"],
        "redis://:canary%23%40%2F%25x@redis:6379/1"
    );
    assert_eq!(stored["SERVER_KEY"], "canary-daemon-2");

    // Unknown references and cycles are refused when written, by name.
    let (code, _, err) = run(
        server.cli().args([
            "secrets",
            "set",
            "-p",
            "dify",
            "-e",
            "prod",
            "X_URL",
            "--template",
        ]),
        b"redis://:${NOPE}@h/1",
    );
    assert_ne!(code, 0);
    assert!(err.contains("NOPE"), "{err}");
    let (code, _, err) = run(
        server.cli().args([
            "secrets",
            "set",
            "-p",
            "dify",
            "-e",
            "prod",
            "REDIS_PASSWORD",
            "--template",
        ]),
        b"${CELERY_BROKER_URL}",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cycle") && err.contains("CELERY_BROKER_URL"),
        "{err}"
    );
    // A secret a derived value uses cannot be deleted from under it.
    let (code, _, err) = run(
        server.cli().args([
            "secrets",
            "rm",
            "-p",
            "dify",
            "-e",
            "prod",
            "REDIS_PASSWORD",
        ]),
        b"",
    );
    assert_ne!(code, 0);
    assert!(err.contains("CELERY_BROKER_URL"), "{err}");
    assert!(!err.contains("canary"), "{err}");
}
