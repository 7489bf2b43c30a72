//! Rotation routes: `…/secrets/{name}/rotation` (state and labels, start, steps,
//! finish, cancel, policy) and `…/environments/{env}/rotations` (every policy, for
//! `envseal rotate --status` and `--due`). Every step is audited with its outcome.

use super::extract::{Auth, Body};
use super::secrets::environment;
use super::{event, ApiError, AppState, MAX_VALUE_BYTES};
use crate::audit::Outcome;
use crate::auth::Permission;
use crate::rotation::{Report, RotationError, Rotations, Step, DEFAULT_LEASE_SECS};
use crate::store::EnvRow;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use envseal_core::{validate_env_var_name, SecretValue, WireValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// The rotation routes, merged into the main router.
pub(super) fn routes() -> Router<Arc<AppState>> {
    let env = "/v1/projects/{project}/environments/{env}";
    let rot = format!("{env}/secrets/{{name}}/rotation");
    Router::new()
        .route(&format!("{env}/rotations"), get(list))
        .route(&rot, get(status).post(start))
        .route(&format!("{rot}/step"), post(step))
        .route(&format!("{rot}/finish"), post(finish))
        .route(&format!("{rot}/cancel"), post(cancel))
        .route(&format!("{rot}/policy"), put(set_policy))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, status, start, step, finish, cancel, set_policy))]
pub(super) struct RotationDoc;

impl From<RotationError> for ApiError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Secrets(s) => s.into(),
            RotationError::Conflict(message) => ApiError::Conflict {
                code: "rotation_conflict",
                message,
            },
            RotationError::Invalid(message) => ApiError::BadRequest {
                code: "invalid_rotation",
                message,
            },
        }
    }
}

fn target(env: &EnvRow, name: &str) -> String {
    format!("{}/{}/{name}", env.project_name, env.name)
}

fn rotations(state: &AppState) -> Rotations<'_> {
    Rotations::new(&state.store, &state.secrets, state.secrets.keep_versions())
}

/// A rotation in progress, without its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct RotationState {
    /// Last step that succeeded: `created`, `set` or `tested`.
    pub(super) step: String,
    /// The version current when it was created.
    pub(super) base_version: i64,
    /// Who started it.
    pub(super) started_by: String,
    /// Unix seconds.
    pub(super) started_at: i64,
    /// Unix seconds.
    pub(super) updated_at: i64,
    /// Until when its runner holds it.
    pub(super) lease_until: i64,
    /// Whether the lease is over (the next run resumes it).
    pub(super) stale: bool,
    /// Runners that have held it.
    pub(super) attempts: i64,
    /// Last failure reported.
    pub(super) last_error: Option<String>,
}

/// A secret's staging labels, rotation and policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct RotationStatus {
    /// Secret name.
    pub(super) name: String,
    /// Labels: `current`, and `previous` / `pending` when they exist.
    pub(super) labels: BTreeMap<String, i64>,
    /// The rotation in progress.
    pub(super) rotation: Option<RotationState>,
    /// The rotation policy.
    #[schema(value_type = Object)]
    pub(super) policy: Option<serde_json::Value>,
    /// When the last rotation finished.
    pub(super) last_rotated_at: Option<i64>,
    /// When the next one is due (policy with `rotate_every`).
    pub(super) due_at: Option<i64>,
}

async fn status_of(
    state: &AppState,
    env: &EnvRow,
    name: &str,
    now: i64,
) -> Result<RotationStatus, ApiError> {
    let secret = state.secrets.meta(env, name).await?;
    let mut labels: BTreeMap<String, i64> =
        state.store.labels(secret.id).await?.into_iter().collect();
    labels.insert("current".to_owned(), secret.current_version);
    let rotation = state.store.rotation(secret.id).await?.map(|r| {
        labels.insert("pending".to_owned(), secret.current_version + 1);
        RotationState {
            step: r.step,
            base_version: r.base_version,
            started_by: r.started_by,
            started_at: r.started_at,
            updated_at: r.updated_at,
            lease_until: r.lease_until,
            stale: r.lease_until < now,
            attempts: r.attempts,
            last_error: r.last_error,
        }
    });
    let policy = state.store.rotation_policy(secret.id).await?;
    Ok(policy_status(name, labels, rotation, policy.as_ref()))
}

fn policy_status(
    name: &str,
    labels: BTreeMap<String, i64>,
    rotation: Option<RotationState>,
    policy: Option<&crate::store::PolicyRow>,
) -> RotationStatus {
    let due_at = policy.and_then(|p| {
        p.rotate_every_secs
            .map(|every| p.last_rotated_at.map_or(0, |t| t + every))
    });
    RotationStatus {
        name: name.to_owned(),
        labels,
        rotation,
        policy: policy.and_then(|p| serde_json::from_str(&p.policy).ok()),
        last_rotated_at: policy.and_then(|p| p.last_rotated_at),
        due_at,
    }
}

