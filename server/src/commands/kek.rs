//! `envseal-server kek status|rotate|migrate`: KEK versions in use, rotation and
//! provider migration, run beside serving replicas (see [`crate::kek`]).

use crate::config::KekKind;
use crate::kek::{self, RewrapOptions};
use crate::ServerArgs;
use anyhow::Context as _;
use clap::Subcommand;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// KEK maintenance.
#[derive(Debug, Clone, Subcommand)]
pub enum KekCommand {
    /// KEK versions in use and how many data keys each wraps.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new KEK version current and re-wrap every data key under it (online;
    /// run it again to resume after an interruption).
    Rotate {
        /// Data keys per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Pause between batches, in milliseconds.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Re-wrap every data key under another provider (online; resumable). Serving
    /// replicas should already run with `ENVSEAL_KEK=<to>` and the old provider in
    /// `ENVSEAL_KEK_PREVIOUS`.
    Migrate {
        /// The provider to move to.
        #[arg(long, value_enum)]
        to: KekKind,
        /// Data keys per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Pause between batches, in milliseconds.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
}

/// Runs one `kek` subcommand.
pub async fn run(args: ServerArgs, command: KekCommand) -> anyhow::Result<ExitCode> {
    let resolved = args.resolve()?;
    let store = Arc::new(
        crate::store::Store::connect_beside_server(resolved.database_url.expose())
            .await
            .with_context(|| format!("opening database {}", resolved.database_display))?,
    );
    let to = match &command {
        KekCommand::Migrate { to, .. } => Some(*to),
        _ => None,
    };
    let keys = crate::open_keys(&args, &resolved, &store, to).await?;
    // Prove the keys open this database before touching any row.
    crate::secrets::Secrets::new(store.clone(), keys.clone(), args.keep_versions)
        .verify_master_key()
        .await?;
    let options = |batch_size: usize, pause_ms: u64| RewrapOptions {
        batch: batch_size,
        pause: Duration::from_millis(pause_ms),
    };
    let result = match command {
        KekCommand::Status { json } => {
            let s = kek::status(&store, &*keys).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("provider: {}\ncurrent:  {}", s.provider, s.current);
                println!("data keys by KEK:");
                for (id, n) in &s.counts {
                    let mark = if *id == s.current { " (current)" } else { "" };
                    println!("  {id:<48} {n:>8}{mark}");
                }
                for j in &s.jobs {
                    let state = match j.finished_at {
                        Some(_) => "finished",
                        None => "unfinished (run it again to resume)",
                    };
                    println!(
                        "job {} {} -> {}: {} re-wrapped, {state}",
                        j.id, j.kind, j.target, j.rewrapped
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        KekCommand::Rotate {
            batch_size,
            pause_ms,
        } => {
            let audit = crate::audit::AuditLog::start(store.clone());
            kek::rotate(&store, &*keys, &audit, options(batch_size, pause_ms)).await?
        }
        KekCommand::Migrate {
            batch_size,
            pause_ms,
            ..
        } => {
            let audit = crate::audit::AuditLog::start(store.clone());
            kek::migrate(&store, &*keys, &audit, options(batch_size, pause_ms)).await?
        }
    };
    println!(
        "job {}{}: every data key is wrapped under {} ({} re-wrapped by this run)",
        result.job,
        if result.resumed { " (resumed)" } else { "" },
        result.target,
        result.rewrapped
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
