//! Machine tokens and what a caller may do.
//!
//! A token is `est_` followed by 43 base64url characters (256 random bits). The server
//! stores only its SHA-256 (a fast hash is right for a high-entropy token) and compares
//! hashes in constant time. This module knows nothing about HTTP.

use crate::store::TokenRow;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Prefix of every envseal token, so that scanners can recognise leaked ones.
pub const TOKEN_PREFIX: &str = "est_";

/// A fresh token and its public id.
pub fn generate_token() -> (String, Zeroizing<String>) {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut raw[..]);
    let mut id = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let token = Zeroizing::new(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..])
    ));
    (hex::encode(id), token)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time equality for MACs, hashes and tokens.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// Read values and metadata.
    Read,
    /// Also write, delete, roll back.
    Write,
}

/// Who is calling, after authentication.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id (for the audit trail and `created_by`).
    pub token_id: String,
    /// Token label.
    pub name: String,
    /// What it may reach.
    pub scope: Scope,
}

/// A principal's reach.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything, including projects and tokens.
    Admin,
    /// One project, some environments, read or write.
    Project {
        /// Project slug.
        project: String,
        /// Environment slugs; `None` for all of the project's.
        environments: Option<Vec<String>>,
        /// Read or write.
        permission: Permission,
    },
}

/// Why a token was not accepted. Callers answer all of these with the same 401 except
/// expiry, which a holder of the token may learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Unknown, malformed or revoked.
    Invalid,
    /// Past its expiry.
    Expired,
}

impl Principal {
    /// Checks a presented token against the row found by its hash.
    pub fn from_row(presented: &str, row: TokenRow, now: i64) -> Result<Self, TokenRejection> {
        if !ct_eq(&hash_token(presented), &row.token_hash) || row.revoked_at.is_some() {
            return Err(TokenRejection::Invalid);
        }
        if row.expires_at.is_some_and(|t| t <= now) {
            return Err(TokenRejection::Expired);
        }
        let scope = match (row.access.as_str(), row.project_name) {
            ("admin", _) => Scope::Admin,
            (access, Some(project)) => Scope::Project {
                project,
                environments: parse_environments(&row.environments),
                permission: if access == "write" {
                    Permission::Write
                } else {
                    Permission::Read
                },
            },
            // A scoped token whose project is gone reaches nothing.
            (_, None) => return Err(TokenRejection::Invalid),
        };
        Ok(Principal {
            token_id: row.id,
            name: row.name,
            scope,
        })
    }

    /// Whether this principal is an administrator.
    pub fn is_admin(&self) -> bool {
        matches!(self.scope, Scope::Admin)
    }

    /// Whether it may see the project at all.
    pub fn can_see_project(&self, project: &str) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Project { project: p, .. } => p == project,
        }
    }

    /// Whether it may use `permission` in `project`/`env`.
    pub fn allows(&self, project: &str, env: &str, permission: Permission) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Project {
                project: p,
                environments,
                permission: granted,
            } => {
                p == project
                    && *granted >= permission
                    && environments
                        .as_ref()
                        .is_none_or(|envs| envs.iter().any(|e| e == env))
            }
        }
    }
}

/// Stored form of an environment list: `*` or comma-separated slugs.
pub fn format_environments(envs: &[String]) -> String {
    if envs.iter().any(|e| e == "*") {
        "*".to_owned()
    } else {
        envs.join(",")
    }
}

fn parse_environments(stored: &str) -> Option<Vec<String>> {
    if stored == "*" {
        None
    } else {
        Some(
            stored
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(token: &str, access: &str, envs: &str) -> TokenRow {
        TokenRow {
            id: "id".into(),
            name: "t".into(),
            token_hash: hash_token(token),
            project_id: Some(1),
            project_name: Some("dify".into()),
            environments: envs.into(),
            access: access.into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let (id1, t1) = generate_token();
        let (id2, t2) = generate_token();
        assert_ne!(id1, id2);
        assert_ne!(*t1, *t2);
        assert!(t1.starts_with(TOKEN_PREFIX));
        assert_eq!(t1.len(), TOKEN_PREFIX.len() + 43);
    }

    #[test]
    fn scope_limits_environment_and_permission() {
        let p = Principal::from_row("tok", row("tok", "read", "prod"), 0).unwrap();
        assert!(p.allows("dify", "prod", Permission::Read));
        assert!(!p.allows("dify", "prod", Permission::Write));
        assert!(!p.allows("dify", "staging", Permission::Read));
        assert!(!p.allows("other", "prod", Permission::Read));
        let w = Principal::from_row("tok", row("tok", "write", "*"), 0).unwrap();
        assert!(w.allows("dify", "anything", Permission::Write));
        assert!(!w.is_admin());
    }

    #[test]
    fn wrong_revoked_and_expired_tokens_refused() {
        assert_eq!(
            Principal::from_row("other", row("tok", "read", "*"), 0).unwrap_err(),
            TokenRejection::Invalid
        );
        let mut revoked = row("tok", "read", "*");
        revoked.revoked_at = Some(5);
        assert_eq!(
            Principal::from_row("tok", revoked, 10).unwrap_err(),
            TokenRejection::Invalid
        );
        let mut expired = row("tok", "read", "*");
        expired.expires_at = Some(10);
        assert_eq!(
            Principal::from_row("tok", expired.clone(), 10).unwrap_err(),
            TokenRejection::Expired
        );
        assert!(Principal::from_row("tok", expired, 9).is_ok());
    }
}