/// Labels, rotation in progress and policy of one secret.
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation",
    responses((status = 200, body = RotationStatus)))]
async fn status(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
) -> Result<Json<RotationStatus>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Metadata).await?;
    Ok(Json(status_of(&state, &env, &name, crate::now()).await?))
}

/// Every secret of the environment with a rotation policy or a rotation in progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct RotationList {
    /// By name.
    pub(super) secrets: Vec<RotationStatus>,
    /// The server's clock (Unix seconds), to compare `due_at` with.
    pub(super) now: i64,
}

/// Rotation state of every secret with a policy.
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/rotations",
    responses((status = 200, body = RotationList)))]
async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env)): Path<(String, String)>,
) -> Result<Json<RotationList>, ApiError> {
    let env = environment(&state, &auth, &project, &env, Permission::Metadata).await?;
    let now = crate::now();
    let mut out = Vec::new();
    for p in state.store.rotation_policies(env.id).await? {
        out.push(status_of(&state, &env, &p.name, now).await?);
    }
    Ok(Json(RotationList { secrets: out, now }))
}

/// Start a rotation.
#[derive(Deserialize, ToSchema)]
pub(super) struct StartRotation {
    /// The new value (ignored when an abandoned rotation is resumed).
    #[serde(flatten)]
    pub(super) value: WireValue,
    /// Seconds this runner holds the rotation without reporting (default 300).
    pub(super) lease_secs: Option<i64>,
}

/// A started (or resumed) rotation. `pending` is the value to apply on the target.
#[derive(Serialize, Deserialize, ToSchema)]
pub(super) struct StartedRotation {
    /// Name every later call of this runner.
    pub(super) rotation_id: String,
    /// Last step that succeeded (`created` for a new one).
    pub(super) step: String,
    /// Version current at creation.
    pub(super) base_version: i64,
    /// Whether an abandoned rotation was taken over.
    pub(super) resumed: bool,
    /// The pending value.
    pub(super) pending: WireValue,
}

impl std::fmt::Debug for StartedRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedRotation")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Creates the pending value (step 1), or resumes an abandoned rotation.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation",
    request_body = StartRotation,
    responses((status = 200, body = StartedRotation), (status = 409, body = envseal_core::wire::ErrorBody)))]
async fn start(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<StartRotation>,
) -> Result<Json<StartedRotation>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let value = req
        .value
        .decode()
        .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))?;
    if value.len() > MAX_VALUE_BYTES || value.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("a pending value must have 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let result = rotations(&state)
        .start(
            &env,
            &name,
            &value,
            &auth.0.name,
            crate::now(),
            req.lease_secs.unwrap_or(DEFAULT_LEASE_SECS),
        )
        .await;
    let ev = event(&auth.0, &auth.1, "rotation.create", target(&env, &name));
    match result {
        Ok(s) => {
            state
                .audit
                .record(ev.details(serde_json::json!({
                    "base_version": s.base_version, "resumed": s.resumed, "step": s.step,
                })))
                .await?;
            tracing::info!(project = %env.project_name, env = %env.name, secret = %name, resumed = s.resumed, by = %auth.0.name, "rotation started");
            Ok(Json(StartedRotation {
                rotation_id: s.rotation_id,
                step: s.step,
                base_version: s.base_version,
                resumed: s.resumed,
                pending: s.pending.to_wire(),
            }))
        }
        Err(e) => {
            state
                .audit
                .record(ev.outcome(Outcome::Failure, &e.to_string()))
                .await?;
            Err(e.into())
        }
    }
}

/// A step's outcome, reported by the runner.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct StepReport {
    /// The runner.
    pub(super) rotation_id: String,
    /// `set` or `test`.
    #[schema(value_type = String, pattern = "^(set|test)$")]
    pub(super) step: Step,
    /// `true` when it worked.
    pub(super) ok: bool,
    /// What failed (never a value).
    pub(super) error: Option<String>,
    /// Renewed lease in seconds (default 300).
    pub(super) lease_secs: Option<i64>,
}

/// Records the outcome of the set (step 2) or test (step 3) step.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation/step",
    request_body = StepReport, responses((status = 204), (status = 409, body = envseal_core::wire::ErrorBody)))]
