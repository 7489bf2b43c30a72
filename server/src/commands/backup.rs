//! `envseal-server backup --to FILE` and `envseal-server restore --from FILE`.
//!
//! A backup is an online, consistent snapshot of the SQLite database taken with
//! `VACUUM INTO` inside one read transaction: the server may keep serving, and the copy
//! holds exactly the committed state at one instant (a whole audit chain, every
//! version with its wrapped key). It holds ciphertext only; the master key is not
//! copied unless `--with-master-key` asks for it, because a backup next to its key is
//! as good as plaintext. PostgreSQL is backed up with `pg_dump` (docs/OPERATIONS.md).
//!
//! Restore refuses to run while a server holds the data directory, checks the file
//! (SQLite integrity, an envseal schema), and moves it into place atomically; the next
//! start applies any newer migrations.

use crate::store::lock;
use crate::ServerArgs;
use anyhow::Context as _;
use clap::Args;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `backup` options.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where to write the snapshot (must not exist).
    #[arg(long)]
    pub to: PathBuf,
    /// Also copy the master key file to FILE.master-key (keep the two apart).
    #[arg(long)]
    pub with_master_key: bool,
}

/// `restore` options.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A file written by `envseal-server backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace an existing database in the data directory.
    #[arg(long)]
    pub replace: bool,
}

/// The SQLite database file the server would open, or an error naming the PostgreSQL
/// route.
fn sqlite_file(args: &ServerArgs) -> anyhow::Result<PathBuf> {
    let resolved = args.resolve()?;
    let url = resolved.database_url.expose();
    if !url.starts_with("sqlite:") {
        anyhow::bail!(
            "the database is {}; back up PostgreSQL with pg_dump and restore with psql \
             (see docs/OPERATIONS.md)",
            resolved.database_display
        );
    }
    lock::sqlite_path(url).context("an in-memory database has nothing to back up")
}

async fn open(path: &Path, read_only: bool) -> anyhow::Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(10));
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

/// Checks that `path` is a sound SQLite file holding an envseal database.
async fn check(path: &Path) -> anyhow::Result<i64> {
    let mut conn = open(path, true).await?;
    let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{} is not a readable SQLite database", path.display()))?;
    if integrity != "ok" {
        anyhow::bail!(
            "{} fails SQLite's integrity check: {integrity}",
            path.display()
        );
    }
    let entries: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{} is not an envseal database", path.display()))?;
    sqlx::query("SELECT value FROM meta WHERE key = 'bootstrapped'")
        .fetch_optional(&mut conn)
        .await
        .with_context(|| format!("{} is not an envseal database", path.display()))?;
    conn.close().await.ok();
    Ok(entries.0)
}

#[cfg(unix)]
fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes the snapshot; the server may be running.
pub async fn backup(args: &ServerArgs, b: &BackupArgs) -> anyhow::Result<ExitCode> {
    let db = sqlite_file(args)?;
    if !db.exists() {
        anyhow::bail!("no database at {} to back up", db.display());
    }
    if b.to.exists() {
        anyhow::bail!(
            "{} exists; choose a new file (backups are never overwritten)",
            b.to.display()
        );
    }
    let target =
        b.to.to_str()
            .context("the backup path must be valid UTF-8")?
            .to_owned();
    let mut conn = open(&db, false).await?;
    sqlx::query("VACUUM INTO ?1")
        .bind(&target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("writing the snapshot to {}", b.to.display()))?;
    conn.close().await.ok();
    private(&b.to).with_context(|| format!("restricting {}", b.to.display()))?;
    sync_file(&b.to)?;
    sync_dir(&b.to);
    let entries = check(&b.to).await?;
    eprintln!(
        "envseal-server: backup written to {} ({entries} audit entries; ciphertext only)",
        b.to.display()
    );
    if b.with_master_key {
        let key = args
            .master_key_file
            .clone()
            .unwrap_or_else(|| args.data_dir.join("master.key"));
        if std::env::var_os("ENVSEAL_MASTER_PASSPHRASE").is_some() {
            anyhow::bail!(
                "the master key is derived from ENVSEAL_MASTER_PASSPHRASE; there is no key \
                 file to copy (keep the passphrase safe instead)"
            );
        }
        let mut name = b.to.as_os_str().to_owned();
        name.push(".master-key");
        let dest = PathBuf::from(name);
        if dest.exists() {
            anyhow::bail!("{} exists", dest.display());
        }
        std::fs::copy(&key, &dest)
            .with_context(|| format!("copying {} to {}", key.display(), dest.display()))?;
        private(&dest)?;
        sync_file(&dest)?;
        eprintln!(
            "envseal-server: master key copied to {} — store it apart from the backup",
            dest.display()
        );
    } else {
        eprintln!(
            "envseal-server: the master key was not copied; restoring needs the current \
             one (or --with-master-key)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts a snapshot in place of the data directory's database. No server may be
/// running on it.
pub async fn restore(args: &ServerArgs, r: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let db = sqlite_file(args)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _held = lock::acquire(&db)?;
    let entries = check(&r.from).await?;
    if db.exists() && !r.replace {
        anyhow::bail!(
            "{} already holds a database; pass --replace to overwrite it (take a backup \
             of it first)",
            db.display()
        );
    }
    let mut staged = db.as_os_str().to_owned();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    std::fs::copy(&r.from, &staged)
        .with_context(|| format!("copying {} into place", r.from.display()))?;
    private(&staged)?;
    sync_file(&staged)?;
    // A WAL or shared-memory file of the old database must not be replayed on top.
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing the old database's WAL"),
        }
    }
    std::fs::rename(&staged, &db).with_context(|| format!("moving into {}", db.display()))?;
    sync_dir(&db);
    eprintln!(
        "envseal-server: restored {} into {} ({entries} audit entries); start the server \
         with the master key the backup was written under",
        r.from.display(),
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}
