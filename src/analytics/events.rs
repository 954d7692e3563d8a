//! Validation of ingested events into rows of `user_activity`.

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
pub struct Row {
    pub event_id: Uuid,
    pub json: String,
}

/// Parses the body: one object, an array of objects, or (`ndjson`) one
/// object per line.
pub fn parse_body(body: &[u8], ndjson: bool) -> Result<Vec<Value>, String> {
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
    match serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))? {
        Value::Array(events) => Ok(events),
        event @ Value::Object(_) => Ok(vec![event]),
        _ => Err("the body must be an event object or an array of them".into()),
    }
}

/// Validates every event; all become rows, or the bad ones are reported.
pub fn validate(
    tenant: &TenantId,
    events: Vec<Value>,
    max_properties_bytes: usize,
    now: OffsetDateTime,
) -> Result<Vec<Row>, Vec<Rejection>> {
    let mut rows = Vec::with_capacity(events.len());
    let mut rejections = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        match row(tenant, event, max_properties_bytes, now) {
            Ok(row) => rows.push(row),
            Err(error) => {
                if rejections.len() < MAX_REPORTED {
                    rejections.push(Rejection { index, error });
                }
            }
        }
    }
    if rejections.is_empty() {
        Ok(rows)
    } else {
        Err(rejections)
    }
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
        Some(Value::String(t))
            if (1..=MAX_EVENT_TYPE_BYTES).contains(&t.len())
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)) =>
        {
            t
        }
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
    if seconds < EARLIEST || seconds > now.unix_timestamp() + MOST_AHEAD_SECS {
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

    #[test]
    fn fills_in_id_and_time() {
        let rows = validate(&tenant(), vec![json!({"event_type": "click"})], 100, now()).unwrap();
        let row: Value = serde_json::from_str(&rows[0].json).unwrap();
        assert_eq!(row["timestamp"], 1_763_900_000);
        assert_eq!(row["event_id"], rows[0].event_id.to_string());
        assert_eq!(row["properties"], "{}");
        assert_eq!(row["tenant_id"], "t");
    }

    #[test]
    fn keeps_given_ids_and_times() {
        let id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let event = json!({"event_id": id, "event_type": "view", "user_id": "u",
            "timestamp": "2025-11-23T10:00:00+01:00", "properties": {"page": "/"}});
        let rows = validate(&tenant(), vec![event], 100, now()).unwrap();
        let row: Value = serde_json::from_str(&rows[0].json).unwrap();
        assert_eq!(row["event_id"], id);
        assert_eq!(row["timestamp"], 1_763_888_400);
        assert_eq!(row["properties"], "{\"page\":\"/\"}");
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
        let rejections = validate(&tenant(), events, 100, now()).unwrap_err();
        let indexes: Vec<usize> = rejections.iter().map(|r| r.index).collect();
        assert_eq!(indexes, (1..10).collect::<Vec<_>>());
        assert!(rejections[0].error.contains("event_type"));
        assert!(rejections[4].error.contains("100"));
        assert!(rejections[5].error.contains("extra"));
    }

    #[test]
    fn parses_every_body_shape() {
        assert_eq!(parse_body(br#"{"a":1}"#, false).unwrap().len(), 1);
        assert_eq!(parse_body(br#"[{"a":1},{"a":2}]"#, false).unwrap().len(), 2);
        assert_eq!(
            parse_body(b"{\"a\":1}\n\n{\"a\":2}\n", true).unwrap().len(),
            2
        );
        assert!(parse_body(b"{\"a\":1}\n{oops", true)
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_body(b"3", false).is_err());
    }
}
