//! What envseal-server streams to external audit sinks, one JSON object per line:
//! committed entries, signed anchors of the chain head, and gap notices.
//!
//! This module fixes the format only. It signs and verifies nothing (this crate knows
//! no cryptography): an anchor's signature is Ed25519 over [`Anchor::signed_message`],
//! made by the server with a key the database does not hold and checked by
//! `envseal audit verify --anchors` with the public key alone.

use crate::wire::AuditEntry;
use serde::{Deserialize, Serialize};

/// Domain separation of the signed message.
const CONTEXT: &[u8] = b"envseal-audit-anchor-v1";

/// A signed statement "the chain's entry `seq` has hash `head_hash`", made at `ts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Sequence number of the anchored head.
    pub seq: i64,
    /// Hash of that entry, hex.
    pub head_hash: String,
    /// When the anchor was made, Unix milliseconds.
    pub ts: i64,
    /// The signer's Ed25519 public key, hex (to tell keys apart; trust comes from the
    /// verifier's own copy of the key, never from this field).
    pub key: String,
    /// Ed25519 signature over [`Anchor::signed_message`], hex.
    pub signature: String,
}

impl Anchor {
    /// The bytes signed: a context string, then `seq`, `head_hash` and `ts`, each as an
    /// 8-byte big-endian length and its bytes.
    pub fn signed_message(seq: i64, head_hash: &str, ts: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(CONTEXT);
        for field in [seq.to_string().as_str(), head_hash, ts.to_string().as_str()] {
            m.extend_from_slice(&(field.len() as u64).to_be_bytes());
            m.extend_from_slice(field.as_bytes());
        }
        m
    }

    /// [`Anchor::signed_message`] of this anchor.
    pub fn message(&self) -> Vec<u8> {
        Self::signed_message(self.seq, &self.head_hash, self.ts)
    }
}

/// Entries a sink did not receive because its bounded queue was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Lowest sequence number among the entries not delivered.
    pub first_seq: i64,
    /// Highest sequence number among the entries not delivered.
    pub last_seq: i64,
    /// How many entries were not delivered (several replicas can interleave, so this
    /// can be fewer than the range).
    pub entries: u64,
    /// How many anchors were not delivered.
    pub anchors: u64,
    /// When the first one was dropped, Unix milliseconds.
    pub since: i64,
}

/// One line of an audit stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamRecord {
    /// A committed entry.
    Entry(AuditEntry),
    /// A signed head.
    Anchor(Anchor),
    /// Entries this sink missed.
    Gap(Gap),
}

/// Every anchor in a text of stream lines: JSON lines as written by the file and HTTP
/// sinks, or syslog lines whose message is the JSON object. Lines that hold no record
/// are skipped; each anchor comes with its 1-based line number.
pub fn anchors_in(text: &str) -> Vec<(usize, Anchor)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(start) = line.find('{') else {
            continue;
        };
        if let Ok(StreamRecord::Anchor(a)) = serde_json::from_str(line[start..].trim_end()) {
            out.push((i + 1, a));
        }
    }
    out
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds, e.g.
/// `2026-01-02T03:04:05.678Z`; `-` (the syslog nil value) when out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_separates_fields() {
        assert_ne!(
            Anchor::signed_message(1, "23", 4),
            Anchor::signed_message(12, "3", 4)
        );
        assert!(Anchor::signed_message(1, "h", 2).starts_with(CONTEXT));
    }

    #[test]
    fn anchors_found_in_json_lines_and_syslog_lines() {
        let a = Anchor {
            seq: 7,
            head_hash: "ab".into(),
            ts: 1,
            key: "k".into(),
            signature: "s".into(),
        };
        let json = serde_json::to_string(&StreamRecord::Anchor(a.clone())).unwrap();
        let gap = serde_json::to_string(&StreamRecord::Gap(Gap {
            first_seq: 1,
            last_seq: 2,
            entries: 2,
            anchors: 0,
            since: 0,
        }))
        .unwrap();
        let text = format!(
            "not json\n{json}\n{gap}\n<110>1 2026-01-01T00:00:00.000Z host envseal-server 1 anchor - {json}\n{{broken\n"
        );
        let found = anchors_in(&text);
        assert_eq!(found, vec![(2, a.clone()), (4, a)]);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
    }
}
