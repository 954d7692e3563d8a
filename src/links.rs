//! Signed, expiring links: a back end that holds an API key hands a browser
//! a URL instead of the key. A link names the methods and path it opens,
//! the tenant, its expiry and what it binds (owner, size, content types, a
//! one-use nonce), all under an HMAC-SHA256 by a key named in the link, so
//! keys can rotate: a retired key's links stop working when it is removed.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::auth::TenantId;
use crate::config::LinkSettings;

/// Query parameters of a link; none of the gateway's own parameters start so.
pub const PARAM_PREFIX: &str = "sgw_";
const SIGNATURE: &str = "sgw_sig";
/// Shortest signing secret accepted.
const MIN_SECRET_BYTES: usize = 32;

/// What a link opens and binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGrant {
    /// Methods the link opens, e.g. `GET` (which opens `HEAD` too) or
    /// `HEAD,PATCH,DELETE`.
    pub methods: String,
    pub path: String,
    pub tenant: TenantId,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// The owner files made through the link get.
    pub owner: Option<String>,
    pub max_bytes: Option<u64>,
    /// Content types an upload through the link may have; empty: any.
    pub content_types: Vec<String>,
    /// Set on one-use links: the id their use is recorded under.
    pub nonce: Option<String>,
}

impl LinkGrant {
    pub fn opens(&self, method: &str) -> bool {
        self.methods
            .split(',')
            .any(|m| m == method || (m == "GET" && method == "HEAD"))
    }

