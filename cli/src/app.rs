//! The command tree: every subcommand and its arguments, as clap definitions. `main.rs`
//! parses with it; completions, man pages and `docs/cli.md` are generated from it.

use crate::{cmd_audit, cmd_export, cmd_import, cmd_login, cmd_projects, cmd_rotate};
use crate::{cmd_run, cmd_scan};
use crate::{cmd_secrets, cmd_tokens, cmd_users, global};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `envseal --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ENVSEAL_COMMIT"), ")");

/// Keeps Dify's secrets out of .env files.
#[derive(Parser)]
#[command(name = "envseal", version = VERSION, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: global::Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand. Parsed once per process, so the size of `run`'s arguments does
/// not matter.
#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Manage projects and their environments.
    #[command(subcommand)]
    Projects(cmd_projects::ProjectsCmd),
    /// Read and write secrets.
    #[command(subcommand)]
    Secrets(cmd_secrets::SecretsCmd),
    /// Manage machine tokens.
    #[command(subcommand)]
    Tokens(cmd_tokens::TokensCmd),
    /// Print a whole environment as .env or JSON (values included).
    Export(cmd_export::ExportArgs),
    /// Move an existing install's secrets into envseal (`--dify docker/`).
    Import(cmd_import::ImportArgs),
    /// Fetch an environment's secrets and run a command with them.
    Run(cmd_run::RunArgs),
    /// Scan a Git history, directory or staged changes for leaked secrets.
    Scan(cmd_scan::ScanArgs),
    /// Sign in as a user; prints a session token.
    Login(cmd_login::LoginArgs),
    /// End the current user session.
    Logout,
    /// Show who the token or session belongs to.
    Whoami(crate::output::FormatArg),
    /// Change your password (current, then new, one per line on stdin).
    Passwd,
    /// Enrol or remove TOTP for your account.
    #[command(subcommand)]
    Mfa(cmd_login::MfaCmd),
    /// Manage users and their roles.
    #[command(subcommand)]
    Users(cmd_users::UsersCmd),
    /// Verify and read the audit log.
    #[command(subcommand)]
    Audit(cmd_audit::AuditCmd),
    /// Rotate a secret on its target system (create, set, test, finish).
    Rotate(cmd_rotate::RotateArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(crate::cmd_docs::CompletionsArgs),
    /// Write man pages (envseal.1 and one per subcommand).
    Man(crate::cmd_docs::ManArgs),
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Projects(cmd) => cmd_projects::run(global, cmd),
        Command::Secrets(cmd) => cmd_secrets::run(global, cmd),
        Command::Tokens(cmd) => cmd_tokens::run(global, cmd),
        Command::Export(args) => cmd_export::run(global, args),
        Command::Import(args) => cmd_import::run(global, args),
        Command::Run(args) => cmd_run::run(global, args),
        Command::Scan(args) => cmd_scan::run(global, args),
        Command::Login(args) => cmd_login::login(global, args),
        Command::Logout => cmd_login::logout(global),
        Command::Whoami(format) => cmd_login::whoami(global, format),
        Command::Passwd => cmd_login::passwd(global),
        Command::Mfa(cmd) => cmd_login::mfa(global, cmd),
        Command::Users(cmd) => cmd_users::run(global, cmd),
        Command::Audit(cmd) => cmd_audit::run(global, cmd),
        Command::Rotate(args) => cmd_rotate::run(global, args),
        Command::Completions(args) => crate::cmd_docs::completions(args),
        Command::Man(args) => crate::cmd_docs::man(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn argument_definitions_are_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
