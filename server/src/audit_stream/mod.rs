//! Streaming of the audit log to external sinks, and signed anchors of its head.
//!
//! Every entry is handed over once its batch has committed and goes, as one JSON line
//! ([`envseal_core::audit_anchor::StreamRecord`]), to each configured sink: syslog
//! (RFC 5424 over TCP or TLS), an HTTP endpoint (JSON lines, retried with backoff) and
//! a file for log shippers. Each sink has its own bounded on-disk queue
//! ([`queue::DiskQueue`]) and delivery thread, so a sink that is down costs a request
//! nothing but a local append until its queue is full; after that its entries are
//! counted in a gap that the sink receives when it is back (never dropped silently).
//!
//! Periodically the chain head (sequence number and hash, read from the database) is
//! signed with an Ed25519 key kept outside the database ([`anchor::AnchorSigner`]) and
//! written to the sinks, so that `envseal audit verify --anchors` can tell a
//! truncated, rolled-back or rewritten database from the real chain.
//!
//! This module never sees a secret value: entries hold names only. It must not block
//! the audit writer on a sink.

pub mod anchor;
pub mod queue;
pub mod sinks;

use crate::store::{AuditRow, Store};
use anyhow::Context as _;
use envseal_core::audit_anchor::{Anchor, StreamRecord};
use envseal_core::wire::AuditEntry;
use queue::{Batch, DiskQueue};
use sinks::{FileSink, HttpSink, Sink, SyslogSink, SyslogTarget};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Audit streaming and anchoring options (part of `envseal-server`'s arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Stream audit entries to a syslog receiver: tcp://HOST:PORT or tls://HOST:PORT
    /// (RFC 5424 messages, octet-counted framing).
    #[arg(long, env = "ENVSEAL_AUDIT_SYSLOG")]
    pub audit_syslog: Option<SyslogTarget>,
    /// CA certificates (PEM) that a tls:// syslog receiver's certificate must chain to
    /// (default: the usual public roots).
    #[arg(long, env = "ENVSEAL_AUDIT_SYSLOG_CA")]
    pub audit_syslog_ca: Option<PathBuf>,
    /// Stream audit entries to this HTTP(S) endpoint as JSON lines (POST). A bearer
    /// token for it is read from ENVSEAL_AUDIT_HTTP_TOKEN.
    #[arg(long, env = "ENVSEAL_AUDIT_HTTP", hide_env_values = true)]
    pub audit_http: Option<String>,
    /// Append audit entries to this file as JSON lines (for log shippers).
    #[arg(long, env = "ENVSEAL_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// Directory of the sinks' on-disk queues. Default: DATA_DIR/audit-queue.
    #[arg(long, env = "ENVSEAL_AUDIT_QUEUE_DIR")]
    pub audit_queue_dir: Option<PathBuf>,
    /// Most undelivered bytes queued per sink; beyond it entries are counted in a gap
    /// that the sink receives when it catches up.
    #[arg(long, env = "ENVSEAL_AUDIT_QUEUE_MAX_BYTES", default_value_t = 64 << 20)]
    pub audit_queue_max_bytes: u64,
    /// Ed25519 key (PKCS#8 PEM) that signs anchors of the chain head, created 0600 if
    /// missing, its public key beside it as FILE.pub. Keep it off the database's disk
    /// when you can. Default: DATA_DIR/audit-anchor.key.
    #[arg(long, env = "ENVSEAL_AUDIT_ANCHOR_KEY_FILE")]
    pub audit_anchor_key: Option<PathBuf>,
    /// How often the chain head is anchored (when it moved), in milliseconds.
    #[arg(
        long,
        env = "ENVSEAL_AUDIT_ANCHOR_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub audit_anchor_interval_ms: u64,
}

impl StreamArgs {
    /// True when at least one sink is configured.
    pub fn enabled(&self) -> bool {
        self.audit_syslog.is_some() || self.audit_http.is_some() || self.audit_file.is_some()
    }

    /// Checks the combination of options.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.audit_http {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("--audit-http must be an http:// or https:// URL");
            }
        }
        if self.audit_syslog_ca.is_some() && !self.audit_syslog.as_ref().is_some_and(|t| t.tls) {
            anyhow::bail!("--audit-syslog-ca needs a tls:// --audit-syslog target");
        }
        if self.audit_anchor_interval_ms < 100 {
            anyhow::bail!("--audit-anchor-interval-ms must be at least 100");
        }
        Ok(())
    }
}

/// Hands committed entries and anchors to every sink's queue.
#[derive(Clone)]
pub struct Streamer {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<(String, Arc<DiskQueue>)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, q) in &self.queues {
            q.close();
        }
    }
}

/// Longest wait between two delivery attempts of a sink that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failed delivery.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Most bytes delivered in one request or write.
const DELIVERY_BYTES: usize = 256 * 1024;

