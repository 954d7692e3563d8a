//! The bounds the server enforces, written into the OpenAPI document from
//! the settings it runs with: lengths, ranges, patterns and enums of every
//! parameter and body field, so that a request valid by the document is one
//! the server accepts. Byte limits on text are stated as ASCII patterns of
//! that many characters (the server also takes other characters within the
//! byte limit); what no schema can say is written in the descriptions.

use serde_json::{json, Value};

use crate::auth::Scope;
use crate::config::Settings;

/// Text without control characters.
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Text without NUL.
const NO_NUL: &str = "^[^\\u0000]*$";
/// A session id.
const SESSION_ID: &str = "^[0-9a-f]{64}$";

/// Printable ASCII, `min` to `max` characters: within a byte limit of `max`.
fn ascii(min: usize, max: usize) -> Value {
    json!({"type": "string", "pattern": format!("^[\\x20-\\x7e]{{{min},{max}}}$")})
}

/// Text of `min` to `max` characters without control characters, where the
/// server counts characters.
fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": NO_CONTROL})
}

fn enumeration(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn range(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// Writes the bounds into `document` (the OpenAPI document as JSON).
pub fn apply(document: &mut Value, settings: &Settings) {
    let files = &settings.files;
    let cache = &settings.cache;
    let sessions = &settings.sessions;
    let limits = &settings.rate_limit;
    let challenges = &settings.challenges;
    let policies: Vec<&str> = limits
        .policies
        .keys()
        .map(String::as_str)
        .filter(|name| *name != limits.gateway_policy)
        .collect();
    let scopes: Vec<&str> = Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(["all"])
        .collect();

    bodies(document, settings);

    // Path parameters.
    let session_id = json!({"type": "string", "pattern": SESSION_ID});
    for (path, methods) in [
        ("/session/{id}", &["get", "put", "patch", "delete"][..]),
        ("/session/{id}/rotate", &["post"]),
    ] {
        for method in methods {
            param(document, path, method, "id", &session_id);
        }
    }
    for (path, method) in [
        ("/users/{user_id}/sessions", "get"),
        ("/users/{user_id}/sessions", "delete"),
    ] {
        param(
            document,
            path,
            method,
            "user_id",
            &ascii(1, sessions.max_user_id_bytes),
        );
    }
    param(
        document,
        "/users/{user_id}/sessions",
        "delete",
        "except",
        &session_id,
    );
    for method in ["get", "delete"] {
        let key = ascii(1, cache.max_key_bytes);
        let path = if method == "get" {
            "/cache/get/{key}"
        } else {
            "/cache/{key}"
        };
        param(document, path, method, "key", &key);
    }
    param(
        document,
        "/rate-limit/status/{key}",
        "get",
        "key",
        &ascii(1, limits.max_key_bytes),
    );
    param(
        document,
        "/rate-limit/status/{key}",
        "get",
        "policy",
        &enumeration(&policies),
    );

    // Query parameters.
    param(
        document,
        "/files",
        "get",
        "limit",
        &range(1, files.list_max_limit as u64),
    );
    param(document, "/files", "get", "owner", &ascii(1, 256));
    param(
        document,
        "/files/upload",
        "post",
        "wait",
        &enumeration(&["pinned"]),
    );
    param(
        document,
        "/files/upload",
        "post",
        "name",
        &text(1, files.max_name_chars),
    );
    param(document, "/files/upload", "post", "owner", &ascii(1, 256));
    for name in ["replication_min", "replication_max"] {
        let allowed = files.replication_max_allowed as u64;
        param(document, "/files/upload", "post", name, &range(1, allowed));
    }
    param(
        document,
        "/challenges/{id}/leaderboard",
        "get",
        "limit",
        &range(1, u64::from(challenges.leaderboard_max_limit)),
    );
    for (report, filter) in [
        ("/analytics/user-activity", Some("user_id")),
        ("/analytics/challenge-stats", Some("challenge_id")),
        ("/analytics/file-stats", None),
        ("/analytics/api-usage", Some("route")),
    ] {
        param(
            document,
            report,
            "get",
            "interval",
            &enumeration(&["hour", "day"]),
        );
        for name in ["from", "to"] {
            param(
                document,
                report,
                "get",
                name,
                &json!({"type": "string", "format": "date-time"}),
            );
        }
        for name in ["user_id", "challenge_id", "route"] {
            if Some(name) == filter {
                param(document, report, "get", name, &ascii(1, 256));
            } else {
                remove_param(document, report, "get", name);
            }
        }
    }

    // Headers.
    for method in ["put", "patch"] {
        param(
            document,
            "/session/{id}",
            method,
            "If-Match",
            &json!({"type": "string", "pattern": "^(\\*|\"[0-9]{1,18}\")$"}),
        );
    }

    // Verifiable answers.
    let entity_bytes = json!({"type": "string", "pattern": "^-?[0-9]{1,15}:(\\*|-?[0-9]{1,15})$"});
    for (path, required) in [
        ("/files/{cid}/download", false),
        ("/ipfs/{cid}", true),
        ("/ipfs/{cid}/{path}", true),
    ] {
        for method in ["get", "head"] {
            param(
                document,
                path,
                method,
                "format",
                &enumeration(&["raw", "car"]),
            );
            param(
                document,
                path,
                method,
                "dag-scope",
                &enumeration(&["block", "entity", "all"]),
            );
            param(document, path, method, "entity-bytes", &entity_bytes);
            if required {
                require_param(document, path, method, "format");
            }
            if path == "/ipfs/{cid}/{path}" {
                param(
                    document,
                    path,
                    method,
                    "path",
                    &json!({"type": "string", "minLength": 1, "pattern": NO_CONTROL}),
                );
            }
        }
    }

    // Resumable uploads.
    let tus_operations = [
        ("/files/tus", "post"),
        ("/files/tus/{id}", "head"),
        ("/files/tus/{id}", "patch"),
        ("/files/tus/{id}", "delete"),
    ];
    for (path, method) in tus_operations {
        param(
            document,
            path,
            method,
            "Tus-Resumable",
            &enumeration(&["1.0.0"]),
        );
    }
    let sizes = range(0, files.max_upload_bytes);
    param(document, "/files/tus", "post", "Upload-Length", &sizes);
    param(
        document,
        "/files/tus",
        "post",
        "Upload-Defer-Length",
        &enumeration(&["1"]),
    );
    param(
        document,
        "/files/tus/{id}",
        "patch",
        "Upload-Offset",
        &sizes,
    );
    param(
        document,
        "/files/tus/{id}",
        "patch",
        "Upload-Length",
        &sizes,
    );
    param(
        document,
        "/files/tus/{id}",
        "patch",
        "Upload-Checksum",
        &json!({"type": "string", "pattern": "^sha256 [A-Za-z0-9+/]{43}=$"}),
    );
    for method in ["head", "patch", "delete"] {
        param(
            document,
            "/files/tus/{id}",
            method,
            "id",
            &json!({"type": "string", "format": "uuid"}),
        );
    }

    // The Pinning Service's listing.
    let statuses = crate::files::pins::PinProgress::ALL.map(|s| s.as_str());
    let pins = "/psa/pins";
    param(document, pins, "get", "name", &text(0, 255));
    param(
        document,
        pins,
        "get",
        "match",
        &enumeration(&["exact", "iexact", "partial", "ipartial"]),
    );
    param(
        document,
        pins,
        "get",
        "status",
        &json!({"type": "array", "minItems": 1, "items": enumeration(&statuses)}),
    );
    param(
        document,
        pins,
        "get",
        "cid",
        &json!({"type": "array", "minItems": 1, "maxItems": 10, "items": {"type": "string"}}),
    );
    param(document, pins, "get", "limit", &range(1, 1000));

    // Bodies.
    let pinning = &settings.pinning;
    property(document, "PinBody", "name", text(0, files.max_name_chars));
    property(
        document,
        "PinBody",
        "origins",
        json!({"type": "array", "maxItems": pinning.max_origins, "items": {"type": "string",
            "pattern": format!("^/[\\x21-\\x2b\\x2d-\\x7e]{{0,{}}}$", pinning.max_origin_bytes.saturating_sub(1))}}),
    );
    property(
        document,
        "PinBody",
        "meta",
        json!({"type": "object", "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"type": "string", "pattern": NO_NUL}}),
    );
    let link_ttl = range(1, settings.links.max_ttl_secs);
    property(
        document,
        "DownloadLinkRequest",
        "expires_in_secs",
        link_ttl.clone(),
    );
    property(document, "UploadLinkRequest", "expires_in_secs", link_ttl);
    property(
        document,
        "UploadLinkRequest",
        "max_bytes",
        range(0, files.max_upload_bytes),
    );
    property(document, "UploadLinkRequest", "owner", ascii(1, 256));
    property(
        document,
        "UploadLinkRequest",
        "content_types",
        json!({"type": "array", "maxItems": 32, "items": {"type": "string",
            "pattern": "^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$"}}),
    );
    property(document, "Set", "key", ascii(1, cache.max_key_bytes));
    property(document, "Set", "ttl_seconds", range(1, cache.max_ttl_secs));
    property(document, "Check", "key", ascii(1, limits.max_key_bytes));
    property(document, "Check", "policy", enumeration(&policies));
    // A check costs at most the smallest burst of its policy: the document
    // states the least over the policies a caller may name.
    let smallest_burst = limits
        .policies
        .iter()
        .filter(|(name, _)| **name != limits.gateway_policy)
        .flat_map(|(_, policy)| &policy.limits)
        .map(|limit| limit.burst.unwrap_or(limit.limit))
        .min()
        .unwrap_or(limits.max_cost);
    property(
        document,
        "Check",
        "cost",
        range(1, limits.max_cost.min(smallest_burst)),
    );
    property(
        document,
        "Create",
        "user_id",
        ascii(1, sessions.max_user_id_bytes),
    );
    property(
        document,
        "Create",
        "ttl_seconds",
        range(1, sessions.max_idle_ttl_secs),
    );
    property(document, "Create", "data", json!({"type": "object"}));
    property(document, "Update", "data", json!({"type": "object"}));
    property(
        document,
        "CreateKey",
        "name",
        text(0, super::routes::api_keys::MAX_NAME_CHARS),
    );
    property(
        document,
        "CreateKey",
        "scopes",
        json!({"type": "array", "minItems": 1, "items": enumeration(&scopes)}),
    );
    property(document, "CreateUser", "external_id", ascii(1, 256));
    property(document, "CreateUser", "display_name", text(0, 64));
    property(
        document,
        "CreateUser",
        "email",
        json!({"type": "string", "pattern": "^[\\x21-\\x3f\\x41-\\x7e]{1,160}@[\\x21-\\x3f\\x41-\\x7e]{1,159}$"}),
    );
    property(
        document,
        "CreateChallenge",
        "slug",
        json!({"type": "string", "pattern": "^[a-z0-9-]{1,128}$"}),
    );
    property(document, "CreateChallenge", "title", text(1, 64));
    property(document, "CreateChallenge", "description", text(0, 16_384));
    property(
        document,
        "CreateChallenge",
        "difficulty",
        enumeration(&crate::challenges::Difficulty::NAMES),
    );
    property(document, "SubmissionInput", "language", ascii(1, 64));
    property(
        document,
        "SubmissionInput",
        "status",
        enumeration(&crate::challenges::SubmissionStatus::NAMES),
    );
    property(
        document,
        "SubmissionInput",
        "code",
        json!({"type": "string", "maxLength": challenges.max_code_bytes / 4, "pattern": NO_NUL}),
    );
    property(
        document,
        "SubmissionInput",
        "output",
        json!({"type": "string", "maxLength": challenges.inline_output_max_bytes / 4, "pattern": NO_NUL}),
    );
    property(
        document,
        "SubmissionInput",
        "runtime_ms",
        json!({"type": "integer", "minimum": 0, "maximum": i32::MAX}),
    );
}

/// Request and response bodies the annotations cannot describe: raw and
/// multipart uploads, event batches, content of any type.
fn bodies(document: &mut Value, settings: &Settings) {
    let binary = json!({"type": "string", "format": "binary"});
    let upload_form = json!({
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": binary,
            "name": text(1, settings.files.max_name_chars),
            "owner": ascii(1, 256),
            "metadata": {"type": "string", "description": "A JSON object, without NUL characters"},
            "replication_min": range(1, settings.files.replication_max_allowed as u64),
            "replication_max": range(1, settings.files.replication_max_allowed as u64),
        },
        "additionalProperties": false,
    });
    if let Some(content) = request_content(document, "/files/upload", "post") {
        content["application/octet-stream"] = json!({"schema": binary});
        content["application/vnd.ipld.car"] = json!({"schema": binary});
        content["multipart/form-data"] = json!({"schema": upload_form});
    }
    if let Some(content) = request_content(document, "/challenges/{id}/submissions", "post") {
        content["multipart/form-data"] = json!({"schema": {
            "type": "object",
            "required": ["submission"],
            "properties": {
                "submission": {"$ref": "#/components/schemas/SubmissionInput"},
                "output": {"type": "string", "pattern": NO_NUL},
            },
            "additionalProperties": false,
        }, "encoding": {"submission": {"contentType": "application/json"}}});
    }
    let event = json!({
        "type": "object",
        "required": ["event_type"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid"},
            "event_type": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
            "user_id": ascii(0, 256),
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "From 2000-01-01 to a day after the server's clock; now when absent",
            },
            "properties": {"type": "object", "description": "At most analytics.max_properties_bytes of JSON"},
        },
        "additionalProperties": false,
    });
    let max_events = settings.analytics.max_events_per_request;
    if let Some(content) = request_content(document, "/analytics/events", "post") {
        content["application/json"] = json!({"schema": {"oneOf": [
            event,
            {"type": "array", "minItems": 1, "maxItems": max_events, "items": event},
        ]}});
    }
    for method in ["get", "head"] {
        if let Some(responses) = operation(document, "/files/{cid}/download", method)
            .and_then(|op| op.get_mut("responses"))
        {
            // The file's own type, whatever it was stored as.
            for status in ["200", "206"] {
                responses[status]["content"] = json!({"*/*": {"schema": binary}});
            }
        }
    }
}

fn request_content<'a>(document: &'a mut Value, path: &str, method: &str) -> Option<&'a mut Value> {
    operation(document, path, method)?.pointer_mut("/requestBody/content")
}

