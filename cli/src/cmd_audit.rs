//! `envseal audit verify|tail|export`: check the server's hash chain, and read the log
//! as JSON lines. Server admins only.
//!
//! Verification runs on the server, which walks the stored chain; `verify` prints the
//! head (sequence number and hash) so that it can be recorded elsewhere and a later
//! truncation noticed.

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
        AuditCmd::Verify { expect_min_seq } => {
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
