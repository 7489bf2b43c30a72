//! `/metrics`: the server's counters, gauges and histograms in the Prometheus text
//! format, through the `metrics` facade and its Prometheus exporter.
//!
//! The endpoint is off unless a scrape token is configured (`ENVSEAL_METRICS_TOKEN` or
//! `--metrics-token-file`); then it answers only `Authorization: Bearer TOKEN`. Labels
//! are bounded: the route template (never the concrete path, which holds project and
//! secret names), the method and the status; audit counters use the action, the
//! outcome and a reason only when it is a short fixed word.
//!
//! Names (all prefixed `envseal_`): see docs/OPERATIONS.md for what each means.

use crate::api::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use subtle::ConstantTimeEq as _;

/// Request latency histogram buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static TOKEN: OnceLock<Option<SecretString>> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide recorder (installed on first use; `None` if another recorder was
/// installed first, in which case `/metrics` answers 503).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    let upkeep = h.clone();
                    let _ = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        });
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Sets the scrape token (once per process; later calls are ignored). `None` leaves
/// `/metrics` off and nothing is counted. With a token the recorder is installed now.
pub fn configure(token: Option<SecretString>) {
    let _ = TOKEN.set(token);
    if self::token().is_some() {
        let _ = handle();
    }
}

fn token() -> Option<&'static SecretString> {
    TOKEN
        .get_or_init(|| {
            std::env::var("ENVSEAL_METRICS_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(SecretString::from)
        })
        .as_ref()
}

/// Adds `/metrics` and, when metrics are on, the request-counting layer to `router`.
pub fn layer(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    let router = router.route("/metrics", axum::routing::get(scrape));
    if token().is_some() && handle().is_some() {
        router.layer(axum::middleware::from_fn(track))
    } else {
        router
    }
}

/// Counts and times every request by route template, method and status.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::counter!("envseal_http_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => status.clone())
    .increment(1);
    metrics::histogram!("envseal_http_request_duration_seconds",
        "route" => route, "method" => method, "status" => status)
    .record(elapsed);
    response
}

async fn scrape(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = token() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off (set ENVSEAL_METRICS_TOKEN)\n",
        )
            .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = given
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a valid metrics token is required\n",
        )
            .into_response();
    }
    let Some(handle) = handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    let (size, idle) = state.store.pool_usage();
    metrics::gauge!("envseal_db_pool_connections").set(size as f64);
    metrics::gauge!("envseal_db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("envseal_db_pool_in_use_connections")
        .set((size as usize).saturating_sub(idle) as f64);
    metrics::gauge!("envseal_audit_queue_depth").set(state.audit.queue_depth() as f64);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// A label value for an audit reason: kept when it is a short fixed word, else `other`
/// (reasons are chosen by the server, but a label must never carry input).
pub fn reason_label(reason: &str) -> &str {
    if reason.is_empty() {
        ""
    } else if reason.len() <= 32
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
    {
        reason
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded_labels() {
        assert_eq!(reason_label("bad_password"), "bad_password");
        assert_eq!(reason_label(""), "");
        assert_eq!(reason_label("user typed Stuff"), "other");
        assert_eq!(reason_label(&"a".repeat(40)), "other");
    }
}