async fn step(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<StepReport>,
) -> Result<axum::http::StatusCode, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let error = if req.ok {
        None
    } else {
        Some(
            req.error
                .as_deref()
                .map(|e| e.chars().take(500).collect::<String>())
                .unwrap_or_else(|| "failed".to_owned()),
        )
    };
    let action = match req.step {
        Step::Set => "rotation.set",
        Step::Test => "rotation.test",
    };
    let result = rotations(&state)
        .record(
            &env,
            &name,
            &Report {
                rotation_id: &req.rotation_id,
                step: req.step,
                error: error.as_deref(),
                lease_secs: req.lease_secs.unwrap_or(DEFAULT_LEASE_SECS),
            },
            crate::now(),
        )
        .await;
    let mut ev = event(&auth.0, &auth.1, action, target(&env, &name));
    if let Some(why) = &error {
        ev = ev.outcome(Outcome::Failure, why);
    }
    if let Err(e) = &result {
        ev = ev.outcome(Outcome::Failure, &e.to_string());
    }
    state.audit.record(ev).await?;
    result?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Finish a rotation.
#[derive(Deserialize, ToSchema)]
pub(super) struct FinishRotation {
    /// The runner.
    pub(super) rotation_id: String,
    /// Other secrets the rotator set (e.g. the user name of alternating users).
    #[serde(default)]
    pub(super) also: BTreeMap<String, WireValue>,
}

/// What finish wrote.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct FinishedRotation {
    /// The rotated secret's new current version.
    pub(super) version: i64,
    /// Every secret written in the transaction.
    pub(super) written: Vec<String>,
}

/// Step 4: pending becomes current, old current `previous`, linked secrets rewritten,
/// all in one transaction and one revision.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation/finish",
    request_body = FinishRotation, responses((status = 200, body = FinishedRotation)))]
async fn finish(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<FinishRotation>,
) -> Result<Json<FinishedRotation>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let mut also: Vec<(String, SecretValue)> = Vec::new();
    for (n, v) in &req.also {
        let value = v
            .decode()
            .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(ApiError::bad_request(
                "value_too_large",
                format!("a value may be at most {MAX_VALUE_BYTES} bytes"),
            ));
        }
        also.push((n.clone(), value));
    }
    let result = rotations(&state)
        .finish(
            &env,
            &name,
            &req.rotation_id,
            &also,
            &auth.0.name,
            crate::now(),
        )
        .await;
    let ev = event(&auth.0, &auth.1, "rotation.finish", target(&env, &name));
    match result {
        Ok(done) => {
            state
                .audit
                .record(ev.details(serde_json::json!({
                    "version": done.version, "written": done.names,
                })))
                .await?;
            tracing::info!(project = %env.project_name, env = %env.name, secret = %name, version = done.version, by = %auth.0.name, "rotation finished");
            Ok(Json(FinishedRotation {
                version: done.version,
                written: done.names,
            }))
        }
        Err(e) => {
            state
                .audit
                .record(ev.outcome(Outcome::Failure, &e.to_string()))
                .await?;
            Err(e.into())
        }
    }
}

/// Cancel a rotation.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct CancelRotation {
    /// The caller's own rotation; without it, only an abandoned one is discarded.
    pub(super) rotation_id: Option<String>,
    /// Discard even a rotation whose runner still holds it.
    #[serde(default)]
    pub(super) force: bool,
    /// Why (recorded in the audit log).
    pub(super) reason: Option<String>,
}

/// Discards the pending value; `current` is untouched.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation/cancel",
    request_body = CancelRotation, responses((status = 204)))]
async fn cancel(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<CancelRotation>,
) -> Result<axum::http::StatusCode, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let result = rotations(&state)
        .cancel(
            &env,
            &name,
            req.rotation_id.as_deref(),
            req.force,
            crate::now(),
        )
        .await;
    let mut ev = event(&auth.0, &auth.1, "rotation.cancel", target(&env, &name)).details(
        serde_json::json!({
            "reason": req.reason.as_deref().map(|r| r.chars().take(500).collect::<String>()),
            "force": req.force,
        }),
    );
    if let Err(e) = &result {
        ev = ev.outcome(Outcome::Failure, &e.to_string());
    }
    state.audit.record(ev).await?;
    result?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Stores a secret's rotation policy (secret metadata: `rotate_every`, `rotator`,
/// `links`, `restart`).
#[utoipa::path(put, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rotation/policy",
    request_body = Object, responses((status = 200, body = RotationStatus)))]
async fn set_policy(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(policy): Body<serde_json::Value>,
) -> Result<Json<RotationStatus>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let now = crate::now();
    rotations(&state)
        .set_policy(&env, &name, &policy, now)
        .await?;
    state
        .audit
        .record(event(
            &auth.0,
            &auth.1,
            "rotation.policy",
            target(&env, &name),
        ))
        .await?;
    Ok(Json(status_of(&state, &env, &name, now).await?))
}
