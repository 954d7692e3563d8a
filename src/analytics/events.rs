//! Validation of ingested events into rows of `user_activity`.
//!
//! Events are read in place (borrowing from the request body) and written
//! straight into the spool's lines; an event that does not read that way
//! is read again as a plain JSON value, which names what is wrong.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
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

/// The message of a body with more events than allowed; the caller turns
/// it into a 413.
pub const TOO_MANY_EVENTS: &str = "too many events";

/// Splits a JSON body into events, unparsed: one object, or an array of
/// objects. Counting stops at `max_events`: an array with more is refused
/// with [`TOO_MANY_EVENTS`] before the rest is even read.
pub fn parse_body(body: &[u8], max_events: usize) -> Result<Vec<&RawValue>, String> {
    let not_json = |e: serde_json::Error| format!("the body is not JSON: {e}");
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let events =
                serde::Deserializer::deserialize_seq(&mut deserializer, BoundedList(max_events))
                    .map_err(|e| {
                        if e.to_string().starts_with(TOO_MANY_EVENTS) {
                            TOO_MANY_EVENTS.to_owned()
                        } else {
                            not_json(e)
                        }
                    })?;
            deserializer.end().map_err(not_json)?;
            Ok(events)
        }
        Some(b'{') => Ok(vec![serde_json::from_slice(body).map_err(not_json)?]),
        _ => Err("the body must be an event object or an array of them".into()),
    }
}

/// Reads a JSON array of at most `.0` raw values.
struct BoundedList(usize);

impl<'de> serde::de::Visitor<'de> for BoundedList {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {} events", self.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&RawValue>()? {
            if items.len() == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY_EVENTS));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// Events validated one at a time, as they are read, into spool lines.
/// Once one is bad, the others are only checked: nothing is accepted.
pub struct Batch<'a> {
    tenant: &'a TenantId,
    max_properties_bytes: usize,
    now: OffsetDateTime,
    line_prefix: &'a [u8],
    out: Vec<u8>,
    ids: Vec<Uuid>,
    rejections: Vec<Rejection>,
    seen: usize,
}

impl<'a> Batch<'a> {
    pub fn new(
        tenant: &'a TenantId,
        max_properties_bytes: usize,
        now: OffsetDateTime,
        line_prefix: &'a [u8],
    ) -> Self {
        Self {
            tenant,
            max_properties_bytes,
            now,
            line_prefix,
            out: Vec::new(),
            ids: Vec::new(),
            rejections: Vec::new(),
            seen: 0,
        }
    }

    /// Makes room for `bytes` of rows at once, so a batch whose size is
    /// known ahead does not grow by doubling.
    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve_exact(bytes);
    }

    /// Events pushed so far, good and bad.
    pub fn len(&self) -> usize {
        self.seen
    }

    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Bytes the batch holds (its spool lines and ids).
    pub fn held_bytes(&self) -> usize {
        self.out.capacity() + self.ids.capacity() * std::mem::size_of::<Uuid>()
    }

    /// Validates one line of NDJSON (`number` counts from 1); a blank line
    /// is no event. A line that is not JSON makes the whole body invalid.
    pub fn push_line(&mut self, line: &[u8], number: usize) -> Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let raw: &RawValue =
            serde_json::from_slice(line).map_err(|e| format!("line {number} is not JSON: {e}"))?;
        self.push(raw);
        Ok(())
    }

    /// Validates one event and, while all are good, writes its row.
    pub fn push(&mut self, raw: &RawValue) {
        let index = self.seen;
        self.seen += 1;
        let written = match serde_json::from_str::<Incoming>(raw.get()) {
            Ok(event) => fast_row(self.tenant, event, self.max_properties_bytes, self.now),
            Err(_) => Err(String::new()),
        };
        let outcome = match written {
            Ok((id, row)) => Ok((id, row)),
            // Read again as a plain value: slower, and precise about what is wrong.
            Err(_) => row(self.tenant, raw.get(), self.max_properties_bytes, self.now),
        };
        match outcome {
            Ok((id, json)) if self.rejections.is_empty() => {
                self.out.extend_from_slice(self.line_prefix);
                self.out.extend_from_slice(json.as_bytes());
                self.out.push(b'\n');
                self.ids.push(id);
            }
            Ok(_) => {}
            Err(error) => {
                if self.rejections.is_empty() {
                    // Nothing will be accepted: free the rows written so far.
                    self.out = Vec::new();
                    self.ids = Vec::new();
                }
                if self.rejections.len() < MAX_REPORTED {
                    self.rejections.push(Rejection { index, error });
                }
            }
        }
    }

    /// The ids and spool lines of the events, or the bad events.
    pub fn finish(self) -> Result<(Vec<Uuid>, Vec<u8>), Vec<Rejection>> {
        if self.rejections.is_empty() {
            Ok((self.ids, self.out))
        } else {
            Err(self.rejections)
        }
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
    let json = outgoing_json(tenant, event_id, user_id, event_type, seconds, properties)?;
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

/// An event's fields as sent, each unparsed, in order. A field given twice
/// is refused here, as the fast path's derived reader refuses it, and so is
/// the first unknown one: the list never holds more than the five known
/// fields, however many keys a hostile event carries.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

const FIELDS: [&str; 5] = [
    "event_id",
    "event_type",
    "user_id",
    "timestamp",
    "properties",
];

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, &'de RawValue)> = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
            if !FIELDS.contains(&name.as_str()) {
                return Err(serde::de::Error::custom(format!("unknown field {name:?}")));
            }
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(serde::de::Error::custom(format!(
                    "field {name:?} is given twice"
                )));
            }
            fields.push((name, value));
        }
        Ok(Fields(fields))
    }
}

