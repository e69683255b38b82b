-- Web console sessions. The cookie holds a random token; only its SHA-256
-- is kept. A session acts with the credential it was opened with (the
-- API key's hash, or the admin token's), so revoking the key or changing
-- the token ends it.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    credential_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
