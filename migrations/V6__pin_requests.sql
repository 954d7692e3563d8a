-- Files also come as CARs (their DAG's blocks uploaded, with no SHA-256 of
-- the file's bytes, charged the bytes of the blocks), as directories (several
-- files uploaded together into one UnixFS directory) and from pin requests
-- (the Pinning Service API at /psa: the tenant names a CID and the Cluster
-- fetches it from the network; its size is known only once it is pinned, and
-- until then it is charged nothing). A tenant may pin one CID under several
-- requests, each a reference of its own; an uploaded CID is still one file
-- per tenant.
ALTER TABLE file_metadata ADD COLUMN kind TEXT NOT NULL DEFAULT 'upload'
    CHECK (kind IN ('upload', 'car', 'directory', 'pin'));
-- Multiaddrs the requester said hold the content, passed to the Cluster.
ALTER TABLE file_metadata ADD COLUMN origins TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE file_metadata DROP CONSTRAINT file_metadata_check;
ALTER TABLE file_metadata ADD CONSTRAINT file_metadata_complete CHECK (
    state = 'writing'
    OR (cid IS NOT NULL AND CASE kind
        WHEN 'upload' THEN size_bytes IS NOT NULL AND sha256 IS NOT NULL
        WHEN 'pin' THEN true
        ELSE size_bytes IS NOT NULL END));
DROP INDEX file_metadata_one_per_cid;
CREATE UNIQUE INDEX file_metadata_one_upload_per_cid ON file_metadata (tenant_id, cid)
    WHERE state = 'committed' AND kind <> 'pin';
-- Pins whose size is still to be read from Kubo once pinned.
CREATE INDEX file_metadata_unsized_pins ON file_metadata (cid)
    WHERE kind = 'pin' AND size_bytes IS NULL;

-- Whether some Cluster peer has started fetching a pin ('pinning' rather than
-- 'queued' for the Pinning Service API), and when the Cluster was last asked,
-- so that status polls ask it at most about twice a second per CID.
ALTER TABLE ipfs_blobs ADD COLUMN fetching BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE ipfs_blobs ADD COLUMN checked_at TIMESTAMPTZ;
