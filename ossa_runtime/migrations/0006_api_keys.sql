-- API keys created by admins (gateway_http.api_keys): exchanged for a session and a short-lived
-- JWT by AuthService/Login. Only the key's SHA-256 is stored (keys are 256-bit random, so a plain
-- hash cannot be brute-forced); `prefix` is its first characters, to recognise it in a list.
-- A name is unique among valid keys (a revoked key's name can be reused).
CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(64) NOT NULL,
    role VARCHAR(20) NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    key_hash CHAR(64) NOT NULL UNIQUE,
    prefix VARCHAR(16) NOT NULL,
    created_by VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    revoked_at TIMESTAMP WITH TIME ZONE,
    last_used_at TIMESTAMP WITH TIME ZONE
);
CREATE UNIQUE INDEX idx_api_keys_name_valid ON api_keys (name) WHERE revoked_at IS NULL;
