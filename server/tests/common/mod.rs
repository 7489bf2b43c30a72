//! Test support: a fresh store on every backend that is available.
#![allow(dead_code, unreachable_pub)]

use envseal_server::crypto::{KeyProvider, LocalKeyProvider};
use envseal_server::secrets::Secrets;
use envseal_server::store::Store;
use sqlx::Connection as _;
use std::sync::Arc;

/// A store with its temp dir (kept alive) and a name for messages.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite always; PostgreSQL when `ENVSEAL_TEST_POSTGRES_URL` is set (required under
/// `ENVSEAL_TEST_STRICT=1`). Each gets a fresh, empty database.
pub async fn backends(test: &str) -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    out.push(Backend {
        name: "sqlite",
        store: Arc::new(Store::connect(&url).await.unwrap()),
        url,
        _dir: Some(dir),
    });
    match std::env::var("ENVSEAL_TEST_POSTGRES_URL") {
        Ok(base) => {
            let url = fresh_pg_schema(&base).await;
            out.push(Backend {
                name: "postgres",
                store: Arc::new(Store::connect(&url).await.unwrap()),
                url,
                _dir: None,
            });
        }
        Err(_) => {
            if std::env::var("ENVSEAL_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: ENVSEAL_TEST_POSTGRES_URL is not set and ENVSEAL_TEST_STRICT=1 forbids skipping");
            }
            eprintln!("SKIPPED {test} on postgres: ENVSEAL_TEST_POSTGRES_URL is not set");
        }
    }
    out
}

/// Creates an empty schema and returns a URL whose connections use it.
pub async fn fresh_pg_schema(base: &str) -> String {
    let schema = format!("t_{}_{}", std::process::id(), rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A local key provider with a fresh key.
pub fn fresh_keys(dir: &std::path::Path) -> Arc<dyn KeyProvider> {
    Arc::new(LocalKeyProvider::from_file(&dir.join(format!("k{}", rand::random::<u64>()))).unwrap())
}

/// Secrets over a store with a fresh key, keeping `keep` versions.
pub fn secrets(store: &Arc<Store>, dir: &std::path::Path, keep: i64) -> Secrets {
    Secrets::new(store.clone(), fresh_keys(dir), keep)
}
