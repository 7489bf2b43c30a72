//! Machine tokens, user roles and what a caller may do.
//!
//! A caller is a [`Principal`]: a machine token (admin, or scoped to one project's
//! environments with read or write access) or a user session whose reach comes from
//! role bindings ([`Role`] per project or for every project). Every endpoint asks the
//! principal, never the kind of credential.
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
    /// List names and metadata (versions, times), never values.
    Metadata,
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

/// A user's role in a project (or in every project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Names and metadata only, no values.
    Viewer,
    /// Values: read and write outside `prod*` environments, metadata in them.
    Developer,
    /// Read and write every environment, rotate, create read/write machine tokens.
    Operator,
    /// Everything in the project; on `*`, everything on the server (users, audit,
    /// projects, unlock).
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Operator, Role::Admin];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What this role may do in environment `env`.
    pub fn permission_in(self, env: &str) -> Permission {
        match self {
            Role::Admin | Role::Operator => Permission::Write,
            Role::Developer if is_production(env) => Permission::Metadata,
            Role::Developer => Permission::Write,
            Role::Viewer => Permission::Metadata,
        }
    }
}

/// Environments named `prod…` hold production values: developers see their names only.
pub fn is_production(env: &str) -> bool {
    env.starts_with("prod")
}

/// A role for one project slug, or for every project (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    /// Project slug, or `*`.
    pub project: String,
    /// The role.
    pub role: Role,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct UserScope {
    /// User id.
    pub user_id: String,
    /// Role bindings, read on every request.
    pub roles: Vec<RoleBinding>,
    /// True while MFA enrolment is mandatory and not done: only enrolment, `me` and
    /// logout are allowed.
    pub mfa_enrolment_required: bool,
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
    /// A user session: reach from role bindings.
    User(UserScope),
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

    /// A signed-in user's principal.
    pub fn user(session_id: String, username: String, scope: UserScope) -> Self {
        Principal {
            token_id: session_id,
            name: username,
            scope: Scope::User(scope),
        }
    }

    /// The strongest role a user holds in `project` (bindings for `*` count).
    pub fn role_in(&self, project: &str) -> Option<Role> {
        match &self.scope {
            Scope::User(u) => u
                .roles
                .iter()
                .filter(|b| b.project == "*" || b.project == project)
                .map(|b| b.role)
                .max(),
            _ => None,
        }
    }

    /// Whether this principal administers the whole server (admin token, or a user
    /// who is admin on `*`).
    pub fn is_admin(&self) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Project { .. } => false,
            Scope::User(u) => u
                .roles
                .iter()
                .any(|b| b.project == "*" && b.role == Role::Admin),
        }
    }

    /// Whether this is a user session (as opposed to a machine token).
    pub fn is_user(&self) -> bool {
        matches!(self.scope, Scope::User(_))
    }

    /// The user id of a session.
    pub fn user_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::User(u) => Some(&u.user_id),
            _ => None,
        }
    }

    /// Whether it may see the project at all.
    pub fn can_see_project(&self, project: &str) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Project { project: p, .. } => p == project,
            Scope::User(_) => self.role_in(project).is_some(),
        }
    }

    /// Whether it may administer one project: create environments, manage its machine
    /// tokens of any access.
    pub fn can_manage_project(&self, project: &str) -> bool {
        self.is_admin() || self.role_in(project) == Some(Role::Admin)
    }

    /// Whether it may create, list and revoke `project`'s machine tokens (operators:
    /// read and write tokens of their project).
    pub fn can_manage_tokens(&self, project: &str) -> bool {
        self.is_admin() || self.role_in(project) >= Some(Role::Operator)
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
            Scope::User(_) => self
                .role_in(project)
                .is_some_and(|r| r.permission_in(env) >= permission),
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
