//! Validation of ingested events into rows of `user_activity`.
//!
//! Events are read in place (borrowing from the request body) and written
//! straight into the spool's lines; an event that does not read that way
//! is read again as a plain JSON value, which names what is wrong.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::TenantId;

/// Longest event type and user id, in bytes.
const MAX_EVENT_TYPE_BYTES: usize = 64;
const MAX_USER_ID_BYTES: usize = 256;
/// Bad events named in one answer, at most.
const MAX_REPORTED: usize = 100;
/// Timestamps are accepted from 2000-01-01 to a day ahead of the server's
/// clock: ClickHouse's DateTime starts at 1970, and far-future events are
/// mistakes.
const EARLIEST: i64 = 946_684_800;
const MOST_AHEAD_SECS: i64 = 86_400;

/// A bad event: its index in the request and what is wrong.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// One event as a `user_activity` row in JSON, with its id.
#[derive(Debug)]
struct Row {
    pub event_id: Uuid,
    pub json: String,
}

/// Splits the body into events, unparsed: one object, an array of
/// objects, or (`ndjson`) one object per line.
pub fn parse_body(body: &[u8], ndjson: bool) -> Result<Vec<&RawValue>, String> {
    if ndjson {
        return body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(number, line)| {
                serde_json::from_slice(line)
                    .map_err(|e| format!("line {} is not JSON: {e}", number + 1))
            })
            .collect();
    }
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match raw.get().trim_start().as_bytes().first() {
        Some(b'[') => {
            serde_json::from_str(raw.get()).map_err(|e| format!("the body is not JSON: {e}"))
        }
        Some(b'{') => Ok(vec![raw]),
        _ => Err("the body must be an event object or an array of them".into()),
    }
}

/// An event as sent, borrowing from the body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
}

/// A `user_activity` row as ClickHouse reads it (`JSONEachRow`).
#[derive(Serialize)]
struct Outgoing<'a> {
    event_id: uuid::fmt::Hyphenated,
    tenant_id: &'a str,
    user_id: &'a str,
    event_type: &'a str,
    timestamp: i64,
    properties: &'a str,
}

/// Validates every event and writes each as a row into `out`, after
/// `line_prefix` and before a newline; answers their ids, or the bad
/// events (and then `out` is to be discarded).
pub fn validate(
    tenant: &TenantId,
    events: &[&RawValue],
    max_properties_bytes: usize,
    now: OffsetDateTime,
    line_prefix: &[u8],
    out: &mut Vec<u8>,
) -> Result<Vec<Uuid>, Vec<Rejection>> {
    let mut ids = Vec::with_capacity(events.len());
    let mut rejections = Vec::new();
    for (index, raw) in events.iter().enumerate() {
        let written = match serde_json::from_str::<Incoming>(raw.get()) {
            Ok(event) => fast_row(tenant, event, max_properties_bytes, now),
            Err(_) => Err(String::new()),
        };
        let outcome = match written {
            Ok((id, row)) => Ok((id, row)),
            // Read again as a plain value: slower, and precise about what is wrong.
            Err(_) => serde_json::from_str(raw.get())
                .map_err(|e| e.to_string())
                .and_then(|value| row(tenant, value, max_properties_bytes, now))
                .map(|row| (row.event_id, row.json)),
        };
        match outcome {
            Ok((id, json)) if rejections.is_empty() => {
                out.extend_from_slice(line_prefix);
                out.extend_from_slice(json.as_bytes());
                out.push(b'\n');
                ids.push(id);
            }
            Ok(_) => {}
            Err(error) => {
                if rejections.len() < MAX_REPORTED {
                    rejections.push(Rejection { index, error });
                }
            }
        }
    }
    if rejections.is_empty() {
        Ok(ids)
    } else {
        Err(rejections)
    }
}

