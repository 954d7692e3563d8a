-- A resumable (tus) upload. Its bytes are in Kubo as raw leaves of the
-- file's DAG, stored as they arrive; the digests of those leaves are in
-- tus_leaves, the bytes of a leaf not yet complete in `tail`. `file_id` is
-- the pending file that holds the upload's quota reservation and becomes
-- the file on the last byte.
CREATE TABLE tus_uploads (
    id              UUID PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    file_id         UUID REFERENCES file_metadata (id) ON DELETE SET NULL,
    upload_length   BIGINT CHECK (upload_length >= 0),
    upload_offset   BIGINT NOT NULL DEFAULT 0 CHECK (upload_offset >= 0),
    max_bytes       BIGINT NOT NULL,
    details         JSONB NOT NULL,
    tail            BYTEA NOT NULL DEFAULT ''::bytea,
    -- SHA-256 of the bytes before `tail`: the eight state words and the
    -- byte count, so hashing resumes where the last part stopped.
    hash_state      BYTEA NOT NULL,
    head            BYTEA NOT NULL DEFAULT ''::bytea,
    leaf_count      INTEGER NOT NULL DEFAULT 0,
    -- A PATCH in progress holds the upload until `locked_until`, renewing
    -- it while it streams; a gateway that dies lets the lease run out.
    lock_token      UUID,
    locked_until    TIMESTAMPTZ,
    completed_cid   TEXT,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tus_uploads_expiry ON tus_uploads (expires_at);
CREATE INDEX tus_uploads_file ON tus_uploads (file_id);

CREATE TABLE tus_leaves (
    upload_id   UUID NOT NULL REFERENCES tus_uploads (id) ON DELETE CASCADE,
    first_leaf  INTEGER NOT NULL,
    digests     BYTEA NOT NULL,
    PRIMARY KEY (upload_id, first_leaf)
);

-- One-use upload links already used, kept until they expire.
CREATE TABLE consumed_links (
    nonce       TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX consumed_links_expiry ON consumed_links (expires_at);
