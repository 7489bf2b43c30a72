//! A bounded, TTL'd cache of unwrapped DEKs in front of a key provider, so that a warm
//! environment fetch makes no KMS call and reads survive a short KMS outage.
//!
//! Entries are keyed by a SHA-256 of the wrapped DEK (the wrapped bytes are not kept),
//! expire a fixed time after they were unwrapped (access does not extend them), and
//! are wiped when evicted or expired. Wrapping always goes to the provider.

use super::{CryptoError, Dek, KeyFuture, KeyProvider, WrappedDek};
use sha2::{Digest, Sha256};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cache size and lifetime.
#[derive(Debug, Clone, Copy)]
pub struct DekCacheConfig {
    /// Most DEKs held (0: no cache).
    pub capacity: usize,
    /// How long an unwrapped DEK is reused.
    pub ttl: Duration,
}

type Key = [u8; 32];

/// The cache and the provider behind it.
pub struct DekCache {
    inner: Arc<dyn KeyProvider>,
    ttl: Duration,
    map: Option<Mutex<lru::LruCache<Key, (Instant, Dek)>>>,
}

fn key_of(w: &WrappedDek) -> Key {
    let mut h = Sha256::new();
    h.update((w.kek_id.len() as u64).to_be_bytes());
    h.update(w.kek_id.as_bytes());
    h.update(&w.blob);
    h.finalize().into()
}

impl DekCache {
    /// Puts a cache of `config` in front of `inner`.
    pub fn new(inner: Arc<dyn KeyProvider>, config: DekCacheConfig) -> Self {
        DekCache {
            inner,
            ttl: config.ttl,
            map: NonZeroUsize::new(config.capacity)
                .filter(|_| !config.ttl.is_zero())
                .map(|n| Mutex::new(lru::LruCache::new(n))),
        }
    }

    /// DEKs held now (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.map
            .as_ref()
            .map_or(0, |m| m.lock().expect("dek cache lock").len())
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, k: &Key) -> Option<Dek> {
        let mut m = self.map.as_ref()?.lock().expect("dek cache lock");
        match m.get(k) {
            Some((at, dek)) if at.elapsed() < self.ttl => Some(dek.duplicate()),
            Some(_) => {
                m.pop(k);
                None
            }
            None => None,
        }
    }

    fn put(&self, k: Key, dek: &Dek) {
        if let Some(m) = &self.map {
            m.lock()
                .expect("dek cache lock")
                .put(k, (Instant::now(), dek.duplicate()));
        }
    }
}

impl KeyProvider for DekCache {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn holds(&self, kek_id: &str) -> bool {
        self.inner.holds(kek_id)
    }

    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
        self.inner.wrap(dek)
    }

    fn wrap_many<'a>(&'a self, deks: &'a [Dek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        self.inner.wrap_many(deks)
    }

    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
        Box::pin(async move {
            let k = key_of(wrapped);
            if let Some(d) = self.get(&k) {
                return Ok(d);
            }
            let d = self.inner.unwrap(wrapped).await?;
            self.put(k, &d);
            Ok(d)
        })
    }

    fn unwrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<Dek>> {
        Box::pin(async move {
            let keys: Vec<Key> = wrapped.iter().map(key_of).collect();
            let mut out: Vec<Option<Dek>> = keys.iter().map(|k| self.get(k)).collect();
            let missing: Vec<usize> = (0..wrapped.len()).filter(|&i| out[i].is_none()).collect();
            if !missing.is_empty() {
                let share: Vec<WrappedDek> = missing.iter().map(|&i| wrapped[i].clone()).collect();
                let deks = self.inner.unwrap_many(&share).await?;
                if deks.len() != missing.len() {
                    return Err(CryptoError::Provider(
                        "key provider answered with the wrong number of keys".into(),
                    ));
                }
                for (i, d) in missing.into_iter().zip(deks) {
                    self.put(keys[i], &d);
                    out[i] = Some(d);
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
    }

    fn current_kek_id(&self) -> KeyFuture<'_, String> {
        self.inner.current_kek_id()
    }

    fn rotate(&self) -> KeyFuture<'_, String> {
        self.inner.rotate()
    }

    fn rewrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        self.inner.rewrap_many(wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the unwraps that reach the provider behind the cache.
    struct Counting {
        inner: crate::crypto::LocalKeyProvider,
        unwraps: AtomicUsize,
    }

    impl KeyProvider for Counting {
        fn name(&self) -> &'static str {
            "local"
        }
        fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
            self.inner.wrap(dek)
        }
        fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            self.inner.unwrap(wrapped)
        }
    }

    fn setup(capacity: usize, ttl: Duration) -> (tempfile::TempDir, Arc<Counting>, DekCache) {
        let dir = tempfile::tempdir().unwrap();
        let inner = crate::crypto::LocalKeyProvider::from_file(&dir.path().join("k")).unwrap();
        let counting = Arc::new(Counting {
            inner,
            unwraps: AtomicUsize::new(0),
        });
        let cache = DekCache::new(counting.clone(), DekCacheConfig { capacity, ttl });
        (dir, counting, cache)
    }

    #[tokio::test]
    async fn warm_unwraps_skip_the_provider_until_the_ttl() {
        let (_d, counting, cache) = setup(16, Duration::from_millis(300));
        let deks: Vec<Dek> = (0..5).map(|_| Dek::generate()).collect();
        let wrapped = cache.wrap_many(&deks).await.unwrap();
        let a = cache.unwrap_many(&wrapped).await.unwrap();
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 5);
        let b = cache.unwrap_many(&wrapped).await.unwrap();
        assert_eq!(
            counting.unwraps.load(Ordering::SeqCst),
            5,
            "warm: no provider call"
        );
        for ((x, y), d) in a.iter().zip(&b).zip(&deks) {
            assert_eq!(&x.0[..], &d.0[..]);
            assert_eq!(&y.0[..], &d.0[..]);
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        cache.unwrap(&wrapped[0]).await.unwrap();
        assert_eq!(
            counting.unwraps.load(Ordering::SeqCst),
            6,
            "expired entry refetched"
        );
    }

    #[tokio::test]
    async fn bounded_and_off_when_zero() {
        let (_d, counting, cache) = setup(2, Duration::from_secs(60));
        let deks: Vec<Dek> = (0..3).map(|_| Dek::generate()).collect();
        let wrapped = cache.wrap_many(&deks).await.unwrap();
        cache.unwrap_many(&wrapped).await.unwrap();
        assert_eq!(cache.len(), 2);
        // The oldest was evicted: unwrapping it again reaches the provider.
        cache.unwrap(&wrapped[0]).await.unwrap();
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 4);

        let (_d, counting, off) = setup(0, Duration::from_secs(60));
        let w = off.wrap(&deks[0]).await.unwrap();
        off.unwrap(&w).await.unwrap();
        off.unwrap(&w).await.unwrap();
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 2);
        assert!(off.is_empty());
    }
}
