//! `envseal projects …`: list, create, show projects and add environments.

use crate::client::seg;
use crate::global::Global;
use crate::output::{self, Format, FormatArg, Table};
use envseal_core::wire::{CreateEnvironment, CreateProject, Environment, Project, ProjectList};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ProjectsCmd {
    /// List projects.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Create a project.
    Create {
        /// Project name (`[a-z0-9][a-z0-9_-]*`).
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show a project and its environments.
    Show {
        /// Project name.
        name: String,
    },
    /// Delete a project with its environments and tokens (refused while it holds
    /// secrets unless --force, which erases them).
    Delete {
        /// Project name.
        name: String,
        /// Delete even though it holds secrets (they are erased for good).
        #[arg(long)]
        force: bool,
    },
    /// Delete an environment (refused while it holds secrets unless --force, which
    /// erases them); tokens naming it are revoked.
    DeleteEnv {
        /// Project name.
        project: String,
        /// Environment name.
        env: String,
        /// Delete even though it holds secrets (they are erased for good).
        #[arg(long)]
        force: bool,
    },
    /// Add an environment to a project.
    AddEnv {
        /// Project name.
        project: String,
        /// Environment name.
        env: String,
    },
}

fn force_query(force: bool) -> &'static str {
    if force {
        "?force=true"
    } else {
        ""
    }
}

pub fn run(global: &Global, cmd: ProjectsCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match cmd {
        ProjectsCmd::List { format } => {
            let list: ProjectList = client.get("/v1/projects")?;
            match format.get() {
                Format::Json => output::print_json(&serde_json::json!({
                    "projects": list.projects.iter().map(|p| serde_json::json!({
                        "name": p.name,
                        "description": p.description,
                        "created_at": output::rfc3339(p.created_at),
                        "environments": p.environments,
                    })).collect::<Vec<_>>(),
                }))?,
                Format::Table => {
                    let mut t = Table::new(&["PROJECT", "ENVIRONMENTS", "CREATED"]);
                    for p in &list.projects {
                        t.row(vec![
                            p.name.clone(),
                            p.environments.join(","),
                            output::human_time(p.created_at),
                        ]);
                    }
                    output::print(&t.render())?;
                }
                Format::Tsv => {
                    for p in list.projects {
                        println!("{}\t{}", p.name, p.environments.join(","));
                    }
                }
            }
        }
        ProjectsCmd::Create { name, description } => {
            let p: Project =
                client.send("POST", "/v1/projects", &CreateProject { name, description })?;
            println!("created project {}", p.name);
        }
        ProjectsCmd::Show { name } => {
            let p: Project = client.get(&format!("/v1/projects/{}", seg(&name)))?;
            println!("project: {}", p.name);
            if !p.description.is_empty() {
                println!("description: {}", p.description);
            }
            println!("environments: {}", p.environments.join(", "));
        }
        ProjectsCmd::Delete { name, force } => {
            envseal_core::validate_slug("project", &name)?;
            let path = format!("/v1/projects/{}{}", seg(&name), force_query(force));
            let done: serde_json::Value = client.send_empty("DELETE", &path)?;
            eprintln!(
                "deleted project {name} ({} secrets erased, {} tokens removed)",
                done["secrets"], done["tokens"]
            );
        }
        ProjectsCmd::DeleteEnv {
            project,
            env,
            force,
        } => {
            envseal_core::validate_slug("project", &project)?;
            envseal_core::validate_slug("environment", &env)?;
            let path = format!(
                "/v1/projects/{}/environments/{}{}",
                seg(&project),
                seg(&env),
                force_query(force)
            );
            let done: serde_json::Value = client.send_empty("DELETE", &path)?;
            eprintln!(
                "deleted environment {project}/{env} ({} secrets erased, {} tokens revoked)",
                done["secrets"], done["tokens"]
            );
        }
        ProjectsCmd::AddEnv { project, env } => {
            let e: Environment = client.send(
                "POST",
                &format!("/v1/projects/{}/environments", seg(&project)),
                &CreateEnvironment { name: env },
            )?;
            println!("created environment {}/{}", e.project, e.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
