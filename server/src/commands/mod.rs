//! Offline and maintenance subcommands of `envseal-server` (everything but serving).
//!
//! Each subcommand lives in its own module here and receives the same checked
//! [`ServerArgs`] as the server, so it opens the same database and key provider.
//! `envseal-server` with no subcommand serves; so does `envseal-server serve`.

pub mod admin;
pub mod backup;
pub mod healthcheck;
pub mod kek;

use crate::ServerArgs;
use clap::Subcommand;
use std::process::ExitCode;

/// The subcommands of `envseal-server`.
#[derive(Debug, Clone, Subcommand)]
pub enum ServerCommand {
    /// Serve the API (the default when no subcommand is given).
    Serve,
    /// Write an online, consistent snapshot of the SQLite database to a new file.
    Backup(backup::BackupArgs),
    /// Replace the data directory's SQLite database with a backup (server stopped).
    Restore(backup::RestoreArgs),
    /// Administration that needs the data directory and master key.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Ask the running server's /healthz over loopback; exit 0 when healthy (the
    /// image's HEALTHCHECK).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Key-encryption key: status, rotation, provider migration.
    #[command(subcommand)]
    Kek(kek::KekCommand),
}

/// Runs `command` with the server's settings. Serving is [`crate::run`].
pub async fn dispatch(args: ServerArgs, command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Serve => crate::run(args).await.map(|()| ExitCode::SUCCESS),
        ServerCommand::Backup(b) => backup::backup(&args, &b).await,
        ServerCommand::Restore(r) => backup::restore(&args, &r).await,
        ServerCommand::Admin(command) => admin::run(args, command).await,
        ServerCommand::Healthcheck(h) => {
            tokio::task::spawn_blocking(move || healthcheck::run(&args, &h)).await?
        }
        ServerCommand::Kek(c) => kek::run(args, c).await,
    }
}
