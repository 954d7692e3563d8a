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
    encode_node(children.iter().map(|child| ("", child)), &unixfs)
}

/// A dag-pb node: its links (name and child), then its UnixFS data, as the
/// codec orders them.
fn encode_node<'a>(
    links: impl Iterator<Item = (&'a str, &'a DagNode)>,
    unixfs: &[u8],
) -> EncodedBlock {
    let mut node = Vec::new();
    for (name, child) in links {
        let mut link = Vec::new();
        put_bytes(&mut link, 1, &child.cid.to_bytes());
        put_bytes(&mut link, 2, name.as_bytes());
        put_key(&mut link, 3, 0);
        put_varint(&mut link, child.total_bytes);
        put_bytes(&mut node, 2, &link);
    }
    put_bytes(&mut node, 1, unixfs);
    EncodedBlock {
        cid: cid_of(DAG_PB, &node),
        bytes: node,
    }
}

/// Why files cannot form one directory tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("path {0:?} is given twice")]
    Duplicate(String),
    #[error("{0:?} is both a file and a folder")]
    FileAndFolder(String),
}

/// Builds the UnixFS directory tree holding `files` (each a path of
/// non-empty segments and its file's DAG), as Kubo's `add` of a folder
/// does: a plain directory node per folder, entries sorted by name. Answers
/// the root and the directory blocks to store, children before parents.
pub fn build_directory(
    files: &[(Vec<String>, DagNode)],
) -> Result<(DagNode, Vec<EncodedBlock>), TreeError> {
    enum Entry {
        File(DagNode),
        Folder(std::collections::BTreeMap<String, Entry>),
    }
    let mut root = std::collections::BTreeMap::new();
    for (path, node) in files {
        let (name, folders) = path.split_last().expect("a path has a name");
        let mut folder = &mut root;
        for (depth, segment) in folders.iter().enumerate() {
            let entry = folder
                .entry(segment.clone())
                .or_insert_with(|| Entry::Folder(Default::default()));
            folder = match entry {
                Entry::Folder(children) => children,
                Entry::File(_) => return Err(TreeError::FileAndFolder(path[..=depth].join("/"))),
            };
        }
        match folder.entry(name.clone()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Entry::File(*node));
            }
            std::collections::btree_map::Entry::Occupied(slot) => {
                return Err(match slot.get() {
                    Entry::File(_) => TreeError::Duplicate(path.join("/")),
                    Entry::Folder(_) => TreeError::FileAndFolder(path.join("/")),
                });
            }
        }
    }
    fn encode(
        folder: &std::collections::BTreeMap<String, Entry>,
        blocks: &mut Vec<EncodedBlock>,
    ) -> DagNode {
        // BTreeMap orders names by their bytes, as dag-pb requires of links.
        let children: Vec<(&str, DagNode)> = folder
            .iter()
            .map(|(name, entry)| match entry {
                Entry::File(node) => (name.as_str(), *node),
                Entry::Folder(children) => (name.as_str(), encode(children, blocks)),
            })
            .collect();
        let block = encode_directory_node(&children);
        let node = DagNode {
            cid: block.cid,
            content_bytes: children.iter().map(|(_, c)| c.content_bytes).sum(),
            total_bytes: block.bytes.len() as u64
                + children.iter().map(|(_, c)| c.total_bytes).sum::<u64>(),
        };
        blocks.push(block);
        node
    }
    let mut blocks = Vec::new();
    let node = encode(&root, &mut blocks);
    Ok((node, blocks))
}

/// A dag-pb node whose links are a folder's entries and whose data is a
/// UnixFS `Directory`.
fn encode_directory_node(children: &[(&str, DagNode)]) -> EncodedBlock {
    let mut unixfs = Vec::new();
    put_key(&mut unixfs, 1, 0);
    put_varint(&mut unixfs, 1); // Type: Directory
    encode_node(children.iter().map(|(name, child)| (*name, child)), &unixfs)
}

/// Whether a block lives inside its CID (an identity multihash): nothing to store.
pub fn is_inlined(cid: &Cid) -> bool {
    cid.hash().code() == IDENTITY
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

    fn path(text: &str) -> Vec<String> {
        text.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn folders_hold_their_entries_sorted_and_sized() {
        let (a, b, c) = (leaf(&[1; 100]), leaf(&[2; 200]), leaf(&[3; 300]));
        let files = vec![
            (path("docs/b.txt"), b),
            (path("top.txt"), c),
            (path("docs/a.txt"), a),
        ];
        let (root, blocks) = build_directory(&files).unwrap();
        assert_eq!(blocks.len(), 2, "docs, then the root");
        assert_eq!(blocks[1].cid, root.cid);
        assert_eq!(root.content_bytes, 600);
        let own: u64 = blocks.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(root.total_bytes, 600 + own);
        // The order files come in does not change the tree.
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(build_directory(&reversed).unwrap().0, root);
        // Names appear in byte order in the folder's links.
        let docs = &blocks[0].bytes;
        let at = |name: &[u8]| docs.windows(name.len()).position(|w| w == name).unwrap();
        assert!(at(b"a.txt") < at(b"b.txt"));
    }

    #[test]
    fn a_path_twice_or_a_file_as_folder_is_refused() {
        let a = leaf(&[1; 100]);
        let refusal = |files: &[(Vec<String>, DagNode)]| build_directory(files).err();
        assert_eq!(
            refusal(&[(path("x/a"), a), (path("x/a"), a)]),
            Some(TreeError::Duplicate("x/a".into()))
        );
        assert_eq!(
            refusal(&[(path("x"), a), (path("x/a"), a)]),
            Some(TreeError::FileAndFolder("x".into()))
        );
        assert_eq!(
            refusal(&[(path("x/a"), a), (path("x"), a)]),
            Some(TreeError::FileAndFolder("x".into()))
        );
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
