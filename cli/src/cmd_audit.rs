//! `envseal audit verify|tail|export`: check the server's hash chain, and read the log
//! as JSON lines. Server admins only.
//!
//! Verification runs on the server, which walks the stored chain; `verify` prints the
//! head (sequence number and hash) so that it can be recorded elsewhere and a later
//! truncation noticed. With `--anchors` it also compares the chain with the signed
//! anchors the server wrote to its audit sinks (checked with the public key alone),
//! which tells a truncated, rolled-back or rewritten database from the real chain.

use crate::global::Global;
use envseal_core::wire::{AuditPage, AuditVerification};
use std::io::Write as _;
use std::process::ExitCode;

/// `envseal audit …`.
#[derive(clap::Subcommand)]
pub enum AuditCmd {
    /// Verify the whole chain; exit 1 and name the first broken entry if any.
    Verify {
        /// Fail unless the chain's head is at least this sequence number (to notice
        /// a truncated log against a head recorded earlier).
        #[arg(long)]
        expect_min_seq: Option<i64>,
        /// Signed anchors to compare the chain with: a file or an http(s):// URL of
        /// stream lines (JSON lines or syslog lines, as the audit sinks wrote them).
        #[arg(long, value_name = "FILE|URL", requires = "anchor_key")]
        anchors: Option<String>,
        /// The anchor signing key's public key: the server's audit-anchor.key.pub
        /// (PEM) or 64 hex digits.
        #[arg(long, env = "ENVSEAL_AUDIT_ANCHOR_PUBKEY", value_name = "FILE")]
        anchor_key: Option<std::path::PathBuf>,
    },
    /// Print the last entries as JSON lines.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
    /// Print every entry (after `--after`) as JSON lines.
    Export {
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

/// Runs an `audit` subcommand.
pub fn run(global: &Global, cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        AuditCmd::Verify {
            expect_min_seq,
            anchors,
            anchor_key,
        } => {
            let v: AuditVerification = client.get("/v1/audit/verify")?;
            if let Some(b) = &v.first_broken {
                writeln!(
                    out,
                    "BROKEN at entry {}: {} ({} entries checked)",
                    b.seq, b.reason, v.entries
                )?;
                return Ok(ExitCode::from(1));
            }
            if let Some(min) = expect_min_seq {
                if v.head_seq < min {
                    writeln!(
                        out,
                        "BROKEN: the chain ends at entry {} but {min} was expected (truncated)",
                        v.head_seq
                    )?;
                    return Ok(ExitCode::from(1));
                }
            }
            if let (Some(source), Some(key)) = (anchors, anchor_key) {
                let key = anchors::load_public_key(&key)?;
                let text = anchors::load_source(&source, global.ca_cert.as_deref())?;
                let report = anchors::check(&text, &key, v.head_seq, |seq| {
                    let page: AuditPage =
                        client.get(&format!("/v1/audit?after={}&limit=1000", seq - 1))?;
                    Ok(page.entries.into_iter().map(|e| (e.seq, e.hash)).collect())
                })?;
                for line in &report.notes {
                    writeln!(out, "note: {line}")?;
                }
                if let Some(problem) = &report.problem {
                    writeln!(out, "BROKEN: {problem}")?;
                    return Ok(ExitCode::from(1));
                }
                writeln!(
                    out,
                    "ok: {} entries, head {} {}; {}",
                    v.entries, v.head_seq, v.head_hash, report.summary
                )?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "ok: {} entries, head {} {}",
                v.entries, v.head_seq, v.head_hash
            )?;
        }
        AuditCmd::Tail { lines } => {
            let page: AuditPage = client.get(&format!("/v1/audit?tail={}", lines.max(1)))?;
            for e in page.entries {
                writeln!(out, "{}", serde_json::to_string(&e)?)?;
            }
        }
        AuditCmd::Export { after } => {
            let mut after = after;
            loop {
                let page: AuditPage = client.get(&format!("/v1/audit?after={after}&limit=1000"))?;
                let Some(last) = page.entries.last() else {
                    break;
                };
                after = last.seq;
                for e in &page.entries {
                    writeln!(out, "{}", serde_json::to_string(e)?)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Comparing the chain with signed anchors.
mod anchors {
    use anyhow::Context as _;
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use ed25519_dalek::{Signature, VerifyingKey};
    use envseal_core::audit_anchor::{anchors_in, rfc3339_ms, Anchor};
    use std::collections::{BTreeMap, HashMap};
    use std::io::Read as _;
    use std::path::Path;

    /// Largest anchors source read.
    const MAX_SOURCE: u64 = 1 << 30;

    /// Reads a public key: SubjectPublicKeyInfo PEM or 64 hex digits.
    pub(super) fn load_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading anchor public key {}", path.display()))?;
        let text = text.trim();
        if let Ok(k) = VerifyingKey::from_public_key_pem(text) {
            return Ok(k);
        }
        let bytes: [u8; 32] = hex::decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| {
                format!(
                    "{} is neither an Ed25519 public key PEM nor 64 hex digits",
                    path.display()
                )
            })?;
        VerifyingKey::from_bytes(&bytes)
            .with_context(|| format!("{} is not a valid Ed25519 public key", path.display()))
    }

    /// The text of a file, or of an http(s) URL's body (`ca`: extra CA to trust).
    pub(super) fn load_source(source: &str, ca: Option<&Path>) -> anyhow::Result<String> {
        if !(source.starts_with("http://") || source.starts_with("https://")) {
            return std::fs::read_to_string(source)
                .with_context(|| format!("reading anchors from {source}"));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("envseal/", env!("CARGO_PKG_VERSION")));
        if source.starts_with("https://") {
            builder = builder.tls_config(crate::client::tls_config(ca)?);
        }
        // The URL may carry credentials: never put it in a message.
        let resp = builder.build().get(source).call().map_err(|e| match e {
            ureq::Error::Status(code, _) => {
                anyhow::anyhow!("the anchors URL answered with HTTP status {code}")
            }
            ureq::Error::Transport(t) => {
                anyhow::anyhow!("could not fetch the anchors URL: {}", t.kind())
            }
        })?;
        let mut text = String::new();
        resp.into_reader()
            .take(MAX_SOURCE)
            .read_to_string(&mut text)
            .context("reading the anchors URL's answer")?;
        Ok(text)
    }

    /// What the anchors say about the chain.
    #[derive(Debug)]
    pub(super) struct Report {
        /// Why the chain does not match, if it does not.
        pub(super) problem: Option<String>,
        /// What matched, when everything did.
        pub(super) summary: String,
        /// Things worth knowing either way.
        pub(super) notes: Vec<String>,
    }

    /// Checks every anchor in `text` signed by `key` against the chain whose head is
    /// `head_seq`. `hashes_from(seq)` returns (seq, hash) of the entries from `seq` on
    /// (at least `seq` itself when it exists).
    pub(super) fn check(
        text: &str,
        key: &VerifyingKey,
        head_seq: i64,
        mut hashes_from: impl FnMut(i64) -> anyhow::Result<Vec<(i64, String)>>,
    ) -> anyhow::Result<Report> {
        let key_hex = hex::encode(key.as_bytes());
        let mut notes = Vec::new();
        let mut other_keys = 0usize;
        // seq → (hash, earliest time) of the valid anchors.
        let mut anchored: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
        for (line, a) in anchors_in(text) {
            if a.key != key_hex {
                other_keys += 1;
                continue;
            }
            if !signature_ok(key, &a) {
                return Ok(Report {
                    problem: Some(format!(
                        "the anchor on line {line} (entry {}) does not carry a valid signature: \
                         the anchors were altered",
                        a.seq
                    )),
                    summary: String::new(),
                    notes,
                });
            }
            let at = anchored.entry(a.seq).or_default();
            match at.iter_mut().find(|(h, _)| *h == a.head_hash) {
                Some((_, ts)) => *ts = (*ts).min(a.ts),
                None => at.push((a.head_hash, a.ts)),
            }
        }
        if other_keys > 0 {
            notes.push(format!(
                "{other_keys} anchors signed by other keys were ignored"
            ));
        }
        let Some((&last_seq, _)) = anchored.last_key_value() else {
            return Ok(Report {
                problem: Some("no anchor signed by this key was found".to_owned()),
                summary: String::new(),
                notes,
            });
        };
        for (seq, hashes) in &anchored {
            if hashes.len() > 1 {
                notes.push(format!(
                    "anchors disagree about entry {seq}: the database held different chains \
                     at different times"
                ));
            }
        }
        // Hashes of the anchored entries that the chain still has.
        let mut chain: HashMap<i64, String> = HashMap::new();
        let mut covered = 0i64;
        for &seq in anchored.keys().filter(|&&s| s <= head_seq) {
            if seq <= covered {
                continue;
            }
            for (s, h) in hashes_from(seq)? {
                covered = covered.max(s);
                if anchored.contains_key(&s) {
                    chain.insert(s, h);
                }
            }
            covered = covered.max(seq);
        }
        let mut last_match: Option<(i64, i64)> = None;
        for (&seq, hashes) in &anchored {
            if seq > head_seq {
                break;
            }
            let have = chain.get(&seq);
            match hashes.iter().find(|(h, _)| Some(h) == have) {
                Some(_) if hashes.len() == 1 => {
                    last_match = Some((seq, hashes[0].1));
                }
                _ => {
                    let (_, ts) = hashes
                        .iter()
                        .find(|(h, _)| Some(h) != have)
                        .expect("one differs");
                    let problem = match last_match {
                        Some((good, _)) => format!(
                            "entry {seq} differs from its anchor of {}: the chain was replaced \
                             after entry {good} (an older copy of the database restored, or \
                             entries removed and new ones appended)",
                            rfc3339_ms(*ts)
                        ),
                        None => format!(
                            "entry {seq} differs from its anchor of {} and no earlier anchor \
                             matches: the chain was rewritten (or replaced by a copy older \
                             than the first anchor)",
                            rfc3339_ms(*ts)
                        ),
                    };
                    return Ok(Report {
                        problem: Some(problem),
                        summary: String::new(),
                        notes,
                    });
                }
            }
        }
        if last_seq > head_seq {
            let ts = anchored[&last_seq]
                .iter()
                .map(|(_, t)| *t)
                .min()
                .unwrap_or(0);
            return Ok(Report {
                problem: Some(format!(
                    "the chain ends at entry {head_seq} but entry {last_seq} was anchored at {}: \
                     entries {}..{last_seq} were removed (tail truncated)",
                    rfc3339_ms(ts),
                    head_seq + 1
                )),
                summary: String::new(),
                notes,
            });
        }
        let (seq, ts) = last_match.expect("at least one anchor, none beyond the head");
        if head_seq > seq {
            notes.push(format!(
                "entries {}..{head_seq} are newer than the last anchor",
                seq + 1
            ));
        }
        Ok(Report {
            problem: None,
            summary: format!(
                "{} anchored entries match (latest: entry {seq}, anchored {})",
                anchored.len(),
                rfc3339_ms(ts)
            ),
            notes,
        })
    }

    fn signature_ok(key: &VerifyingKey, a: &Anchor) -> bool {
        let Some(sig) = hex::decode(&a.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
        else {
            return false;
        };
        key.verify_strict(&a.message(), &sig).is_ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use ed25519_dalek::{Signer as _, SigningKey};
        use envseal_core::audit_anchor::StreamRecord;

        fn anchor(k: &SigningKey, seq: i64, hash: &str) -> String {
            let sig = k.sign(&Anchor::signed_message(seq, hash, seq * 1000));
            serde_json::to_string(&StreamRecord::Anchor(Anchor {
                seq,
                head_hash: hash.into(),
                ts: seq * 1000,
                key: hex::encode(k.verifying_key().as_bytes()),
                signature: hex::encode(sig.to_bytes()),
            }))
            .unwrap()
        }

        fn chain(n: i64, tag: &str) -> Vec<(i64, String)> {
            (1..=n).map(|s| (s, format!("{tag}{s}"))).collect()
        }

        fn run(text: &str, k: &SigningKey, c: &[(i64, String)]) -> Report {
            let head = c.last().map(|(s, _)| *s).unwrap_or(0);
            check(text, &k.verifying_key(), head, |from| {
                Ok(c.iter()
                    .filter(|(s, _)| *s >= from)
                    .take(1000)
                    .cloned()
                    .collect())
            })
            .unwrap()
        }

        #[test]
        fn each_tampering_is_named() {
            let k = SigningKey::from_bytes(&[7; 32]);
            let text = [anchor(&k, 3, "a3"), anchor(&k, 6, "a6")].join("\n");
            let ok = run(&text, &k, &chain(8, "a"));
            assert!(ok.problem.is_none(), "{ok:?}");
            assert!(ok.notes[0].contains("7..8"));
            let truncated = run(&text, &k, &chain(5, "a")).problem.unwrap();
            assert!(truncated.contains("6..6 were removed"), "{truncated}");
            let mut rolled = chain(4, "a");
            rolled.extend((5..=9).map(|s| (s, format!("b{s}"))));
            let rolled = run(&text, &k, &rolled).problem.unwrap();
            assert!(rolled.contains("replaced after entry 3"), "{rolled}");
            let rewritten = run(&text, &k, &chain(8, "x")).problem.unwrap();
            assert!(rewritten.contains("rewritten"), "{rewritten}");
            let forged = text.replace("\"seq\":6", "\"seq\":5");
            let forged = run(&forged, &k, &chain(8, "a")).problem.unwrap();
            assert!(forged.contains("valid signature"), "{forged}");
            let other = SigningKey::from_bytes(&[8; 32]);
            let none = run(&text, &other, &chain(8, "a"));
            assert!(none.problem.unwrap().contains("no anchor"));
        }
    }
}
