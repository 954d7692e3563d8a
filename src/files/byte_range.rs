//! The `Range` header of a download: one byte range, or the whole file.

use http_range_header::{parse_range_header, RangeUnsatisfiableError};

/// The part of a file to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// A range always holds at least one byte: `requested_range` never
    /// yields an empty one.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a byte range, or not well-formed: 400.
    #[error("malformed Range header: expected bytes=START-END, bytes=START- or bytes=-SUFFIX")]
    Malformed,
    /// Several ranges: multipart/byteranges is not served.
    #[error("only a single byte range is supported")]
    Multiple,
    /// Well-formed but outside the file: 416.
    #[error("range is not satisfiable for a file of {0} bytes")]
    Unsatisfiable(u64),
}

/// The range `header` asks of a file of `size` bytes.
pub fn requested_range(header: &str, size: u64) -> Result<ByteRange, RangeError> {
    let parsed = parse_range_header(header).map_err(|_| RangeError::Malformed)?;
    if header.contains(',') {
        return Err(RangeError::Multiple);
    }
    let ranges = parsed
        .validate(size)
        .map_err(|_: RangeUnsatisfiableError| RangeError::Unsatisfiable(size))?;
    // A well-formed range that selects nothing (a suffix of an empty file,
    // `bytes=-0`) is unsatisfiable, not malformed.
    let range = ranges.first().ok_or(RangeError::Unsatisfiable(size))?;
    Ok(ByteRange {
        start: *range.start(),
        end: *range.end(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(
            requested_range("bytes=0-0", 10),
            Ok(ByteRange { start: 0, end: 0 })
        );
        assert_eq!(
            requested_range("bytes=9-", 10),
            Ok(ByteRange { start: 9, end: 9 })
        );
        assert_eq!(
            requested_range("bytes=-3", 10),
            Ok(ByteRange { start: 7, end: 9 })
        );
        assert_eq!(
            requested_range("bytes=5-100", 10),
            Ok(ByteRange { start: 5, end: 9 })
        );
        assert_eq!(requested_range("bytes=2-4", 10).unwrap().len(), 3);
        // A suffix longer than the file is the whole file.
        assert_eq!(
            requested_range("bytes=-50", 10),
            Ok(ByteRange { start: 0, end: 9 })
        );
    }

    #[test]
    fn ranges_that_select_nothing_are_unsatisfiable() {
        for (header, size) in [
            ("bytes=-5", 0),
            ("bytes=-0", 10),
            ("bytes=-0", 0),
            ("bytes=0-", 0),
        ] {
            assert_eq!(
                requested_range(header, size),
                Err(RangeError::Unsatisfiable(size)),
                "{header} of {size} bytes"
            );
        }
    }

    #[test]
    fn numbers_past_u64_read_as_any_number_past_the_end() {
        let whole = Ok(ByteRange { start: 0, end: 9 });
        assert_eq!(requested_range("bytes=0-18446744073709551616", 10), whole);
        assert_eq!(requested_range("bytes=-18446744073709551616", 10), whole);
        assert_eq!(
            requested_range("bytes=18446744073709551616-", 10),
            Err(RangeError::Unsatisfiable(10))
        );
    }

    #[test]
    fn bad_ranges() {
        assert_eq!(
            requested_range("bytes=10-", 10),
            Err(RangeError::Unsatisfiable(10))
        );
        assert_eq!(
            requested_range("bytes=0-0", 0),
            Err(RangeError::Unsatisfiable(0))
        );
        assert_eq!(requested_range("items=0-1", 10), Err(RangeError::Malformed));
        assert_eq!(requested_range("bytes=abc", 10), Err(RangeError::Malformed));
        assert_eq!(requested_range("bytes=5-2", 10), Err(RangeError::Malformed));
        assert_eq!(
            requested_range("bytes=0-1,3-4", 10),
            Err(RangeError::Multiple)
        );
    }
}
