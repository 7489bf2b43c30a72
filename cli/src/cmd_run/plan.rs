//! Turns a fetched environment into what the child gets: its complete environment and
//! the secret files to write, after `--only`, `--require`, `--prefix`, `--file`,
//! `--mount`, `--override` and the profile's checks.
//!
//! Errors name variables, never values. Nothing here writes files or starts processes.

use super::Config;
use crate::profile_dify::{self, Origin};
use anyhow::Context as _;
use envseal_core::wire::EnvironmentExport;
use envseal_core::SecretValue;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;

/// The launcher's own credentials: never passed to the child, even with --pass-env.
pub(crate) const NEVER_PASSED: &[&str] = &["ENVSEAL_TOKEN", "ENVSEAL_FALLBACK_PASSPHRASE"];

/// Whether an inherited variable reaches the child: the launcher's own `ENVSEAL_*`
/// settings only when named with `--pass-env`, its credentials never.
fn inherited_passes(config: &Config, key: &OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return true;
    };
    if !key.starts_with(envseal_core::name::RESERVED_PREFIX) {
        return true;
    }
    !NEVER_PASSED.contains(&key) && config.pass_env.iter().any(|p| p == key)
}

/// A value to deliver as a file.
pub struct SecretFile {
    /// The secret's name.
    pub name: String,
    /// Where to write it (mode 0400).
    pub path: PathBuf,
    /// The value.
    pub value: SecretValue,
}

/// How one secret reaches the child.
enum Delivery {
    Env,
    File(PathBuf),
    Kept,
}

/// Everything needed to start the child.
pub struct ChildSpec {
    /// Program to run.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The child's complete environment.
    pub env: Vec<(OsString, OsString)>,
    /// Secret files to write before starting it.
    pub files: Vec<SecretFile>,
    delivered: Vec<(String, Delivery)>,
    replaced: Vec<String>,
}

impl Drop for ChildSpec {
    /// The environment holds copies of the values: wipe them.
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for (_, value) in self.env.drain(..) {
            value.into_vec().zeroize();
        }
    }
}

impl ChildSpec {
    /// Tells stderr which variables were kept from or replaced in the inherited
    /// environment. Names only.
    pub fn report_kept(&self) {
        let kept: Vec<&str> = self
            .delivered
            .iter()
            .filter(|(_, d)| matches!(d, Delivery::Kept))
            .map(|(n, _)| n.as_str())
            .collect();
        if !kept.is_empty() {
            eprintln!(
                "envseal: kept {} from the environment (--override replaces them)",
                kept.join(", ")
            );
        }
        if !self.replaced.is_empty() {
            eprintln!(
                "envseal: replaced empty or shipped-default values inherited for {}",
                self.replaced.join(", ")
            );
        }
    }
}

