//! `envseal run`: the container entrypoint launcher (SPEC §5).

use crate::global::Global;
use std::process::ExitCode;

/// `envseal run` arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(_global: &Global, _args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("envseal run is not available in this build")
}
