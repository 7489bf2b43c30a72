//! In-memory caches for the launcher's hot path: token lookups and whole-environment
//! exports, so that a fetch needs no database round trip while nothing has changed.
//!
//! Correctness rests on [`Store::generation`](crate::store::Store::generation): an
//! entry is tagged with the generation read *before* its data was read, and is used
//! only while the generation is unchanged and the entry is younger than the TTL. On
//! SQLite every write goes through this process, so invalidation is exact and the TTL
//! only bounds how long plaintext stays in memory. On PostgreSQL other replicas' writes
//! are invisible to the counter, so the TTL (default 1 s) bounds staleness there.
//!
//! Cached export bodies hold plaintext: they live in zeroizing buffers, are shared
//! with responses without copying, and are wiped when the last reference drops.
//! This module knows nothing about HTTP status codes or SQL.

use crate::store::{EnvRow, TokenRow};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const MAX_TOKENS: usize = 10_000;
const MAX_EXPORTS: usize = 1_000;

struct Entry<T> {
    value: T,
    generation: u64,
    at: Instant,
}

/// A serialised export, ready to send.
pub struct CachedExport {
    /// The environment it belongs to (revision included).
    pub env: EnvRow,
    /// The revision the body was built at.
    pub revision: i64,
    /// The secret names in the body (for the audit record; names are not secret).
    pub names: Vec<String>,
    /// The JSON body.
    pub body: Zeroizing<Vec<u8>>,
}

impl AsRef<[u8]> for CachedExportBody {
    fn as_ref(&self) -> &[u8] {
        &self.0.body
    }
}

/// A cached export as a response body owner (for `Bytes::from_owner`).
pub struct CachedExportBody(pub Arc<CachedExport>);

/// Cached exports by (project, environment).
type ExportMap = HashMap<(String, String), Entry<Arc<CachedExport>>>;

/// The caches. Cheap to share; every method takes `&self`.
pub struct Cache {
    ttl: Duration,
    tokens: RwLock<HashMap<Vec<u8>, Entry<TokenRow>>>,
    exports: RwLock<ExportMap>,
}

/// `envseal_cache_lookups_total{cache, result}`.
fn count(cache: &'static str, hit: bool) {
    metrics::counter!("envseal_cache_lookups_total",
        "cache" => cache, "result" => if hit { "hit" } else { "miss" })
    .increment(1);
}

impl Cache {
    /// Entries live at most `ttl`; a zero TTL disables caching.
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            tokens: RwLock::default(),
            exports: RwLock::default(),
        }
    }

    fn fresh<T>(&self, e: &Entry<T>, generation: u64) -> bool {
        e.generation == generation && e.at.elapsed() < self.ttl
    }

    /// The token row for this hash, if cached and still valid.
    pub fn token(&self, hash: &[u8], generation: u64) -> Option<TokenRow> {
        let map = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let hit = map
            .get(hash)
            .filter(|e| self.fresh(e, generation))
            .map(|e| e.value.clone());
        count("token", hit.is_some());
        hit
    }

    /// Remembers a token row read at `generation`.
    pub fn put_token(&self, row: TokenRow, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
        map.insert(
            row.token_hash.clone(),
            Entry {
                value: row,
                generation,
                at: Instant::now(),
            },
        );
    }

    /// The export of `project`/`env`, if cached and still valid.
    pub fn export(&self, project: &str, env: &str, generation: u64) -> Option<Arc<CachedExport>> {
        let map = self.exports.read().unwrap_or_else(|p| p.into_inner());
        let hit = map
            .get(&(project.to_owned(), env.to_owned()))
            .filter(|e| self.fresh(e, generation))
            .map(|e| e.value.clone());
        count("export", hit.is_some());
        hit
    }

    /// Remembers an export built from data read at `generation`.
    pub fn put_export(&self, export: Arc<CachedExport>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.exports.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_EXPORTS {
            map.clear();
        }
        // Drop stale entries while here, so plaintext does not outlive its TTL by much.
        map.retain(|_, e| e.at.elapsed() < self.ttl);
        map.insert(
            (export.env.project_name.clone(), export.env.name.clone()),
            Entry {
                value: export,
                generation,
                at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        TokenRow {
            id: "i".into(),
            name: "n".into(),
            token_hash: vec![1, 2, 3],
            project_id: None,
            project_name: None,
            environments: "*".into(),
            access: "admin".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn entries_die_with_a_new_generation() {
        let c = Cache::new(Duration::from_secs(60));
        c.put_token(row(), 7);
        assert!(c.token(&[1, 2, 3], 7).is_some());
        assert!(c.token(&[1, 2, 3], 8).is_none());
    }

    #[test]
    fn entries_die_with_age_and_zero_ttl_disables() {
        let c = Cache::new(Duration::from_millis(20));
        c.put_token(row(), 1);
        assert!(c.token(&[1, 2, 3], 1).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.token(&[1, 2, 3], 1).is_none());
        let off = Cache::new(Duration::ZERO);
        off.put_token(row(), 1);
        assert!(off.token(&[1, 2, 3], 1).is_none());
    }
}
