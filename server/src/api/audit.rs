//! `/v1/audit`: read the chain (pages or the tail) and verify it server-side. Server
//! admins only.

use super::extract::Auth;
use super::{ApiError, AppState};
use crate::store::AuditRow;
use axum::extract::{Query, State};
use axum::Json;
use envseal_core::wire::{AuditBrokenLink, AuditEntry, AuditPage, AuditVerification};
use serde::Deserialize;
use std::sync::Arc;

/// Most entries per page.
const MAX_PAGE: i64 = 1000;

pub(super) fn entry(r: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.seq,
        ts: r.ts,
        actor: r.actor,
        action: r.action,
        target: r.target,
        result: r.result,
        reason: r.reason,
        ip: r.ip,
        user_agent: r.user_agent,
        details: r.details,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    after: Option<i64>,
    limit: Option<i64>,
    tail: Option<i64>,
}

/// Entries after `after` (default: from the start), at most `limit` (≤ 1000); or the
/// last `tail` entries.
#[utoipa::path(get, path = "/v1/audit",
    params(("after" = Option<i64>, Query, description = "entries after this sequence number"),
        ("limit" = Option<i64>, Query, description = "at most this many (≤ 1000)"),
        ("tail" = Option<i64>, Query, description = "the last N entries instead")),
    responses((status = 200, body = AuditPage)))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    if !auth.0.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let rows = match q.tail {
        Some(n) => state.store.audit_tail(n.clamp(1, MAX_PAGE)).await?,
        None => {
            state
                .store
                .audit_page(
                    q.after.unwrap_or(0),
                    q.limit.unwrap_or(100).clamp(1, MAX_PAGE),
                )
                .await?
        }
    };
    Ok(Json(AuditPage {
        entries: rows.into_iter().map(entry).collect(),
    }))
}

/// Walks the whole chain and reports the first broken link.
#[utoipa::path(get, path = "/v1/audit/verify", responses((status = 200, body = AuditVerification)))]
pub(super) async fn verify(
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<AuditVerification>, ApiError> {
    if !auth.0.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let v = crate::audit::verify(&state.store).await?;
    Ok(Json(AuditVerification {
        ok: v.first_broken.is_none(),
        entries: v.entries,
        head_seq: v.head_seq,
        head_hash: v.head_hash,
        first_broken: v.first_broken.map(|b| AuditBrokenLink {
            seq: b.seq,
            reason: b.reason,
        }),
    }))
}
