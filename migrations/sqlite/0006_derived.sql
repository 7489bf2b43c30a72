-- Derived values: a version whose sealed value is a template over other secrets of
-- its environment (`${NAME}`, `${NAME|urlencode}`), resolved in the export.
ALTER TABLE secret_versions ADD COLUMN derived BIGINT NOT NULL DEFAULT 0;
