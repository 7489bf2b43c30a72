//! Projects and environments. Creating a project needs a server admin, creating an
//! environment an admin of the project; a scoped token or a user sees only the
//! projects it has a role in.

use super::extract::{Auth, Body};
use super::{event, ApiError, AppState};
use crate::auth::Permission;
use crate::store::{EnvRow, ProjectRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use envseal_core::validate_slug;
use envseal_core::wire::{CreateEnvironment, CreateProject, Environment, Project, ProjectList};
use std::sync::Arc;

pub(super) fn env_wire(e: &EnvRow) -> Environment {
    Environment {
        project: e.project_name.clone(),
        name: e.name.clone(),
        revision: e.revision,
        created_at: e.created_at,
    }
}

/// The environments of `p` the caller may reach: a token scoped to some environments
/// learns nothing about the others, not even their names or revisions.
async fn visible_environments(
    state: &AppState,
    auth: &Auth,
    p: &ProjectRow,
) -> Result<Vec<EnvRow>, ApiError> {
    Ok(state
        .store
        .environments(p.id)
        .await?
        .into_iter()
        .filter(|e| auth.0.allows(&p.name, &e.name, Permission::Metadata))
        .collect())
}

async fn project_wire(state: &AppState, auth: &Auth, p: ProjectRow) -> Result<Project, ApiError> {
    let environments = visible_environments(state, auth, &p)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    Ok(Project {
        name: p.name,
        description: p.description,
        created_at: p.created_at,
        environments,
    })
}

/// The project, if the caller may see it (403 otherwise, before any lookup).
async fn visible_project(
    state: &AppState,
    auth: &Auth,
    name: &str,
) -> Result<ProjectRow, ApiError> {
    validate_slug("project", name)?;
    if !auth.0.can_see_project(name) {
        return Err(ApiError::Forbidden);
    }
    state.store.project(name).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::NotFound("project"),
        e => e.into(),
    })
}

/// Lists the projects the caller may see.
#[utoipa::path(get, path = "/v1/projects", responses((status = 200, body = ProjectList)))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<ProjectList>, ApiError> {
    let mut projects = Vec::new();
    for p in state.store.list_projects().await? {
        if auth.0.can_see_project(&p.name) {
            projects.push(project_wire(&state, &auth, p).await?);
        }
    }
    Ok(Json(ProjectList { projects }))
}

/// Creates a project (admin).
#[utoipa::path(post, path = "/v1/projects", request_body = CreateProject,
    responses((status = 201, body = Project), (status = 409, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<CreateProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    if !auth.0.is_admin() {
        return Err(ApiError::Forbidden);
    }
    validate_slug("project", &req.name)?;
    let row = state
        .store
        .create_project(&req.name, &req.description, crate::now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => ApiError::Conflict {
                code: "already_exists",
                message: "a project of this name already exists".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(event(&auth.0, &auth.1, "project.create", &row.name))
        .await?;
    tracing::info!(project = %row.name, by = %auth.0.name, "project created");
    Ok((
        StatusCode::CREATED,
        Json(project_wire(&state, &auth, row).await?),
    ))
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{project}", responses((status = 200, body = Project)))]
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(project): Path<String>,
) -> Result<Json<Project>, ApiError> {
    let row = visible_project(&state, &auth, &project).await?;
    Ok(Json(project_wire(&state, &auth, row).await?))
}

/// A project's environments.
#[utoipa::path(get, path = "/v1/projects/{project}/environments",
    responses((status = 200, body = [Environment])))]
pub(super) async fn list_environments(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(project): Path<String>,
) -> Result<Json<Vec<Environment>>, ApiError> {
    let row = visible_project(&state, &auth, &project).await?;
    let envs = visible_environments(&state, &auth, &row).await?;
    Ok(Json(envs.iter().map(env_wire).collect()))
}

/// Creates an environment (admin).
#[utoipa::path(post, path = "/v1/projects/{project}/environments", request_body = CreateEnvironment,
    responses((status = 201, body = Environment)))]
pub(super) async fn create_environment(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(project): Path<String>,
    Body(req): Body<CreateEnvironment>,
) -> Result<(StatusCode, Json<Environment>), ApiError> {
    validate_slug("project", &project)?;
    if !auth.0.can_manage_project(&project) {
        return Err(ApiError::Forbidden);
    }
    validate_slug("environment", &req.name)?;
    let project = visible_project(&state, &auth, &project).await?;
    let env = state
        .store
        .create_environment(&project, &req.name, crate::now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => ApiError::Conflict {
                code: "already_exists",
                message: "an environment of this name already exists in the project".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(event(
            &auth.0,
            &auth.1,
            "environment.create",
            format!("{}/{}", project.name, env.name),
        ))
        .await?;
    tracing::info!(project = %project.name, env = %env.name, by = %auth.0.name, "environment created");
    Ok((StatusCode::CREATED, Json(env_wire(&env))))
}
