//! JSON bodies of the `/v1` API. Times are Unix seconds (UTC).

use crate::value::WireValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// Stable, machine-readable code, e.g. `not_found`, `cas_conflict`.
    pub code: String,
    /// Human-readable message. Never contains secret values or internals.
    pub message: String,
}

/// `POST /v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Slug `[a-z0-9][a-z0-9_-]*`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A project and its environments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Project {
    /// Slug.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: i64,
    /// Environment names, sorted.
    pub environments: Vec<String>,
}

/// `GET /v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProjectList {
    /// Projects visible to the caller, sorted by name.
    pub projects: Vec<Project>,
}

/// `POST /v1/projects/{project}/environments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    /// Slug.
    pub name: String,
}

/// An environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Environment {
    /// Project slug.
    pub project: String,
    /// Environment slug.
    pub name: String,
    /// Bumped on every change to a secret in it; the ETag of the export.
    pub revision: i64,
    /// Creation time.
    pub created_at: i64,
}

/// `PUT /v1/projects/{p}/environments/{e}/secrets/{name}`: writes a new version.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub value: Option<zeroize::Zeroizing<String>>,
    /// The value as standard base64, for bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Check-and-set: the write succeeds only if the current version is this one
    /// (`0`: only if the secret does not exist yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<i64>,
    /// Replaces the description when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value is a template over other secrets of the environment
    /// (`${NAME}`, `${NAME|urlencode}`, `$$`), resolved in the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<bool>,
    /// Store a name from the dangerous-name table anyway (`BASH_ENV`, `LD_PRELOAD`…).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_dangerous_name: bool,
}

impl PutSecret {
    /// A body that writes `value`.
    pub fn new(value: &crate::SecretValue) -> Self {
        let wire = value.to_wire();
        PutSecret {
            value: wire.value,
            value_base64: wire.value_base64,
            cas: None,
            description: None,
            derived: None,
            allow_dangerous_name: false,
        }
    }

    /// Decodes the value.
    pub fn decode_value(&self) -> Result<crate::SecretValue, crate::WireValueError> {
        WireValue {
            value: self.value.clone(),
            value_base64: self.value_base64.clone(),
        }
        .decode()
    }
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecret")
            .field("cas", &self.cas)
            .finish_non_exhaustive()
    }
}

/// A secret's metadata (no value).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SecretMeta {
    /// Env-var name.
    pub name: String,
    /// Current version number (versions start at 1).
    pub version: i64,
    /// Free text.
    pub description: String,
    /// Creation time of the secret.
    pub created_at: i64,
    /// Time of the current version.
    pub updated_at: i64,
    /// Set when soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

/// `GET /v1/projects/{p}/environments/{e}/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SecretList {
    /// Sorted by name.
    pub secrets: Vec<SecretMeta>,
}

/// One secret with a value.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SecretWithValue {
    /// Env-var name.
    pub name: String,
    /// Which version this value is.
    pub version: i64,
    /// The value.
    #[serde(flatten)]
    pub value: WireValue,
}

impl std::fmt::Debug for SecretWithValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWithValue")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// One entry of a secret's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VersionMeta {
    /// Version number.
    pub version: i64,
    /// When it was written.
    pub created_at: i64,
    /// Who wrote it (token or user name).
    pub created_by: String,
    /// True once crypto-erased: the value is gone for good.
    pub destroyed: bool,
    /// True for the version the secret currently serves.
    pub current: bool,
}

/// `GET .../secrets/{name}/versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VersionList {
    /// Newest first.
    pub versions: Vec<VersionMeta>,
}

/// `POST .../secrets/{name}/rollback`: writes the value of an older version as a new
/// version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version whose value becomes current again.
    pub version: i64,
}

/// `POST .../secrets/{name}/destroy`: crypto-erases versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Destroy {
    /// Versions to erase.
    pub versions: Vec<i64>,
}

/// `GET /v1/projects/{p}/environments/{e}/export`: a whole environment in one answer,
/// with `ETag: "<revision>"`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvironmentExport {
    /// Project slug.
    pub project: String,
    /// Environment slug.
    pub environment: String,
    /// The environment's revision (also the ETag).
    pub revision: i64,
    /// Name → value, for every live secret.
    pub secrets: BTreeMap<String, WireValue>,
}

impl std::fmt::Debug for EnvironmentExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentExport")
            .field("project", &self.project)
            .field("environment", &self.environment)
            .field("revision", &self.revision)
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a machine token may do in its environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read values and metadata.
    Read,
    /// Read and write.
    Write,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Label, e.g. `dify-api`.
    pub name: String,
    /// Project the token is scoped to.
    pub project: String,
    /// Environments it may use; `["*"]` for all of the project's.
    pub environments: Vec<String>,
    /// Read or write.
    pub access: Access,
    /// Lifetime in seconds; none for no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// A token's public description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    /// Identifier (not secret), used to revoke.
    pub id: String,
    /// Label.
    pub name: String,
    /// Project scope; none for an admin token.
    pub project: Option<String>,
    /// Environment scope.
    pub environments: Vec<String>,
    /// `read`, `write` or `admin`.
    pub access: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry time, if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// The answer to `POST /v1/tokens`: the only time the token itself is shown.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    /// The token's description.
    pub info: TokenInfo,
    /// The bearer token. Store it now; the server keeps only a hash.
    pub token: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenInfo>,
}

