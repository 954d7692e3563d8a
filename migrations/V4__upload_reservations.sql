-- An upload in progress holds a reservation of its tenant's quota until it
-- commits (then its size counts) or is rolled back.
ALTER TABLE file_metadata ADD COLUMN reserved_bytes BIGINT NOT NULL DEFAULT 0
    CHECK (reserved_bytes >= 0);
CREATE INDEX file_metadata_reservations ON file_metadata (tenant_id) WHERE state = 'writing';

-- A pending file may hold a reference on its blob: it claims one before the
-- Cluster pin, so ref_count counts committed files and such claims. A blob
-- whose last reference went is 'unpinning' until the Cluster confirmed the
-- unpin; then its row is deleted.
ALTER TABLE ipfs_blobs DROP CONSTRAINT ipfs_blobs_pin_state_check;
ALTER TABLE ipfs_blobs ADD CONSTRAINT ipfs_blobs_pin_state_check
    CHECK (pin_state IN ('pinning', 'pinned', 'error', 'unpinning'));
