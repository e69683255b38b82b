-- Carriers: the parts a message was sent as (each with the carrier's id
-- and its own delivery status), delivery reports that arrived before the
-- carrier's answer was recorded, and inbound parts awaiting reassembly.

CREATE TABLE message_parts (
    message_id   TEXT NOT NULL,
    part         INTEGER NOT NULL,
    connector    TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    error_code   TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (message_id, part)
);
CREATE INDEX message_parts_provider ON message_parts(connector, provider_id);

CREATE TABLE pending_reports (
    connector    TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    error_code   TEXT,
    at           INTEGER NOT NULL
);
CREATE INDEX pending_reports_provider ON pending_reports(connector, provider_id);

CREATE TABLE inbound_parts (
    connector    TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    total        INTEGER NOT NULL,
    part         INTEGER NOT NULL,
    to_addr      TEXT NOT NULL,
    text         TEXT NOT NULL,
    provider_id  TEXT,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (connector, from_addr, reference, part)
);
