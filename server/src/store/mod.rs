//! Persistence: projects, environments, secret versions (as ciphertext), tokens,
//! users and sessions, the audit chain and server metadata, in SQLite or PostgreSQL through one code path.
//!
//! The store knows nothing about keys, plaintext or HTTP: it moves opaque ciphertext
//! and wrapped keys in and out of rows, keeps the invariants that SQL can keep (unique
//! names, monotonic versions, one revision bump per change) and nothing else.
//!
//! Both databases are driven through sqlx's `Any` driver with SQL in their common
//! subset (`$n` placeholders, `ON CONFLICT`, `RETURNING`). Concurrency control is
//! optimistic: a write names the version it expects to replace, so no `SELECT … FOR
//! UPDATE` (which SQLite lacks) is needed. SQLite writers are also serialised in-process
//! so that WAL snapshot upgrades never fail with `SQLITE_BUSY`.

mod audit;
pub mod bulk;
mod kek;
pub mod lock;
mod rotation;
mod users;

pub use audit::{AuditRow, GENESIS_HASH};
pub use kek::{KekJob, Rewrap, WrappedPlace, WrappedRow};
pub use rotation::{Finish, FinishWrite, NewRotation, PolicyRow, RotationRow};
pub use users::{RoleRow, SessionRow, UserRow};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _, FromRow};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one process).
    Sqlite,
    /// PostgreSQL (any number of replicas).
    Postgres,
}

/// Store failures. `Conflict` and `NotFound` are expected outcomes; `Database` is not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name is taken, or an optimistic write lost its race.
    #[error("conflict")]
    Conflict,
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another server holds this SQLite database.
    #[error(transparent)]
    Locked(#[from] lock::LockError),
    /// The URL names a database envseal does not support.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

/// A project row.
#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    /// Primary key.
    pub id: i64,
    /// Slug.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// An environment row with its project's name.
#[derive(Debug, Clone, FromRow)]
pub struct EnvRow {
    /// Primary key.
    pub id: i64,
    /// Owning project.
    pub project_id: i64,
    /// Owning project's slug.
    pub project_name: String,
    /// Slug.
    pub name: String,
    /// Change counter.
    pub revision: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// A secret row (no value).
#[derive(Debug, Clone, FromRow)]
pub struct SecretRow {
    /// Primary key.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Current version.
    pub current_version: i64,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Soft-delete time.
    pub deleted_at: Option<i64>,
}

/// A stored version. `wrapped_dek`/`ciphertext` are `None` once destroyed.
#[derive(Clone, FromRow)]
pub struct VersionRow {
    /// Version number.
    pub version: i64,
    /// KEK that wrapped the DEK.
    pub kek_id: String,
    /// Wrapped DEK.
    pub wrapped_dek: Option<Vec<u8>>,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub ciphertext: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Writer.
    pub created_by: String,
    /// Destruction time.
    pub destroyed_at: Option<i64>,
    /// 1 when the value is a template (derived value).
    pub derived: i64,
}

/// One live secret of an environment with its current ciphertext, for exports.
#[derive(Clone, FromRow)]
pub struct ExportRow {
    /// Name.
    pub name: String,
    /// Current version.
    pub version: i64,
    /// KEK that wrapped the DEK.
    pub kek_id: String,
    /// Wrapped DEK (never `None` for a current version).
    pub wrapped_dek: Option<Vec<u8>>,
    /// Ciphertext.
    pub ciphertext: Option<Vec<u8>>,
    /// Environment revision read in the same statement.
    pub revision: i64,
    /// 1 when the value is a template (derived value).
    pub derived: i64,
}

/// A stored secret whose current value has a given fingerprint.
#[derive(Debug, Clone, FromRow)]
pub struct FingerprintMatch {
    /// Project slug.
    pub project: String,
    /// Environment slug.
    pub environment: String,
    /// Secret name.
    pub name: String,
    /// The matching fingerprint.
    pub fingerprint: Vec<u8>,
}

/// A current version without a fingerprint (see `versions_without_fingerprint`).
#[derive(Clone, FromRow)]
pub struct UnfingerprintedRow {
    /// Project id (for the AAD).
    pub project_id: i64,
    /// Environment id (for the AAD).
    pub environment_id: i64,
    /// Secret id.
    pub secret_id: i64,
    /// Secret name.
    pub name: String,
    /// Version.
    pub version: i64,
    /// KEK id.
    pub kek_id: String,
    /// Wrapped DEK.
    pub wrapped_dek: Option<Vec<u8>>,
    /// Ciphertext.
    pub ciphertext: Option<Vec<u8>>,
}

/// A machine-token row.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    /// Public identifier.
    pub id: String,
    /// Label.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Project scope (`None`: admin).
    pub project_id: Option<i64>,
    /// Project slug, joined.
    pub project_name: Option<String>,
    /// Comma-separated environment names, or `*`.
    pub environments: String,
    /// `read`, `write` or `admin`.
    pub access: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Revocation.
    pub revoked_at: Option<i64>,
}

/// A new version to store, replacing `expected_current` (0: the secret is new).
pub struct NewVersion<'a> {
    /// Environment.
    pub env_id: i64,
    /// Secret name.
    pub name: &'a str,
    /// The version the write replaces; 0 when creating the secret.
    pub expected_current: i64,
    /// KEK id.
    pub kek_id: &'a str,
    /// Wrapped DEK.
    pub wrapped_dek: &'a [u8],
    /// Sealed value.
    pub ciphertext: &'a [u8],
    /// Keyed fingerprint of the value (HMAC), for leak matching.
    pub fingerprint: &'a [u8],
    /// Writer.
    pub created_by: &'a str,
    /// New description, if any.
    pub description: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    /// Versions to keep (older ones are deleted).
    pub keep_versions: i64,
    /// The value is a template over other secrets (a derived value).
    pub derived: bool,
}

