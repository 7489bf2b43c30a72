//! One sink's bounded on-disk queue: stream lines appended by the audit writer and
//! read back by the sink's delivery thread.
//!
//! The queue never blocks the writer and never drops silently. When the undelivered
//! part would exceed its bound, new records are not queued but counted in a [`Gap`]
//! (kept on disk, so a restart does not forget it); once half the queue is free again
//! the gap itself is queued, in order, so the sink learns what it missed. Delivery is at
//! least once: the cursor advances only after the sink accepted a batch.
//!
//! Files in the queue's directory: `queue.jsonl` (records), `cursor` (bytes of it
//! delivered), `gap.json` (the open gap, if any).

use envseal_core::audit_anchor::{Gap, StreamRecord};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The queue could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file operation failed.
    #[error("audit queue {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What one push carries: lines and what they hold, for gap accounting.
pub(crate) struct Batch {
    /// JSON lines without the newline.
    pub(crate) lines: Vec<String>,
    /// Sequence numbers of the entries among them.
    pub(crate) seqs: Vec<i64>,
    /// How many anchors among them.
    pub(crate) anchors: u64,
}

struct State {
    file: File,
    len: u64,
    cursor: u64,
    gap: Option<Gap>,
    closed: bool,
}

/// A bounded on-disk queue (see the module documentation).
pub struct DiskQueue {
    dir: PathBuf,
    name: String,
    max_bytes: u64,
    state: Mutex<State>,
    ready: Condvar,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, keeping what an earlier run left
    /// undelivered. `name` names the sink in log lines.
    pub fn open(dir: &Path, name: &str, max_bytes: u64) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("queue.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let cursor = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(len);
        let gap = std::fs::read_to_string(dir.join("gap.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let q = DiskQueue {
            dir: dir.to_owned(),
            name: name.to_owned(),
            max_bytes: max_bytes.max(4096),
            state: Mutex::new(State {
                file,
                len,
                cursor,
                gap,
                closed: false,
            }),
            ready: Condvar::new(),
        };
        Ok(q)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes queued and not yet delivered.
    pub fn pending_bytes(&self) -> u64 {
        let s = self.lock();
        s.len - s.cursor
    }

    /// Queues `batch`, or counts it in the open gap when there is no room. Never waits
    /// for the sink.
    pub(crate) fn push(&self, batch: Batch) {
        let mut s = self.lock();
        if let Err(e) = self.flush_gap(&mut s) {
            tracing::error!(sink = %self.name, error = %e, "audit queue write failed");
        }
        let bytes: u64 = batch.lines.iter().map(|l| l.len() as u64 + 1).sum();
        let result = if s.gap.is_none() && s.len - s.cursor + bytes <= self.max_bytes {
            append(&mut s, &batch.lines)
        } else {
            Err(std::io::Error::other("queue full"))
        };
        match result {
            Ok(()) => self.ready.notify_all(),
            Err(e) => {
                let opened = s.gap.is_none();
                let gap = s.gap.get_or_insert(Gap {
                    first_seq: i64::MAX,
                    last_seq: i64::MIN,
                    entries: 0,
                    anchors: 0,
                    since: crate::audit_stream::now_ms(),
                });
                for &seq in &batch.seqs {
                    gap.first_seq = gap.first_seq.min(seq);
                    gap.last_seq = gap.last_seq.max(seq);
                }
                gap.entries += batch.seqs.len() as u64;
                gap.anchors += batch.anchors;
                if opened {
                    tracing::warn!(
                        sink = %self.name,
                        reason = %e,
                        "audit sink queue is full: entries are not queued for it until it \
                         catches up; the sink will receive a gap record naming them"
                    );
                }
                self.save_gap(&s.gap);
            }
        }
    }

    /// Writes the open gap as a record when there is room for it.
    fn flush_gap(&self, s: &mut State) -> std::io::Result<()> {
        let Some(gap) = s.gap.clone() else {
            return Ok(());
        };
        let line = serde_json::to_string(&StreamRecord::Gap(gap.clone()))
            .map_err(std::io::Error::other)?;
        // Resume only once half the queue is free, so that a sink just at its bound
        // gets one gap rather than one per entry.
        if s.len - s.cursor + line.len() as u64 + 1 > self.max_bytes / 2 {
            return Ok(());
        }
        append(s, &[line])?;
        tracing::warn!(
            sink = %self.name,
            first_seq = gap.first_seq,
            last_seq = gap.last_seq,
            entries = gap.entries,
            anchors = gap.anchors,
            "audit sink missed entries while its queue was full; gap record queued"
        );
        s.gap = None;
        self.save_gap(&None);
        self.ready.notify_all();
        Ok(())
    }

    fn save_gap(&self, gap: &Option<Gap>) {
        let path = self.dir.join("gap.json");
        let result = match gap {
            Some(g) => serde_json::to_vec(g)
                .map_err(std::io::Error::other)
                .and_then(|b| write_replace(&path, &b)),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::error!(sink = %self.name, error = %e, "could not record the audit gap on disk");
        }
    }

    /// Waits up to `wait` for undelivered lines; returns at most about `max_bytes` of
    /// whole lines and the offset that [`DiskQueue::ack`] takes once they are
    /// delivered. `None` when nothing is pending or the queue is closed.
    pub fn next(&self, max_bytes: usize, wait: Duration) -> Option<(Vec<String>, u64)> {
        let mut s = self.lock();
        if s.len == s.cursor && !s.closed {
            s = self
                .ready
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if s.len == s.cursor || s.closed {
            return None;
        }
        let want = ((s.len - s.cursor) as usize).min(max_bytes.max(1));
        let mut buf = vec![0u8; want];
        let cursor = s.cursor;
        let read = (|| {
            s.file.seek(SeekFrom::Start(cursor))?;
            s.file.read_exact(&mut buf)
        })();
        if let Err(e) = read {
            tracing::error!(sink = %self.name, error = %e, "audit queue read failed");
            return None;
        }
        let end = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            // One line longer than `max_bytes`: read all of it.
            None => {
                drop(s);
                return self.next(max_bytes.saturating_mul(2), wait);
            }
        };
        let lines = String::from_utf8_lossy(&buf[..end])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Some((lines, cursor + end as u64))
    }

    /// Marks everything before `offset` delivered; compacts the file when it can.
    pub fn ack(&self, offset: u64) {
        let mut s = self.lock();
        s.cursor = offset.min(s.len);
        let result = if s.cursor == s.len {
            s.file.set_len(0).map(|()| {
                s.len = 0;
                s.cursor = 0;
            })
        } else if s.cursor > self.max_bytes / 2 {
            self.compact(&mut s)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!(sink = %self.name, error = %e, "audit queue compaction failed");
        }
        if let Err(e) = write_replace(&self.dir.join("cursor"), s.cursor.to_string().as_bytes()) {
            tracing::error!(sink = %self.name, error = %e, "audit queue cursor write failed");
        }
        if let Err(e) = self.flush_gap(&mut s) {
            tracing::error!(sink = %self.name, error = %e, "audit queue write failed");
        }
    }

    fn compact(&self, s: &mut State) -> std::io::Result<()> {
        let mut rest = Vec::with_capacity((s.len - s.cursor) as usize);
        s.file.seek(SeekFrom::Start(s.cursor))?;
        (&s.file).take(s.len - s.cursor).read_to_end(&mut rest)?;
        let path = self.dir.join("queue.jsonl");
        write_replace(&path, &rest)?;
        s.file = OpenOptions::new().append(true).read(true).open(&path)?;
        s.len = rest.len() as u64;
        s.cursor = 0;
        Ok(())
    }

    /// Wakes the delivery thread and makes [`DiskQueue::next`] return `None` for good.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// True once [`DiskQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

fn append(s: &mut State, lines: &[String]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    s.file.write_all(&buf)?;
    s.len += buf.len() as u64;
    Ok(())
}

fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: i64) -> Batch {
        Batch {
            lines: vec![format!(
                "{{\"type\":\"x\",\"seq\":{seq},\"pad\":\"{}\"}}",
                "p".repeat(100)
            )],
            seqs: vec![seq],
            anchors: 0,
        }
    }

    #[test]
    fn full_queue_counts_a_gap_and_reports_it_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let q = DiskQueue::open(dir.path(), "t", 4096).unwrap();
        let mut seq = 0;
        while q.gap_is_none() {
            seq += 1;
            q.push(batch(seq));
        }
        let first_dropped = seq;
        for _ in 0..5 {
            seq += 1;
            q.push(batch(seq));
        }
        // A restart keeps both the queued lines and the open gap.
        drop(q);
        let q = DiskQueue::open(dir.path(), "t", 4096).unwrap();
        let mut delivered = Vec::new();
        while let Some((lines, end)) = q.next(1000, Duration::from_millis(1)) {
            delivered.extend(lines);
            q.ack(end);
        }
        let gap = delivered.last().unwrap();
        let gap: serde_json::Value = serde_json::from_str(gap).unwrap();
        assert_eq!(gap["type"], "gap");
        assert_eq!(gap["first_seq"], first_dropped);
        assert_eq!(gap["last_seq"], seq);
        assert_eq!(gap["entries"], 6);
        assert_eq!(delivered.len() as i64, first_dropped);
        assert_eq!(q.pending_bytes(), 0);
    }

    impl DiskQueue {
        fn gap_is_none(&self) -> bool {
            self.lock().gap.is_none()
        }
    }
}
