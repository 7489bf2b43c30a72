//! `envseal tokens …`: create (shown once), list, revoke machine tokens.

use crate::client::seg;
use crate::global::Global;
use envseal_core::wire::{Access, CreateToken, CreatedToken, TokenList};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum TokensCmd {
    /// Create a machine token scoped to a project's environments. Prints the token once.
    Create {
        /// Label, e.g. dify-api.
        #[arg(long)]
        name: String,
        /// Project.
        #[arg(long, short = 'p')]
        project: String,
        /// Environment (repeat, or `*` for all).
        #[arg(long = "env", short = 'e', required = true)]
        environments: Vec<String>,
        /// Allow writes too.
        #[arg(long)]
        write: bool,
        /// Lifetime in seconds.
        #[arg(long)]
        ttl: Option<i64>,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

pub fn run(global: &Global, cmd: TokensCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match cmd {
        TokensCmd::Create {
            name,
            project,
            environments,
            write,
            ttl,
        } => {
            let created: CreatedToken = client.send(
                "POST",
                "/v1/tokens",
                &CreateToken {
                    name,
                    project,
                    environments,
                    access: if write { Access::Write } else { Access::Read },
                    ttl_seconds: ttl,
                },
            )?;
            eprintln!(
                "created token {} ({}); it is shown once, store it now:",
                created.info.id, created.info.name
            );
            // Explicitly requested output: the token goes to stdout only.
            println!("{}", created.token);
        }
        TokensCmd::List => {
            let list: TokenList = client.get("/v1/tokens")?;
            for t in list.tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now()) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.name,
                    t.project.as_deref().unwrap_or("*"),
                    t.environments.join(","),
                    t.access,
                    state
                );
            }
        }
        TokensCmd::Revoke { id } => {
            client.delete(&format!("/v1/tokens/{}", seg(&id)))?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
