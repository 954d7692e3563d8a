-- Content stored in IPFS, once per CID however many files point at it.
-- ref_count counts the committed files that reference the CID; the row is
-- deleted, and the Cluster pin removed, when the last reference goes. Pin and
-- unpin of one CID happen under this row's lock, so they never race.
CREATE TABLE ipfs_blobs (
    cid             TEXT PRIMARY KEY,
    size_bytes      BIGINT NOT NULL CHECK (size_bytes >= 0),
    ref_count       BIGINT NOT NULL DEFAULT 0 CHECK (ref_count >= 0),
    pin_state       TEXT NOT NULL DEFAULT 'pinning'
                    CHECK (pin_state IN ('pinning', 'pinned', 'error')),
    replication_min INTEGER NOT NULL CHECK (replication_min >= 1),
    replication_max INTEGER NOT NULL CHECK (replication_max >= replication_min),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ipfs_blobs_pinning ON ipfs_blobs (updated_at) WHERE pin_state <> 'pinned';

-- A tenant holds at most one committed file per CID: uploading the same
-- content again updates that file instead of adding a second reference.
CREATE UNIQUE INDEX file_metadata_one_per_cid ON file_metadata (tenant_id, cid)
    WHERE state = 'committed';
ALTER TABLE file_metadata DROP COLUMN pin_state;
ALTER TABLE file_metadata ADD CONSTRAINT file_metadata_blob
    FOREIGN KEY (cid) REFERENCES ipfs_blobs (cid) DEFERRABLE INITIALLY DEFERRED;
