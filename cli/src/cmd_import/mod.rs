//! `envseal import`: bring existing secrets into an environment. One module per
//! source; this file only declares the arguments and dispatches.

use crate::global::{EnvTarget, Global};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod dify;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    target: EnvTarget,
    /// A Dify install: its `docker/` directory (`.env` and `envs/**/*.env`) or one
    /// `.env` file.
    #[arg(long, value_name = "PATH")]
    dify: Option<PathBuf>,
    #[command(flatten)]
    dify_options: dify::DifyOptions,
}

pub fn run(global: &Global, args: ImportArgs) -> anyhow::Result<ExitCode> {
    match &args.dify {
        Some(path) => dify::run(global, &args.target, path, &args.dify_options),
        None => anyhow::bail!("nothing to import: pass --dify PATH"),
    }
}
