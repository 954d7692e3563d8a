//! Content identifiers as the gateway keeps them: CIDv1 in base32.

use std::fmt;

/// A CID parsed from any multibase form, kept in its CIDv1 base32 text, the
/// form Kubo returns for our adds, so lookups compare equal strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentId(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a valid CID")]
pub struct InvalidCid(pub String);

impl ContentId {
    pub fn parse(raw: &str) -> Result<Self, InvalidCid> {
        if raw.len() > 512 {
            let start: String = raw.chars().take(32).collect();
            return Err(InvalidCid(format!("{start}...")));
        }
        let cid = cid::Cid::try_from(raw).map_err(|_| InvalidCid(raw.to_owned()))?;
        let v1 = if cid.version() == cid::Version::V0 {
            cid::Cid::new_v1(cid.codec(), *cid.hash())
        } else {
            cid
        };
        Ok(Self(v1.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_v1_and_upgrades_v0() {
        let v1 = "bafkreiaiqjpjxpvdryhfg54zbfqfazwh3vm6z4jd2kvoppswos3ow57smq";
        assert_eq!(ContentId::parse(v1).unwrap().as_str(), v1);
        let v0 = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
        let upgraded = ContentId::parse(v0).unwrap();
        assert!(upgraded.as_str().starts_with("bafy"), "{upgraded}");
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "hello",
            "bafy",
            "../etc/passwd",
            &"b".repeat(600),
            &"é".repeat(300),
        ] {
            assert!(ContentId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
