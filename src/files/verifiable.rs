//! Verifiable (trustless) answers, as the IPFS trustless gateway gives
//! them: a file's root block (`raw`) or a CAR of its DAG (`car`, with
//! `dag-scope` and `entity-bytes`), which a client checks block by block
//! against the CID it asked for. Kubo's gateway makes them; the gateway
//! authorises the tenant and streams them through.

use super::{ContentId, Files, FilesError};
use crate::auth::TenantId;
use crate::error_code::ErrorCode;
use crate::stores::kubo::{ContentStream, Verifiable as KuboVerifiable};
use crate::stores::StoreError;

pub const RAW_TYPE: &str = "application/vnd.ipld.raw";
pub const CAR_TYPE: &str = "application/vnd.ipld.car";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagScope {
    Block,
    Entity,
    All,
}

impl DagScope {
    fn as_str(self) -> &'static str {
        match self {
            DagScope::Block => "block",
            DagScope::Entity => "entity",
            DagScope::All => "all",
        }
    }
}

/// A verifiable answer asked for, by `?format=` or `Accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiableRequest {
    Raw,
    Car {
        scope: DagScope,
        /// `from:to` of `entity-bytes`, as given (checked).
        entity_bytes: Option<String>,
    },
}

fn invalid(message: impl Into<String>) -> FilesError {
    FilesError::invalid(ErrorCode::InvalidFormat, message)
}

/// `entity-bytes=from:to`: whole numbers (negative counts from the end),
/// `to` may be `*`.
fn check_entity_bytes(value: &str) -> Result<(), FilesError> {
    let number = |n: &str| n.parse::<i64>().is_ok();
    match value.split_once(':') {
        Some((from, to)) if number(from) && (to == "*" || number(to)) => Ok(()),
        _ => Err(invalid(format!(
            "entity-bytes={value:?} is not from:to (whole numbers, to may be *)"
        ))),
    }
}

impl VerifiableRequest {
    /// What the request asks for: `None` for the file's plain bytes.
    /// `format` wins over `accept`, as the gateway specification says.
    pub fn parse(
        format: Option<&str>,
        accept: Option<&str>,
        dag_scope: Option<&str>,
        entity_bytes: Option<&str>,
    ) -> Result<Option<Self>, FilesError> {
        let from_accept = accept.and_then(|accept| {
            accept
                .split(',')
                .map(|part| part.split(';').next().unwrap_or("").trim())
                .find_map(|media| match media {
                    RAW_TYPE => Some("raw"),
                    CAR_TYPE => Some("car"),
                    _ => None,
                })
        });
        let Some(format) = format.or(from_accept) else {
            if dag_scope.is_some() || entity_bytes.is_some() {
                return Err(invalid("dag-scope and entity-bytes go with format=car"));
            }
            return Ok(None);
        };
        match format {
            "raw" => {
                if dag_scope.is_some() || entity_bytes.is_some() {
                    return Err(invalid("dag-scope and entity-bytes go with format=car"));
                }
                Ok(Some(VerifiableRequest::Raw))
            }
            "car" => {
                let scope = match dag_scope.unwrap_or("all") {
                    "block" => DagScope::Block,
                    "entity" => DagScope::Entity,
                    "all" => DagScope::All,
                    other => {
                        return Err(invalid(format!(
                            "dag-scope={other:?} is not block, entity or all"
                        )))
                    }
                };
                if let Some(range) = entity_bytes {
                    check_entity_bytes(range)?;
                }
                Ok(Some(VerifiableRequest::Car {
                    scope,
                    entity_bytes: entity_bytes.map(str::to_owned),
                }))
            }
            other => Err(invalid(format!(
                "format={other:?} is not raw or car (the verifiable formats)"
            ))),
        }
    }
}

/// A verifiable answer: what Kubo's gateway said of it, and its bytes.
pub struct Verifiable {
    pub content_type: String,
    pub etag: Option<String>,
    /// `<cid>.bin` or `<cid>.car`.
    pub file_name: String,
    pub body: ContentStream,
}

impl Files {
    /// The verifiable answer for `path` under the tenant's file `cid`.
    pub async fn verifiable(
        &self,
        tenant: &TenantId,
        cid: &ContentId,
        path: &str,
        request: &VerifiableRequest,
    ) -> Result<Verifiable, FilesError> {
        self.file(tenant, cid).await?;
        let (accept, query) = match request {
            VerifiableRequest::Raw => (RAW_TYPE, vec![("format", "raw".to_owned())]),
            VerifiableRequest::Car {
                scope,
                entity_bytes,
            } => {
                let mut query = vec![
                    ("format", "car".to_owned()),
                    ("dag-scope", scope.as_str().to_owned()),
                ];
                if let Some(range) = entity_bytes {
                    query.push(("entity-bytes", range.clone()));
                }
                (CAR_TYPE, query)
            }
        };
        let target = if path.is_empty() {
            cid.to_string()
        } else {
            format!("{cid}/{path}")
        };
        let answer: Option<KuboVerifiable> = self
            .stores
            .kubo
            .read_verifiable(&target, accept, &query)
            .await
            .map_err(|error| match error {
                StoreError::InvalidValue { reason, .. } => {
                    invalid(format!("the DAG cannot answer this request: {reason}"))
                }
                other => other.into(),
            })?;
        let answer = answer.ok_or_else(|| FilesError::NotFound(format!("{cid}/{path}")))?;
        let extension = if matches!(request, VerifiableRequest::Raw) {
            "bin"
        } else {
            "car"
        };
        Ok(Verifiable {
            content_type: answer.content_type,
            etag: answer.etag,
            file_name: format!("{cid}.{extension}"),
            body: answer.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_wins_over_accept_and_plain_bytes_ask_for_none() {
        assert_eq!(
            VerifiableRequest::parse(None, None, None, None).unwrap(),
            None
        );
        assert_eq!(
            VerifiableRequest::parse(None, Some("application/vnd.ipld.raw"), None, None).unwrap(),
            Some(VerifiableRequest::Raw)
        );
        assert_eq!(
            VerifiableRequest::parse(
                Some("raw"),
                Some("application/vnd.ipld.car; version=1"),
                None,
                None
            )
            .unwrap(),
            Some(VerifiableRequest::Raw)
        );
        assert_eq!(
            VerifiableRequest::parse(
                None,
                Some("text/html, application/vnd.ipld.car;order=dfs"),
                Some("entity"),
                Some("0:99")
            )
            .unwrap(),
            Some(VerifiableRequest::Car {
                scope: DagScope::Entity,
                entity_bytes: Some("0:99".into())
            })
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(VerifiableRequest::parse(Some("tar"), None, None, None).is_err());
        assert!(VerifiableRequest::parse(Some("car"), None, Some("some"), None).is_err());
        assert!(VerifiableRequest::parse(Some("car"), None, None, Some("1-2")).is_err());
        assert!(VerifiableRequest::parse(Some("raw"), None, Some("all"), None).is_err());
        assert!(VerifiableRequest::parse(None, None, Some("all"), None).is_err());
        assert!(VerifiableRequest::parse(Some("car"), None, None, Some("-10:*")).is_ok());
    }
}
