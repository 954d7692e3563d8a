-- API keys: only a SHA-256 of the whole key is stored; the id is the public
-- part of the key, so a lookup is by primary key.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    secret_hash BYTEA NOT NULL,
    scopes      TEXT[] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);

-- The platform's users, as other services know them (external_id).
CREATE TABLE users (
    id           UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    email        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE challenges (
    id           UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    slug         TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    difficulty   TEXT NOT NULL DEFAULT 'medium'
                 CHECK (difficulty IN ('easy', 'medium', 'hard')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug)
);

-- A submission's output is kept inline when small; larger outputs live in
-- IPFS and only their CID and size are kept here.
CREATE TABLE submissions (
    id            UUID PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    challenge_id  UUID NOT NULL REFERENCES challenges (id),
    user_id       UUID NOT NULL REFERENCES users (id),
    language      TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'passed', 'failed', 'error')),
    score         DOUBLE PRECISION,
    runtime_ms    INTEGER CHECK (runtime_ms >= 0),
    output_inline TEXT,
    output_cid    TEXT,
    output_size   BIGINT CHECK (output_size >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at  TIMESTAMPTZ
);
CREATE INDEX submissions_by_challenge ON submissions (tenant_id, challenge_id, created_at DESC);
CREATE INDEX submissions_by_user ON submissions (tenant_id, user_id, created_at DESC);

-- Files stored in IPFS. A row is 'writing' while its content goes to Kubo
-- and its pin to the Cluster, and becomes visible only once 'committed'.
CREATE TABLE file_metadata (
    id           UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    cid          TEXT,
    owner_id     TEXT,
    name         TEXT NOT NULL,
    size_bytes   BIGINT CHECK (size_bytes >= 0),
    content_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    sha256       BYTEA CHECK (sha256 IS NULL OR octet_length(sha256) = 32),
    metadata     JSONB NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL DEFAULT 'writing'
                 CHECK (state IN ('writing', 'committed', 'deleting')),
    pin_state    TEXT NOT NULL DEFAULT 'unpinned'
                 CHECK (pin_state IN ('unpinned', 'pinning', 'pinned', 'error')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (state = 'writing' OR (cid IS NOT NULL AND size_bytes IS NOT NULL AND sha256 IS NOT NULL))
);
CREATE INDEX file_metadata_listing ON file_metadata (tenant_id, created_at DESC, id DESC)
    WHERE state = 'committed';
CREATE INDEX file_metadata_by_cid ON file_metadata (tenant_id, cid);
CREATE INDEX file_metadata_pending ON file_metadata (updated_at) WHERE state <> 'committed';
