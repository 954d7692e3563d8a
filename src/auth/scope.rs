//! Scopes: what a key may do.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    FilesRead,
    FilesWrite,
    AnalyticsRead,
    AnalyticsWrite,
    Sessions,
    RateLimit,
    Cache,
    Challenges,
    Admin,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?}; known scopes: files:read, files:write, analytics:read, analytics:write, sessions, ratelimit, cache, challenges, admin (or all)")]
pub struct UnknownScope(pub String);

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::AnalyticsRead,
        Scope::AnalyticsWrite,
        Scope::Sessions,
        Scope::RateLimit,
        Scope::Cache,
        Scope::Challenges,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FilesRead => "files:read",
            Scope::FilesWrite => "files:write",
            Scope::AnalyticsRead => "analytics:read",
            Scope::AnalyticsWrite => "analytics:write",
            Scope::Sessions => "sessions",
            Scope::RateLimit => "ratelimit",
            Scope::Cache => "cache",
            Scope::Challenges => "challenges",
            Scope::Admin => "admin",
        }
    }

    /// Parses a comma-separated list; `all` stands for every scope.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, UnknownScope> {
        let mut scopes = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                return Ok(Scope::ALL.to_vec());
            }
            let scope = item.parse()?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(scopes)
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            Scope::parse_list("files:read, cache,files:read").unwrap(),
            vec![Scope::FilesRead, Scope::Cache]
        );
        assert_eq!(Scope::parse_list("all").unwrap().len(), Scope::ALL.len());
        assert!(Scope::parse_list("files:delete").is_err());
    }

    #[test]
    fn names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
    }
}
