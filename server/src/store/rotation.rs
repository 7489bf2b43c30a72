//! Rotation rows: staging labels (`previous`), the one in-progress rotation per secret
//! (with its sealed `pending` value and a lease), and rotation policies.
//!
//! Like the rest of the store this moves ciphertext only. The invariant kept here is
//! that `current` (the export's `secrets.current_version`) changes only in
//! [`Store::finish_rotation`]'s single transaction, together with every linked secret,
//! the `previous` labels and one revision bump.

use super::{Store, StoreError};
use sqlx::FromRow;

/// An in-progress rotation.
#[derive(Clone, FromRow)]
pub struct RotationRow {
    /// The rotated secret.
    pub secret_id: i64,
    /// Identifies the runner that holds the lease.
    pub rotation_id: String,
    /// The version that was current when the rotation was created.
    pub base_version: i64,
    /// Last step that succeeded: `created`, `set` or `tested`.
    pub step: String,
    /// KEK of the pending value's DEK.
    pub kek_id: String,
    /// Wrapped DEK of the pending value.
    pub wrapped_dek: Vec<u8>,
    /// Sealed pending value.
    pub ciphertext: Vec<u8>,
    /// Who started it.
    pub started_by: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Until when the runner owns it; afterwards another run may take it over.
    pub lease_until: i64,
    /// How many runners have held it.
    pub attempts: i64,
    /// The last failure reported (a message, never a value).
    pub last_error: Option<String>,
}

/// A rotation policy row.
#[derive(Debug, Clone, FromRow)]
pub struct PolicyRow {
    /// The secret.
    pub secret_id: i64,
    /// Secret name (joined).
    pub name: String,
    /// The policy JSON.
    pub policy: String,
    /// `rotate_every`, in seconds.
    pub rotate_every_secs: Option<i64>,
    /// When the last rotation finished.
    pub last_rotated_at: Option<i64>,
}

/// A new pending value.
pub struct NewRotation<'a> {
    /// The secret.
    pub secret_id: i64,
    /// Fresh runner id.
    pub rotation_id: &'a str,
    /// Current version now.
    pub base_version: i64,
    /// KEK id.
    pub kek_id: &'a str,
    /// Wrapped DEK.
    pub wrapped_dek: &'a [u8],
    /// Sealed pending value.
    pub ciphertext: &'a [u8],
    /// Who starts.
    pub started_by: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Lease end.
    pub lease_until: i64,
}

/// One secret written by a finishing rotation.
pub struct FinishWrite<'a> {
    /// Secret name.
    pub name: &'a str,
    /// The version the write replaces (0: the secret is created).
    pub expected_current: i64,
    /// KEK id.
    pub kek_id: &'a str,
    /// Wrapped DEK.
    pub wrapped_dek: &'a [u8],
    /// Sealed value (AAD of `expected_current + 1`).
    pub ciphertext: &'a [u8],
    /// Keyed fingerprint.
    pub fingerprint: &'a [u8],
}

/// What finishing a rotation writes.
pub struct Finish<'a> {
    /// Environment.
    pub env_id: i64,
    /// The rotated secret.
    pub secret_id: i64,
    /// The runner finishing (must hold the rotation).
    pub rotation_id: &'a str,
    /// The rotated secret first, then the linked ones.
    pub writes: Vec<FinishWrite<'a>>,
    /// Writer.
    pub actor: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Versions to keep per secret (at least 2, so `previous` survives).
    pub keep_versions: i64,
}

const ROTATION_COLS: &str = "secret_id, rotation_id, base_version, step, kek_id, wrapped_dek, \
     ciphertext, started_by, started_at, updated_at, lease_until, attempts, last_error";

