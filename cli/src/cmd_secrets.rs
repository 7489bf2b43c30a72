//! `envseal secrets …`: set (from stdin or a file, never from the command line), get
//! (a value only with `--reveal`), list, rm, undelete, history, rollback, destroy.

use crate::client::seg;
use crate::global::{EnvTarget, Global};
use anyhow::Context as _;
use envseal_core::wire::{
    Destroy, PutSecret, Rollback, SecretList, SecretMeta, SecretWithValue, VersionList,
};
use envseal_core::{validate_env_var_name, SecretValue, MAX_VALUE_BYTES};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum SecretsCmd {
    /// Store a new version. The value is read from stdin (one trailing newline is
    /// dropped unless --raw) or from --from-file (byte-exact).
    Set {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name (an environment-variable name).
        name: String,
        /// Read the value from this file, byte for byte.
        #[arg(long, conflicts_with = "raw")]
        from_file: Option<PathBuf>,
        /// Keep stdin byte for byte (no newline trimming).
        #[arg(long)]
        raw: bool,
        /// Check-and-set: only write if the current version is N (0: only if new).
        #[arg(long)]
        cas: Option<i64>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// The value is a template over other secrets of the environment
        /// (`${NAME}`, `${NAME|urlencode}`, `$$`), resolved in every export.
        #[arg(long)]
        template: bool,
    },
    /// Show a secret's metadata; with --reveal, write its value to stdout.
    Get {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
        /// A kept version instead of the current one.
        #[arg(long)]
        version: Option<i64>,
        /// Print the value (byte-exact, no newline added).
        #[arg(long)]
        reveal: bool,
    },
    /// List secret names and versions (no values).
    List {
        #[command(flatten)]
        target: EnvTarget,
        /// Include soft-deleted secrets.
        #[arg(long)]
        deleted: bool,
    },
    /// Soft-delete a secret (undelete restores it).
    Rm {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
    },
    /// Restore a soft-deleted secret.
    Undelete {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
    },
    /// List kept versions.
    History {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
    },
    /// Make an older version current again (as a new version).
    Rollback {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
        /// Version to restore.
        version: i64,
    },
    /// Crypto-erase versions for good.
    Destroy {
        #[command(flatten)]
        target: EnvTarget,
        /// Secret name.
        name: String,
        /// Versions to erase.
        #[arg(long = "version", required = true)]
        versions: Vec<i64>,
    },
}

fn secret_path(target: &EnvTarget, name: &str) -> anyhow::Result<String> {
    validate_env_var_name(name)?;
    Ok(format!("{}/secrets/{}", target.path(), seg(name)))
}

fn read_value(from_file: Option<PathBuf>, raw: bool) -> anyhow::Result<SecretValue> {
    let mut bytes = Vec::new();
    match from_file {
        Some(path) => {
            bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("envseal: reading the value from stdin; end with Ctrl-D");
            }
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the value from stdin")?;
            if !raw {
                if bytes.ends_with(b"\r\n") {
                    bytes.truncate(bytes.len() - 2);
                } else if bytes.ends_with(b"\n") {
                    bytes.pop();
                }
            }
        }
    }
    anyhow::ensure!(
        bytes.len() <= MAX_VALUE_BYTES,
        "the value is {} bytes; envseal stores values of at most {MAX_VALUE_BYTES} bytes",
        bytes.len()
    );
    Ok(SecretValue::new(bytes))
}

pub fn run(global: &Global, cmd: SecretsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretsCmd::Set {
            target,
            name,
            from_file,
            raw,
            cas,
            description,
            template,
        } => {
            let path = secret_path(&target, &name)?;
            let value = read_value(from_file, raw)?;
            let mut body = PutSecret::new(&value);
            body.cas = cas;
            body.description = description;
            body.derived = template.then_some(true);
            let meta: SecretMeta = global.client()?.send("PUT", &path, &body)?;
            eprintln!(
                "stored {} version {} ({} bytes)",
                meta.name,
                meta.version,
                value.len()
            );
        }
        SecretsCmd::Get {
            target,
            name,
            version,
            reveal,
        } => {
            let mut path = secret_path(&target, &name)?;
            if let Some(v) = version {
                path.push_str(&format!("?version={v}"));
            }
            let secret: SecretWithValue = global.client()?.get(&path)?;
            let value = secret.value.decode()?;
            if reveal {
                let mut out = std::io::stdout().lock();
                out.write_all(value.expose())?;
                out.flush()?;
            } else {
                println!(
                    "{} version {} ({} bytes); add --reveal to print the value",
                    secret.name,
                    secret.version,
                    value.len()
                );
            }
        }
        SecretsCmd::List { target, deleted } => {
            let path = format!(
                "{}/secrets{}",
                target.path(),
                if deleted { "?deleted=true" } else { "" }
            );
            let list: SecretList = global.client()?.get(&path)?;
            for s in list.secrets {
                let state = if s.deleted_at.is_some() {
                    "\tdeleted"
                } else {
                    ""
                };
                println!("{}\tv{}{state}", s.name, s.version);
            }
        }
        SecretsCmd::Rm { target, name } => {
            global.client()?.delete(&secret_path(&target, &name)?)?;
            eprintln!("deleted {name} (envseal secrets undelete restores it)");
        }
        SecretsCmd::Undelete { target, name } => {
            let path = format!("{}/undelete", secret_path(&target, &name)?);
            let meta: SecretMeta = global
                .client()?
                .send("POST", &path, &serde_json::json!({}))?;
            eprintln!("restored {} at version {}", meta.name, meta.version);
        }
        SecretsCmd::History { target, name } => {
            let path = format!("{}/versions", secret_path(&target, &name)?);
            let list: VersionList = global.client()?.get(&path)?;
            for v in list.versions {
                let mut flags = Vec::new();
                if v.current {
                    flags.push("current");
                }
                if v.destroyed {
                    flags.push("destroyed");
                }
                println!(
                    "v{}\t{}\t{}\t{}",
                    v.version,
                    v.created_at,
                    v.created_by,
                    flags.join(",")
                );
            }
        }
        SecretsCmd::Rollback {
            target,
            name,
            version,
        } => {
            let path = format!("{}/rollback", secret_path(&target, &name)?);
            let meta: SecretMeta = global
                .client()?
                .send("POST", &path, &Rollback { version })?;
            eprintln!(
                "{} now at version {} (value of version {version})",
                meta.name, meta.version
            );
        }
        SecretsCmd::Destroy {
            target,
            name,
            versions,
        } => {
            let path = format!("{}/destroy", secret_path(&target, &name)?);
            let answer: serde_json::Value =
                global
                    .client()?
                    .send("POST", &path, &Destroy { versions })?;
            eprintln!("destroyed {} version(s) of {name}", answer["destroyed"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
