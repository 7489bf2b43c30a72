//! `POST /v1/leaks/check`: tells a scanner which values it found are live secrets.
//!
//! Candidates are compared by keyed fingerprint (HMAC) with the current versions of
//! secrets whose values the caller may read (a match reveals that a guess equals the
//! value, so metadata access is not enough). Calls are rate-limited per caller and per
//! client address with the login limits, in a limiter of their own (leak checks never
//! use up the login budget). Candidate values are never stored or logged; every call,
//! refused or not, is audited with the number of candidates and the names that matched.

use super::extract::{Auth, Body};
use super::{actor, event, ApiError, AppState};
use crate::audit::Outcome;
use crate::auth::Permission;
use crate::limiter::{account_key, ip_key, Admission};
use axum::extract::State;
use axum::Json;
use envseal_core::wire::{LeakCheck, LeakMatch, LeakMatches, MAX_LEAK_CANDIDATES};
use std::collections::HashMap;
use std::sync::Arc;

/// Which candidates equal a stored secret's current value.
#[utoipa::path(post, path = "/v1/leaks/check", request_body = LeakCheck,
    responses((status = 200, body = LeakMatches),
        (status = 400, description = "malformed body or too many candidates", body = envseal_core::wire::ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = envseal_core::wire::ErrorBody),
        (status = 403, description = "not allowed", body = envseal_core::wire::ErrorBody),
        (status = 413, description = "body too large", body = envseal_core::wire::ErrorBody),
        (status = 429, description = "rate limit reached (Retry-After)", body = envseal_core::wire::ErrorBody)))]
pub(super) async fn check(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<LeakCheck>,
) -> Result<Json<LeakMatches>, ApiError> {
    let candidates = req.candidates.len();
    let who = account_key(&actor(&auth.0));
    let admission = state
        .leak_limiter
        .admit(&ip_key(auth.1.ip), &who)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    if let Admission::Limited { kind, retry_after } = admission {
        state
            .audit
            .record(
                event(&auth.0, &auth.1, "leak.check", "")
                    .outcome(Outcome::Denied, kind.as_str())
                    .details(serde_json::json!({ "candidates": candidates })),
            )
            .await?;
        return Err(ApiError::TooManyRequests {
            retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
        });
    }
    if candidates > MAX_LEAK_CANDIDATES {
        state
            .audit
            .record(
                event(&auth.0, &auth.1, "leak.check", "")
                    .outcome(Outcome::Denied, "too_many_candidates")
                    .details(serde_json::json!({ "candidates": candidates })),
            )
            .await?;
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
        if !auth.0.allows(&m.project, &m.environment, Permission::Read) {
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
                "candidates": candidates,
                "matched": names,
            })),
        )
        .await?;
    Ok(Json(LeakMatches { matches }))
}