impl Streamer {
    /// Opens the sinks configured in `args` and starts their delivery threads and the
    /// anchoring task. `None` when no sink is configured.
    pub fn start(
        args: &StreamArgs,
        data_dir: &Path,
        store: Arc<Store>,
    ) -> anyhow::Result<Option<Streamer>> {
        args.check()?;
        if !args.enabled() {
            return Ok(None);
        }
        let queue_dir = args
            .audit_queue_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-queue"));
        let mut sinks: Vec<(&str, Box<dyn Sink>)> = Vec::new();
        if let Some(target) = &args.audit_syslog {
            let tls = match target.tls {
                true => Some(sinks::syslog_tls_config(args.audit_syslog_ca.as_deref())?),
                false => None,
            };
            sinks.push(("syslog", Box::new(SyslogSink::new(target.clone(), tls))));
        }
        if let Some(url) = &args.audit_http {
            let token = std::env::var("ENVSEAL_AUDIT_HTTP_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(secrecy::SecretString::from);
            sinks.push(("http", Box::new(HttpSink::new(url.clone(), token))));
        }
        if let Some(path) = &args.audit_file {
            sinks.push(("file", Box::new(FileSink::new(path.clone()))));
        }
        let mut queues = Vec::new();
        for (name, sink) in sinks {
            let q = Arc::new(
                DiskQueue::open(&queue_dir.join(name), name, args.audit_queue_max_bytes)
                    .with_context(|| format!("opening the {name} audit sink's queue"))?,
            );
            let thread_q = q.clone();
            std::thread::Builder::new()
                .name(format!("audit-{name}"))
                .spawn(move || deliver_loop(name, &thread_q, sink))
                .context("starting an audit delivery thread")?;
            queues.push((name.to_owned(), q));
        }
        let key_path = args
            .audit_anchor_key
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-anchor.key"));
        let signer = anchor::AnchorSigner::load_or_create(&key_path)?;
        tracing::info!(
            sinks = %queues.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(","),
            anchor_public_key = %signer.public_hex(),
            "audit streaming on"
        );
        let streamer = Streamer {
            inner: Arc::new(Inner { queues }),
        };
        tokio::spawn(anchor_loop(
            Arc::downgrade(&streamer.inner),
            store,
            signer,
            Duration::from_millis(args.audit_anchor_interval_ms),
        ));
        Ok(Some(streamer))
    }

    /// Queues entries that have just committed. Never waits for a sink.
    pub fn committed(&self, rows: &[AuditRow]) {
        let mut lines = Vec::with_capacity(rows.len());
        for r in rows {
            match serde_json::to_string(&StreamRecord::Entry(entry(r))) {
                Ok(l) => lines.push(l),
                Err(e) => tracing::error!(seq = r.seq, error = %e, "audit entry not encodable"),
            }
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        self.inner.push(&lines, &seqs, 0);
    }

    /// Queues an anchor.
    pub fn anchor(&self, a: &Anchor) {
        self.inner.push_anchor(a);
    }

    /// Undelivered bytes per sink, by name (`syslog`, `http`, `file`).
    pub fn pending(&self) -> Vec<(String, u64)> {
        self.inner
            .queues
            .iter()
            .map(|(n, q)| (n.clone(), q.pending_bytes()))
            .collect()
    }
}

impl Inner {
    fn push(&self, lines: &[String], seqs: &[i64], anchors: u64) {
        for (_, q) in &self.queues {
            q.push(Batch {
                lines: lines.to_vec(),
                seqs: seqs.to_vec(),
                anchors,
            });
        }
    }

    fn push_anchor(&self, a: &Anchor) {
        match serde_json::to_string(&StreamRecord::Anchor(a.clone())) {
            Ok(l) => self.push(&[l], &[], 1),
            Err(e) => tracing::error!(error = %e, "anchor not encodable"),
        }
    }
}

fn entry(r: &AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.seq,
        ts: r.ts,
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        result: r.result.clone(),
        reason: r.reason.clone(),
        ip: r.ip.clone(),
        user_agent: r.user_agent.clone(),
        details: r.details.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    }
}

/// Delivers one sink's queue until the queue is closed, retrying with exponential
/// backoff while the sink is down.
fn deliver_loop(name: &str, queue: &DiskQueue, mut sink: Box<dyn Sink>) {
    let mut backoff = MIN_BACKOFF;
    let mut failures: u64 = 0;
    while !queue.is_closed() {
        let Some((lines, end)) = queue.next(DELIVERY_BYTES, Duration::from_millis(500)) else {
            continue;
        };
        match sink.deliver(&lines) {
            Ok(()) => {
                queue.ack(end);
                if failures > 0 {
                    tracing::info!(
                        sink = name,
                        failed_attempts = failures,
                        "audit sink reachable again; delivering its queue"
                    );
                }
                failures = 0;
                backoff = MIN_BACKOFF;
            }
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(
                        sink = name,
                        error = %e,
                        failed_attempts = failures,
                        pending_bytes = queue.pending_bytes(),
                        "audit sink delivery failed; entries stay queued and are retried"
                    );
                }
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !queue.is_closed() {
                    std::thread::sleep(Duration::from_millis(20).min(backoff));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Signs the chain head every `every` when it moved, until the streamer is dropped.
async fn anchor_loop(
    inner: Weak<Inner>,
    store: Arc<Store>,
    signer: anchor::AnchorSigner,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(i64, String)> = None;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { break };
        let head = match store.audit_tail(1).await {
            Ok(rows) => rows.into_iter().last(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the audit head to anchor it failed");
                continue;
            }
        };
        let Some(head) = head else { continue };
        if last
            .as_ref()
            .is_some_and(|(seq, hash)| *seq == head.seq && *hash == head.hash)
        {
            continue;
        }
        if let Some((seq, _)) = &last {
            if head.seq < *seq {
                tracing::error!(
                    anchored = *seq,
                    head = head.seq,
                    "the audit chain's head went backwards: entries were removed from the database"
                );
            }
        }
        inner.push_anchor(&signer.sign(head.seq, &head.hash, now_ms()));
        last = Some((head.seq, head.hash));
    }
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
