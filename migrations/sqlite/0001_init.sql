-- envseal schema, SQLite. Times are Unix seconds. Keep in step with ../postgres/.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE environments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    revision   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE secrets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id  BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    UNIQUE (environment_id, name)
);

-- One row per version. wrapped_dek and ciphertext become NULL when destroyed.
CREATE TABLE secret_versions (
    secret_id    BIGINT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version      BIGINT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_dek  BLOB,
    ciphertext   BLOB,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    destroyed_at BIGINT,
    PRIMARY KEY (secret_id, version)
);
CREATE INDEX secret_versions_kek ON secret_versions (kek_id);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    project_id   BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    environments TEXT NOT NULL,
    access       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
