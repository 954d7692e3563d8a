//! Times as RFC 3339 text, the one form the API writes them in.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn format(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Unix seconds as RFC 3339; empty for a time `time` cannot represent.
pub fn from_unix(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map(format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_read_as_utc() {
        assert_eq!(super::from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::from_unix(i64::MAX), "");
    }
}
