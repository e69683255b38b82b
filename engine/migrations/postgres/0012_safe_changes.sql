-- Recordings: what each invocation saw (trigger, clock readings, ids, kv
-- values read, lookups, refusals, HTTP answers, random seed) and what it
-- committed, as JSON, for replays against other versions. Pruned by age
-- and by bytes per tenant (limits.recording_*).
ALTER TABLE invocations ADD COLUMN recording BYTEA;
ALTER TABLE invocations ADD COLUMN recording_bytes BIGINT NOT NULL DEFAULT 0;

-- Replays of recorded invocations against a version, run in the
-- background; the report is JSON.
CREATE TABLE replays (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    plugin_id    TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    version      TEXT NOT NULL,
    status       TEXT NOT NULL,
    selection    TEXT NOT NULL,
    total        BIGINT NOT NULL,
    done         BIGINT NOT NULL DEFAULT 0,
    report       TEXT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX replays_plugin ON replays (plugin_id, created_at);

-- A canary: the version some of a plugin's events go to, and how it is
-- judged (its plan, as JSON); both NULL when there is none.
ALTER TABLE plugins ADD COLUMN canary_version_id TEXT;
ALTER TABLE plugins ADD COLUMN canary TEXT;
