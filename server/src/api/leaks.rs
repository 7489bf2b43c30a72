//! `POST /v1/leaks/check`: tells a scanner which values it found are live secrets.
//!
//! Candidates are compared by keyed fingerprint (HMAC) with the current versions of
//! secrets the caller may see; candidate values are never stored or logged, and the
//! audit record holds only counts and the names that matched.

use super::extract::{Auth, Body};
use super::{event, ApiError, AppState};
use crate::auth::Permission;
use axum::extract::State;
use axum::Json;
use envseal_core::wire::{LeakCheck, LeakMatch, LeakMatches, MAX_LEAK_CANDIDATES};
use std::collections::HashMap;
use std::sync::Arc;

/// Which candidates equal a stored secret's current value.
#[utoipa::path(post, path = "/v1/leaks/check", request_body = LeakCheck,
    responses((status = 200, body = LeakMatches), (status = 400, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn check(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<LeakCheck>,
) -> Result<Json<LeakMatches>, ApiError> {
    if req.candidates.len() > MAX_LEAK_CANDIDATES {
        return Err(ApiError::bad_request(
            "too_many_candidates",
            format!("send at most {MAX_LEAK_CANDIDATES} candidates per request"),
        ));
    }
    let mut by_fingerprint: HashMap<Vec<u8>, Vec<i64>> = HashMap::new();
    for c in &req.candidates {
        let fp = state.secrets.fingerprint(c.value.as_bytes()).await?;
        by_fingerprint.entry(fp).or_default().push(c.id);
    }
    let fingerprints: Vec<Vec<u8>> = by_fingerprint.keys().cloned().collect();
    let mut matches = Vec::new();
    for m in state.store.fingerprint_matches(&fingerprints).await? {
        if !auth
            .0
            .allows(&m.project, &m.environment, Permission::Metadata)
        {
            continue;
        }
        for id in by_fingerprint.get(&m.fingerprint).into_iter().flatten() {
            matches.push(LeakMatch {
                id: *id,
                project: m.project.clone(),
                environment: m.environment.clone(),
                name: m.name.clone(),
            });
        }
    }
    matches.sort_by(|a, b| (a.id, &a.name).cmp(&(b.id, &b.name)));
    let names: Vec<String> = matches
        .iter()
        .map(|m| format!("{}/{}/{}", m.project, m.environment, m.name))
        .collect();
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "leak.check", "").details(serde_json::json!({
                "candidates": req.candidates.len(),
                "matched": names,
            })),
        )
        .await?;
    Ok(Json(LeakMatches { matches }))
}
