-- Revoked bearer tokens (ossa_runtime.auth.revocation): the system of record behind the Redis
-- keys `ossa:token:revoked:{jti}`, so a revocation survives a Redis flush or restart. A row is
-- useless once the token itself has expired; `expires_at` lets a sweep (or a query) skip those.
CREATE TABLE revoked_tokens (
    jti VARCHAR(255) PRIMARY KEY,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    revoked_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_revoked_tokens_expires_at ON revoked_tokens (expires_at);
