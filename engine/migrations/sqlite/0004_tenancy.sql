-- Multi-tenancy: the admin audit log, opt-out (consent) records, cron
-- fire bookkeeping, plugin suspension, counters.

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL
);

-- scope: '' for tenant-wide, else the tenant number the recipient opted out of.
CREATE TABLE opt_outs (
    tenant_id  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    source     TEXT NOT NULL,
    keyword    TEXT,
    at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, recipient, scope)
);

-- The last fire of each cron schedule: a fire is claimed by moving this
-- forward in the transaction that inserts its event.
CREATE TABLE cron_state (
    plugin_id     TEXT NOT NULL,
    schedule      TEXT NOT NULL,
    last_fire_at  INTEGER NOT NULL,
    PRIMARY KEY (plugin_id, schedule)
);

ALTER TABLE plugins ADD COLUMN status_reason TEXT;
ALTER TABLE plugins ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tenant_counters (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