/// The common case, without building a JSON tree. Any problem sends the
/// event to [`row`], which explains it.
fn fast_row(
    tenant: &TenantId,
    event: Incoming,
    max_properties_bytes: usize,
    now: OffsetDateTime,
) -> Result<(Uuid, String), String> {
    let problem = || String::new();
    let event_id = match &event.event_id {
        None => Uuid::new_v4(),
        Some(id) => Uuid::parse_str(id).map_err(|_| problem())?,
    };
    let event_type = event.event_type.as_ref();
    if !valid_event_type(event_type) {
        return Err(problem());
    }
    let user_id = event.user_id.as_deref().unwrap_or("");
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(problem());
    }
    let timestamp = match &event.timestamp {
        None => now,
        Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_err(|_| problem())?,
    };
    let seconds = timestamp.unix_timestamp();
    if !in_range(seconds, now) {
        return Err(problem());
    }
    let properties = match event.properties {
        None => "{}",
        Some(raw) if raw.get().starts_with('{') => raw.get(),
        Some(_) => return Err(problem()),
    };
    if properties.len() > max_properties_bytes {
        return Err(problem());
    }
    let json = serde_json::to_string(&Outgoing {
        event_id: event_id.hyphenated(),
        tenant_id: tenant.as_str(),
        user_id,
        event_type,
        timestamp: seconds,
        properties,
    })
    .map_err(|e| e.to_string())?;
    Ok((event_id, json))
}

