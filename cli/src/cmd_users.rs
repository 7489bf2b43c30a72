//! `envseal users …`: create, list, show, delete users; set roles and passwords;
//! unlock a locked-out account; reset a lost second factor. Server admins only.

use crate::client::seg;
use crate::cmd_login::read_password_stdin;
use crate::global::Global;
use crate::output::{self, Format, FormatArg, Table};
use envseal_core::wire::{CreateUser, RoleGrant, SetPassword, SetRoles, UserInfo, UserList};
use std::process::ExitCode;

/// `envseal users …`.
#[derive(clap::Subcommand)]
pub enum UsersCmd {
    /// Create a user; the password is read from stdin.
    Create {
        /// Login name (lower case).
        name: String,
        /// Role: admin, operator, developer or viewer.
        #[arg(long)]
        role: String,
        /// Project the role applies to (`*`: every project).
        #[arg(long, short = 'p', default_value = "*")]
        project: String,
        /// Read the password from the first line of stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show one user.
    Show {
        /// Login name.
        name: String,
    },
    /// Delete a user (its sessions end).
    Delete {
        /// Login name.
        name: String,
    },
    /// Replace a user's roles: `--grant PROJECT:ROLE` (repeat; `*:admin` for all).
    SetRoles {
        /// Login name.
        name: String,
        /// PROJECT:ROLE.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
    },
    /// Set a user's password (read from stdin); its sessions end.
    SetPassword {
        /// Login name.
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// End a lockout now.
    Unlock {
        /// Login name.
        name: String,
    },
    /// Remove a user's TOTP and recovery codes (lost device).
    ResetMfa {
        /// Login name.
        name: String,
    },
}

fn roles_text(u: &UserInfo) -> String {
    u.roles
        .iter()
        .map(|r| format!("{}:{}", r.project, r.role))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_user(u: &UserInfo) {
    println!(
        "{}\t{}\tmfa={}\t{}",
        u.username,
        roles_text(u),
        if u.mfa { "on" } else { "off" },
        if u.locked { "locked" } else { "active" }
    );
}

fn parse_grant(g: &str) -> anyhow::Result<RoleGrant> {
    let (project, role) = g
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--grant takes PROJECT:ROLE, e.g. dify:operator"))?;
    Ok(RoleGrant {
        project: project.to_owned(),
        role: role.to_owned(),
    })
}

/// Runs a `users` subcommand.
pub fn run(global: &Global, cmd: UsersCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match cmd {
        UsersCmd::Create {
            name,
            role,
            project,
            password_stdin: _,
        } => {
            let password = read_password_stdin()?;
            let u: UserInfo = client.send(
                "POST",
                "/v1/users",
                &CreateUser {
                    username: name,
                    password,
                    roles: vec![RoleGrant { project, role }],
                },
            )?;
            print_user(&u);
        }
        UsersCmd::List { format } => {
            let list: UserList = client.get("/v1/users")?;
            match format.get() {
                Format::Json => output::print_json(&serde_json::json!({
                    "users": list.users.iter().map(|u| serde_json::json!({
                        "id": u.id,
                        "username": u.username,
                        "roles": u.roles.iter().map(|r| serde_json::json!({
                            "project": r.project, "role": r.role,
                        })).collect::<Vec<_>>(),
                        "mfa": u.mfa,
                        "locked": u.locked,
                        "created_at": output::rfc3339(u.created_at),
                    })).collect::<Vec<_>>(),
                }))?,
                Format::Table => {
                    let mut t = Table::new(&["USER", "ROLES", "MFA", "STATE", "CREATED"]);
                    for u in &list.users {
                        t.row(vec![
                            u.username.clone(),
                            roles_text(u),
                            if u.mfa { "on" } else { "off" }.into(),
                            if u.locked { "locked" } else { "active" }.into(),
                            output::human_time(u.created_at),
                        ]);
                    }
                    output::print(&t.render())?;
                }
                Format::Tsv => {
                    for u in &list.users {
                        print_user(u);
                    }
                }
            }
        }
        UsersCmd::Show { name } => {
            let u: UserInfo = client.get(&format!("/v1/users/{}", seg(&name)))?;
            print_user(&u);
        }
        UsersCmd::Delete { name } => {
            client.delete(&format!("/v1/users/{}", seg(&name)))?;
            eprintln!("deleted user {name}");
        }
        UsersCmd::SetRoles { name, grants } => {
            let roles = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let u: UserInfo = client.send(
                "PUT",
                &format!("/v1/users/{}/roles", seg(&name)),
                &SetRoles { roles },
            )?;
            print_user(&u);
        }
        UsersCmd::SetPassword { name, .. } => {
            let password = read_password_stdin()?;
            let _: serde_json::Value = client.send(
                "PUT",
                &format!("/v1/users/{}/password", seg(&name)),
                &SetPassword {
                    current: None,
                    password,
                },
            )?;
            eprintln!("password of {name} set; its sessions have ended");
        }
        UsersCmd::Unlock { name } => {
            let _: serde_json::Value = client.send(
                "POST",
                &format!("/v1/users/{}/unlock", seg(&name)),
                &serde_json::json!({}),
            )?;
            eprintln!("unlocked {name}");
        }
        UsersCmd::ResetMfa { name } => {
            client.delete(&format!("/v1/users/{}/mfa", seg(&name)))?;
            eprintln!("TOTP of {name} removed; they can enrol again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