impl Store {
    /// The rotation in progress for a secret, if any.
    pub async fn rotation(&self, secret_id: i64) -> Result<Option<RotationRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ROTATION_COLS} FROM rotations WHERE secret_id = $1"
        ))
        .bind(secret_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a new rotation; `Conflict` if one is in progress (live or stale).
    pub async fn create_rotation(&self, r: NewRotation<'_>) -> Result<(), StoreError> {
        let _w = self.writer_bumping(false).await;
        let done = sqlx::query(
            "INSERT INTO rotations (secret_id, rotation_id, base_version, step, kek_id, \
             wrapped_dek, ciphertext, started_by, started_at, updated_at, lease_until, attempts) \
             VALUES ($1, $2, $3, 'created', $4, $5, $6, $7, $8, $8, $9, 1) \
             ON CONFLICT (secret_id) DO NOTHING",
        )
        .bind(r.secret_id)
        .bind(r.rotation_id)
        .bind(r.base_version)
        .bind(r.kek_id)
        .bind(r.wrapped_dek)
        .bind(r.ciphertext)
        .bind(r.started_by)
        .bind(r.now)
        .bind(r.lease_until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Hands a rotation whose lease ran out to a new runner. `Conflict` if it is no
    /// longer held by `old_id` or the lease is still live (someone else won).
    pub async fn take_over_rotation(
        &self,
        secret_id: i64,
        old_id: &str,
        new_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer_bumping(false).await;
        let done = sqlx::query(
            "UPDATE rotations SET rotation_id = $1, lease_until = $2, updated_at = $3, \
             attempts = attempts + 1 \
             WHERE secret_id = $4 AND rotation_id = $5 AND lease_until < $3",
        )
        .bind(new_id)
        .bind(lease_until)
        .bind(now)
        .bind(secret_id)
        .bind(old_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Records a step's outcome and renews the lease; `step` is `None` for a failure
    /// (the step stays where it was). `Conflict` if `rotation_id` does not hold it.
    pub async fn record_rotation_step(
        &self,
        secret_id: i64,
        rotation_id: &str,
        step: Option<&str>,
        error: Option<&str>,
        now: i64,
        lease_until: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer_bumping(false).await;
        let done = sqlx::query(
            "UPDATE rotations SET step = COALESCE($1, step), last_error = $2, updated_at = $3, \
             lease_until = $4 WHERE secret_id = $5 AND rotation_id = $6",
        )
        .bind(step)
        .bind(error)
        .bind(now)
        .bind(lease_until)
        .bind(secret_id)
        .bind(rotation_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Discards a rotation (its pending value with it). With `rotation_id`, only if
    /// that runner holds it. `NotFound` if nothing was discarded.
    pub async fn delete_rotation(
        &self,
        secret_id: i64,
        rotation_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let _w = self.writer_bumping(false).await;
        let done = match rotation_id {
            Some(id) => {
                sqlx::query("DELETE FROM rotations WHERE secret_id = $1 AND rotation_id = $2")
                    .bind(secret_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM rotations WHERE secret_id = $1")
                    .bind(secret_id)
                    .execute(&self.pool)
                    .await?
            }
        }
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// A secret's labels other than `current`, e.g. `previous`.
    pub async fn labels(&self, secret_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT label, version FROM secret_labels WHERE secret_id = $1 ORDER BY label",
        )
        .bind(secret_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Finishes a rotation in one transaction: the rotation row is removed (it must be
    /// held by `rotation_id`), every write becomes its secret's current version with the
    /// old one labelled `previous`, the policy's last rotation time is set, and the
    /// environment's revision is bumped once. `Conflict` (nothing written) if the
    /// rotation is not held by this runner or any secret changed meanwhile.
    pub async fn finish_rotation(&self, f: Finish<'_>) -> Result<i64, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query("DELETE FROM rotations WHERE secret_id = $1 AND rotation_id = $2")
            .bind(f.secret_id)
            .bind(f.rotation_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if held != 1 {
            return Err(StoreError::Conflict);
        }
        let keep = f.keep_versions.max(2);
        let mut first_version = 0;
        for w in &f.writes {
            let new_version = w.expected_current + 1;
            let secret_id: Option<i64> = if w.expected_current == 0 {
                sqlx::query_scalar(
                    "INSERT INTO secrets (environment_id, name, current_version, description, \
                     created_at, updated_at) VALUES ($1, $2, 1, '', $3, $3) \
                     ON CONFLICT (environment_id, name) DO NOTHING RETURNING id",
                )
                .bind(f.env_id)
                .bind(w.name)
                .bind(f.now)
                .fetch_optional(&mut *tx)
                .await?
            } else {
                sqlx::query_scalar(
                    "UPDATE secrets SET current_version = $1, updated_at = $2, deleted_at = NULL \
                     WHERE environment_id = $3 AND name = $4 AND current_version = $5 RETURNING id",
                )
                .bind(new_version)
                .bind(f.now)
                .bind(f.env_id)
                .bind(w.name)
                .bind(w.expected_current)
                .fetch_optional(&mut *tx)
                .await?
            };
            let Some(secret_id) = secret_id else {
                return Err(StoreError::Conflict);
            };
            sqlx::query(
                "INSERT INTO secret_versions (secret_id, version, kek_id, wrapped_dek, \
                 ciphertext, created_at, created_by, fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(secret_id)
            .bind(new_version)
            .bind(w.kek_id)
            .bind(w.wrapped_dek)
            .bind(w.ciphertext)
            .bind(f.now)
            .bind(f.actor)
            .bind(w.fingerprint)
            .execute(&mut *tx)
            .await?;
            if w.expected_current > 0 {
                sqlx::query(
                    "INSERT INTO secret_labels (secret_id, label, version) \
                     VALUES ($1, 'previous', $2) \
                     ON CONFLICT (secret_id, label) DO UPDATE SET version = excluded.version",
                )
                .bind(secret_id)
                .bind(w.expected_current)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM secret_versions WHERE secret_id = $1 AND version <= $2")
                .bind(secret_id)
                .bind(new_version - keep)
                .execute(&mut *tx)
                .await?;
            if first_version == 0 {
                first_version = new_version;
            }
        }
        sqlx::query("UPDATE rotation_policies SET last_rotated_at = $1 WHERE secret_id = $2")
            .bind(f.now)
            .bind(f.secret_id)
            .execute(&mut *tx)
            .await?;
        Self::bump_revision(&mut tx, f.env_id).await?;
        tx.commit().await?;
        Ok(first_version)
    }

    /// Stores (replaces) a secret's rotation policy.
    pub async fn set_rotation_policy(
        &self,
        secret_id: i64,
        policy: &str,
        rotate_every_secs: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO rotation_policies (secret_id, policy, rotate_every_secs, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (secret_id) DO UPDATE SET \
             policy = excluded.policy, rotate_every_secs = excluded.rotate_every_secs, \
             updated_at = excluded.updated_at",
        )
        .bind(secret_id)
        .bind(policy)
        .bind(rotate_every_secs)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One secret's rotation policy.
    pub async fn rotation_policy(&self, secret_id: i64) -> Result<Option<PolicyRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.secret_id, s.name, p.policy, p.rotate_every_secs, p.last_rotated_at \
             FROM rotation_policies p JOIN secrets s ON s.id = p.secret_id \
             WHERE p.secret_id = $1",
        )
        .bind(secret_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every live secret of an environment with a rotation policy, by name.
    pub async fn rotation_policies(&self, env_id: i64) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.secret_id, s.name, p.policy, p.rotate_every_secs, p.last_rotated_at \
             FROM rotation_policies p JOIN secrets s ON s.id = p.secret_id \
             WHERE s.environment_id = $1 AND s.deleted_at IS NULL ORDER BY s.name",
        )
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
