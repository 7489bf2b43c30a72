-- Rotation (SPEC §7). Keep in step with ../postgres/.
-- Staging labels: `current` is secrets.current_version (what the export serves);
-- `previous` is a row here, written by the transaction that finishes a rotation.
CREATE TABLE secret_labels (
    secret_id BIGINT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    label     TEXT NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (secret_id, label)
);

-- At most one rotation in progress per secret: the primary key is what makes exactly
-- one of two concurrent rotations win. `pending` is sealed like a version (its own
-- DEK, AAD of the version it was created to become). `lease_until` lets a later run
-- take over a rotation whose runner died.
CREATE TABLE rotations (
    secret_id    BIGINT PRIMARY KEY REFERENCES secrets(id) ON DELETE CASCADE,
    rotation_id  TEXT NOT NULL,
    base_version BIGINT NOT NULL,
    step         TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_dek  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    started_by   TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 1,
    last_error   TEXT
);

-- Rotation policy (secret metadata): JSON read by the CLI's rotators; the server reads
-- only `rotate_every` (for due dates) and `links` (written together at finish).
CREATE TABLE rotation_policies (
    secret_id         BIGINT PRIMARY KEY REFERENCES secrets(id) ON DELETE CASCADE,
    policy            TEXT NOT NULL,
    rotate_every_secs BIGINT,
    last_rotated_at   BIGINT,
    updated_at        BIGINT NOT NULL
);
