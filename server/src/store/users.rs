//! Users, their role bindings, recovery codes and login sessions.
//!
//! Rows only: password hashes are argon2 PHC strings made elsewhere, TOTP secrets
//! arrive sealed, session tokens and recovery codes arrive hashed. Nothing here sees a
//! password, a TOTP secret or a token.

use super::{Store, StoreError};
use sqlx::FromRow;

/// A user row. No `Debug`: it carries the password hash and the sealed TOTP secret.
#[derive(Clone, FromRow)]
pub struct UserRow {
    /// Public identifier.
    pub id: String,
    /// Login name (lower case).
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Set when disabled: no login, no session.
    pub disabled_at: Option<i64>,
    /// KEK that wrapped the TOTP secret's DEK.
    pub totp_kek_id: Option<String>,
    /// Wrapped DEK of the TOTP secret.
    pub totp_wrapped_dek: Option<Vec<u8>>,
    /// Sealed TOTP secret (pending or enrolled).
    pub totp_secret: Option<Vec<u8>>,
    /// 1 when TOTP is enrolled and required at login.
    pub totp_enabled: i64,
    /// Last accepted TOTP step.
    pub totp_last_step: i64,
}

/// One role binding: `project` is a slug or `*`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RoleRow {
    /// Project slug or `*`.
    pub project: String,
    /// `admin`, `operator`, `developer` or `viewer`.
    pub role: String,
}

/// A session row joined with its user.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    /// Public identifier.
    pub id: String,
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// Owner.
    pub user_id: String,
    /// Owner's name, joined.
    pub username: String,
    /// Owner's disable time, joined.
    pub disabled_at: Option<i64>,
    /// Owner's TOTP state, joined.
    pub totp_enabled: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Logout time.
    pub revoked_at: Option<i64>,
}

const USER_COLS: &str = "id, username, password_hash, created_at, updated_at, disabled_at, \
     totp_kek_id, totp_wrapped_dek, totp_secret, totp_enabled, totp_last_step";

impl Store {
    /// Creates a user with its role bindings; `Conflict` if the name is taken.
    pub async fn insert_user(&self, u: &UserRow, roles: &[RoleRow]) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict);
        }
        Self::insert_roles(&mut tx, &u.id, roles).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_roles(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        roles: &[RoleRow],
    ) -> Result<(), StoreError> {
        for r in roles {
            sqlx::query("INSERT INTO user_roles (user_id, project, role) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(&r.project)
                .bind(&r.role)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// A user by login name.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All users by name.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A user's role bindings.
    pub async fn user_roles(&self, user_id: &str) -> Result<Vec<RoleRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT project, role FROM user_roles WHERE user_id = $1 ORDER BY project",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces a user's role bindings.
    pub async fn set_roles(&self, user_id: &str, roles: &[RoleRow]) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_roles(&mut tx, user_id, roles).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a password hash and ends every session of the user.
    pub async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a user (its sessions, roles and recovery codes go with it).
    pub async fn delete_user(&self, user_id: &str) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM user_roles WHERE user_id = $1",
            "DELETE FROM recovery_codes WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a sealed TOTP secret awaiting confirmation. `Conflict` when TOTP is
    /// already enrolled.
    pub async fn set_totp_pending(
        &self,
        user_id: &str,
        kek_id: &str,
        wrapped_dek: &[u8],
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let n = sqlx::query(
            "UPDATE users SET totp_kek_id = $1, totp_wrapped_dek = $2, totp_secret = $3, \
             totp_last_step = 0 WHERE id = $4 AND totp_enabled = 0",
        )
        .bind(kek_id)
        .bind(wrapped_dek)
        .bind(sealed)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Turns a pending TOTP secret on, records the step just used and replaces the
    /// recovery codes. `Conflict` when there is nothing pending.
    pub async fn enable_totp(
        &self,
        user_id: &str,
        step: i64,
        code_hashes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET totp_enabled = 1, totp_last_step = $1 \
             WHERE id = $2 AND totp_enabled = 0 AND totp_secret IS NOT NULL",
        )
        .bind(step)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for h in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes TOTP and recovery codes from a user.
    pub async fn clear_totp(&self, user_id: &str) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_kek_id = NULL, totp_wrapped_dek = NULL, totp_secret = NULL, \
             totp_enabled = 0, totp_last_step = 0 WHERE id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records `step` as the last TOTP step used, only if it is newer than the one
    /// recorded: false means the code was already used (a replay), on any replica.
    pub async fn advance_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Marks a recovery code used; false if it is unknown or already used.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let n = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Unused recovery codes of a user.
    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }

    // ---- sessions -------------------------------------------------------------------

    /// Stores a session.
    pub async fn insert_session(
        &self,
        id: &str,
        token_hash: &[u8],
        user_id: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(user_id)
        .bind(created_at)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this token hash, with its user.
    pub async fn session_by_hash(&self, hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT s.id, s.token_hash, s.user_id, u.username, u.disabled_at, u.totp_enabled, s.created_at, \
             s.expires_at, s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a session (logout).
    pub async fn revoke_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes sessions that expired before `before` (housekeeping).
    pub async fn prune_sessions(&self, before: i64) -> Result<u64, StoreError> {
        let _w = self.writer().await;
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
