-- KEK rotations and provider migrations: one row per job, so that a job interrupted at
-- any point is resumed (not started again) and `kek status` can show progress.
CREATE TABLE kek_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    target      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    rewrapped   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX kek_jobs_open ON kek_jobs (finished_at);
