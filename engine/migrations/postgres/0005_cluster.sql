-- Coordination between nodes sharing this database.

-- Cluster-wide token buckets (connector send rates, API key rates).
-- tokens is fractional while refilling; updated_at is the database clock
-- in milliseconds, so nodes' clocks need not agree.
CREATE TABLE rate_buckets (
    key         TEXT COLLATE "C" PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Cluster-wide counts per period (an API key's requests per UTC day).
CREATE TABLE rate_counters (
    key     TEXT COLLATE "C" NOT NULL,
    period  BIGINT NOT NULL,
    used    BIGINT NOT NULL,
    PRIMARY KEY (key, period)
);
