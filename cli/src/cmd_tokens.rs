//! `envseal tokens …`: create (shown once), list, revoke machine tokens.

use crate::client::seg;
use crate::global::Global;
use crate::output::{self, Format, FormatArg, Table};
use envseal_core::wire::{Access, CreateToken, CreatedToken, TokenInfo, TokenList};
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
        /// Lifetime (seconds, or 1h, 30m, 7d…).
        #[arg(long, value_parser = crate::duration::parse, value_name = "DURATION")]
        ttl: Option<std::time::Duration>,
    },
    /// List tokens (never their values).
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Replace a token: prints a new one (same name and scope) once; the old one keeps
    /// working for the grace period, then stops.
    Rotate {
        /// Token id.
        id: String,
        /// How long the old token stays valid (0: it stops now; at most 30d).
        #[arg(long, default_value = "1h", value_parser = parse_grace, value_name = "DURATION")]
        grace: std::time::Duration,
    },
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
                    ttl_seconds: ttl.map(|d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)),
                },
            )?;
            eprintln!(
                "created token {} ({}); it is shown once, store it now:",
                created.info.id, created.info.name
            );
            // Explicitly requested output: the token goes to stdout only.
            println!("{}", created.token);
        }
        TokensCmd::List { format } => {
            let list: TokenList = client.get("/v1/tokens")?;
            match format.get() {
                Format::Json => output::print_json(&serde_json::json!({
                    "tokens": list.tokens.iter().map(|t| serde_json::json!({
                        "id": t.id,
                        "name": t.name,
                        "project": t.project,
                        "environments": t.environments,
                        "access": t.access,
                        "state": token_state(t),
                        "created_at": output::rfc3339(t.created_at),
                        "expires_at": output::rfc3339_opt(t.expires_at),
                        "revoked_at": output::rfc3339_opt(t.revoked_at),
                    })).collect::<Vec<_>>(),
                }))?,
                Format::Table => {
                    let mut table = Table::new(&[
                        "ID",
                        "NAME",
                        "PROJECT",
                        "ENVIRONMENTS",
                        "ACCESS",
                        "STATE",
                        "EXPIRES",
                    ]);
                    for t in &list.tokens {
                        table.row(vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.project.clone().unwrap_or_else(|| "*".into()),
                            t.environments.join(","),
                            t.access.clone(),
                            token_state(t).into(),
                            t.expires_at.map_or("never".into(), output::human_time),
                        ]);
                    }
                    output::print(&table.render())?;
                }
                Format::Tsv => {
                    for t in &list.tokens {
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            t.id,
                            t.name,
                            t.project.as_deref().unwrap_or("*"),
                            t.environments.join(","),
                            t.access,
                            token_state(t)
                        );
                    }
                }
            }
        }
        TokensCmd::Rotate { id, grace } => {
            let created: CreatedToken = client.send(
                "POST",
                &format!("/v1/tokens/{}/rotate", seg(&id)),
                &serde_json::json!({ "grace_seconds": grace.as_secs() }),
            )?;
            let until = if grace.is_zero() {
                "now".to_owned()
            } else {
                format!("in {}", crate::duration::show(grace))
            };
            eprintln!(
                "rotated token {id} ({}): the old token stops working {until}; the new \
                 token {} is shown once, store it now:",
                created.info.name, created.info.id
            );
            println!("{}", created.token);
        }
        TokensCmd::Revoke { id } => {
            client.delete(&format!("/v1/tokens/{}", seg(&id)))?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A grace period: a duration, or `0` for none.
fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    if matches!(s.trim(), "0" | "0s") {
        return Ok(std::time::Duration::ZERO);
    }
    crate::duration::parse(s)
}

fn token_state(t: &TokenInfo) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now()) {
        "expired"
    } else {
        "active"
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