// ---- people: login, sessions, users, MFA, audit ---------------------------------------

/// `POST /v1/auth/login`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: zeroize::Zeroizing<String>,
    /// TOTP code (6 digits) or a recovery code, for accounts with MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub totp: Option<zeroize::Zeroizing<String>>,
    /// `true`: answer with an HttpOnly session cookie and leave the token out of the
    /// body (browsers). Default: the token in the body (CLI, bearer).
    #[serde(default)]
    pub cookie: bool,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The answer to a successful login.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// The session bearer token (absent when a cookie was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Session id (not secret).
    pub session_id: String,
    /// Who signed in.
    pub username: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// True when the session may only enrol TOTP until that is done (admins, with
    /// MFA made mandatory).
    pub mfa_enrolment_required: bool,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("session_id", &self.session_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A role in one project, or in every project (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// Project slug or `*`.
    pub project: String,
    /// `admin`, `operator`, `developer` or `viewer`.
    pub role: String,
}

/// `POST /v1/users`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name, lower case.
    pub username: String,
    /// Initial password (checked against the password policy).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: zeroize::Zeroizing<String>,
    /// Role bindings.
    pub roles: Vec<RoleGrant>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A user's public description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserInfo {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Role bindings.
    pub roles: Vec<RoleGrant>,
    /// TOTP enrolled.
    pub mfa: bool,
    /// Creation time.
    pub created_at: i64,
    /// Whether the account is locked out now.
    #[serde(default)]
    pub locked: bool,
}

/// `GET /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserList {
    /// By name.
    pub users: Vec<UserInfo>,
}

/// `PUT /v1/users/{name}/roles`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    /// The new bindings (replacing the old ones).
    pub roles: Vec<RoleGrant>,
}

/// `PUT /v1/users/{name}/password` (admin) and `PUT /v1/auth/password` (self, with
/// `current`).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The current password (required when changing one's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub current: Option<zeroize::Zeroizing<String>>,
    /// The new password.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword").finish_non_exhaustive()
    }
}

/// `GET /v1/auth/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WhoAmI {
    /// User or token name.
    pub name: String,
    /// `user`, `token` or `admin-token`.
    pub kind: String,
    /// Role bindings (users).
    pub roles: Vec<RoleGrant>,
    /// Only TOTP enrolment is allowed until it is done.
    pub mfa_enrolment_required: bool,
}

/// The answer to `POST /v1/auth/mfa/enroll`: a pending TOTP secret, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MfaEnrolment {
    /// Base32 secret for manual entry.
    pub secret: String,
    /// `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for MfaEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaEnrolment").finish_non_exhaustive()
    }
}

/// `POST /v1/auth/mfa/confirm` and `POST /v1/auth/mfa/disable`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    /// A current TOTP code.
    pub code: String,
}

impl std::fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaCode").finish_non_exhaustive()
    }
}

/// The answer to a confirmed enrolment: one-time recovery codes, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecoveryCodes {
    /// Each works once in place of a TOTP code.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodes").finish_non_exhaustive()
    }
}

/// One audit log entry (one JSON line of `envseal audit export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix milliseconds.
    pub ts: i64,
    /// Who acted (or the name given at a login attempt).
    pub actor: String,
    /// What, e.g. `auth.login`, `secret.read`.
    pub action: String,
    /// On what.
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub result: String,
    /// Why, for failures and denials.
    pub reason: String,
    /// Client address.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// Extra fields as a JSON object text (names, versions, ids; never values).
    pub details: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical encoding, hex.
    pub hash: String,
}

/// `GET /v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditPage {
    /// In chain order.
    pub entries: Vec<AuditEntry>,
}

/// The first entry that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditBrokenLink {
    /// Its sequence number.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditVerification {
    /// True when every link holds.
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// Last checked entry's sequence number.
    pub head_seq: i64,
    /// Last checked entry's hash (record it elsewhere to detect truncation later).
    pub head_hash: String,
    /// The first broken link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<AuditBrokenLink>,
}

/// Most candidates one `POST /v1/leaks/check` may carry.
pub const MAX_LEAK_CANDIDATES: usize = 500;

/// One value found by a scanner, to compare with stored secrets.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeakCandidate {
    /// The value as found.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub value: zeroize::Zeroizing<String>,
    /// Client-chosen id, echoed in matches.
    pub id: i64,
}

impl std::fmt::Debug for LeakCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakCandidate")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/leaks/check`: which of these values are live stored secrets?
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeakCheck {
    /// At most [`MAX_LEAK_CANDIDATES`].
    pub candidates: Vec<LeakCandidate>,
}

/// A candidate equal to the current value of a stored secret the caller may see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeakMatch {
    /// The candidate's id.
    pub id: i64,
    /// Project slug.
    pub project: String,
    /// Environment slug.
    pub environment: String,
    /// Secret name.
    pub name: String,
}

/// The answer to `POST /v1/leaks/check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeakMatches {
    /// One entry per (candidate, secret) match.
    pub matches: Vec<LeakMatch>,
}
