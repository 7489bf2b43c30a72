//! `envseal`: the command line. Parses arguments and dispatches to one module per
//! subcommand; exit codes are decided here.

use clap::{Parser, Subcommand};
use envseal::{cmd_audit, cmd_import, cmd_login, cmd_rotate, cmd_users};
use envseal::{cmd_export, cmd_projects, cmd_run, cmd_scan, cmd_secrets, cmd_tokens, global};
use std::process::ExitCode;

/// Keeps Dify's secrets out of .env files.
#[derive(Parser)]
#[command(name = "envseal", version, about)]
struct Cli {
    #[command(flatten)]
    global: global::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Whoami,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Projects(cmd) => cmd_projects::run(&cli.global, cmd),
        Command::Secrets(cmd) => cmd_secrets::run(&cli.global, cmd),
        Command::Tokens(cmd) => cmd_tokens::run(&cli.global, cmd),
        Command::Export(args) => cmd_export::run(&cli.global, args),
        Command::Import(args) => cmd_import::run(&cli.global, args),
        Command::Run(args) => cmd_run::run(&cli.global, args),
        Command::Scan(args) => cmd_scan::run(&cli.global, args),
        Command::Login(args) => cmd_login::login(&cli.global, args),
        Command::Logout => cmd_login::logout(&cli.global),
        Command::Whoami => cmd_login::whoami(&cli.global),
        Command::Passwd => cmd_login::passwd(&cli.global),
        Command::Mfa(cmd) => cmd_login::mfa(&cli.global, cmd),
        Command::Users(cmd) => cmd_users::run(&cli.global, cmd),
        Command::Audit(cmd) => cmd_audit::run(&cli.global, cmd),
        Command::Rotate(args) => cmd_rotate::run(&cli.global, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("envseal: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn argument_definitions_are_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
