//! `envseal-server admin recover`: issues a new admin token when none is usable (all
//! revoked or expired, or lost). It works only where the server's data lives: it opens
//! the database with the server's settings and must prove the master key opens it, so
//! a database copy without its key cannot be taken over. The new token is printed
//! once on stdout and the recovery is recorded in the audit log.

use crate::audit::{AuditEvent, AuditLog};
use crate::crypto::MasterKeySource;
use crate::ServerArgs;
use clap::Subcommand;
use std::process::ExitCode;

/// `envseal-server admin …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Issue a new server admin token (local recovery: needs the data directory and
    /// master key; audited).
    Recover {
        /// Label of the new token.
        #[arg(long, default_value = "recovered-admin")]
        name: String,
    },
}

/// Runs an admin subcommand.
pub async fn run(args: ServerArgs, command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::Recover { name } => recover(&args, &name).await,
    }
}

async fn recover(args: &ServerArgs, name: &str) -> anyhow::Result<ExitCode> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        anyhow::bail!("--name must be 1–128 printable characters");
    }
    let resolved = args.resolve()?;
    if let MasterKeySource::File(path) = &resolved.master_key {
        if !path.exists() {
            anyhow::bail!(
                "no master key at {}: recovery needs the server's data directory and master key",
                path.display()
            );
        }
    }
    let (_, store, _secrets) = crate::open(args, false).await?;
    if store.meta_get("bootstrapped").await?.is_none() {
        anyhow::bail!(
            "{} holds no envseal deployment yet: start the server once instead",
            resolved.database_display
        );
    }
    let (id, token) = crate::auth::generate_token();
    let created = store
        .insert_token(&crate::store::TokenRow {
            id: id.clone(),
            name: name.to_owned(),
            token_hash: crate::auth::hash_token(&token),
            project_id: None,
            project_name: None,
            environments: "*".to_owned(),
            access: "admin".to_owned(),
            created_at: crate::now(),
            expires_at: None,
            revoked_at: None,
        })
        .await?;
    if !created {
        anyhow::bail!("token collision; run the command again");
    }
    let audit = AuditLog::start(store.clone());
    audit
        .record(
            AuditEvent::new("envseal-server admin recover", "admin.recover", name)
                .details(serde_json::json!({ "token_id": id })),
        )
        .await?;
    tracing::info!(token = %id, "admin token issued by local recovery");
    // The one deliberate reveal of this command.
    println!(
        "envseal-server: new admin token (shown once; store it now):\n{}",
        token.as_str()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
