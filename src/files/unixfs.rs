//! The UnixFS file DAG that Kubo's `add` builds (balanced layout, raw
//! leaves, CIDv1, identity CIDs for blocks of at most 32 bytes), rebuilt
//! from leaves that were stored one by one. An upload that arrives in parts
//! thus gets the CID the same bytes get in one `POST /files/upload`.

use cid::multihash::Multihash;
use cid::Cid;
use sha2::{Digest, Sha256};

/// Children per internal node in Kubo's balanced layout.
pub const LINKS_PER_NODE: usize = 174;
/// Blocks up to this size are inlined into their CID, as `add` does with
/// `inline-limit=32`.
pub const INLINE_LIMIT: usize = 32;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;
const IDENTITY: u64 = 0x00;

/// A node of the DAG: its CID, the file bytes under it and the bytes of
/// every block under it including its own (a link's `Tsize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DagNode {
    pub cid: Cid,
    pub content_bytes: u64,
    pub total_bytes: u64,
}

/// An internal node to store in Kubo: its CID and its encoded bytes.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    pub cid: Cid,
    pub bytes: Vec<u8>,
}

fn cid_of(codec: u64, bytes: &[u8]) -> Cid {
    let multihash = if bytes.len() <= INLINE_LIMIT {
        Multihash::<64>::wrap(IDENTITY, bytes)
    } else {
        Multihash::<64>::wrap(SHA2_256, &Sha256::digest(bytes))
    }
    .expect("digests fit a 64-byte multihash");
    Cid::new_v1(codec, multihash)
}

/// The CID of a raw leaf holding `bytes`.
pub fn raw_leaf_cid(bytes: &[u8]) -> Cid {
    cid_of(RAW, bytes)
}

/// The CID of a raw leaf of `size` bytes (more than [`INLINE_LIMIT`]) whose
/// SHA-256 is `digest`.
pub fn raw_leaf_cid_from_digest(digest: &[u8; 32]) -> Cid {
    let multihash = Multihash::<64>::wrap(SHA2_256, digest).expect("a SHA-256 digest fits");
    Cid::new_v1(RAW, multihash)
}

/// Builds the DAG over `leaves` (in file order), returning the root and the
/// internal blocks to store, children before their parents. One leaf is its
/// own root; no leaf at all is the empty file.
pub fn build(leaves: &[DagNode]) -> (DagNode, Vec<EncodedBlock>) {
    if leaves.is_empty() {
        let cid = raw_leaf_cid(&[]);
        let empty = DagNode {
            cid,
            content_bytes: 0,
            total_bytes: 0,
        };
        return (empty, Vec::new());
    }
    let mut level = leaves.to_vec();
    let mut blocks = Vec::new();
    while level.len() > 1 {
        level = level
            .chunks(LINKS_PER_NODE)
            .map(|children| {
                let block = encode_file_node(children);
                let node = DagNode {
                    cid: block.cid,
                    content_bytes: children.iter().map(|c| c.content_bytes).sum(),
                    total_bytes: block.bytes.len() as u64
                        + children.iter().map(|c| c.total_bytes).sum::<u64>(),
                };
                blocks.push(block);
                node
            })
            .collect();
    }
    (level[0], blocks)
}

/// A dag-pb node (links first, then data, as the codec orders them) whose
/// data is a UnixFS `File` with the children's sizes.
fn encode_file_node(children: &[DagNode]) -> EncodedBlock {
    let mut unixfs = Vec::new();
    put_key(&mut unixfs, 1, 0);
    put_varint(&mut unixfs, 2); // Type: File
    put_key(&mut unixfs, 3, 0);
    put_varint(&mut unixfs, children.iter().map(|c| c.content_bytes).sum());
    for child in children {
        put_key(&mut unixfs, 4, 0);
        put_varint(&mut unixfs, child.content_bytes);
    }
    let mut node = Vec::new();
    for child in children {
        let mut link = Vec::new();
        put_bytes(&mut link, 1, &child.cid.to_bytes());
        put_bytes(&mut link, 2, b"");
        put_key(&mut link, 3, 0);
        put_varint(&mut link, child.total_bytes);
        put_bytes(&mut node, 2, &link);
    }
    put_bytes(&mut node, 1, &unixfs);
    EncodedBlock {
        cid: cid_of(DAG_PB, &node),
        bytes: node,
    }
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, (field << 3) | wire_type);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(bytes: &[u8]) -> DagNode {
        DagNode {
            cid: raw_leaf_cid(bytes),
            content_bytes: bytes.len() as u64,
            total_bytes: bytes.len() as u64,
        }
    }

    #[test]
    fn small_blocks_live_in_their_cid() {
        // What `ipfs add --cid-version=1 --inline` answers for an empty file.
        assert_eq!(raw_leaf_cid(b"").to_string(), "bafkqaaa");
        assert_eq!(build(&[]).0.cid.to_string(), "bafkqaaa");
        let hello = raw_leaf_cid(b"hello");
        assert_eq!(hello.hash().code(), IDENTITY);
        assert_eq!(hello.hash().digest(), b"hello");
        assert_eq!(raw_leaf_cid(&[7; 33]).hash().code(), SHA2_256);
    }

    #[test]
    fn one_leaf_is_its_own_root() {
        let only = leaf(&[1; 100]);
        let (root, blocks) = build(&[only]);
        assert_eq!(root, only);
        assert!(blocks.is_empty());
    }

    #[test]
    fn a_full_node_gets_a_parent_only_past_its_fan_out() {
        let leaves: Vec<_> = (0..LINKS_PER_NODE).map(|i| leaf(&[i as u8; 40])).collect();
        let (root, blocks) = build(&leaves);
        assert_eq!(blocks.len(), 1);
        assert_eq!(root.content_bytes, 40 * LINKS_PER_NODE as u64);
        let mut more = leaves.clone();
        more.push(leaf(&[9; 40]));
        let (root, blocks) = build(&more);
        // Two nodes of one level and the root above them.
        assert_eq!(blocks.len(), 3);
        assert_eq!(root.cid, blocks[2].cid);
        assert_eq!(
            root.total_bytes,
            blocks.iter().map(|b| b.bytes.len() as u64).sum::<u64>() + 40 * 175
        );
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
