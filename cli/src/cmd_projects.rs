//! `envseal projects …`: list, create, show projects and add environments.

use crate::client::seg;
use crate::global::Global;
use envseal_core::wire::{CreateEnvironment, CreateProject, Environment, Project, ProjectList};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ProjectsCmd {
    /// List projects.
    List,
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
    /// Add an environment to a project.
    AddEnv {
        /// Project name.
        project: String,
        /// Environment name.
        env: String,
    },
}

pub fn run(global: &Global, cmd: ProjectsCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match cmd {
        ProjectsCmd::List => {
            let list: ProjectList = client.get("/v1/projects")?;
            for p in list.projects {
                println!("{}\t{}", p.name, p.environments.join(","));
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