/// The database.
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    write_lock: Mutex<()>,
    generation: AtomicU64,
    /// On SQLite, the lock that keeps a second server off this database.
    _data_lock: Option<lock::DataLock>,
    /// On SQLite, the background checkpoint task.
    checkpoints: Option<tokio::task::AbortHandle>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(task) = &self.checkpoints {
            task.abort();
        }
    }
}

/// Held for the duration of one write; see [`Store::generation`].
struct WriteGuard<'a> {
    _lock: Option<tokio::sync::MutexGuard<'a, ()>>,
    generation: Option<&'a AtomicU64>,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(generation) = self.generation {
            generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Every SQLite connection: WAL, full sync for commits (the audit writer relaxes it for
/// its own batches), and no automatic checkpoints — those run in the commit that
/// crosses the threshold and fsync twice there, which put a slow disk's sync latency
/// into whichever request happened to commit. [`checkpointer`] runs them instead.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON; \
     PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;";

/// How often the background checkpoint copies the WAL into the database (and fsyncs
/// both). This bounds what a power loss can take from the audit entries of reads,
/// which commit without their own fsync; see docs/OPERATIONS.md.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Runs passive checkpoints on `pool` every [`CHECKPOINT_INTERVAL`]. A passive
/// checkpoint waits for no lock: commits and reads go on while it syncs.
fn checkpointer(pool: AnyPool) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
            }
        }
    })
    .abort_handle()
}

