//! Benchmark baseline: a bare axum JSON endpoint serving an object shaped like an
//! environment export of 50 secrets, with no auth, database or crypto. `bench/server`
//! measures envseal's export next to it in the same run.
//!
//! Usage: `bare_axum 127.0.0.1:PORT`

use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8421".to_owned());
    let mut secrets = BTreeMap::new();
    for i in 0..50 {
        secrets.insert(
            format!("SECRET_{i:02}"),
            serde_json::json!({ "value": format!("value-{i:02}-{}", "x".repeat(40)) }),
        );
    }
    let body = serde_json::json!({
        "project": "bench", "environment": "prod", "revision": 50, "secrets": secrets,
    });
    // Serialised per request from a shared value (no clone), as any JSON handler would.
    let body = std::sync::Arc::new(body);
    let app = Router::new().route(
        "/export",
        get(move || {
            let body = body.clone();
            async move { Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
