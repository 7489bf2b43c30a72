-- Users, role bindings, sessions, MFA and the hash-chained audit log (PostgreSQL).
-- Keep in step with ../sqlite/0002_users_audit.sql.
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    disabled_at      BIGINT,
    -- TOTP secret, envelope-encrypted like a secret value (never plaintext).
    totp_kek_id      TEXT,
    totp_wrapped_dek BYTEA,
    totp_secret      BYTEA,
    -- 0: none or pending enrolment; 1: enrolled and required at login.
    totp_enabled     BIGINT NOT NULL DEFAULT 0,
    -- Last accepted TOTP time step: codes of this step or older are replays.
    totp_last_step   BIGINT NOT NULL DEFAULT 0
);

-- project is a project slug or '*' (every project).
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project TEXT NOT NULL,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, project)
);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Append-only: each row carries the previous row's hash. ts is Unix milliseconds.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    ts         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
