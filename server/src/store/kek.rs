//! Wrapped DEKs by KEK version, compare-and-set re-wraps, and the KEK job log. Rows
//! only: nothing here sees an unwrapped key.

use super::{Store, StoreError};

/// Where a wrapped DEK lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrappedPlace {
    /// A secret version.
    Version {
        /// The secret.
        secret_id: i64,
        /// The version.
        version: i64,
    },
    /// A user's TOTP secret.
    Totp {
        /// The user.
        user_id: String,
    },
}

/// One wrapped DEK as stored.
#[derive(Debug, Clone)]
pub struct WrappedRow {
    /// Where.
    pub place: WrappedPlace,
    /// KEK id recorded with it.
    pub kek_id: String,
    /// The wrapped bytes.
    pub blob: Vec<u8>,
}

/// A re-wrap to store: `row` as read, and its new KEK id and bytes.
pub struct Rewrap<'a> {
    /// The row as it was read (the compare part of compare-and-set).
    pub row: &'a WrappedRow,
    /// New KEK id.
    pub kek_id: &'a str,
    /// New wrapped bytes.
    pub blob: &'a [u8],
}

/// A KEK job (rotation or migration).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KekJob {
    /// Job number.
    pub id: i64,
    /// `rotate` or `migrate`.
    pub kind: String,
    /// What it moves rows to (a KEK id or provider name).
    pub target: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; None while unfinished.
    pub finished_at: Option<i64>,
    /// DEKs re-wrapped so far.
    pub rewrapped: i64,
}

impl Store {
    /// How many wrapped DEKs each KEK id holds (secret versions and TOTP secrets).
    pub async fn kek_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kek_id, COUNT(*) FROM secret_versions WHERE wrapped_dek IS NOT NULL \
             GROUP BY kek_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let totp: Vec<(String, i64)> = sqlx::query_as(
            "SELECT totp_kek_id, COUNT(*) FROM users WHERE totp_wrapped_dek IS NOT NULL \
             AND totp_kek_id IS NOT NULL GROUP BY totp_kek_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (id, n) in totp {
            match out.iter_mut().find(|(k, _)| *k == id) {
                Some((_, m)) => *m += n,
                None => out.push((id, n)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Up to `limit` wrapped DEKs whose KEK id is not `target`.
    pub async fn wrapped_not_on(
        &self,
        target: &str,
        limit: i64,
    ) -> Result<Vec<WrappedRow>, StoreError> {
        let versions: Vec<(i64, i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT secret_id, version, kek_id, wrapped_dek FROM secret_versions \
             WHERE wrapped_dek IS NOT NULL AND kek_id <> $1 \
             ORDER BY secret_id, version LIMIT $2",
        )
        .bind(target)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<WrappedRow> = versions
            .into_iter()
            .map(|(secret_id, version, kek_id, blob)| WrappedRow {
                place: WrappedPlace::Version { secret_id, version },
                kek_id,
                blob,
            })
            .collect();
        let room = limit - out.len() as i64;
        if room > 0 {
            let totp: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT id, totp_kek_id, totp_wrapped_dek FROM users \
                 WHERE totp_wrapped_dek IS NOT NULL AND totp_kek_id IS NOT NULL \
                 AND totp_kek_id <> $1 ORDER BY id LIMIT $2",
            )
            .bind(target)
            .bind(room)
            .fetch_all(&self.pool)
            .await?;
            out.extend(totp.into_iter().map(|(user_id, kek_id, blob)| WrappedRow {
                place: WrappedPlace::Totp { user_id },
                kek_id,
                blob,
            }));
        }
        Ok(out)
    }

    /// Stores re-wrapped DEKs in one transaction, each only if its row still holds
    /// what was read. Returns how many rows changed (a row rewritten meanwhile by a
    /// secret write or destroyed is left alone and simply counted out).
    pub async fn store_rewraps(&self, rewraps: &[Rewrap<'_>]) -> Result<u64, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for r in rewraps {
            let q = match &r.row.place {
                WrappedPlace::Version { secret_id, version } => sqlx::query(
                    "UPDATE secret_versions SET kek_id = $1, wrapped_dek = $2 \
                     WHERE secret_id = $3 AND version = $4 AND kek_id = $5 AND wrapped_dek = $6",
                )
                .bind(r.kek_id)
                .bind(r.blob)
                .bind(*secret_id)
                .bind(*version),
                WrappedPlace::Totp { user_id } => sqlx::query(
                    "UPDATE users SET totp_kek_id = $1, totp_wrapped_dek = $2 \
                     WHERE id = $3 AND totp_kek_id = $4 AND totp_wrapped_dek = $5",
                )
                .bind(r.kek_id)
                .bind(r.blob)
                .bind(user_id.as_str()),
            };
            changed += q
                .bind(r.row.kek_id.as_str())
                .bind(r.row.blob.as_slice())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Replaces a `meta` value only if it is still `old`.
    pub async fn meta_replace(&self, key: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        Ok(
            sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
                .bind(new)
                .bind(key)
                .bind(old)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// The unfinished job of `kind`, if any (the newest).
    pub async fn open_kek_job(&self, kind: &str) -> Result<Option<KekJob>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, target, started_at, finished_at, rewrapped FROM kek_jobs \
             WHERE kind = $1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records the start of a job.
    pub async fn insert_kek_job(
        &self,
        kind: &str,
        target: &str,
        now: i64,
    ) -> Result<KekJob, StoreError> {
        let _w = self.writer().await;
        Ok(sqlx::query_as(
            "INSERT INTO kek_jobs (kind, target, started_at, rewrapped) VALUES ($1, $2, $3, 0) \
             RETURNING id, kind, target, started_at, finished_at, rewrapped",
        )
        .bind(kind)
        .bind(target)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Adds to a job's count of re-wrapped DEKs.
    pub async fn kek_job_progress(&self, id: i64, rewrapped: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query("UPDATE kek_jobs SET rewrapped = rewrapped + $1 WHERE id = $2")
            .bind(rewrapped)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a job finished.
    pub async fn finish_kek_job(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query("UPDATE kek_jobs SET finished_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest jobs, newest first.
    pub async fn kek_jobs(&self, limit: i64) -> Result<Vec<KekJob>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, target, started_at, finished_at, rewrapped FROM kek_jobs \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
