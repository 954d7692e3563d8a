//! The `limit` of a listing: how many entries a page holds.

use std::fmt::Display;

use super::error::ApiError;
use crate::error_code::ErrorCode;

/// `asked`, or `default` when absent; refused outside 1 to `max`, naming
/// the setting that bounds it.
pub fn page_limit<T>(asked: Option<T>, default: T, max: T, setting: &str) -> Result<T, ApiError>
where
    T: Copy + PartialOrd + From<u8> + Display,
{
    let limit = asked.unwrap_or(default);
    if limit < T::from(1) || limit > max {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            format!("limit must be 1 to {max} ({setting})"),
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_stay_within_one_to_max() {
        assert_eq!(page_limit(None, 20u32, 100, "s").unwrap(), 20);
        assert_eq!(page_limit(Some(100i64), 20, 100, "s").unwrap(), 100);
        for bad in [0i64, -1, 101] {
            let error = page_limit(Some(bad), 20, 100, "x.max").unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidLimit);
            assert_eq!(error.to_string(), "limit must be 1 to 100 (x.max)");
        }
    }
}