fn operation<'a>(document: &'a mut Value, path: &str, method: &str) -> Option<&'a mut Value> {
    document.get_mut("paths")?.get_mut(path)?.get_mut(method)
}

/// Replaces the schema of parameter `name` of an operation.
fn param(document: &mut Value, path: &str, method: &str, name: &str, schema: &Value) {
    let Some(parameters) = operation(document, path, method)
        .and_then(|op| op.get_mut("parameters"))
        .and_then(Value::as_array_mut)
    else {
        panic!("{method} {path} has no parameters to bound");
    };
    let parameter = parameters
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    parameter["schema"] = schema.clone();
}

fn require_param(document: &mut Value, path: &str, method: &str, name: &str) {
    if let Some(parameter) = operation(document, path, method)
        .and_then(|op| op.get_mut("parameters"))
        .and_then(Value::as_array_mut)
        .and_then(|parameters| parameters.iter_mut().find(|p| p["name"] == name))
    {
        parameter["required"] = json!(true);
    }
}

fn remove_param(document: &mut Value, path: &str, method: &str, name: &str) {
    if let Some(parameters) = operation(document, path, method)
        .and_then(|op| op.get_mut("parameters"))
        .and_then(Value::as_array_mut)
    {
        parameters.retain(|p| p["name"] != name);
    }
}

/// Replaces the schema of property `name` of component `schema`, keeping
/// it nullable when it was.
fn property(document: &mut Value, schema: &str, name: &str, mut bound: Value) {
    let property = document
        .pointer_mut(&format!("/components/schemas/{schema}/properties/{name}"))
        .unwrap_or_else(|| panic!("schema {schema} has no property {name}"));
    let nullable = property["type"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "null"));
    if nullable {
        let base = bound["type"].clone();
        bound["type"] = json!([base, "null"]);
        if let Some(values) = bound.get_mut("enum").and_then(Value::as_array_mut) {
            values.push(Value::Null);
        }
    }
    *property = bound;
}
