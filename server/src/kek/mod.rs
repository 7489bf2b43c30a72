//! KEK rotation and provider migration: online, resumable re-wrapping of every stored
//! DEK.
//!
//! A job is recorded in `kek_jobs` before any row changes. Rows are re-wrapped in
//! batches, each batch stored with compare-and-set (a row changed meanwhile by a write
//! is simply picked up again), so readers and writers keep working and a process
//! killed at any point loses nothing: running the same command again resumes the
//! unfinished job instead of starting another. Old KEK versions keep unwrapping until
//! no row needs them. Every step is audited. Nothing here sees a value; DEKs are
//! unwrapped only where the provider cannot re-wrap by itself (a provider migration).

use crate::audit::{AuditEvent, AuditLog};
use crate::crypto::{CryptoError, KeyProvider, WrappedDek};
use crate::store::{KekJob, Rewrap, Store, StoreError, WrappedRow};
use base64::Engine as _;
use std::time::Duration;

/// Who the audit log names as the actor of KEK jobs.
pub const ACTOR: &str = "envseal-server kek";

/// `meta` records holding a DEK wrapped under the KEK (`kek_id|blob|sealed`).
const META_RECORDS: [&str; 2] = ["kek_check", "fingerprint_key"];

/// Why a KEK job failed. Messages name KEK ids and counts, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key provider failed or does not hold a row's KEK.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The audit log could not record a step (the job stops: unrecorded is undone).
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A stored record is unreadable.
    #[error("{0}")]
    Corrupt(String),
}

/// Batch size and pacing of a re-wrap.
#[derive(Debug, Clone, Copy)]
pub struct RewrapOptions {
    /// DEKs per batch (one provider round trip, one transaction).
    pub batch: usize,
    /// Pause between batches, to spare a busy provider.
    pub pause: Duration,
}

impl Default for RewrapOptions {
    fn default() -> Self {
        RewrapOptions {
            batch: 100,
            pause: Duration::ZERO,
        }
    }
}

/// What `kek status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KekStatus {
    /// Provider wrapping new DEKs.
    pub provider: &'static str,
    /// KEK id new DEKs are wrapped under.
    pub current: String,
    /// Wrapped DEKs per KEK id (secret versions, TOTP secrets and server records).
    pub counts: Vec<(String, i64)>,
    /// The newest jobs.
    pub jobs: Vec<JobView>,
}

/// A job as shown by `kek status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    /// Job number.
    pub id: i64,
    /// `rotate` or `migrate`.
    pub kind: String,
    /// Target KEK id or provider.
    pub target: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, when done.
    pub finished_at: Option<i64>,
    /// DEKs re-wrapped.
    pub rewrapped: i64,
}

impl From<KekJob> for JobView {
    fn from(j: KekJob) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            target: j.target,
            started_at: j.started_at,
            finished_at: j.finished_at,
            rewrapped: j.rewrapped,
        }
    }
}

/// Versions in use and how many DEKs each wraps.
pub async fn status(store: &Store, keys: &dyn KeyProvider) -> Result<KekStatus, KekError> {
    let mut counts = store.kek_counts().await?;
    for key in META_RECORDS {
        if let Some(record) = store.meta_get(key).await? {
            let id = record.split('|').next().unwrap_or_default().to_owned();
            match counts.iter_mut().find(|(k, _)| *k == id) {
                Some((_, n)) => *n += 1,
                None => counts.push((id, 1)),
            }
        }
    }
    counts.sort();
    Ok(KekStatus {
        provider: keys.name(),
        current: keys.current_kek_id().await?,
        counts,
        jobs: store
            .kek_jobs(10)
            .await?
            .into_iter()
            .map(JobView::from)
            .collect(),
    })
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The job.
    pub job: i64,
    /// Whether it resumed an interrupted job.
    pub resumed: bool,
    /// KEK id every DEK is wrapped under now.
    pub target: String,
    /// DEKs re-wrapped by this run.
    pub rewrapped: i64,
}

/// `kek rotate`: makes a new KEK version current (unless an interrupted rotation is
/// resumed), then re-wraps every DEK under it.
pub async fn rotate(
    store: &Store,
    keys: &dyn KeyProvider,
    audit: &AuditLog,
    opts: RewrapOptions,
) -> Result<JobSummary, KekError> {
    let (job, resumed) = match store.open_kek_job("rotate").await? {
        Some(job) => {
            audit
                .record(
                    AuditEvent::new(ACTOR, "kek.rotate.resume", &job.target)
                        .details(serde_json::json!({ "job": job.id })),
                )
                .await?;
            (job, true)
        }
        None => {
            let old = keys.current_kek_id().await?;
            let new = keys.rotate().await?;
            let job = store.insert_kek_job("rotate", &new, crate::now()).await?;
            audit
                .record(
                    AuditEvent::new(ACTOR, "kek.rotate.start", &new)
                        .details(serde_json::json!({ "job": job.id, "from": old })),
                )
                .await?;
            (job, false)
        }
    };
    finish(store, keys, audit, job, resumed, opts, "kek.rotate.finish").await
}

