-- Core schema. Times are INTEGER milliseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL
);

-- Phone numbers a tenant receives on and sends from. A number belongs to
-- one tenant: inbound routing starts here.
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    connector   TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX numbers_tenant ON numbers(tenant_id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key_hash    BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Component bytes, deduplicated by SHA-256: a node that lacks a compiled
-- artifact compiles it from here.
CREATE TABLE components (
    hash        TEXT PRIMARY KEY,
    wasm        BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE plugins (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    name               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active',
    active_version_id  TEXT,
    created_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE plugin_versions (
    id              TEXT PRIMARY KEY,
    plugin_id       TEXT NOT NULL REFERENCES plugins(id),
    version         TEXT NOT NULL,
    component_hash  TEXT NOT NULL REFERENCES components(hash),
    manifest        TEXT NOT NULL,
    config          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (plugin_id, version)
);

-- The active version's triggers, indexed for the router.
CREATE TABLE routes (
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL REFERENCES plugins(id),
    kind        TEXT NOT NULL,
    pattern     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, kind, pattern)
);
CREATE INDEX routes_tenant ON routes(tenant_id, kind, pattern);

CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    direction    TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL,
    status_rank  INTEGER NOT NULL,
    segments     INTEGER NOT NULL,
    encoding     TEXT NOT NULL,
    reference    TEXT,
    connector    TEXT,
    provider_id  TEXT,
    error_code   TEXT,
    plugin_id    TEXT,
    event_id     TEXT,
    in_reply_to  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX messages_tenant ON messages(tenant_id, id);
CREATE INDEX messages_reply ON messages(in_reply_to) WHERE in_reply_to IS NOT NULL;
CREATE INDEX messages_provider ON messages(connector, provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE message_status (
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    error_code  TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX message_status_message ON message_status(message_id);

-- Plugin work. status: pending | done | dead.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    plugin_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT,
    payload      TEXT NOT NULL,
    message_id   TEXT,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX events_pending ON events(run_at) WHERE status = 'pending';
CREATE INDEX events_message ON events(message_id) WHERE message_id IS NOT NULL;

-- Messages waiting to be handed to a connector.
CREATE TABLE outbox (
    message_id   TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER
);
CREATE INDEX outbox_run_at ON outbox(run_at);

CREATE TABLE kv (
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, key)
) WITHOUT ROWID;

CREATE TABLE timers (
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, key)
);
CREATE INDEX timers_due ON timers(due_at);

CREATE TABLE invocations (
    id           INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    plugin_id    TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL,
    fuel_used    INTEGER NOT NULL,
    memory_peak  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX invocations_plugin ON invocations(plugin_id, id);

CREATE TABLE plugin_logs (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX plugin_logs_plugin ON plugin_logs(plugin_id, id);
