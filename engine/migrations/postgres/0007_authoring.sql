-- Plugin authors' tools: retries bound to a version, dead letters listed.

-- The version an event runs: set when an attempt fails, so that its retries
-- (automatic, or asked for through the API) run the version that failed and
-- a deploy in between does not silently change what runs. NULL: the active
-- version.
ALTER TABLE events ADD COLUMN version_id TEXT COLLATE "C";

-- A plugin's dead letters, newest first.
CREATE INDEX events_dead ON events(plugin_id, id) WHERE status = 'dead';