impl<'a> Fields<'a> {
    /// Takes a field out, parsed; JSON `null` reads as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.take_raw(name)
            .map(|raw| serde_json::from_str(raw.get()).expect("read as JSON already"))
            .filter(|value: &Value| !value.is_null())
    }

    fn take_raw(&mut self, name: &str) -> Option<&'a RawValue> {
        let at = self.0.iter().position(|(field, _)| field == name)?;
        Some(self.0.remove(at).1)
    }
}

/// The slow path: the same rules as [`fast_row`], and the same row, with a
/// message that says what is wrong.
fn row(
    tenant: &TenantId,
    event: &str,
    max_properties_bytes: usize,
    now: OffsetDateTime,
) -> Result<(Uuid, String), String> {
    if !event.trim_start().starts_with('{') {
        return Err("an event must be a JSON object".into());
    }
    let mut event: Fields = serde_json::from_str(event).map_err(|e| e.to_string())?;
    let event_id = match event.take("event_id") {
        None => Uuid::new_v4(),
        Some(Value::String(id)) => {
            Uuid::parse_str(&id).map_err(|_| format!("event_id {id:?} is not a UUID"))?
        }
        Some(_) => return Err("event_id must be a UUID string".into()),
    };
    let event_type = match event.take_raw("event_type").map(|raw| raw.get()) {
        // Unlike the other fields, null is no stand-in here.
        Some(raw) => match serde_json::from_str(raw) {
            Ok(Value::String(t)) if valid_event_type(&t) => t,
            _ => {
                return Err(format!(
                    "event_type must be 1 to {MAX_EVENT_TYPE_BYTES} characters of letters, digits, '_', '.', ':' and '-'"
                ))
            }
        },
        None => return Err("event_type is missing".into()),
    };
    let user_id = match event.take("user_id") {
        None => String::new(),
        Some(Value::String(u)) if u.len() <= MAX_USER_ID_BYTES => u,
        Some(_) => {
            return Err(format!(
                "user_id must be a string of at most {MAX_USER_ID_BYTES} bytes"
            ))
        }
    };
    let timestamp = match event.take("timestamp") {
        None => now,
        Some(Value::String(text)) => OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|_| format!("timestamp {text:?} is not RFC 3339"))?,
        Some(_) => return Err("timestamp must be an RFC 3339 string".into()),
    };
    let seconds = timestamp.unix_timestamp();
    if !in_range(seconds, now) {
        return Err("timestamp must be between 2000-01-01 and one day from now".into());
    }
    // Kept as sent, as the fast path keeps them.
    let properties = match event.take_raw("properties").map(RawValue::get) {
        None | Some("null") => "{}",
        Some(raw) if raw.starts_with('{') => raw,
        Some(_) => return Err("properties must be a JSON object".into()),
    };
    if properties.len() > max_properties_bytes {
        return Err(format!(
            "properties are {} bytes of JSON; the limit is {max_properties_bytes}",
            properties.len()
        ));
    }
    let json = outgoing_json(tenant, event_id, &user_id, &event_type, seconds, properties)?;
    Ok((event_id, json))
}

