-- The Twilio-compatible Messages API.

-- A Twilio-style credential is an API key whose secret is the auth token
-- and which is named by an account SID. The token is also kept sealed:
-- status callbacks and inbound requests are signed with it.
ALTER TABLE api_keys ADD COLUMN account_sid TEXT COLLATE "C";
ALTER TABLE api_keys ADD COLUMN sealed_token BYTEA;
CREATE UNIQUE INDEX api_keys_account_sid ON api_keys(account_sid) WHERE account_sid IS NOT NULL;

-- Messages sent through the Twilio-compatible API name the account they
-- were sent under: their status callbacks are Twilio's form, signed with
-- that account's token.
ALTER TABLE messages ADD COLUMN account_sid TEXT COLLATE "C";
ALTER TABLE webhook_deliveries ADD COLUMN account_sid TEXT COLLATE "C";

-- A message's validity period: past this it is not sent but fails
-- (VALIDITY_EXPIRED).
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
