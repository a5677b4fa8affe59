-- How a registered peer may connect: a pinned certificate (SHA-256 of its DER, lowercase hex)
-- for TLS, and whether it is a legacy modality allowed plain TCP from its registered address.
ALTER TABLE ae_peer ADD COLUMN cert_sha256 TEXT CHECK (cert_sha256 IS NULL OR length(cert_sha256) = 64);
ALTER TABLE ae_peer ADD COLUMN legacy_plain INTEGER NOT NULL DEFAULT 0 CHECK (legacy_plain IN (0, 1));
