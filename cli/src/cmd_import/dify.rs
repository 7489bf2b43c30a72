//! `envseal import --dify PATH`: moves a Dify install's secrets into envseal.
//!
//! PATH is Dify's `docker/` directory (its `envs/**/*.env` files, then `.env`, which
//! wins, as compose reads them) or one `.env` file. Each variable is classified with
//! the Dify catalogue; secrets are stored (check-and-set, nothing overwritten without
//! `--overwrite`), every file read is rewritten without them (a comment says where
//! they went) and the original is kept beside it with mode 0600. The table printed at
//! the end names variables, never values. A second run changes nothing.

use crate::client::seg;
use crate::global::{EnvTarget, Global};
use anyhow::Context as _;
use base64::Engine as _;
use envseal_core::dify::{catalogue, Class};
use envseal_core::dotenv::{self, Entry};
use envseal_core::wire::{EnvironmentExport, PutSecret, SecretList, SecretMeta};
use envseal_core::{validate_env_var_name, SecretValue};
use rand::RngCore as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Options of `--dify`.
#[derive(clap::Args, Default, Clone)]
pub struct DifyOptions {
    /// Show what would be stored and rewritten; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace stored values that differ from the files' (otherwise refused).
    #[arg(long)]
    pub overwrite: bool,
    /// Dify's api storage directory (`docker/volumes/app/storage`): when SECRET_KEY
    /// is empty, import the key Dify generated there (`.dify_secret_key`).
    #[arg(long, value_name = "DIR")]
    pub dify_storage: Option<PathBuf>,
    /// Generate strong values for shipped defaults that can change freely; list the
    /// ones that need `envseal rotate` on their server (database, Redis).
    #[arg(long)]
    pub replace_defaults: bool,
}

/// The name of the file that keeps an original.
pub const BACKUP_SUFFIX: &str = ".envseal-backup";

/// One file read, in compose's order.
pub struct Source {
    /// Where it was read from.
    pub path: PathBuf,
    text: String,
    entries: Vec<Entry>,
}

/// What happens to one variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A secret with a value: stored and removed from the files.
    Store,
    /// A secret whose files leave it empty: nothing to store, left in the file.
    Empty,
    /// Configuration: left in the file.
    Config,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The variable.
    pub name: String,
    /// What the import does with it.
    pub action: Action,
    /// Its value is one of Dify's shipped defaults.
    pub shipped_default: bool,
    /// A remark (names only).
    pub note: Option<String>,
}

/// The import worked out from the files, before anything is stored or written.
pub struct Plan {
    /// The files, in the order compose reads them.
    pub sources: Vec<Source>,
    /// Name → value compose ends up with (the last file wins).
    values: BTreeMap<String, Zeroizing<String>>,
    /// One row per variable, sorted by name.
    pub rows: Vec<Row>,
}

impl Plan {
    /// The secrets to store, name → value.
    pub fn secrets(&self) -> BTreeMap<&str, &str> {
        self.rows
            .iter()
            .filter(|r| r.action == Action::Store)
            .map(|r| (r.name.as_str(), self.values[&r.name].as_str()))
            .collect()
    }
}

/// The files of a Dify install in compose's precedence (the last wins).
pub fn layout(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
        return Ok(vec![path.to_path_buf()]);
    }
    let root_env = path.join(".env");
    anyhow::ensure!(
        root_env.is_file(),
        "{} has no .env file; pass Dify's docker/ directory or a .env file",
        path.display()
    );
    let mut files = Vec::new();
    let envs = path.join("envs");
    if envs.is_dir() {
        collect_env_files(&envs, &mut files)?;
    }
    files.sort();
    files.push(root_env);
    Ok(files)
}

fn collect_env_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_env_files(&path, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "env") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and classifies the files. `.env` (the last file) is compose's project
/// environment: the other files interpolate against it.
pub fn plan(files: &[PathBuf]) -> anyhow::Result<Plan> {
    let read = |path: &Path, lookup: &dyn Fn(&str) -> Option<String>| -> anyhow::Result<Source> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (UTF-8 text expected)", path.display()))?;
        let entries =
            dotenv::parse(&text, lookup).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
            entries,
        })
    };
    let (last, rest) = files.split_last().context("no file to import")?;
    let project = read(last, &|_| None)?;
    let project_env = dotenv::to_map(&project.entries);
    let mut sources = Vec::new();
    for path in rest {
        sources.push(read(path, &|k| project_env.get(k).cloned())?);
    }
    sources.push(project);

    let mut values: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut setters: BTreeMap<String, usize> = BTreeMap::new();
    for source in &sources {
        for e in &source.entries {
            if let Some(v) = &e.value {
                values.insert(e.key.clone(), Zeroizing::new(v.clone()));
                *setters.entry(e.key.clone()).or_default() += 1;
            }
        }
    }
    let c = catalogue();
    let mut rows = Vec::new();
    for (name, value) in &values {
        let class = c.classify(name, value);
        let action = match class {
            Class::Secret if value.is_empty() => Action::Empty,
            Class::Secret => {
                validate_env_var_name(name).with_context(|| {
                    format!("{name} holds a secret but is not a valid variable name")
                })?;
                Action::Store
            }
            Class::Config => Action::Config,
        };
        let shipped_default = action == Action::Store && c.is_default_for(name, value);
        let note = (action == Action::Store && setters[name] > 1).then(|| {
            "set in several files; the last one wins, the others are kept in the backups".to_owned()
        });
        rows.push(Row {
            name: name.clone(),
            action,
            shipped_default,
            note,
        });
    }
    Ok(Plan {
        sources,
        values,
        rows,
    })
}

