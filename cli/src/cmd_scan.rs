//! `envseal scan`: the leak scanner (SPEC §6).

use crate::global::Global;
use std::process::ExitCode;

/// `envseal scan` arguments.
#[derive(clap::Args)]
pub struct ScanArgs {
    /// Repository or directory.
    path: Option<std::path::PathBuf>,
}

pub fn run(_global: &Global, _args: ScanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("envseal scan is not available in this build")
}
