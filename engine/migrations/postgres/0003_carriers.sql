-- Carriers: the parts a message was sent as (each with the carrier's id
-- and its own delivery status), delivery reports that arrived before the
-- carrier's answer was recorded, and inbound parts awaiting reassembly.

CREATE TABLE message_parts (
    message_id   TEXT COLLATE "C" NOT NULL,
    part         BIGINT NOT NULL,
    connector    TEXT COLLATE "C" NOT NULL,
    provider_id  TEXT COLLATE "C" NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    error_code   TEXT COLLATE "C",
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (message_id, part)
);
CREATE INDEX message_parts_provider ON message_parts(connector, provider_id);

CREATE TABLE pending_reports (
    connector    TEXT COLLATE "C" NOT NULL,
    provider_id  TEXT COLLATE "C" NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    error_code   TEXT COLLATE "C",
    at           BIGINT NOT NULL
);
CREATE INDEX pending_reports_provider ON pending_reports(connector, provider_id);

CREATE TABLE inbound_parts (
    connector    TEXT COLLATE "C" NOT NULL,
    from_addr    TEXT COLLATE "C" NOT NULL,
    reference    TEXT COLLATE "C" NOT NULL,
    total        BIGINT NOT NULL,
    part         BIGINT NOT NULL,
    to_addr      TEXT COLLATE "C" NOT NULL,
    text         TEXT COLLATE "C" NOT NULL,
    provider_id  TEXT COLLATE "C",
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (connector, from_addr, reference, part)
);
