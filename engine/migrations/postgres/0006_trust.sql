-- Trust at the edges (the same as SQLite's 0005_trust.sql): test-mode
-- events and timers, carrier ids remembered once, carrier ids unique per
-- connector, inbound parts keyed by their whole conversation, number
-- claims, sender ID approval, compliance reply windows.

ALTER TABLE events ADD COLUMN mode TEXT COLLATE "C" NOT NULL DEFAULT 'live';
ALTER TABLE timers ADD COLUMN mode TEXT COLLATE "C" NOT NULL DEFAULT 'live';

CREATE TABLE inbound_receipts (
    connector    TEXT COLLATE "C" NOT NULL,
    provider_id  TEXT COLLATE "C" NOT NULL,
    message_id   TEXT COLLATE "C" NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (connector, provider_id)
);
CREATE INDEX inbound_receipts_at ON inbound_receipts(at);

UPDATE message_parts SET provider_id = provider_id || '~' || message_id || '.' || part
 WHERE (connector, provider_id) IN
       (SELECT connector, provider_id FROM message_parts GROUP BY connector, provider_id HAVING COUNT(*) > 1);
DROP INDEX message_parts_provider;
CREATE UNIQUE INDEX message_parts_provider ON message_parts(connector, provider_id);
CREATE INDEX pending_reports_at ON pending_reports(at);

ALTER TABLE inbound_parts DROP CONSTRAINT inbound_parts_pkey;
ALTER TABLE inbound_parts ADD PRIMARY KEY (connector, from_addr, to_addr, reference, total, part);
CREATE INDEX inbound_parts_age ON inbound_parts(received_at);

ALTER TABLE sender_ids ADD COLUMN status TEXT COLLATE "C" NOT NULL DEFAULT 'approved';
ALTER TABLE sender_ids ADD COLUMN decided_at BIGINT;
UPDATE sender_ids s SET status = 'pending'
 WHERE EXISTS (SELECT 1 FROM sender_ids o WHERE UPPER(o.sender_id) = UPPER(s.sender_id)
               AND (o.created_at, o.tenant_id) < (s.created_at, s.tenant_id));
CREATE UNIQUE INDEX sender_ids_approved ON sender_ids(UPPER(sender_id)) WHERE status = 'approved';

CREATE TABLE number_claims (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    number      TEXT COLLATE "C" NOT NULL,
    connector   TEXT COLLATE "C" NOT NULL,
    is_default  BOOLEAN NOT NULL,
    code_hash   BYTEA NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, number)
);

CREATE TABLE reply_windows (
    number        TEXT COLLATE "C" NOT NULL,
    sender        TEXT COLLATE "C" NOT NULL,
    window_start  BIGINT NOT NULL,
    replies       BIGINT NOT NULL,
    PRIMARY KEY (number, sender)
);