impl Store {
    /// Connects and applies migrations, holding the data-directory lock on SQLite: this
    /// process is the one server of that database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// Connects beside a running server, without its lock: for maintenance commands
    /// built to run online (`kek rotate`, `admin recover`). Their writes are ordinary
    /// transactions, so SQLite's own locking orders them with the server's.
    pub async fn connect_beside_server(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    async fn open(url: &str, exclusive: bool) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        // Before any connection: a second server must not even run migrations.
        let data_lock = match backend {
            Backend::Sqlite if exclusive => lock::sqlite_path(url)
                .map(|db| lock::acquire(&db))
                .transpose()?,
            Backend::Sqlite | Backend::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        Ok(Store {
            backend,
            write_lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            _data_lock: data_lock,
            checkpoints: (backend == Backend::Sqlite).then(|| checkpointer(pool.clone())),
            pool,
        })
    }

    /// The connection pool, for maintenance tools and tests that must reach rows
    /// directly (e.g. to prove that tampering is detected).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (flushes SQLite's WAL on the last connection).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write: serialises writers on SQLite, and bumps [`Store::generation`]
    /// when the returned guard drops — after the caller's commit, because every write
    /// method takes the guard first and so drops it last.
    async fn writer(&self) -> WriteGuard<'_> {
        self.writer_bumping(true).await
    }