/// `kek migrate`: re-wraps every DEK under `keys`' primary provider (the target); the
/// providers the DEKs were wrapped by must be in `keys` too.
pub async fn migrate(
    store: &Store,
    keys: &dyn KeyProvider,
    audit: &AuditLog,
    opts: RewrapOptions,
) -> Result<JobSummary, KekError> {
    let to = keys.name();
    let (job, resumed) = match store.open_kek_job("migrate").await? {
        Some(job) if job.target == to => {
            audit
                .record(
                    AuditEvent::new(ACTOR, "kek.migrate.resume", to)
                        .details(serde_json::json!({ "job": job.id })),
                )
                .await?;
            (job, true)
        }
        other => {
            if let Some(stale) = other {
                // An unfinished migration elsewhere is superseded by this one.
                store.finish_kek_job(stale.id, crate::now()).await?;
                audit
                    .record(
                        AuditEvent::new(ACTOR, "kek.migrate.superseded", &stale.target)
                            .details(serde_json::json!({ "job": stale.id, "by": to })),
                    )
                    .await?;
            }
            let job = store.insert_kek_job("migrate", to, crate::now()).await?;
            audit
                .record(AuditEvent::new(ACTOR, "kek.migrate.start", to).details(
                    serde_json::json!({ "job": job.id, "to": keys.current_kek_id().await? }),
                ))
                .await?;
            (job, false)
        }
    };
    finish(store, keys, audit, job, resumed, opts, "kek.migrate.finish").await
}

async fn finish(
    store: &Store,
    keys: &dyn KeyProvider,
    audit: &AuditLog,
    job: KekJob,
    resumed: bool,
    opts: RewrapOptions,
    done: &'static str,
) -> Result<JobSummary, KekError> {
    let (target, rewrapped) = rewrap_all(store, keys, audit, &job, opts).await?;
    store.finish_kek_job(job.id, crate::now()).await?;
    audit
        .record(
            AuditEvent::new(ACTOR, done, &target).details(serde_json::json!({
                "job": job.id,
                "rewrapped": rewrapped,
                "total_rewrapped": job.rewrapped + rewrapped,
            })),
        )
        .await?;
    Ok(JobSummary {
        job: job.id,
        resumed,
        target,
        rewrapped,
    })
}

/// Re-wraps batches until no DEK is left on another KEK id, then the server records.
async fn rewrap_all(
    store: &Store,
    keys: &dyn KeyProvider,
    audit: &AuditLog,
    job: &KekJob,
    opts: RewrapOptions,
) -> Result<(String, i64), KekError> {
    let batch = opts.batch.clamp(1, 10_000) as i64;
    let mut total = 0i64;
    loop {
        let target = keys.current_kek_id().await?;
        let rows = store.wrapped_not_on(&target, batch).await?;
        if rows.is_empty() {
            total += rewrap_meta(store, keys, &target).await?;
            return Ok((target, total));
        }
        let changed = rewrap_batch(store, keys, &rows).await?;
        store.kek_job_progress(job.id, changed as i64).await?;
        let mut from: Vec<&str> = rows.iter().map(|r| r.kek_id.as_str()).collect();
        from.sort_unstable();
        from.dedup();
        audit
            .record(AuditEvent::new(ACTOR, "kek.rewrap.batch", &target).details(
                serde_json::json!({
                    "job": job.id,
                    "rewrapped": changed,
                    "from": from,
                }),
            ))
            .await?;
        total += changed as i64;
        if !opts.pause.is_zero() {
            tokio::time::sleep(opts.pause).await;
        }
    }
}

async fn rewrap_batch(
    store: &Store,
    keys: &dyn KeyProvider,
    rows: &[WrappedRow],
) -> Result<u64, KekError> {
    let wrapped: Vec<WrappedDek> = rows
        .iter()
        .map(|r| WrappedDek {
            kek_id: r.kek_id.clone(),
            blob: r.blob.clone(),
        })
        .collect();
    let fresh = keys.rewrap_many(&wrapped).await?;
    if fresh.len() != rows.len() {
        return Err(CryptoError::Provider(
            "key provider answered a re-wrap with the wrong number of keys".into(),
        )
        .into());
    }
    let rewraps: Vec<Rewrap<'_>> = rows
        .iter()
        .zip(&fresh)
        .map(|(row, w)| Rewrap {
            row,
            kek_id: &w.kek_id,
            blob: &w.blob,
        })
        .collect();
    Ok(store.store_rewraps(&rewraps).await?)
}

/// The server's own records (key check, fingerprint key) follow the rows.
async fn rewrap_meta(store: &Store, keys: &dyn KeyProvider, target: &str) -> Result<i64, KekError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut n = 0;
    for key in META_RECORDS {
        let Some(record) = store.meta_get(key).await? else {
            continue;
        };
        let mut parts = record.splitn(3, '|');
        let (Some(kek_id), Some(blob), Some(sealed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KekError::Corrupt(format!("the {key} record is corrupt")));
        };
        if kek_id == target {
            continue;
        }
        let blob = b64
            .decode(blob)
            .map_err(|_| KekError::Corrupt(format!("the {key} record is corrupt")))?;
        let fresh = keys
            .rewrap_many(&[WrappedDek {
                kek_id: kek_id.to_owned(),
                blob,
            }])
            .await?
            .pop()
            .ok_or_else(|| CryptoError::Provider("empty re-wrap answer".into()))?;
        let new = format!("{}|{}|{}", fresh.kek_id, b64.encode(&fresh.blob), sealed);
        // Lost a race with another job: that one re-wrapped it.
        if store.meta_replace(key, &record, &new).await? {
            n += 1;
        }
    }
    Ok(n)
}