/// `text` without the assignments of `removed`; `None` when nothing changes.
pub fn sanitise(
    text: &str,
    entries: &[Entry],
    removed: &BTreeSet<&str>,
    to: &str,
) -> Option<String> {
    let mut drop: BTreeMap<usize, Option<&str>> = BTreeMap::new();
    for e in entries {
        if e.value.is_some() && removed.contains(e.key.as_str()) {
            drop.insert(e.first_line, Some(e.key.as_str()));
            for l in e.first_line + 1..=e.last_line {
                drop.insert(l, None);
            }
        }
    }
    if drop.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let last_of: BTreeMap<usize, usize> = entries
        .iter()
        .map(|e| (e.first_line, e.last_line))
        .collect();
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        match drop.get(&i) {
            None => out.push_str(line),
            Some(None) => {}
            Some(Some(key)) => {
                // The statement's own line end (that of its last line).
                let last = lines[last_of.get(&i).copied().unwrap_or(i).min(lines.len() - 1)];
                let ending = if last.ends_with("\r\n") {
                    "\r\n"
                } else if last.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                out.push_str(&format!("# {key}: stored in envseal ({to}){ending}"));
            }
        }
    }
    Some(out)
}

/// Name → template, for the catalogue's links and templates whose value in the files
/// is exactly what the template gives from the other stored values.
fn derived_values(plan: &Plan) -> BTreeMap<String, String> {
    let c = catalogue();
    let stored = |n: &str| {
        plan.rows
            .iter()
            .any(|r| r.name == n && r.action == Action::Store)
    };
    let mut out = BTreeMap::new();
    for (canonical, name) in c.links() {
        if !stored(canonical) || c.canonical(canonical).is_some() {
            continue;
        }
        // A linked name the files do not set, or set to the same value, is published
        // from the canonical one; a differing value stays a plain secret.
        let same = match plan.values.get(*name) {
            None => true,
            Some(v) => crate::cmd_run::ct_eq(plan.values[*canonical].as_bytes(), v.as_bytes()),
        };
        if same {
            out.insert((*name).to_owned(), format!("${{{canonical}}}"));
        }
    }
    for (name, template) in c.templates() {
        if !stored(name) {
            continue;
        }
        if let Some(value) =
            expand_template(template, |r| stored(r).then(|| plan.values[r].as_str()))
        {
            if crate::cmd_run::ct_eq(value.as_bytes(), plan.values[*name].as_bytes()) {
                out.insert((*name).to_owned(), (*template).to_owned());
            }
        }
    }
    out
}

/// What a catalogue template gives (`${NAME}`, `${NAME|urlencode}`), or `None`
/// when a reference is missing. Percent-encodes as the server does.
fn expand_template<'a>(
    template: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let inner = &rest[start + 2..end];
        let (name, encode) = match inner.split_once('|') {
            Some((n, "urlencode")) => (n, true),
            Some(_) => return None,
            None => (inner, false),
        };
        let value = lookup(name)?;
        if encode {
            out.push_str(
                &percent_encoding::percent_encode(value.as_bytes(), URLENCODE).to_string(),
            );
        } else {
            out.push_str(value);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The server's `urlencode`: all but RFC 3986's unreserved characters.
const URLENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A new strong value for `name` (SECRET_KEY: as Dify's own `token_urlsafe(48)`).
fn generate(name: &str) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new(vec![0u8; if name == "SECRET_KEY" { 48 } else { 32 }]);
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*bytes))
}

