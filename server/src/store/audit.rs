//! The audit log's rows: appended in one serialised transaction so that the hash
//! chain stays one chain across threads and replicas, and read back in order.
//!
//! The store does not know how an entry is hashed: the caller passes the sealing
//! function. On PostgreSQL appends take a transaction-scoped advisory lock; on SQLite
//! the in-process writer lock serialises them.

use super::{Backend, Store, StoreError};
use sqlx::{Executor as _, FromRow};

/// Advisory lock key of the audit chain (PostgreSQL).
const AUDIT_LOCK_KEY: i64 = 0x656e_7673_6561_6c01;

/// The hash a chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditRow {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Unix milliseconds.
    pub ts: i64,
    /// Who acted (user, token label) or who tried (the username given at login).
    pub actor: String,
    /// What, e.g. `auth.login`, `secret.read`.
    pub action: String,
    /// On what, e.g. `dify/prod/SECRET_KEY`.
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub result: String,
    /// Why (for failures), or empty.
    pub reason: String,
    /// Client address, or empty.
    pub ip: String,
    /// Client user agent, or empty.
    pub user_agent: String,
    /// Extra fields as a JSON object (names, versions, fingerprints; never values).
    pub details: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

const AUDIT_COLS: &str =
    "seq, ts, actor, action, target, result, reason, ip, user_agent, details, prev_hash, hash";

impl Store {
    /// Appends entries in order. `seq`, `prev_hash` and `hash` of the given rows are
    /// filled in here: `seal` computes an entry's hash from everything else in it.
    /// Returns the stored rows.
    pub async fn append_audit(
        &self,
        rows: Vec<AuditRow>,
        seal: &(dyn Fn(&AuditRow) -> String + Sync),
    ) -> Result<Vec<AuditRow>, StoreError> {
        let _w = self.writer_bumping(false).await;
        let mut conn = self.pool.acquire().await?;
        // On SQLite the audit batch commits without its own fsync (WAL with
        // synchronous=NORMAL): it survives a crash of the process, and the next secret
        // write's full sync makes it durable on disk too. Secret writes keep FULL.
        let sqlite = self.backend == Backend::Sqlite;
        if sqlite {
            conn.execute("PRAGMA synchronous = NORMAL").await?;
        }
        let result = self.append_audit_on(&mut conn, rows, seal).await;
        if sqlite {
            if let Err(e) = conn.execute("PRAGMA synchronous = FULL").await {
                // Never hand a relaxed connection back to the pool.
                conn.detach();
                return Err(e.into());
            }
        }
        result
    }

    async fn append_audit_on(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        mut rows: Vec<AuditRow>,
        seal: &(dyn Fn(&AuditRow) -> String + Sync),
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(AUDIT_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
        for row in &mut rows {
            seq += 1;
            row.seq = seq;
            row.prev_hash = prev;
            row.hash = seal(row);
            prev = row.hash.clone();
            sqlx::query(&format!(
                "INSERT INTO audit_log ({AUDIT_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(row.seq)
            .bind(row.ts)
            .bind(&row.actor)
            .bind(&row.action)
            .bind(&row.target)
            .bind(&row.result)
            .bind(&row.reason)
            .bind(&row.ip)
            .bind(&row.user_agent)
            .bind(&row.details)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// Up to `limit` entries after `after_seq`, in chain order.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The last `n` entries, in chain order.
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLS} FROM audit_log ORDER BY seq DESC LIMIT $1"
        ))
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }
}
