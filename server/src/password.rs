//! Password hashing with argon2id: hashing and verification run on the blocking pool
//! behind a semaphore sized to the machine, so that no flood of logins can take more
//! than those cores; plus the password policy applied whenever a password is set.
//!
//! This module never logs, stores or formats a password. It knows nothing about
//! HTTP, users or rate limits.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for HashParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashParams {
            m_cost: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Hashing failures. None of them carries the password.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The parameters are not usable.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// All workers stayed busy for too long.
    #[error("password hashing is saturated; try again")]
    Busy,
    /// The blocking task failed.
    #[error("password hashing task failed")]
    Task,
}

/// The bounded argon2id hasher.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
    computed: Arc<AtomicU64>,
}

/// How long a caller waits for a free hashing worker before giving up.
const WAIT_FOR_WORKER: Duration = Duration::from_secs(10);

impl Hasher {
    /// A hasher with these parameters and `workers` concurrent hashes at most.
    pub fn new(params: HashParams, workers: usize) -> Result<Self, HashError> {
        let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        // A hash of a random password, verified against when the user does not exist so
        // that an unknown name costs exactly what a wrong password costs.
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy = argon
            .hash_password(&random, &salt)
            .map_err(|e| HashError::Params(e.to_string()))?
            .to_string();
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(workers.max(1))),
            dummy: Arc::new(dummy),
            computed: Arc::new(AtomicU64::new(0)),
        })
    }

    fn argon(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(WAIT_FOR_WORKER, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Task)?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        let out = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| HashError::Task)?;
        Ok(out)
    }

    /// Hashes a password into a PHC string (`$argon2id$…`).
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, HashError> {
        let params = self.params.clone();
        self.bounded(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Self::argon(&params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Params(e.to_string()))
        })
        .await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when `stored`
    /// is `None`: either way exactly one argon2 computation runs. Unparseable stored
    /// hashes verify as false.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.as_str().to_owned());
        let params = self.params.clone();
        let ok = self
            .bounded(move || {
                let Ok(parsed) = PasswordHash::new(&phc) else {
                    // Still spend the same work so the answer's timing says nothing.
                    let _ = Self::argon(&params).hash_password(
                        password.as_bytes(),
                        &SaltString::generate(&mut rand::rngs::OsRng),
                    );
                    return false;
                };
                // The stored hash's own parameters apply (they may predate a change).
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .await?;
        Ok(ok && known)
    }

    /// argon2 computations started since this hasher was made (for tests and
    /// metrics: a refused login must not add one).
    pub fn computations(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Free hashing workers right now (for tests and metrics).
    pub fn available_workers(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Password rules applied when a password is set (never at login).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    pub min_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_len: 12 }
    }
}

/// Longest password accepted (argon2 input is bounded anyway; this bounds the body).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Passwords refused whatever their length: Dify's shipped defaults and the most
/// common choices.
const REFUSED: &[&str] = &[
    "difyai123456",
    "dify-sandbox",
    "password1234",
    "password12345",
    "123456789012",
    "qwertyuiop12",
    "changeme1234",
    "administrator",
    "letmein12345",
];

impl PasswordPolicy {
    /// Checks a new password; the error says which rule failed and never echoes it.
    pub fn check(&self, username: &str, password: &str) -> Result<(), String> {
        let n = password.chars().count();
        if n < self.min_len {
            return Err(format!(
                "the password must be at least {} characters long",
                self.min_len
            ));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(format!(
                "the password must be at most {MAX_PASSWORD_LEN} bytes long"
            ));
        }
        if password.chars().any(char::is_control) {
            return Err("the password must not contain control characters".to_owned());
        }
        let lower = password.to_lowercase();
        if lower.contains(&username.to_lowercase()) && !username.is_empty() {
            return Err("the password must not contain the username".to_owned());
        }
        let distinct: std::collections::HashSet<char> = password.chars().collect();
        if distinct.len() < 5 {
            return Err("the password must use at least 5 different characters".to_owned());
        }
        if REFUSED.iter().any(|r| lower == *r) {
            return Err("this password is too common or a shipped default".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(
            HashParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = cheap();
        let phc = h
            .hash(Zeroizing::new("correct horse".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h
            .verify(Zeroizing::new("correct horse".into()), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!h
            .verify(Zeroizing::new("wrong".into()), Some(phc))
            .await
            .unwrap());
        // The dummy never matches, whatever is given.
        assert!(!h.verify(Zeroizing::new("".into()), None).await.unwrap());
        assert_eq!(h.available_workers(), 2);
    }

    #[test]
    fn policy() {
        let p = PasswordPolicy::default();
        assert!(p.check("alice", "short").is_err());
        assert!(p.check("alice", "aaaaaaaaaaaaaaaa").is_err());
        assert!(p.check("alice", "xxalice-is-here-123").is_err());
        assert!(p.check("alice", "DifyAI123456").is_err());
        assert!(p.check("alice", "tr0ub4dor&3-horse").is_ok());
        let e = p.check("alice", "canary").unwrap_err();
        assert!(!e.contains("canary"));
    }
}
