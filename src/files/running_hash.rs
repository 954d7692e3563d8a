//! SHA-256 that can stop between requests and go on in another process:
//! its state (eight words and a byte count) is saved after whole 64-byte
//! blocks, which an upload's complete leaves always are.

use sha2::digest::generic_array::GenericArray;

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const BLOCK: usize = 64;
/// Bytes of a saved state.
pub const SAVED_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningHash {
    state: [u32; 8],
    hashed: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("a saved hash state has {0} bytes, not {SAVED_LEN}")]
pub struct BadSavedState(usize);

impl Default for RunningHash {
    fn default() -> Self {
        Self {
            state: INITIAL,
            hashed: 0,
        }
    }
}

impl RunningHash {
    pub fn restore(saved: &[u8]) -> Result<Self, BadSavedState> {
        if saved.len() != SAVED_LEN {
            return Err(BadSavedState(saved.len()));
        }
        let mut state = [0u32; 8];
        for (word, bytes) in state.iter_mut().zip(saved.chunks_exact(4)) {
            *word = u32::from_be_bytes(bytes.try_into().expect("four bytes"));
        }
        let hashed = u64::from_be_bytes(saved[32..].try_into().expect("eight bytes"));
        Ok(Self { state, hashed })
    }

    pub fn save(&self) -> [u8; SAVED_LEN] {
        let mut saved = [0u8; SAVED_LEN];
        for (bytes, word) in saved.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        saved[32..].copy_from_slice(&self.hashed.to_be_bytes());
        saved
    }

    /// Hashes `data`, whose length must be a multiple of 64 bytes.
    pub fn update_blocks(&mut self, data: &[u8]) {
        assert!(
            data.len().is_multiple_of(BLOCK),
            "only whole blocks are hashed before the end"
        );
        let blocks: Vec<_> = data
            .chunks_exact(BLOCK)
            .map(|block| *GenericArray::from_slice(block))
            .collect();
        sha2::compress256(&mut self.state, &blocks);
        self.hashed += data.len() as u64;
    }

    /// The digest of everything hashed followed by `rest`.
    pub fn finish(mut self, rest: &[u8]) -> [u8; 32] {
        let bits = (self.hashed + rest.len() as u64) * 8;
        let whole = rest.len() - rest.len() % BLOCK;
        self.update_blocks(&rest[..whole]);
        let mut last = rest[whole..].to_vec();
        last.push(0x80);
        while last.len() % BLOCK != BLOCK - 8 {
            last.push(0);
        }
        last.extend_from_slice(&bits.to_be_bytes());
        self.update_blocks(&last);
        let mut digest = [0u8; 32];
        for (bytes, word) in digest.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha256_across_a_save_and_restore() {
        for (prefix_blocks, rest) in [
            (0, 0),
            (0, 3),
            (0, 55),
            (0, 56),
            (0, 64),
            (4, 130),
            (4096, 1),
        ] {
            let data: Vec<u8> = (0..prefix_blocks * BLOCK + rest)
                .map(|i| (i * 7) as u8)
                .collect();
            let (prefix, tail) = data.split_at(prefix_blocks * BLOCK);
            let mut hash = RunningHash::default();
            hash.update_blocks(prefix);
            let resumed = RunningHash::restore(&hash.save()).unwrap();
            assert_eq!(resumed, hash);
            assert_eq!(
                resumed.finish(tail),
                <[u8; 32]>::from(Sha256::digest(&data))
            );
        }
    }

    #[test]
    fn a_saved_state_of_the_wrong_size_is_refused() {
        assert!(RunningHash::restore(&[0; 39]).is_err());
    }
}