    /// Bytes signed: each field length-prefixed, so no value can pass for
    /// another field.
    fn signed_text(&self, key_id: &str) -> String {
        let max_bytes = self.max_bytes.map(|b| b.to_string()).unwrap_or_default();
        let types = self.content_types.join(",");
        let expires = self.expires.to_string();
        let fields = [
            "sgw-link-v1",
            key_id,
            &self.methods,
            &self.path,
            self.tenant.as_str(),
            &expires,
            self.owner.as_deref().unwrap_or(""),
            &max_bytes,
            &types,
            self.nonce.as_deref().unwrap_or(""),
        ];
        fields
            .iter()
            .map(|field| format!("{}:{field}\n", field.len()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("links are off: set links.signing_key and links.keys")]
    NotConfigured,
    #[error("the link lacks {0}")]
    Incomplete(&'static str),
    #[error("the link was signed with a key this gateway does not hold (unknown or retired)")]
    UnknownKey,
    #[error("the link's signature does not match its contents")]
    BadSignature,
    #[error("the link expired")]
    Expired,
    #[error("the link opens {methods} {path}, not {method} {requested}")]
    WrongRequest {
        methods: String,
        path: String,
        method: String,
        requested: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct LinkConfigError {
    pub key: String,
    pub problem: String,
}

#[derive(Clone)]
pub struct LinkSigner {
    keys: BTreeMap<String, SecretString>,
    signing_key: Option<String>,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
}

impl LinkSigner {
    pub fn from_settings(settings: &LinkSettings) -> Result<Self, LinkConfigError> {
        let problem = |key: &str, problem: &str| LinkConfigError {
            key: key.to_owned(),
            problem: problem.to_owned(),
        };
        for (id, secret) in &settings.keys {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(problem(
                    "links.keys",
                    "key ids are letters, digits and dashes",
                ));
            }
            if secret.expose_secret().len() < MIN_SECRET_BYTES {
                return Err(problem(
                    &format!("links.keys.{id}"),
                    "a signing secret needs at least 32 bytes",
                ));
            }
        }
        let signing_key = match settings.signing_key.as_str() {
            "" => None,
            id if settings.keys.contains_key(id) => Some(id.to_owned()),
            _ => return Err(problem("links.signing_key", "names no key of links.keys")),
        };
        if settings.default_ttl_secs == 0 || settings.max_ttl_secs < settings.default_ttl_secs {
            return Err(problem(
                "links.default_ttl_secs",
                "needs 1 <= default_ttl_secs <= max_ttl_secs",
            ));
        }
        Ok(Self {
            keys: settings.keys.clone(),
            signing_key,
            default_ttl_secs: settings.default_ttl_secs,
            max_ttl_secs: settings.max_ttl_secs,
        })
    }

    fn mac(&self, key_id: &str) -> Option<Hmac<Sha256>> {
        let secret = self.keys.get(key_id)?;
        Some(
            Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes keys of any length"),
        )
    }

    /// The query string (without `?`) that makes `grant.path` a link.
    pub fn sign(&self, grant: &LinkGrant) -> Result<String, LinkError> {
        let key_id = self
            .signing_key
            .as_deref()
            .ok_or(LinkError::NotConfigured)?;
        let mut mac = self.mac(key_id).ok_or(LinkError::NotConfigured)?;
        mac.update(grant.signed_text(key_id).as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("sgw_kid", key_id)
            .append_pair("sgw_methods", &grant.methods)
            .append_pair("sgw_tenant", grant.tenant.as_str())
            .append_pair("sgw_exp", &grant.expires.to_string());
        if let Some(owner) = &grant.owner {
            query.append_pair("sgw_owner", owner);
        }
        if let Some(max) = grant.max_bytes {
            query.append_pair("sgw_max", &max.to_string());
        }
        if !grant.content_types.is_empty() {
            query.append_pair("sgw_types", &grant.content_types.join(","));
        }
        if let Some(nonce) = &grant.nonce {
            query.append_pair("sgw_use", nonce);
        }
        query.append_pair(SIGNATURE, &signature);
        Ok(query.finish())
    }

    /// The grant of the link in `query` for `method` on `path` at `now`
    /// (Unix seconds); `None` when the query carries no link.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        query: &str,
        now: i64,
    ) -> Result<Option<LinkGrant>, LinkError> {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if name.starts_with(PARAM_PREFIX) {
                fields.insert(name.into_owned(), value.into_owned());
            }
        }
        let Some(signature) = fields.get(SIGNATURE) else {
            return Ok(None);
        };
        let field = |name: &'static str| fields.get(name).ok_or(LinkError::Incomplete(name));
        let key_id = field("sgw_kid")?;
        let tenant = TenantId::parse(field("sgw_tenant")?).map_err(|_| LinkError::BadSignature)?;
        let expires: i64 = field("sgw_exp")?
            .parse()
            .map_err(|_| LinkError::BadSignature)?;
        let max_bytes = match fields.get("sgw_max") {
            None => None,
            Some(max) => Some(max.parse().map_err(|_| LinkError::BadSignature)?),
        };
        let grant = LinkGrant {
            methods: field("sgw_methods")?.clone(),
            path: path.to_owned(),
            tenant,
            expires,
            owner: fields.get("sgw_owner").cloned(),
            max_bytes,
            content_types: fields
                .get("sgw_types")
                .map(|t| t.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            nonce: fields.get("sgw_use").cloned(),
        };
        let mut mac = self.mac(key_id).ok_or(LinkError::UnknownKey)?;
        mac.update(grant.signed_text(key_id).as_bytes());
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::BadSignature)?;
        // Constant time: the comparison tells nothing about how close a guess was.
        mac.verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        if now > grant.expires {
            return Err(LinkError::Expired);
        }
        if !grant.opens(method) {
            return Err(LinkError::WrongRequest {
                methods: grant.methods.clone(),
                path: grant.path.clone(),
                method: method.to_owned(),
                requested: path.to_owned(),
            });
        }
        Ok(Some(grant))
    }

    /// The expiry (Unix seconds) of a link asked to live `ttl_secs` (the
    /// default when `None`), bounded by `links.max_ttl_secs`.
    pub fn expiry(&self, now: i64, ttl_secs: Option<u64>) -> Result<i64, String> {
        let ttl = ttl_secs.unwrap_or(self.default_ttl_secs);
        if ttl == 0 || ttl > self.max_ttl_secs {
            return Err(format!(
                "expires_in_secs must be between 1 and {}",
                self.max_ttl_secs
            ));
        }
        Ok(now + ttl as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(keys: &[(&str, &str)], signing: &str) -> LinkSigner {
        LinkSigner::from_settings(&LinkSettings {
            keys: keys
                .iter()
                .map(|(id, secret)| (id.to_string(), SecretString::from(secret.to_string())))
                .collect(),
            signing_key: signing.to_owned(),
            default_ttl_secs: 3600,
            max_ttl_secs: 7 * 86400,
        })
        .unwrap()
    }

    const A: &str = "a-secret-of-at-least-thirty-two-bytes!!";
    const B: &str = "another-secret-of-thirty-two-bytes-or-more";

    fn grant() -> LinkGrant {
        LinkGrant {
            methods: "POST".into(),
            path: "/files/tus".into(),
            tenant: TenantId::parse("acme").unwrap(),
            expires: 2_000,
            owner: Some("user 7".into()),
            max_bytes: Some(1 << 20),
            content_types: vec!["image/png".into()],
            nonce: Some("n1".into()),
        }
    }

    #[test]
    fn a_signed_link_verifies_and_gives_back_its_grant() {
        let signer = signer(&[("k1", A)], "k1");
        let query = signer.sign(&grant()).unwrap();
        let verified = signer.verify("POST", "/files/tus", &query, 1_000).unwrap();
        assert_eq!(verified, Some(grant()));
        assert_eq!(
            signer.verify("POST", "/files/tus", "name=x", 1_000),
            Ok(None)
        );
    }

    #[test]
    fn every_signed_part_is_covered() {
        let signer = signer(&[("k1", A)], "k1");
        let query = signer.sign(&grant()).unwrap();
        for (from, to) in [
            ("sgw_tenant=acme", "sgw_tenant=other"),
            ("sgw_exp=2000", "sgw_exp=9000"),
            ("sgw_owner=user+7", "sgw_owner=user+8"),
            ("sgw_max=1048576", "sgw_max=9048576"),
            ("sgw_types=image%2Fpng", "sgw_types=text%2Fhtml"),
            ("sgw_use=n1", "sgw_use=n2"),
            ("sgw_methods=POST", "sgw_methods=POST%2CDELETE"),
        ] {
            assert!(query.contains(from), "{query} lacks {from}");
            let tampered = query.replace(from, to);
            assert_eq!(
                signer.verify("POST", "/files/tus", &tampered, 1_000),
                Err(LinkError::BadSignature),
                "{to}"
            );
        }
        assert_eq!(
            signer.verify("POST", "/files/other", &query, 1_000),
            Err(LinkError::BadSignature)
        );
        let dropped = query.replace("&sgw_owner=user+7", "");
        assert_eq!(
            signer.verify("POST", "/files/tus", &dropped, 1_000),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn expired_and_wrong_method_links_are_refused() {
        let signer = signer(&[("k1", A)], "k1");
        let query = signer.sign(&grant()).unwrap();
        assert_eq!(
            signer.verify("POST", "/files/tus", &query, 2_001),
            Err(LinkError::Expired)
        );
        assert!(matches!(
            signer.verify("PATCH", "/files/tus", &query, 1_000),
            Err(LinkError::WrongRequest { .. })
        ));
        let download = LinkGrant {
            methods: "GET".into(),
            ..grant()
        };
        let query = signer.sign(&download).unwrap();
        assert!(signer.verify("HEAD", "/files/tus", &query, 1_000).is_ok());
    }

    #[test]
    fn keys_rotate_and_a_retired_key_opens_nothing() {
        let old = signer(&[("k1", A)], "k1");
        let query = old.sign(&grant()).unwrap();
        let rotated = signer(&[("k1", A), ("k2", B)], "k2");
        assert!(rotated.verify("POST", "/files/tus", &query, 1_000).is_ok());
        assert!(rotated.sign(&grant()).unwrap().contains("sgw_kid=k2"));
        let retired = signer(&[("k2", B)], "k2");
        assert_eq!(
            retired.verify("POST", "/files/tus", &query, 1_000),
            Err(LinkError::UnknownKey)
        );
    }

    #[test]
    fn short_secrets_and_unknown_signing_keys_are_configuration_errors() {
        let settings = |secret: &str, signing: &str| LinkSettings {
            keys: [("k1".to_owned(), SecretString::from(secret.to_owned()))].into(),
            signing_key: signing.to_owned(),
            default_ttl_secs: 3600,
            max_ttl_secs: 7200,
        };
        assert!(LinkSigner::from_settings(&settings("short", "k1")).is_err());
        assert!(LinkSigner::from_settings(&settings(A, "k9")).is_err());
        assert!(LinkSigner::from_settings(&settings(A, "")).is_ok());
    }
}