/// Builds the child's environment and files from `export`.
pub(crate) fn build(config: &Config, export: &EnvironmentExport) -> anyhow::Result<ChildSpec> {
    let where_ = format!("{}/{}", export.project, export.environment);
    let mut fetched: BTreeMap<String, (SecretValue, Origin)> = BTreeMap::new();
    for (name, wire) in &export.secrets {
        envseal_core::validate_env_var_name(name)
            .with_context(|| format!("environment {where_} holds an invalid name"))?;
        let value = wire
            .decode()
            .with_context(|| format!("secret {name} in {where_} is malformed"))?;
        fetched.insert(name.clone(), (value, Origin::Envseal));
    }
    let unknown = |flag: &str, names: &[String]| -> anyhow::Result<()> {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !fetched.contains_key(*n))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let hints: Vec<String> = missing
            .iter()
            .filter_map(|m| {
                crate::suggest::closest(m, fetched.keys().map(String::as_str))
                    .map(|s| format!("{m}: did you mean {s}?"))
            })
            .collect();
        let what = if flag == "--require" {
            "required secrets missing from"
        } else {
            "--only names secrets missing from"
        };
        let mut msg = format!("{what} {where_}: {}", missing.join(", "));
        if !hints.is_empty() {
            msg.push_str(" (");
            msg.push_str(&hints.join("; "));
            msg.push(')');
        }
        anyhow::bail!(msg)
    };
    unknown("--only", &config.only)?;
    unknown("--require", &config.require)?;
    if !config.only.is_empty() {
        fetched.retain(|name, _| config.only.contains(name));
    }
    for name in fetched.keys() {
        let target = format!("{}{name}", config.prefix);
        let allowed = config.allow_names.iter().any(|a| *a == target || a == name);
        envseal_core::check_deliverable(&target, allowed).map_err(|e| match e {
            envseal_core::NameError::Dangerous { .. } => {
                anyhow::anyhow!("{e} (--allow-name {target})")
            }
            e => anyhow::anyhow!("{e}; rename the secret in {where_}"),
        })?;
    }
    for (name, _) in &config.files {
        anyhow::ensure!(
            fetched.contains_key(name),
            "--file {name}: there is no secret {name} in {where_}"
        );
    }
    if let Some((profile, service)) = &config.profile {
        for (alias, source) in profile.aliases(*service) {
            if !fetched.contains_key(alias) {
                if let Some((value, _)) = fetched.get(source) {
                    let value = value.clone();
                    fetched.insert(alias.to_owned(), (value, Origin::Alias));
                }
            }
        }
    }

    let mut env: BTreeMap<OsString, (OsString, Origin)> = std::env::vars_os()
        .filter(|(k, _)| inherited_passes(config, k))
        .map(|(k, v)| (k, (v, Origin::Inherited)))
        .collect();
    let mut files: Vec<SecretFile> = Vec::new();
    let mut delivered = Vec::new();
    let mut replaced = Vec::new();
    for (name, (value, origin)) in fetched {
        let target = format!("{}{name}", config.prefix);
        let file_path = config
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .or_else(|| config.mount.as_ref().map(|dir| dir.join(&target)));
        if let Some(path) = file_path {
            if let Some(other) = files.iter().find(|f| f.path == path) {
                anyhow::bail!(
                    "{name} and {} would both be written to {}",
                    other.name,
                    path.display()
                );
            }
            delivered.push((target, Delivery::File(path.clone())));
            files.push(SecretFile { name, path, value });
            continue;
        }
        anyhow::ensure!(
            !value.expose().contains(&0),
            "{name} contains a NUL byte, which an environment variable cannot hold; \
             deliver it with --file"
        );
        let key = OsString::from(&target);
        let replace = match env.get(&key) {
            None => true,
            Some(_) if config.override_existing => true,
            Some((existing, _)) => match &config.profile {
                Some((profile, _))
                    if profile.is_secret(&target)
                        && (existing.is_empty()
                            || profile.is_shipped_default(existing.as_bytes())) =>
                {
                    replaced.push(target.clone());
                    true
                }
                _ => false,
            },
        };
        if replace {
            let os_value = OsString::from_vec(value.expose().to_vec());
            env.insert(key, (os_value, origin));
            delivered.push((target, Delivery::Env));
        } else {
            delivered.push((target, Delivery::Kept));
        }
    }
    for dir in files
        .iter()
        .filter_map(|f| f.path.parent())
        .collect::<std::collections::BTreeSet<_>>()
    {
        super::files::check_dir(dir, config.allow_non_tmpfs)?;
    }

    if let Some((profile, service)) = &config.profile {
        let mut view: profile_dify::View<'_> = env
            .iter()
            .filter_map(|(k, (v, o))| Some((k.to_str()?, (v.as_bytes(), *o))))
            .collect();
        for f in &files {
            view.entry(f.name.as_str())
                .or_insert((f.value.expose(), Origin::Envseal));
        }
        profile.check(*service, &view, &config.allow_defaults)?;
    }

    let mut command = config.command.iter().cloned();
    Ok(ChildSpec {
        program: command.next().unwrap_or_default(),
        args: command.collect(),
        env: env.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        files,
        delivered,
        replaced,
    })
}

/// `--dry-run`: one line per delivered name and how it is delivered. Never values.
pub(crate) fn print_dry_run(
    config: &Config,
    loaded: &super::source::Loaded,
    spec: &ChildSpec,
) -> anyhow::Result<()> {
    if !config.quiet {
        eprintln!("envseal: {}", loaded.describe());
    }
    let mut out = std::io::stdout().lock();
    for (name, delivery) in &spec.delivered {
        match delivery {
            Delivery::Env => writeln!(out, "{name}\tenv")?,
            Delivery::File(path) => writeln!(out, "{name}\tfile {}", path.display())?,
            Delivery::Kept => writeln!(out, "{name}\tkept (already set; --override replaces it)")?,
        }
    }
    out.flush()?;
    Ok(())
}
