-- Trust at the edges: test-mode events and timers, carrier ids remembered
-- once, carrier ids unique per connector, inbound parts keyed by their
-- whole conversation, number claims, sender ID approval, compliance reply
-- windows.

-- Events and timers born of a test key run their plugins in test mode.
ALTER TABLE events ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';
ALTER TABLE timers ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';

-- Inbound carrier ids already accepted: a carrier's retry is answered
-- without a second message (pruned after limits.carrier_ids_retention_s).
CREATE TABLE inbound_receipts (
    connector    TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (connector, provider_id)
);
CREATE INDEX inbound_receipts_at ON inbound_receipts(at);

-- A carrier id names one part of one message. Ids two messages already
-- share (a counter that restarted) name neither reliably: set them apart.
UPDATE message_parts SET provider_id = provider_id || '~' || message_id || '.' || part
 WHERE (connector, provider_id) IN
       (SELECT connector, provider_id FROM message_parts GROUP BY connector, provider_id HAVING COUNT(*) > 1);
DROP INDEX message_parts_provider;
CREATE UNIQUE INDEX message_parts_provider ON message_parts(connector, provider_id);
CREATE INDEX pending_reports_at ON pending_reports(at);

-- The parts of one long message: same connector, sender, recipient,
-- reference and total (references are one byte: they come round again).
CREATE TABLE inbound_parts_keyed (
    connector    TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    reference    TEXT NOT NULL,
    total        INTEGER NOT NULL,
    part         INTEGER NOT NULL,
    text         TEXT NOT NULL,
    provider_id  TEXT,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (connector, from_addr, to_addr, reference, total, part)
);
INSERT OR IGNORE INTO inbound_parts_keyed
    SELECT connector, from_addr, to_addr, reference, total, part, text, provider_id, received_at FROM inbound_parts;
DROP TABLE inbound_parts;
ALTER TABLE inbound_parts_keyed RENAME TO inbound_parts;
CREATE INDEX inbound_parts_age ON inbound_parts(received_at);

-- Sender IDs wait for the operator's approval; an approved name belongs
-- to one tenant. Names two tenants already hold: the first keeps it.
ALTER TABLE sender_ids ADD COLUMN status TEXT NOT NULL DEFAULT 'approved';
ALTER TABLE sender_ids ADD COLUMN decided_at INTEGER;
UPDATE sender_ids SET status = 'pending'
 WHERE rowid NOT IN (SELECT MIN(rowid) FROM sender_ids GROUP BY UPPER(sender_id));
CREATE UNIQUE INDEX sender_ids_approved ON sender_ids(UPPER(sender_id)) WHERE status = 'approved';

-- Numbers a tenant asked for on a connector that wants proof: a code
-- sent to the number, entered back (hashed here).
CREATE TABLE number_claims (
    tenant_id   TEXT NOT NULL,
    number      TEXT NOT NULL,
    connector   TEXT NOT NULL,
    is_default  INTEGER NOT NULL,
    code_hash   BLOB NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, number)
);

-- Compliance confirmations sent from a number to a sender in the current
-- hour: a flood of HELP gets a few answers, not one each.
CREATE TABLE reply_windows (
    number        TEXT NOT NULL,
    sender        TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    replies       INTEGER NOT NULL,
    PRIMARY KEY (number, sender)
);