/// The spool line of a valid event, as both paths write it.
fn outgoing_json(
    tenant: &TenantId,
    event_id: Uuid,
    user_id: &str,
    event_type: &str,
    timestamp: i64,
    properties: &str,
) -> Result<String, String> {
    serde_json::to_string(&Outgoing {
        event_id: event_id.hyphenated(),
        tenant_id: tenant.as_str(),
        user_id,
        event_type,
        timestamp,
        properties,
    })
    .map_err(|e| e.to_string())
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
        let tenant = tenant();
        let mut batch = Batch::new(&tenant, 100, now(), b"p\t");
        for raw in raws {
            batch.push(raw);
        }
        let (ids, out) = batch.finish()?;
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
        assert_eq!(parse_body(br#"{"a":1}"#, 10).unwrap().len(), 1);
        assert_eq!(parse_body(br#" [{"a":1},{"a":2}]"#, 10).unwrap().len(), 2);
        assert!(parse_body(b"3", 10).is_err());
        assert!(parse_body(b"[1", 10).is_err());
        let tenant = tenant();
        let mut batch = Batch::new(&tenant, 100, now(), b"");
        for (number, line) in ["{\"event_type\":\"a\"}", "", " ", "{\"event_type\":\"b\"}"]
            .iter()
            .enumerate()
        {
            batch.push_line(line.as_bytes(), number + 1).unwrap();
        }
        assert_eq!(batch.len(), 2, "blank lines are no events");
        assert!(batch.push_line(b"{oops", 5).unwrap_err().contains("line 5"));
    }

    #[test]
    fn an_array_is_counted_as_it_is_read() {
        assert_eq!(parse_body(b"[{},{},{}]", 3).unwrap().len(), 3);
        assert_eq!(
            parse_body(b"[{},{},{},{}]", 3).unwrap_err(),
            TOO_MANY_EVENTS
        );
        // Past the bound the rest is not read: even broken JSON there is
        // reported as too many, not as invalid.
        assert_eq!(
            parse_body(b"[{},{},{},{}, oops", 3).unwrap_err(),
            TOO_MANY_EVENTS
        );
    }

    #[test]
    fn a_bad_event_frees_the_rows_written_before_it() {
        let tenant = tenant();
        let mut batch = Batch::new(&tenant, 100, now(), b"");
        let good: &RawValue = serde_json::from_str("{\"event_type\":\"a\"}").unwrap();
        let bad: &RawValue = serde_json::from_str("{}").unwrap();
        batch.push(good);
        assert!(batch.held_bytes() > 0);
        batch.push(bad);
        batch.push(good);
        assert_eq!(batch.held_bytes(), 0);
        assert_eq!(batch.finish().unwrap_err()[0].index, 1);
    }

    /// Both paths over one event's text: the fast one's row or `None`,
    /// and the slow one's row or its message.
    fn both_paths(text: &str, max_properties: usize) -> (Option<String>, Result<String, String>) {
        let tenant = tenant();
        let fast = serde_json::from_str::<Incoming>(text)
            .ok()
            .and_then(|event| fast_row(&tenant, event, max_properties, now()).ok())
            .map(|(_, json)| json);
        let slow = row(&tenant, text, max_properties, now()).map(|(_, json)| json);
        (fast, slow)
    }

    #[test]
    fn the_fast_and_slow_paths_accept_alike_and_write_the_same_row() {
        let id = "\"event_id\": \"1b4e28ba-2fa1-11d2-883f-0016d3cca427\"";
        let stamp = "\"timestamp\": \"2025-11-23T10:00:00Z\"";
        let texts = [
            format!("{{{id}, {stamp}, \"event_type\": \"a\"}}"),
            format!("{{{id}, {stamp}, \"event_type\": \"a\", \"properties\": {{ \"k\" : 1 }}}}"),
            // Duplicate property keys are kept as sent by both.
            format!(
                "{{{id}, {stamp}, \"event_type\": \"a\", \"properties\": {{\"k\":1,\"k\":2}}}}"
            ),
            format!("{{{id}, {stamp}, \"event_type\": \"\\u0061\", \"user_id\": \"\\u00fc\"}}"),
            format!(
                "{{{id}, {stamp}, \"event_type\": \"a\", \"user_id\": null, \"properties\": null}}"
            ),
            // A field given twice is refused by both.
            format!("{{{id}, {stamp}, \"event_type\": \"a\", \"event_type\": \"b\"}}"),
            format!("{{{id}, {id}, {stamp}, \"event_type\": \"a\"}}"),
            format!("{{{id}, {stamp}, \"event_type\": null}}"),
            format!("{{{id}, {stamp}, \"event_type\": \"a\", \"properties\": \"{{}}\"}}"),
            format!(
                "{{{id}, {stamp}, \"event_type\": \"a\", \"properties\": {{\"pad\": \"{}\"}}}}",
                "x".repeat(30)
            ),
            format!(
                "{{{id}, {stamp}, \"event_type\": \"a\", \"properties\": {{\"pad\":     \"{}\"}}}}",
                "x".repeat(26)
            ),
        ];
        for text in &texts {
            match both_paths(text, 40) {
                (Some(fast), Ok(slow)) => assert_eq!(fast, slow, "{text}"),
                (None, Err(_)) => {}
                (fast, slow) => panic!("{text}: fast {fast:?}, slow {slow:?}"),
            }
        }
        let (_, twice) = both_paths(&texts[5], 40);
        assert!(twice.unwrap_err().contains("\"event_type\" is given twice"));
        let (kept, _) = both_paths(&texts[2], 40);
        assert!(kept
            .unwrap()
            .contains(r#""properties":"{\"k\":1,\"k\":2}""#));
    }

    #[test]
    fn the_first_unknown_field_stops_the_reading() {
        // Named before anything after it is looked at, so an event of many
        // keys costs one pass, not a comparison of every key with every other.
        let many: String = (0..50_000).map(|i| format!(",\"k{i}\":0")).collect();
        let text = format!("{{\"event_type\":\"a\",\"zz\":1{many},\"event_id\":\"nope\"}}");
        let (fast, slow) = both_paths(&text, 100);
        assert_eq!(fast, None);
        let error = slow.unwrap_err();
        assert!(error.starts_with("unknown field \"zz\""), "{error}");
    }

    #[test]
    fn each_bound_holds_exactly_at_its_limit() {
        let accepted = |event: Value| check(vec![event]).is_ok();
        let at = |n: usize| "x".repeat(n);
        assert!(accepted(json!({"event_type": at(MAX_EVENT_TYPE_BYTES)})));
        assert!(!accepted(
            json!({"event_type": at(MAX_EVENT_TYPE_BYTES + 1)})
        ));
        assert!(accepted(
            json!({"event_type": "a", "user_id": at(MAX_USER_ID_BYTES)})
        ));
        assert!(!accepted(
            json!({"event_type": "a", "user_id": at(MAX_USER_ID_BYTES + 1)})
        ));
        // `check` allows 100 bytes of properties: {"p":"..."} is 8 bytes more.
        assert!(accepted(
            json!({"event_type": "a", "properties": {"p": at(92)}})
        ));
        assert!(!accepted(
            json!({"event_type": "a", "properties": {"p": at(93)}})
        ));
        let stamp = |seconds: i64| {
            let time = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            json!({"event_type": "a", "timestamp": time.format(&Rfc3339).unwrap()})
        };
        assert!(accepted(stamp(EARLIEST)));
        assert!(!accepted(stamp(EARLIEST - 1)));
        let latest = now().unix_timestamp() + MOST_AHEAD_SECS;
        assert!(accepted(stamp(latest)));
        assert!(!accepted(stamp(latest + 1)));
    }

    #[test]
    fn a_body_of_bad_events_names_the_first_hundred() {
        let events = (0..150)
            .map(|_| json!({"event_type": "bad type"}))
            .collect();
        let rejections = check(events).unwrap_err();
        assert_eq!(rejections.len(), MAX_REPORTED);
        assert_eq!(rejections.last().unwrap().index, MAX_REPORTED - 1);
    }
}
