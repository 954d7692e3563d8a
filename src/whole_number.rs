//! Whole numbers in JSON bodies, read as JSON Schema's `integer` means them:
//! any number without a fractional part, so `2.0` is 2 like `2` is. A
//! client generated from the API description may write either.

use serde::{Deserialize, Deserializer};

/// A number that is whole and fits `T`.
fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    let invalid = || serde::de::Error::custom(format!("{number} is not a whole number in range"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map_err(|_| invalid());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map_err(|_| invalid());
    }
    match number.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= i64::MIN as f64 && n <= u64::MAX as f64 => {
            if n < 0.0 {
                T::try_from(n as i64).map_err(|_| invalid())
            } else {
                T::try_from(n as u64).map_err(|_| invalid())
            }
        }
        _ => Err(invalid()),
    }
}

pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    whole(deserializer)
}

pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole(number).map_err(serde::de::Error::custom))
        .transpose()
}

pub fn option_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole(number).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        cost: u64,
        #[serde(default, deserialize_with = "super::option_i32")]
        runtime: Option<i32>,
    }

    fn read(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_numbers_in_any_spelling() {
        let body = read(r#"{"cost": 2.0, "runtime": -3.0}"#).unwrap();
        assert_eq!((body.cost, body.runtime), (2, Some(-3)));
        assert_eq!(read(r#"{"cost": 7}"#).unwrap().runtime, None);
        assert_eq!(
            read(r#"{"cost": 1, "runtime": null}"#).unwrap().runtime,
            None
        );
        assert!(read(r#"{"cost": 2.5}"#).is_err());
        assert!(read(r#"{"cost": -1}"#).is_err());
        assert!(read(r#"{"cost": 1, "runtime": 3000000000}"#).is_err());
        assert!(read(r#"{"cost": "2"}"#).is_err());
    }
}
