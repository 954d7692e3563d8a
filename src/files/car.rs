//! The roots a CAR names, read from its first bytes as they stream past
//! (Kubo's `dag/import` without pinning reports none). CARv1 starts with a
//! varint length and a DAG-CBOR header `{roots, version: 1}`; CARv2 starts
//! with a fixed pragma and a 40-byte header whose data offset points at the
//! CARv1 inside it.

use cid::Cid;
use serde::Deserialize;

/// Headers longer than this are refused: a header holds a few roots.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The CARv2 pragma: a CARv1-style header `{version: 2}`.
const V2_PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02,
];
const V2_HEADER_BYTES: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    #[error("this is not a CAR: the body ends before its header does")]
    Truncated,
    #[error("the CAR header is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge,
    #[error("this is not a CAR: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct HeaderV1 {
    roots: Vec<Cid>,
    version: u64,
}

/// The roots of the CAR whose first bytes are `head`, or what is wrong.
/// `Truncated` means `head` ends before the header does.
pub fn roots(head: &[u8]) -> Result<Vec<Cid>, CarError> {
    if head.starts_with(&V2_PRAGMA) {
        let header = head
            .get(V2_PRAGMA.len()..V2_PRAGMA.len() + V2_HEADER_BYTES)
            .ok_or(CarError::Truncated)?;
        // characteristics (16 bytes), then the data offset, little-endian.
        let offset = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
        let offset = usize::try_from(offset)
            .ok()
            .filter(|offset| *offset <= MAX_HEADER_BYTES)
            .ok_or(CarError::HeaderTooLarge)?;
        let inner = head.get(offset..).ok_or(CarError::Truncated)?;
        return v1_roots(inner);
    }
    v1_roots(head)
}

fn v1_roots(head: &[u8]) -> Result<Vec<Cid>, CarError> {
    let (length, rest) = varint(head)?;
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= MAX_HEADER_BYTES)
        .ok_or(CarError::HeaderTooLarge)?;
    let bytes = rest.get(..length).ok_or(CarError::Truncated)?;
    let header: HeaderV1 = serde_ipld_dagcbor::from_slice(bytes)
        .map_err(|e| CarError::Malformed(format!("its header is not DAG-CBOR: {e}")))?;
    if header.version != 1 {
        return Err(CarError::Malformed(format!(
            "version {} is not 1 or 2",
            header.version
        )));
    }
    Ok(header.roots)
}

/// An unsigned LEB128 varint and the bytes after it.
fn varint(bytes: &[u8]) -> Result<(u64, &[u8]), CarError> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    if bytes.len() < 9 {
        Err(CarError::Truncated)
    } else {
        Err(CarError::Malformed(
            "its header length is not a varint".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "bafybeifaqk6pjgthm3j5cvr4eg5zhjwti4qdle2bl3rnzhqpxxbk6zuwwi";

    fn v1(roots: &[Cid], version: u64) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            roots: &'a [Cid],
            version: u64,
        }
        let header = serde_ipld_dagcbor::to_vec(&Header { roots, version }).unwrap();
        let mut car = vec![u8::try_from(header.len()).unwrap()];
        car.extend(header);
        car.extend([0x01, 0x02, 0x03]);
        car
    }

    #[test]
    fn reads_the_roots_of_v1_and_v2() {
        let root: Cid = ROOT.parse().unwrap();
        let car = v1(&[root], 1);
        assert_eq!(roots(&car), Ok(vec![root]));

        let mut v2 = V2_PRAGMA.to_vec();
        let offset = (V2_PRAGMA.len() + V2_HEADER_BYTES) as u64;
        let mut header = [0u8; V2_HEADER_BYTES];
        header[16..24].copy_from_slice(&offset.to_le_bytes());
        v2.extend(header);
        v2.extend(&car);
        assert_eq!(roots(&v2), Ok(vec![root]));
        assert_eq!(roots(&v1(&[], 1)), Ok(vec![]));
    }

    #[test]
    fn says_when_more_bytes_are_needed_or_it_is_no_car() {
        let root: Cid = ROOT.parse().unwrap();
        let car = v1(&[root], 1);
        for cut in 0..car.len() - 3 {
            assert_eq!(roots(&car[..cut]), Err(CarError::Truncated), "cut at {cut}");
        }
        assert_eq!(roots(&V2_PRAGMA[..]), Err(CarError::Truncated));
        assert!(matches!(
            roots(&v1(&[root], 3)),
            Err(CarError::Malformed(_))
        ));
        assert!(matches!(roots(b"\x05hello"), Err(CarError::Malformed(_))));
        assert_eq!(
            roots(&[0xff, 0xff, 0xff, 0x7f]),
            Err(CarError::HeaderTooLarge)
        );
        assert!(matches!(roots(&[0xff; 12]), Err(CarError::Malformed(_))));
    }
}
