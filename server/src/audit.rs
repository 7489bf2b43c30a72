//! The tamper-evident audit log: every login attempt and every secret, token, user
//! and key operation, as an append-only chain where each entry carries the SHA-256 of
//! the previous one.
//!
//! Entries name things (users, secrets, versions, token ids) and never hold a value,
//! a password, a TOTP code or a token. Appends from many requests are grouped into one
//! transaction by a single writer task; each caller waits until its entry is durable,
//! so an operation is answered only once it is recorded.

use crate::store::{AuditRow, Store, StoreError, GENESIS_HASH};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Tried and failed (e.g. a wrong password).
    Failure,
    /// Refused before trying (rate limit, missing permission).
    Denied,
}

impl Outcome {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who acted, or the name given at a login attempt.
    pub actor: String,
    /// What, e.g. `auth.login`, `secret.read`.
    pub action: &'static str,
    /// On what.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for failures and denials.
    pub reason: String,
    /// Client address.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// Extra names, versions or fingerprints (never values).
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// A successful `action` by `actor` on `target`.
    pub fn new(actor: &str, action: &'static str, target: impl Into<String>) -> Self {
        AuditEvent {
            actor: actor.to_owned(),
            action,
            target: target.into(),
            outcome: Outcome::Success,
            reason: String::new(),
            ip: String::new(),
            user_agent: String::new(),
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the outcome and reason.
    pub fn outcome(mut self, outcome: Outcome, reason: &str) -> Self {
        self.outcome = outcome;
        self.reason = reason.to_owned();
        self
    }

    /// Sets the client.
    pub fn client(mut self, ip: &str, user_agent: &str) -> Self {
        self.ip = ip.to_owned();
        self.user_agent = user_agent.to_owned();
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The log could not record an entry.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed (the cause is logged by the writer).
    #[error("audit append failed: {0}")]
    Failed(String),
    /// The writer task is gone (server shutting down).
    #[error("audit writer stopped")]
    Stopped,
}

/// Answers one `record` call with the entry's sequence number.
type Waiter = oneshot::Sender<Result<i64, String>>;

struct Pending {
    row: AuditRow,
    done: Waiter,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
    stream: Arc<std::sync::OnceLock<crate::audit_stream::Streamer>>,
}

/// Most entries written in one transaction.
const MAX_BATCH: usize = 512;
/// Longest field kept (user agents and names typed by strangers are cut).
const MAX_FIELD: usize = 512;

impl AuditLog {
    /// Starts the writer task for `store`. It ends when every handle is dropped.
    pub fn start(store: Arc<Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(8192);
        let stream = Arc::new(std::sync::OnceLock::<crate::audit_stream::Streamer>::new());
        let streamer = stream.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let events = batch.len();
                let (rows, waiters) = coalesce(batch);
                let started = std::time::Instant::now();
                let appended = store.append_audit(rows, &entry_hash).await;
                metrics::histogram!("envseal_audit_commit_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("envseal_audit_batch_events").record(events as f64);
                match appended {
                    Ok(stored) => {
                        if let Some(s) = streamer.get() {
                            s.committed(&stored);
                        }
                        for (row, dones) in stored.iter().zip(waiters) {
                            for done in dones {
                                let _ = done.send(Ok(row.seq));
                            }
                        }
                    }
                    Err(e) => {
                        metrics::counter!("envseal_audit_commit_failures_total").increment(1);
                        tracing::error!(error = %e, "audit append failed");
                        for done in waiters.into_iter().flatten() {
                            let _ = done.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        AuditLog { tx, stream }
    }

    /// Hands every entry committed from now on to `streamer` (once; later calls are
    /// ignored).
    pub fn stream_to(&self, streamer: crate::audit_stream::Streamer) {
        let _ = self.stream.set(streamer);
    }

    /// Entries waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Records an event and waits until it is stored; returns its sequence number.
    pub async fn record(&self, ev: AuditEvent) -> Result<i64, AuditError> {
        metrics::counter!("envseal_audit_events_total",
            "action" => ev.action,
            "outcome" => ev.outcome.as_str(),
            "reason" => crate::metrics::reason_label(&ev.reason).to_owned())
        .increment(1);
        let row = AuditRow {
            seq: 0,
            ts: now_ms(),
            actor: clip(&ev.actor),
            action: ev.action.to_owned(),
            target: clip(&ev.target),
            result: ev.outcome.as_str().to_owned(),
            reason: clip(&ev.reason),
            ip: clip(&ev.ip),
            user_agent: clip(&ev.user_agent),
            details: ev.details.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { row, done })
            .await
            .map_err(|_| AuditError::Stopped)?;
        match wait.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(AuditError::Failed(e)),
            Err(_) => Err(AuditError::Stopped),
        }
    }
}

/// Actions whose identical events in one batch become one entry with a `count`: the
/// launcher's whole-environment fetch, which a fleet can repeat thousands of times a
/// second. Every event is still accounted for, and every waiter still waits for the
/// commit of the entry that records it.
const COALESCED: &[&str] = &["secret.export"];

/// Merges identical coalescible events of a batch, keeping order by first occurrence.
/// Returns the rows to append and, for each, the waiters it answers.
fn coalesce(batch: Vec<Pending>) -> (Vec<AuditRow>, Vec<Vec<Waiter>>) {
    // First pass, by reference: the first identical event each one merges into.
    let first: Vec<usize> = {
        let mut index: std::collections::HashMap<[&str; 8], usize> =
            std::collections::HashMap::new();
        batch
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let r = &p.row;
                if !COALESCED.contains(&r.action.as_str()) {
                    return i;
                }
                let key = [
                    r.actor.as_str(),
                    r.action.as_str(),
                    r.target.as_str(),
                    r.result.as_str(),
                    r.reason.as_str(),
                    r.ip.as_str(),
                    r.user_agent.as_str(),
                    r.details.as_str(),
                ];
                *index.entry(key).or_insert(i)
            })
            .collect()
    };
    let mut rows: Vec<AuditRow> = Vec::with_capacity(batch.len());
    let mut waiters: Vec<Vec<Waiter>> = Vec::new();
    let mut counts: Vec<(u64, i64)> = Vec::new(); // (count, last ts) per row
    let mut position = vec![usize::MAX; batch.len()]; // batch index -> row
    for (i, p) in batch.into_iter().enumerate() {
        let target = first[i];
        if target != i {
            let at = position[target];
            counts[at].0 += 1;
            counts[at].1 = counts[at].1.max(p.row.ts);
            waiters[at].push(p.done);
            continue;
        }
        position[i] = rows.len();
        counts.push((1, p.row.ts));
        rows.push(p.row);
        waiters.push(vec![p.done]);
    }
    for (row, (count, last_ts)) in rows.iter_mut().zip(counts) {
        if count > 1 {
            let mut details: serde_json::Value =
                serde_json::from_str(&row.details).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(map) = details.as_object_mut() {
                map.insert("count".into(), count.into());
                map.insert("last_ts".into(), last_ts.into());
            }
            row.details = details.to_string();
        }
    }
    (rows, waiters)
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_owned();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SHA-256 over the canonical encoding of an entry (every field but `hash`, each as
/// an 8-byte big-endian length and its UTF-8 bytes, the previous hash last), hex.
pub fn entry_hash(row: &AuditRow) -> String {
    let mut h = Sha256::new();
    h.update(b"envseal-audit-v1");
    let seq = row.seq.to_string();
    let ts = row.ts.to_string();
    for field in [
        seq.as_str(),
        ts.as_str(),
        &row.actor,
        &row.action,
        &row.target,
        &row.result,
        &row.reason,
        &row.ip,
        &row.user_agent,
        &row.details,
        &row.prev_hash,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The first entry that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// Its sequence number.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub entries: i64,
    /// Last entry's sequence number (0 when empty).
    pub head_seq: i64,
    /// Last entry's hash (the genesis hash when empty).
    pub head_hash: String,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Checks one entry against the previous one. `expected_seq`/`prev_hash` describe
/// the link it must continue.
pub fn check_link(row: &AuditRow, expected_seq: i64, prev_hash: &str) -> Option<String> {
    if row.seq != expected_seq {
        return Some(if row.seq > expected_seq {
            format!(
                "entries {expected_seq}..{} are missing before this one",
                row.seq - 1
            )
        } else {
            format!("out of order: expected entry {expected_seq}")
        });
    }
    if row.prev_hash != prev_hash {
        return Some("its previous-hash does not match the entry before it".to_owned());
    }
    if entry_hash(row) != row.hash {
        return Some("its content does not match its hash (edited)".to_owned());
    }
    None
}

/// Walks the whole chain from the first entry and reports the first broken link.
pub async fn verify(store: &Store) -> Result<Verification, StoreError> {
    let mut expected = 1i64;
    let mut prev = GENESIS_HASH.to_owned();
    let mut after = i64::MIN;
    let mut entries = 0;
    loop {
        let page = store.audit_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            entries += 1;
            if let Some(reason) = check_link(row, expected, &prev) {
                return Ok(Verification {
                    entries,
                    head_seq: row.seq,
                    head_hash: row.hash.clone(),
                    first_broken: Some(BrokenLink {
                        seq: row.seq,
                        reason,
                    }),
                });
            }
            expected = row.seq + 1;
            prev = row.hash.clone();
        }
    }
    Ok(Verification {
        entries,
        head_seq: expected - 1,
        head_hash: prev,
        first_broken: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str) -> AuditRow {
        let mut r = AuditRow {
            seq,
            ts: 1,
            actor: "a".into(),
            action: "x".into(),
            target: "t".into(),
            result: "success".into(),
            reason: String::new(),
            ip: String::new(),
            user_agent: String::new(),
            details: "{}".into(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = entry_hash(&r);
        r
    }

    #[test]
    fn links_check() {
        let a = row(1, GENESIS_HASH);
        let b = row(2, &a.hash);
        assert_eq!(check_link(&a, 1, GENESIS_HASH), None);
        assert_eq!(check_link(&b, 2, &a.hash), None);
        assert!(check_link(&b, 1, GENESIS_HASH).is_some());
        let mut edited = b.clone();
        edited.target = "other".into();
        assert!(check_link(&edited, 2, &a.hash).unwrap().contains("edited"));
        // Field boundaries are part of the encoding.
        let mut shifted = a.clone();
        shifted.actor = "ax".into();
        shifted.action = String::new();
        assert_ne!(entry_hash(&shifted), entry_hash(&a));
    }
}
