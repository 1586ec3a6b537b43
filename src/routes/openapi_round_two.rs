//! What the derived schemas of holds, second factors and webhook endpoints (DESIGN
//! §14–§16) cannot say by themselves, added to the document so that every request the
//! schema allows is one the server accepts (and schemathesis holds us to it): amounts in
//! cents, exactly one factor, the closed sets of statuses and event types, endpoint URLs
//! of the shape the server takes.

use serde_json::{json, Map, Value};

use crate::store::EVENT_TYPES;

/// A capture: like a credit amount, but 0 (the work cost nothing) is allowed.
fn capture_amount() -> Value {
    json!({
        "description": "A number or a decimal string; 0 up to the hold, at most 2 decimals",
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": 1e12, "multipleOf": 0.01},
            {"type": "string", "pattern": "^(0|[1-9][0-9]{0,11})(\\.[0-9]{1,2})?$"}
        ],
        "example": 3.2
    })
}

/// `code` or `recovery_code`, never both, never neither (null counts as absent, as the
/// server reads it).
fn exactly_one_factor() -> Value {
    let given =
        |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
    json!([
        {"allOf": [given("code")], "not": given("recovery_code")},
        {"allOf": [given("recovery_code")], "not": given("code")}
    ])
}

/// An http(s) URL with a host name (an IP literal, or a number the URL parser turns into
/// one, may be a private address the server refuses), an optional port and a plain path.
const ENDPOINT_URL_PATTERN: &str = "^https?://[a-z][a-z0-9-]{0,62}(\\.[a-z][a-z0-9-]{0,62})*\
     (:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$";

pub fn complete(doc: &mut Value, credits: &Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        set(schemas, "HoldRequest", "amount", credits.clone());
        set(schemas, "CaptureRequest", "amount", capture_amount());
        for name in ["VerifyRequest", "StepUpRequest"] {
            if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                schema.insert("oneOf".into(), exactly_one_factor());
            }
        }
        let mut event_types: Vec<&str> = EVENT_TYPES.to_vec();
        event_types.push("*");
        for name in ["CreateEndpointRequest", "UpdateEndpointRequest"] {
            set_keys(
                schemas,
                name,
                "url",
                &[("pattern", json!(ENDPOINT_URL_PATTERN))],
            );
            set_keys(
                schemas,
                name,
                "events",
                &[("items", json!({"type": "string", "enum": event_types}))],
            );
        }
    }
    query_enum(
        doc,
        "/credits/holds",
        "status",
        &["held", "captured", "released", "expired"],
    );
    query_enum(
        doc,
        "/admin/webhooks/{id}/deliveries",
        "status",
        &["pending", "delivered", "failed"],
    );
}

fn set(schemas: &mut Map<String, Value>, schema: &str, field: &str, value: Value) {
    if let Some(property) = schemas
        .get_mut(schema)
        .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
    {
        *property = value;
    }
}

/// Adds keys to a property, also where the property is `oneOf` a type and null (an
/// optional field): each non-null branch gets them.
fn set_keys(schemas: &mut Map<String, Value>, schema: &str, field: &str, keys: &[(&str, Value)]) {
    let Some(property) = schemas
        .get_mut(schema)
        .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
    else {
        return;
    };
    let add = |target: &mut Value| {
        if let Some(object) = target.as_object_mut() {
            for (key, value) in keys {
                object.insert((*key).into(), value.clone());
            }
        }
    };
    if let Some(branches) = property.get_mut("oneOf").and_then(Value::as_array_mut) {
        branches
            .iter_mut()
            .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .for_each(add);
        return;
    }
    add(property);
}

/// The GET operation's query parameter `name` takes only `values`.
fn query_enum(doc: &mut Value, path: &str, name: &str, values: &[&str]) {
    let pointer = format!("/paths/{}/get/parameters", path.replace('/', "~1"));
    let Some(parameters) = doc.pointer_mut(&pointer).and_then(Value::as_array_mut) else {
        return;
    };
    for parameter in parameters {
        if parameter.get("name").and_then(Value::as_str) == Some(name) {
            parameter["schema"] = json!({"type": "string", "enum": values});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_the_documented_shape_are_ones_the_server_takes() {
        for url in [
            "http://a",
            "https://hooks.example.com/auth/x_y",
            "http://a-b.c:8080/",
        ] {
            assert_eq!(
                crate::services::webhooks::ssrf::url_problem(url, false, false),
                None,
                "{url} is accepted"
            );
        }
    }

    #[test]
    fn the_document_states_the_new_limits() {
        let doc = crate::routes::docs::openapi_json();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["HoldRequest"]["properties"]["amount"]["oneOf"][0]["exclusiveMinimum"],
            0
        );
        assert_eq!(
            schemas["CaptureRequest"]["properties"]["amount"]["oneOf"][0]["minimum"],
            0
        );
        assert!(schemas["VerifyRequest"]["oneOf"].is_array());
        assert!(schemas["StepUpRequest"]["oneOf"].is_array());
        let url = &schemas["CreateEndpointRequest"]["properties"]["url"];
        assert_eq!(url["pattern"], ENDPOINT_URL_PATTERN, "{url}");
        let holds = &doc["paths"]["/credits/holds"]["get"]["parameters"];
        let status = holds
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "status")
            .unwrap();
        assert_eq!(status["schema"]["enum"][0], "held");
    }
}
