//! `envseal secrets …`: set (from stdin or a file, never from the command line), get
//! (a value only with `--reveal`), list, rm, undelete, history, rollback, destroy.

use crate::client::seg;
use crate::global::{EnvTarget, Global};
use crate::output::{self, Format, FormatArg, Table};
use anyhow::Context as _;
use envseal_core::wire::{
    Destroy, PutSecret, Rollback, SecretList, SecretMeta, SecretWithValue, VersionList, VersionMeta,
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
        /// Store an empty value (refused by default: an empty stdin is usually a slip).
        #[arg(long)]
        allow_empty: bool,
        /// Store a name that changes how programs start (BASH_ENV, LD_PRELOAD, PATH…);
        /// `envseal run` then also needs `--allow-name NAME` to deliver it.
        #[arg(long)]
        allow_dangerous_name: bool,
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
        #[arg(long, conflicts_with = "format")]
        reveal: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List secret names and versions (no values).
    List {
        #[command(flatten)]
        target: EnvTarget,
        /// Include soft-deleted secrets.
        #[arg(long)]
        deleted: bool,
        #[command(flatten)]
        format: FormatArg,
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
        #[command(flatten)]
        format: FormatArg,
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

fn state(s: &SecretMeta) -> &'static str {
    if s.deleted_at.is_some() {
        "deleted"
    } else {
        "active"
    }
}

fn version_flags(v: &VersionMeta) -> String {
    let mut flags = Vec::new();
    if v.current {
        flags.push("current");
    }
    if v.destroyed {
        flags.push("destroyed");
    }
    flags.join(",")
}

fn meta_json(s: &SecretMeta) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "version": s.version,
        "description": s.description,
        "created_at": output::rfc3339(s.created_at),
        "updated_at": output::rfc3339(s.updated_at),
        "deleted_at": output::rfc3339_opt(s.deleted_at),
    })
}

fn version_json(v: &VersionMeta) -> serde_json::Value {
    serde_json::json!({
        "version": v.version,
        "created_at": output::rfc3339(v.created_at),
        "created_by": v.created_by,
        "current": v.current,
        "destroyed": v.destroyed,
    })
}

fn print_meta(
    meta: &SecretMeta,
    version: Option<&VersionMeta>,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let mut v = meta_json(meta);
            if let Some(kept) = version {
                v["kept_version"] = version_json(kept);
            }
            output::print_json(&v)
        }
        Format::Table => {
            let mut t = Table::new(&["FIELD", "VALUE"]);
            t.row(vec!["name".into(), meta.name.clone()]);
            t.row(vec!["version".into(), meta.version.to_string()]);
            t.row(vec!["description".into(), meta.description.clone()]);
            t.row(vec!["created".into(), output::human_time(meta.created_at)]);
            t.row(vec!["updated".into(), output::human_time(meta.updated_at)]);
            t.row(vec!["state".into(), state(meta).into()]);
            if let Some(kept) = version {
                t.row(vec![
                    format!("version {}", kept.version),
                    format!(
                        "created {} by {} {}",
                        output::human_time(kept.created_at),
                        kept.created_by,
                        version_flags(kept)
                    )
                    .trim_end()
                    .to_owned(),
                ]);
            }
            output::print(&t.render())?;
            eprintln!("envseal: add --reveal to print the value");
            Ok(())
        }
        Format::Tsv => {
            let v = version.map_or(meta.version, |k| k.version);
            println!("{}\tv{v}\t{}", meta.name, state(meta));
            Ok(())
        }
    }
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
            allow_empty,
            allow_dangerous_name,
        } => {
            let path = secret_path(&target, &name)?;
            envseal_core::check_deliverable(&name, allow_dangerous_name).map_err(|e| match e {
                envseal_core::NameError::Dangerous { .. } => {
                    anyhow::anyhow!("{e} (--allow-dangerous-name)")
                }
                e => e.into(),
            })?;
            let value = read_value(from_file, raw)?;
            anyhow::ensure!(
                allow_empty || !value.is_empty(),
                "the value is empty (0 bytes); nothing was stored. Pass --allow-empty to \
                 store an empty value"
            );
            let mut body = PutSecret::new(&value);
            body.cas = cas;
            body.description = description;
            body.derived = template.then_some(true);
            body.allow_dangerous_name = allow_dangerous_name;
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
            format,
        } => {
            let path = secret_path(&target, &name)?;
            let client = global.client()?;
            if reveal {
                let mut path = path;
                if let Some(v) = version {
                    path.push_str(&format!("?version={v}"));
                }
                let secret: SecretWithValue = client.get(&path)?;
                let value = secret.value.decode()?;
                let mut out = std::io::stdout().lock();
                out.write_all(value.expose())?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            // Metadata only: the value is never fetched without --reveal.
            let meta: SecretMeta = client.get(&format!("{path}/meta"))?;
            let shown = match version {
                None => None,
                Some(v) => {
                    let list: VersionList = client.get(&format!("{path}/versions"))?;
                    Some(
                        list.versions
                            .into_iter()
                            .find(|x| x.version == v)
                            .with_context(|| {
                                format!("{name} has no kept version {v} (see secrets history)")
                            })?,
                    )
                }
            };
            print_meta(&meta, shown.as_ref(), format.get())?;
        }
        SecretsCmd::List {
            target,
            deleted,
            format,
        } => {
            let path = format!(
                "{}/secrets{}",
                target.path(),
                if deleted { "?deleted=true" } else { "" }
            );
            let list: SecretList = global.client()?.get(&path)?;
            match format.get() {
                Format::Json => output::print_json(&serde_json::json!({
                    "project": target.project,
                    "environment": target.env,
                    "secrets": list.secrets.iter().map(meta_json).collect::<Vec<_>>(),
                }))?,
                Format::Table => {
                    let mut t = Table::new(&["NAME", "VERSION", "UPDATED", "STATE"]);
                    for s in &list.secrets {
                        t.row(vec![
                            s.name.clone(),
                            s.version.to_string(),
                            output::human_time(s.updated_at),
                            state(s).into(),
                        ]);
                    }
                    output::print(&t.render())?;
                }
                Format::Tsv => {
                    for s in list.secrets {
                        let state = if s.deleted_at.is_some() {
                            "\tdeleted"
                        } else {
                            ""
                        };
                        println!("{}\tv{}{state}", s.name, s.version);
                    }
                }
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
        SecretsCmd::History {
            target,
            name,
            format,
        } => {
            let path = format!("{}/versions", secret_path(&target, &name)?);
            let list: VersionList = global.client()?.get(&path)?;
            match format.get() {
                Format::Json => output::print_json(&serde_json::json!({
                    "name": name,
                    "versions": list.versions.iter().map(version_json).collect::<Vec<_>>(),
                }))?,
                Format::Table => {
                    let mut t = Table::new(&["VERSION", "CREATED", "BY", "FLAGS"]);
                    for v in &list.versions {
                        t.row(vec![
                            v.version.to_string(),
                            output::human_time(v.created_at),
                            v.created_by.clone(),
                            version_flags(v),
                        ]);
                    }
                    output::print(&t.render())?;
                }
                Format::Tsv => {
                    for v in &list.versions {
                        println!(
                            "v{}\t{}\t{}\t{}",
                            v.version,
                            v.created_at,
                            v.created_by,
                            version_flags(v)
                        );
                    }
                }
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
