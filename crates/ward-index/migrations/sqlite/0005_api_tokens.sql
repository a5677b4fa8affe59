-- API tokens for machines on the web front door. Only the SHA-256 of a token is kept: the token
-- itself is printed once at creation. A revoked token stays listed (who had access, and when).
CREATE TABLE api_token (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
) STRICT;
