-- Keyed fingerprints (HMAC-SHA256 under the server's fingerprint key) of each version,
-- for leak matching (`POST /v1/leaks/check`). Never a plain hash of a value.
ALTER TABLE secret_versions ADD COLUMN fingerprint BLOB;
CREATE INDEX secret_versions_fingerprint ON secret_versions (fingerprint);
