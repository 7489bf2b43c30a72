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