    /// Like [`Store::writer`], but for writes that no cache depends on (the audit
    /// log): the generation stays as it is.
    async fn writer_bumping(&self, bump: bool) -> WriteGuard<'_> {
        let lock = match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        };
        WriteGuard {
            _lock: lock,
            generation: bump.then_some(&self.generation),
        }
    }

    /// A counter bumped after every write made through this process. Caches tag what
    /// they read with the value seen *before* reading and trust it only while it is
    /// unchanged. Writes by other processes (PostgreSQL replicas) do not bump it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Connections open in the pool and how many of them are idle.
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- metadata ----------------------------------------------------------------

    /// Reads a metadata value.
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Stores `value` under `key` unless one is there already; returns the value that
    /// is stored afterwards (so concurrent first starts agree on one).
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let _w = self.writer().await;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    // ---- projects and environments ----------------------------------------------

    /// Creates a project; `Conflict` if the name is taken.
    pub async fn create_project(
        &self,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<ProjectRow, StoreError> {
        let _w = self.writer().await;
        sqlx::query_as(
            "INSERT INTO projects (name, description, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name, description, created_at",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::Conflict)
    }

    /// All projects, by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT id, name, description, created_at FROM projects ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One project by name.
    pub async fn project(&self, name: &str) -> Result<ProjectRow, StoreError> {
        sqlx::query_as("SELECT id, name, description, created_at FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// A project's environments, by name.
    pub async fn environments(&self, project_id: i64) -> Result<Vec<EnvRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT e.id, e.project_id, p.name AS project_name, e.name, e.revision, e.created_at \
             FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE e.project_id = $1 ORDER BY e.name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates an environment; `Conflict` if the name is taken in the project.
    pub async fn create_environment(
        &self,
        project: &ProjectRow,
        name: &str,
        now: i64,
    ) -> Result<EnvRow, StoreError> {
        let _w = self.writer().await;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO environments (project_id, name, revision, created_at) \
             VALUES ($1, $2, 0, $3) ON CONFLICT (project_id, name) DO NOTHING RETURNING id",
        )
        .bind(project.id)
        .bind(name)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let id = id.ok_or(StoreError::Conflict)?;
        Ok(EnvRow {
            id,
            project_id: project.id,
            project_name: project.name.clone(),
            name: name.to_owned(),
            revision: 0,
            created_at: now,
        })
    }

    /// One environment by project and environment name.
    pub async fn environment(&self, project: &str, env: &str) -> Result<EnvRow, StoreError> {
        sqlx::query_as(
            "SELECT e.id, e.project_id, p.name AS project_name, e.name, e.revision, e.created_at \
             FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE p.name = $1 AND e.name = $2",
        )
        .bind(project)
        .bind(env)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    // ---- secrets ------------------------------------------------------------------

    const SECRET_COLS: &'static str =
        "id, name, current_version, description, created_at, updated_at, deleted_at";

    /// One secret by name (deleted or not).
    pub async fn secret(&self, env_id: i64, name: &str) -> Result<Option<SecretRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {} FROM secrets WHERE environment_id = $1 AND name = $2",
            Self::SECRET_COLS
        ))
        .bind(env_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// An environment's secrets by name; soft-deleted ones only when asked.
    pub async fn list_secrets(
        &self,
        env_id: i64,
        include_deleted: bool,
    ) -> Result<Vec<SecretRow>, StoreError> {
        let filter = if include_deleted {
            ""
        } else {
            " AND deleted_at IS NULL"
        };
        Ok(sqlx::query_as(&format!(
            "SELECT {} FROM secrets WHERE environment_id = $1{filter} ORDER BY name",
            Self::SECRET_COLS
        ))
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a new version if the secret's current version is still
    /// `expected_current`; otherwise `Conflict` and nothing is written. Clears a soft
    /// delete, prunes versions beyond `keep_versions` and bumps the environment's
    /// revision, all in one transaction.
    pub async fn write_version(&self, v: NewVersion<'_>) -> Result<i64, StoreError> {
        let _w = self.writer().await;
        let new_version = v.expected_current + 1;
        let mut tx = self.pool.begin().await?;
        let secret_id: Option<i64> = if v.expected_current == 0 {
            sqlx::query_scalar(
                "INSERT INTO secrets (environment_id, name, current_version, description, \
                 created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $4) \
                 ON CONFLICT (environment_id, name) DO NOTHING RETURNING id",
            )
            .bind(v.env_id)
            .bind(v.name)
            .bind(v.description.unwrap_or(""))
            .bind(v.now)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            sqlx::query_scalar(
                "UPDATE secrets SET current_version = $1, updated_at = $2, deleted_at = NULL, \
                 description = COALESCE($3, description) \
                 WHERE environment_id = $4 AND name = $5 AND current_version = $6 RETURNING id",
            )
            .bind(new_version)
            .bind(v.now)
            .bind(v.description)
            .bind(v.env_id)
            .bind(v.name)
            .bind(v.expected_current)
            .fetch_optional(&mut *tx)
            .await?
        };
        let Some(secret_id) = secret_id else {
            return Err(StoreError::Conflict);
        };
        sqlx::query(
            "INSERT INTO secret_versions (secret_id, version, kek_id, wrapped_dek, ciphertext, \
             created_at, created_by, fingerprint, derived) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(secret_id)
        .bind(new_version)
        .bind(v.kek_id)
        .bind(v.wrapped_dek)
        .bind(v.ciphertext)
        .bind(v.now)
        .bind(v.created_by)
        .bind(v.fingerprint)
        .bind(i64::from(v.derived))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM secret_versions WHERE secret_id = $1 AND version <= $2")
            .bind(secret_id)
            .bind(new_version - v.keep_versions.max(1))
            .execute(&mut *tx)
            .await?;
        Self::bump_revision(&mut tx, v.env_id).await?;
        tx.commit().await?;
        Ok(new_version)
    }

    async fn bump_revision(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        env_id: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE environments SET revision = revision + 1 WHERE id = $1")
            .bind(env_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Soft-deletes (`Some(time)`) or undeletes (`None`) a secret. `NotFound` if it is
    /// already in that state.
    pub async fn set_deleted(
        &self,
        env_id: i64,
        secret_id: i64,
        deleted_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let sql = if deleted_at.is_some() {
            "UPDATE secrets SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL"
        } else {
            "UPDATE secrets SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NOT NULL"
        };
        let done = sqlx::query(sql)
            .bind(deleted_at)
            .bind(secret_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Self::bump_revision(&mut tx, env_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One version of a secret.
    pub async fn version(
        &self,
        secret_id: i64,
        version: i64,
    ) -> Result<Option<VersionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT version, kek_id, wrapped_dek, ciphertext, created_at, created_by, destroyed_at, \
             derived FROM secret_versions WHERE secret_id = $1 AND version = $2",
        )
        .bind(secret_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// All kept versions, newest first.
    pub async fn versions(&self, secret_id: i64) -> Result<Vec<VersionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT version, kek_id, NULL AS wrapped_dek, NULL AS ciphertext, created_at, \
             created_by, destroyed_at, derived FROM secret_versions WHERE secret_id = $1 \
             ORDER BY version DESC",
        )
        .bind(secret_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Crypto-erases versions: their wrapped key and ciphertext are overwritten with
    /// NULL. Returns how many were destroyed now.
    pub async fn destroy_versions(
        &self,
        secret_id: i64,
        versions: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for version in versions {
            n += sqlx::query(
                "UPDATE secret_versions SET wrapped_dek = NULL, ciphertext = NULL, \
                 fingerprint = NULL, destroyed_at = $1 WHERE secret_id = $2 AND version = $3 AND destroyed_at IS NULL",
            )
            .bind(now)
            .bind(secret_id)
            .bind(*version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Every live secret of an environment with its current ciphertext and the
    /// environment's revision, read in one statement (one snapshot).
    pub async fn export_rows(&self, env_id: i64) -> Result<Vec<ExportRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT s.name, v.version, v.kek_id, v.wrapped_dek, v.ciphertext, e.revision, \
             v.derived FROM secrets s \
             JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version \
             JOIN environments e ON e.id = s.environment_id \
             WHERE s.environment_id = $1 AND s.deleted_at IS NULL ORDER BY s.name",
        )
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Current versions of live secrets whose fingerprint is one of `fingerprints`.
    pub async fn fingerprint_matches(
        &self,
        fingerprints: &[Vec<u8>],
    ) -> Result<Vec<FingerprintMatch>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=fingerprints.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT p.name AS project, e.name AS environment, s.name, v.fingerprint \
             FROM secret_versions v \
             JOIN secrets s ON s.id = v.secret_id AND s.current_version = v.version \
             JOIN environments e ON e.id = s.environment_id \
             JOIN projects p ON p.id = e.project_id \
             WHERE s.deleted_at IS NULL AND v.fingerprint IN ({}) \
             ORDER BY p.name, e.name, s.name",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as(&sql);
        for fp in fingerprints {
            query = query.bind(fp.as_slice());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Current, undestroyed versions that have no fingerprint yet (written before
    /// fingerprints existed), with what is needed to open them.
    pub async fn versions_without_fingerprint(
        &self,
    ) -> Result<Vec<UnfingerprintedRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT e.project_id, e.id AS environment_id, s.id AS secret_id, s.name, v.version, \
             v.kek_id, v.wrapped_dek, v.ciphertext \
             FROM secret_versions v \
             JOIN secrets s ON s.id = v.secret_id AND s.current_version = v.version \
             JOIN environments e ON e.id = s.environment_id \
             WHERE v.fingerprint IS NULL AND v.destroyed_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a version's fingerprint.
    pub async fn set_fingerprint(
        &self,
        secret_id: i64,
        version: i64,
        fingerprint: &[u8],
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query(
            "UPDATE secret_versions SET fingerprint = $1 \
             WHERE secret_id = $2 AND version = $3 AND destroyed_at IS NULL",
        )
        .bind(fingerprint)
        .bind(secret_id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- tokens ---------------------------------------------------------------------

    const TOKEN_SELECT: &'static str = "SELECT t.id, t.name, t.token_hash, t.project_id, \
         p.name AS project_name, t.environments, t.access, t.created_at, t.expires_at, \
         t.revoked_at FROM tokens t LEFT JOIN projects p ON p.id = t.project_id";

    /// Stores a token row; `false` if a token with the same hash exists already.
    pub async fn insert_token(&self, t: &TokenRow) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let done = sqlx::query(
            "INSERT INTO tokens (id, name, token_hash, project_id, environments, access, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.project_id)
        .bind(&t.environments)
        .bind(&t.access)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// The token with this hash.
    pub async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<TokenRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("{} WHERE t.token_hash = $1", Self::TOKEN_SELECT))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The token with this id.
    pub async fn token_by_id(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("{} WHERE t.id = $1", Self::TOKEN_SELECT))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All tokens, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{} ORDER BY t.created_at DESC, t.id",
            Self::TOKEN_SELECT
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a token; `NotFound` if there is no such live token.
    pub async fn revoke_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