fn valid_event_type(t: &str) -> bool {
    (1..=MAX_EVENT_TYPE_BYTES).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

fn in_range(seconds: i64, now: OffsetDateTime) -> bool {
    (EARLIEST..=now.unix_timestamp() + MOST_AHEAD_SECS).contains(&seconds)
}

fn row(
    tenant: &TenantId,
    event: Value,
    max_properties_bytes: usize,
    now: OffsetDateTime,
) -> Result<Row, String> {
    let Value::Object(mut event) = event else {
        return Err("an event must be a JSON object".into());
    };
    let event_id = match event.remove("event_id") {
        None | Some(Value::Null) => Uuid::new_v4(),
        Some(Value::String(id)) => {
            Uuid::parse_str(&id).map_err(|_| format!("event_id {id:?} is not a UUID"))?
        }
        Some(_) => return Err("event_id must be a UUID string".into()),
    };
    let event_type = match event.remove("event_type") {
        Some(Value::String(t)) if valid_event_type(&t) => t,
        Some(_) => {
            return Err(format!(
                "event_type must be 1 to {MAX_EVENT_TYPE_BYTES} characters of letters, digits, '_', '.', ':' and '-'"
            ))
        }
        None => return Err("event_type is missing".into()),
    };
    let user_id = match event.remove("user_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(u)) if u.len() <= MAX_USER_ID_BYTES => u,
        Some(_) => {
            return Err(format!(
                "user_id must be a string of at most {MAX_USER_ID_BYTES} bytes"
            ))
        }
    };
    let timestamp = match event.remove("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|_| format!("timestamp {text:?} is not RFC 3339"))?,
        Some(_) => return Err("timestamp must be an RFC 3339 string".into()),
    };
    let seconds = timestamp.unix_timestamp();
    if !in_range(seconds, now) {
        return Err("timestamp must be between 2000-01-01 and one day from now".into());
    }
    let properties = match event.remove("properties") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(object @ Value::Object(_)) => object,
        Some(_) => return Err("properties must be a JSON object".into()),
    }
    .to_string();
    if properties.len() > max_properties_bytes {
        return Err(format!(
            "properties are {} bytes of JSON; the limit is {max_properties_bytes}",
            properties.len()
        ));
    }
    if let Some(unknown) = event.keys().next() {
        return Err(format!("unknown field {unknown:?}"));
    }
    let json = serde_json::json!({
        "event_id": event_id.to_string(),
        "tenant_id": tenant.as_str(),
        "user_id": user_id,
        "event_type": event_type,
        "timestamp": seconds,
        "properties": properties,
    })
    .to_string();
    Ok(Row { event_id, json })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> TenantId {
        TenantId::parse("t").unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_763_900_000).unwrap()
    }

    /// Validates `events` (each serialised) and answers the ids and rows.
    fn check(events: Vec<Value>) -> Result<(Vec<Uuid>, Vec<Value>), Vec<Rejection>> {
        let texts: Vec<String> = events.iter().map(Value::to_string).collect();
        let raws: Vec<&RawValue> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        let mut out = Vec::new();
        let ids = validate(&tenant(), &raws, 100, now(), b"p\t", &mut out)?;
        let rows = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line.strip_prefix("p\t").unwrap()).unwrap())
            .collect();
        Ok((ids, rows))
    }

    #[test]
    fn fills_in_id_and_time() {
        let (ids, rows) = check(vec![json!({"event_type": "click"})]).unwrap();
        assert_eq!(rows[0]["timestamp"], 1_763_900_000);
        assert_eq!(rows[0]["event_id"], ids[0].to_string());
        assert_eq!(rows[0]["properties"], "{}");
        assert_eq!(rows[0]["tenant_id"], "t");
        assert_eq!(rows[0]["user_id"], "");
    }

    #[test]
    fn keeps_given_ids_and_times() {
        let id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let events = vec![
            json!({"event_id": id, "event_type": "view", "user_id": "u",
                "timestamp": "2025-11-23T10:00:00+01:00", "properties": {"page": "/"}}),
            // Nulls stand for absent fields; escapes are read, not kept.
            json!({"event_id": null, "event_type": "view", "user_id": "say \"ü\"",
                "timestamp": null, "properties": null}),
        ];
        let (ids, rows) = check(events).unwrap();
        assert_eq!(rows[0]["event_id"], id);
        assert_eq!(ids[0].to_string(), id);
        assert_eq!(rows[0]["timestamp"], 1_763_888_400);
        assert_eq!(rows[0]["properties"], "{\"page\":\"/\"}");
        assert_eq!(rows[1]["event_type"], "view");
        assert_eq!(rows[1]["user_id"], "say \"ü\"");
        assert_eq!(rows[1]["properties"], "{}");
    }

    #[test]
    fn names_each_bad_event() {
        let events = vec![
            json!({"event_type": "ok"}),
            json!({"event_type": "bad type!"}),
            json!({"event_type": "ok", "timestamp": "yesterday"}),
            json!({"event_type": "ok", "event_id": "nope"}),
            json!({"event_type": "ok", "properties": [1]}),
            json!({"event_type": "ok", "properties": {"x": "y".repeat(200)}}),
            json!({"event_type": "ok", "extra": 1}),
            json!("not an object"),
            json!({"event_type": "ok", "timestamp": "1990-01-01T00:00:00Z"}),
            json!({}),
        ];
        let rejections = check(events).unwrap_err();
        let indexes: Vec<usize> = rejections.iter().map(|r| r.index).collect();
        assert_eq!(indexes, (1..10).collect::<Vec<_>>());
        assert!(rejections[0].error.contains("event_type"));
        assert!(rejections[1].error.contains("RFC 3339"));
        assert!(rejections[2].error.contains("UUID"));
        assert!(rejections[4].error.contains("100"));
        assert!(rejections[5].error.contains("extra"));
        assert!(rejections[8].error.contains("missing"));
    }

    #[test]
    fn parses_every_body_shape() {
        assert_eq!(parse_body(br#"{"a":1}"#, false).unwrap().len(), 1);
        assert_eq!(
            parse_body(br#" [{"a":1},{"a":2}]"#, false).unwrap().len(),
            2
        );
        assert_eq!(
            parse_body(b"{\"a\":1}\n\n{\"a\":2}\n", true).unwrap().len(),
            2
        );
        assert!(parse_body(b"{\"a\":1}\n{oops", true)
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_body(b"3", false).is_err());
        assert!(parse_body(b"[1", false).is_err());
    }
}
