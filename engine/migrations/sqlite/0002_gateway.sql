-- The SMS gateway API: tenant settings, sender IDs, templates, prepaid
-- balance and its ledger, idempotency, scheduled messages, signed delivery
-- webhooks. Amounts are INTEGER micro-units of the configured currency.

ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN webhook_secret BLOB;
ALTER TABLE tenants ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';
ALTER TABLE messages ADD COLUMN webhook_url TEXT;
ALTER TABLE messages ADD COLUMN scheduled_at INTEGER;
ALTER TABLE messages ADD COLUMN price INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN batch_id TEXT;
CREATE INDEX messages_usage ON messages(tenant_id, created_at);

ALTER TABLE api_keys ADD COLUMN last4 TEXT;

CREATE TABLE sender_ids (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    sender_id   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, sender_id)
);

CREATE TABLE templates (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Every change of a balance, signed (credits positive, debits negative).
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    balance_after  INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    message_id     TEXT,
    note           TEXT,
    at             INTEGER NOT NULL
);
CREATE INDEX ledger_tenant ON ledger(tenant_id, id);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    response      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_age ON idempotency_keys(created_at);

-- Status webhooks to deliver, retried until delivered or expired.
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    url           TEXT NOT NULL,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(run_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_message ON webhook_deliveries(message_id);

CREATE TABLE webhook_attempts (
    delivery_id  TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id);

ALTER TABLE tenants ADD COLUMN webhook_url TEXT;