/// Runs the import.
pub fn run(
    global: &Global,
    target: &EnvTarget,
    path: &Path,
    opts: &DifyOptions,
) -> anyhow::Result<ExitCode> {
    let files = layout(path)?;
    let mut plan = plan(&files)?;
    let c = catalogue();
    let client = global.client()?;
    let export: EnvironmentExport = client.get(&format!("{}/export", target.path()))?;
    let list: SecretList = client.get(&format!("{}/secrets", target.path()))?;
    let versions: BTreeMap<String, i64> = list
        .secrets
        .into_iter()
        .map(|s| (s.name, s.version))
        .collect();
    let mut notes: Vec<String> = Vec::new();

    // SECRET_KEY: Dify generates one into its storage when the file leaves it empty.
    let secret_key_empty = plan
        .rows
        .iter()
        .any(|r| r.name == "SECRET_KEY" && r.action == Action::Empty);
    if secret_key_empty && !export.secrets.contains_key("SECRET_KEY") {
        let value = match &opts.dify_storage {
            Some(dir) => {
                let file = dir.join(".dify_secret_key");
                let text = Zeroizing::new(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?,
                );
                let key = Zeroizing::new(text.trim().to_owned());
                anyhow::ensure!(!key.is_empty(), "{} is empty", file.display());
                notes.push(format!(
                    "SECRET_KEY: imported the key Dify generated ({})",
                    file.display()
                ));
                key
            }
            None => {
                notes.push(
                    "SECRET_KEY: the files leave it empty, so a new key was generated; this \
                     signs users out and invalidates signed file URLs and password-reset \
                     links. To keep the key Dify generated, run again with --dify-storage \
                     docker/volumes/app/storage before anything else uses the new one"
                        .to_owned(),
                );
                generate("SECRET_KEY")
            }
        };
        plan.values.insert("SECRET_KEY".into(), value);
        for r in &mut plan.rows {
            if r.name == "SECRET_KEY" {
                r.action = Action::Store;
            }
        }
    }

    // --replace-defaults: fresh values for defaults that can change freely.
    let mut needs_rotate = Vec::new();
    if opts.replace_defaults {
        let mut fresh: BTreeMap<&'static str, Zeroizing<String>> = BTreeMap::new();
        let names: Vec<String> = plan
            .rows
            .iter()
            .filter(|r| r.action == Action::Store && r.shipped_default)
            .map(|r| r.name.clone())
            .collect();
        for name in names {
            if c.template(&name).is_some() {
                // Derived from its references; it follows them.
                continue;
            }
            if c.needs_rotation(&name) {
                needs_rotate.push(name);
                continue;
            }
            // Linked names get the canonical's new value.
            let canonical = c.canonical(&name).unwrap_or_else(|| {
                c.links()
                    .iter()
                    .find(|(can, _)| *can == name)
                    .map_or("", |(can, _)| *can)
            });
            let value = if canonical.is_empty() {
                generate(&name)
            } else {
                fresh
                    .entry(canonical)
                    .or_insert_with(|| generate(canonical))
                    .clone()
            };
            plan.values.insert(name.clone(), value);
            for r in &mut plan.rows {
                if r.name == name {
                    r.shipped_default = false;
                    r.note = Some("shipped default replaced by a generated value".into());
                }
            }
        }
    }

    // Links and templates: stored as derived values when the files agree with them.
    let derived = derived_values(&plan);
    for (name, template) in &derived {
        match plan.rows.iter_mut().find(|r| &r.name == name) {
            Some(r) => {
                r.action = Action::Store;
                r.note.get_or_insert_with(|| format!("derived: {template}"));
            }
            None => plan.rows.push(Row {
                name: name.clone(),
                action: Action::Store,
                shipped_default: false,
                note: Some(format!("linked name, derived: {template}")),
            }),
        }
    }
    // A derived value's value is what the export will give: its canonical's.
    for (name, template) in &derived {
        if !plan.values.contains_key(name) {
            if let Some(canonical) = template
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
            {
                let v = plan.values[canonical].clone();
                plan.values.insert(name.clone(), v);
            }
        }
    }

    // Compare with what is stored; refuse differing values unless --overwrite.
    let mut writes: Vec<(String, Option<i64>)> = Vec::new();
    let mut conflicts = Vec::new();
    for row in plan.rows.iter_mut().filter(|r| r.action == Action::Store) {
        let value = &plan.values[&row.name];
        match export.secrets.get(&row.name) {
            Some(stored) => {
                let stored = stored.decode()?;
                if crate::cmd_run::ct_eq(stored.expose(), value.as_bytes()) {
                    row.note.get_or_insert_with(|| "already stored".into());
                } else if opts.overwrite {
                    writes.push((row.name.clone(), versions.get(&row.name).copied()));
                    row.note = Some("stored value replaced (--overwrite)".into());
                } else {
                    conflicts.push(row.name.clone());
                }
            }
            None => writes.push((row.name.clone(), Some(0))),
        }
    }
    anyhow::ensure!(
        conflicts.is_empty(),
        "these secrets are already stored with a different value: {}; nothing was \
         changed. Pass --overwrite to replace them",
        conflicts.join(", ")
    );

    let to = format!("project {}, environment {}", target.project, target.env);
    let stored: BTreeSet<&str> = plan
        .rows
        .iter()
        .filter(|r| r.action == Action::Store)
        .map(|r| r.name.as_str())
        .collect();
    let rewrites: Vec<(&Source, String)> = plan
        .sources
        .iter()
        .filter_map(|s| Some((s, sanitise(&s.text, &s.entries, &stored, &to)?)))
        .collect();

    if !opts.dry_run {
        // Plain values first: a derived value's references must exist when it is written.
        writes.sort_by_key(|(name, _)| derived.contains_key(name));
        for (name, cas) in &writes {
            let (value, is_derived) = match derived.get(name) {
                Some(t) => (SecretValue::new(t.as_bytes().to_vec()), true),
                None => (
                    SecretValue::new(plan.values[name].as_bytes().to_vec()),
                    false,
                ),
            };
            let mut body = PutSecret::new(&value);
            body.cas = *cas;
            body.derived = is_derived.then_some(true);
            body.description = Some("imported from a Dify install".into());
            let _: SecretMeta = client
                .send(
                    "PUT",
                    &format!("{}/secrets/{}", target.path(), seg(name)),
                    &body,
                )
                .with_context(|| format!("storing {name}"))?;
        }
        for (source, text) in &rewrites {
            rewrite(&source.path, &source.text, text)?;
        }
    }

    print_table(&plan.rows, opts.dry_run)?;
    for (source, _) in &rewrites {
        eprintln!(
            "envseal: {} {} (original kept as {}{BACKUP_SUFFIX}, mode 0600)",
            if opts.dry_run {
                "would rewrite"
            } else {
                "rewrote"
            },
            source.path.display(),
            source.path.display()
        );
    }
    for note in &notes {
        eprintln!("envseal: {note}");
    }
    if !needs_rotate.is_empty() {
        eprintln!(
            "envseal: shipped defaults that need `envseal rotate` on their server (the \
             database or Redis holds them too): {}",
            needs_rotate.join(", ")
        );
    }
    let defaults: Vec<&str> = plan
        .rows
        .iter()
        .filter(|r| r.shipped_default)
        .map(|r| r.name.as_str())
        .collect();
    if !defaults.is_empty() {
        eprintln!(
            "envseal: warning: {} secret(s) still hold Dify's shipped default: {}",
            defaults.len(),
            defaults.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps the original (0600, never overwritten) and replaces the file atomically,
/// keeping its mode.
fn rewrite(path: &Path, original: &str, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut backup = PathBuf::from(format!("{}{BACKUP_SUFFIX}", path.display()));
    let mut n = 1;
    while backup.exists() {
        backup = PathBuf::from(format!("{}{BACKUP_SUFFIX}.{n}", path.display()));
        n += 1;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&backup)
        .with_context(|| format!("creating {}", backup.display()))?;
    f.write_all(original.as_bytes())?;
    f.sync_all()?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().context("a file path has a name")?;
    let tmp = dir.join(format!(".{}.envseal-tmp", name.to_string_lossy()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("replacing {}", path.display()));
    }
    Ok(())
}

fn print_table(rows: &[Row], dry_run: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "{:width$}  {:<24}  NOTE", "NAME", "RESULT")?;
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| (a.action, &a.name).cmp(&(b.action, &b.name)));
    for r in sorted {
        let result = match (r.action, r.shipped_default) {
            (Action::Store, false) if dry_run => "would be stored",
            (Action::Store, false) => "stored",
            (Action::Store, true) => "stored, SHIPPED DEFAULT",
            (Action::Empty, _) => "secret, empty (left)",
            (Action::Config, _) => "left as config",
        };
        writeln!(
            out,
            "{:width$}  {result:<24}  {}",
            r.name,
            r.note.as_deref().unwrap_or("")
        )?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_removes_whole_statements_and_keeps_line_ends() {
        let text = "A=1\r\nPW=\"multi\nline\"\r\n# keep\r\nB=2\r\n";
        let entries = dotenv::parse(text, &|_| None).unwrap();
        let removed = BTreeSet::from(["PW"]);
        let out = sanitise(text, &entries, &removed, "here").unwrap();
        assert_eq!(
            out,
            "A=1\r\n# PW: stored in envseal (here)\r\n# keep\r\nB=2\r\n"
        );
        assert!(sanitise(
            &out,
            &dotenv::parse(&out, &|_| None).unwrap(),
            &removed,
            "here"
        )
        .is_none());
    }
}
