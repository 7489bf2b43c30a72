//! Store operations that change several rows in one transaction: token rotation (the
//! new token and the old one's shortened life commit together).

use super::{Store, StoreError, TokenRow};

impl Store {
    /// Inserts `new` and makes the live token `old_id` expire at `old_expires_at`
    /// (never later than it already would), in one transaction. `NotFound` if
    /// `old_id` is not a live token; `Conflict` if `new`'s hash exists already.
    pub async fn rotate_token(
        &self,
        new: &TokenRow,
        old_id: &str,
        old_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE tokens SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $1 \
             THEN expires_at ELSE $1 END WHERE id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(old_expires_at)
        .bind(old_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        let inserted = sqlx::query(
            "INSERT INTO tokens (id, name, token_hash, project_id, environments, access, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(new.project_id)
        .bind(&new.environments)
        .bind(&new.access)
        .bind(new.created_at)
        .bind(new.expires_at)
        .bind(new.revoked_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != 1 {
            return Err(StoreError::Conflict);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What deleting a project or environment removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Done: this many secrets went with it, this many tokens were revoked or removed.
    Done {
        /// Secrets (live and soft-deleted) erased with it.
        secrets: i64,
        /// Tokens revoked (environment) or removed (project) with it.
        tokens: i64,
    },
    /// Refused without force: it still holds this many secrets.
    HoldsSecrets(i64),
}

impl Store {
    /// Deletes an environment with its secrets and versions (rows gone, so the
    /// ciphertext and wrapped keys go too), in one transaction. Tokens naming the
    /// environment are revoked, so a later environment of the same name is not
    /// opened to them. Without `force`, refuses while it holds any secret.
    pub async fn delete_environment(
        &self,
        env: &super::EnvRow,
        force: bool,
        now: i64,
    ) -> Result<Removal, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let (secrets,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM secrets WHERE environment_id = $1")
                .bind(env.id)
                .fetch_one(&mut *tx)
                .await?;
        if secrets > 0 && !force {
            return Ok(Removal::HoldsSecrets(secrets));
        }
        let scoped: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, environments FROM tokens WHERE project_id = $1 AND revoked_at IS NULL",
        )
        .bind(env.project_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut tokens = 0;
        for (id, envs) in scoped {
            if envs.split(',').any(|e| e == env.name) {
                sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tokens += 1;
            }
        }
        let gone = sqlx::query("DELETE FROM environments WHERE id = $1")
            .bind(env.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone != 1 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(Removal::Done { secrets, tokens })
    }

    /// Deletes a project with its environments, secrets and tokens, in one
    /// transaction. Without `force`, refuses while any environment holds a secret.
    pub async fn delete_project(
        &self,
        project: &super::ProjectRow,
        force: bool,
    ) -> Result<Removal, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let (secrets,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM secrets s JOIN environments e ON e.id = s.environment_id \
             WHERE e.project_id = $1",
        )
        .bind(project.id)
        .fetch_one(&mut *tx)
        .await?;
        if secrets > 0 && !force {
            return Ok(Removal::HoldsSecrets(secrets));
        }
        let (tokens,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tokens WHERE project_id = $1")
            .bind(project.id)
            .fetch_one(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(project.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone != 1 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(Removal::Done { secrets, tokens })
    }
}
