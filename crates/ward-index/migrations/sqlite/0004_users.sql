-- Local users (PHC-format Argon2id hashes, never the passwords) and whether each registered AE
-- must identify a user on its associations.
CREATE TABLE app_user (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

ALTER TABLE ae_peer ADD COLUMN identity TEXT NOT NULL DEFAULT 'none'
    CHECK (identity IN ('none', 'optional', 'required'));
