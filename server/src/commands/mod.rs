//! Offline and maintenance subcommands of `envseal-server` (everything but serving).
//!
//! Each subcommand lives in its own module here and receives the same checked
//! [`ServerArgs`] as the server, so it opens the same database and key provider.
//! `envseal-server` with no subcommand serves; so does `envseal-server serve`.

pub mod kek;

use crate::ServerArgs;
use clap::Subcommand;
use std::process::ExitCode;

/// The subcommands of `envseal-server`.
#[derive(Debug, Clone, Subcommand)]
pub enum ServerCommand {
    /// Serve the API (the default when no subcommand is given).
    Serve,
    /// Key-encryption key: status, rotation, provider migration.
    #[command(subcommand)]
    Kek(kek::KekCommand),
}

/// Runs `command` with the server's settings. Serving is [`crate::run`].
pub async fn dispatch(args: ServerArgs, command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Serve => crate::run(args).await.map(|()| ExitCode::SUCCESS),
        ServerCommand::Kek(c) => kek::run(args, c).await,
    }
}
