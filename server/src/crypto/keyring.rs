//! Several providers behind one: new DEKs are wrapped by the primary; a wrapped DEK is
//! unwrapped by whichever provider holds its KEK id. This is what lets an install move
//! from one provider to another (`kek migrate`) while it keeps serving.

use super::{CryptoError, Dek, KeyFuture, KeyProvider, WrappedDek};
use std::sync::Arc;

/// The primary provider plus older ones kept for unwrapping only.
pub struct Keyring {
    primary: Arc<dyn KeyProvider>,
    previous: Vec<Arc<dyn KeyProvider>>,
}

type Groups<'a> = Vec<(&'a Arc<dyn KeyProvider>, Vec<usize>)>;

impl Keyring {
    /// `primary` wraps; every provider in `previous` still unwraps what it holds.
    pub fn new(primary: Arc<dyn KeyProvider>, previous: Vec<Arc<dyn KeyProvider>>) -> Self {
        Keyring { primary, previous }
    }

    /// The provider that wraps new DEKs.
    pub fn primary(&self) -> &Arc<dyn KeyProvider> {
        &self.primary
    }

    fn provider_for(&self, kek_id: &str) -> Result<&Arc<dyn KeyProvider>, CryptoError> {
        std::iter::once(&self.primary)
            .chain(&self.previous)
            .find(|p| p.holds(kek_id))
            .ok_or_else(|| CryptoError::UnknownKek(kek_id.to_owned()))
    }

    /// Which provider answers for which positions of `wrapped`.
    fn groups(&self, wrapped: &[WrappedDek]) -> Result<Groups<'_>, CryptoError> {
        let mut groups: Groups<'_> = Vec::new();
        for (i, w) in wrapped.iter().enumerate() {
            let p = self.provider_for(&w.kek_id)?;
            match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, p)) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((p, vec![i])),
            }
        }
        Ok(groups)
    }
}

fn reorder<T>(n: usize, parts: Vec<(Vec<usize>, Vec<T>)>) -> Vec<T> {
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (idx, answers) in parts {
        for (i, a) in idx.into_iter().zip(answers) {
            out[i] = Some(a);
        }
    }
    out.into_iter().flatten().collect()
}

impl KeyProvider for Keyring {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn holds(&self, kek_id: &str) -> bool {
        self.provider_for(kek_id).is_ok()
    }

    fn wrap<'a>(&'a self, dek: &'a Dek) -> KeyFuture<'a, WrappedDek> {
        self.primary.wrap(dek)
    }

    fn wrap_many<'a>(&'a self, deks: &'a [Dek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        self.primary.wrap_many(deks)
    }

    fn unwrap<'a>(&'a self, wrapped: &'a WrappedDek) -> KeyFuture<'a, Dek> {
        match self.provider_for(&wrapped.kek_id) {
            Ok(p) => p.unwrap(wrapped),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn unwrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<Dek>> {
        Box::pin(async move {
            let groups = self.groups(wrapped)?;
            if let [(p, _)] = groups.as_slice() {
                return p.unwrap_many(wrapped).await;
            }
            let mut parts = Vec::with_capacity(groups.len());
            for (p, idx) in groups {
                let share: Vec<WrappedDek> = idx.iter().map(|&i| wrapped[i].clone()).collect();
                parts.push((idx, p.unwrap_many(&share).await?));
            }
            Ok(reorder(wrapped.len(), parts))
        })
    }

    fn current_kek_id(&self) -> KeyFuture<'_, String> {
        self.primary.current_kek_id()
    }

    fn rotate(&self) -> KeyFuture<'_, String> {
        self.primary.rotate()
    }

    /// DEKs the primary holds are re-wrapped by it; the others are unwrapped by their
    /// provider and wrapped by the primary (a provider migration).
    fn rewrap_many<'a>(&'a self, wrapped: &'a [WrappedDek]) -> KeyFuture<'a, Vec<WrappedDek>> {
        Box::pin(async move {
            let groups = self.groups(wrapped)?;
            let mut parts = Vec::with_capacity(groups.len());
            for (p, idx) in groups {
                let share: Vec<WrappedDek> = idx.iter().map(|&i| wrapped[i].clone()).collect();
                let done = if Arc::ptr_eq(p, &self.primary) {
                    p.rewrap_many(&share).await?
                } else {
                    let deks = p.unwrap_many(&share).await?;
                    self.primary.wrap_many(&deks).await?
                };
                parts.push((idx, done));
            }
            Ok(reorder(wrapped.len(), parts))
        })
    }
}
