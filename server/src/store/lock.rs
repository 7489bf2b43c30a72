//! One server per SQLite database: an exclusive advisory lock (`flock`) on a file next
//! to the database, taken before anything is read and held for as long as the store
//! lives. A second server on the same data directory would keep its own caches and
//! writer lock, so a revocation through one would go unseen by the other; it refuses
//! to start instead. The lock is released by the kernel when the process ends, even
//! after SIGKILL, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The held lock (released on drop).
pub struct DataLock {
    _file: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl std::fmt::Debug for DataLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLock")
            .field("path", &self.path)
            .finish()
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another envseal-server{holder} is already using the database {db}; \
         stop it first (one server per SQLite data directory; run several replicas on \
         PostgreSQL instead). Lock file: {lock}"
    )]
    Held {
        /// The database file.
        db: String,
        /// The lock file.
        lock: String,
        /// ` (pid N)` when known.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {lock}: {source}")]
    Io {
        /// The lock file.
        lock: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The database file a `sqlite:` URL names, or `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    if path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The lock file for database `db`: `DB.lock` beside it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock for database `db`, without waiting.
pub fn acquire(db: &Path) -> Result<DataLock, LockError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = lock_path(db);
    let io = |source| LockError::Io {
        lock: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                db: db.display().to_string(),
                lock: path.display().to_string(),
                holder: if pid.chars().all(|c| c.is_ascii_digit()) && !pid.is_empty() {
                    format!(" (pid {pid})")
                } else {
                    String::new()
                },
            });
        }
        Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
    };
    // The holder's pid, for the message a second server prints.
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(&mut *file, "{}", std::process::id()));
    if let Err(e) = written {
        tracing::warn!(lock = %path.display(), error = %e, "could not write the pid into the lock file");
    }
    Ok(DataLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_urls() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/envseal/envseal.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/envseal/envseal.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://data/e.db"),
            Some(PathBuf::from("data/e.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_path("postgres://db/x"), None);
        assert_eq!(
            lock_path(Path::new("/d/envseal.db")),
            PathBuf::from("/d/envseal.db.lock")
        );
    }

    #[test]
    fn second_lock_on_one_database_is_refused_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("envseal.db");
        let first = acquire(&db).unwrap();
        let err = acquire(&db).unwrap_err().to_string();
        assert!(err.contains("already using the database"), "{err}");
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(first);
        acquire(&db).unwrap();
    }
}
