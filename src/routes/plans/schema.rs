//! What the derived `CreatePlan` and `UpdatePlan` schemas cannot say by themselves, added to
//! the document: the kind/interval rule, and for a PATCH that at least one field is given.
//! The server enforces exactly this (services/billing/plans.rs); what depends on the stored
//! plan is answered 400 `plan_kind_conflict`, which no schema can state.
//!
//! Written with `oneOf`/`anyOf` of `const`s rather than `if`/`then`/`not`: the same meaning,
//! and generators (schemathesis, client code generators) handle it without filtering.

use serde_json::{json, Map, Value};

/// Fields of `UpdatePlan` and the JSON types a given (non-null) value has.
const UPDATE_FIELDS: [(&str, &str); 8] = [
    ("name", "string"),
    ("kind", "string"),
    ("credits", ""),
    ("price", "integer"),
    ("currency", "string"),
    ("interval", "string"),
    ("stripe_price_id", "string"),
    ("active", "boolean"),
];

/// `credits` is the shared amount schema (a number or a decimal string).
pub(in crate::routes) fn complete(schemas: &mut Map<String, Value>, credits: &Value) {
    if let Some(create) = schemas.get_mut("CreatePlan").and_then(Value::as_object_mut) {
        if let Some(field) = create
            .get_mut("properties")
            .and_then(|p| p.get_mut("credits"))
        {
            *field = credits.clone();
        }
        // `kind` is required, so exactly one branch applies.
        create.insert(
            "oneOf".into(),
            json!([
                {
                    "description": "one-time plans have no interval",
                    "properties": {"kind": {"const": "one_time"}, "interval": {"type": "null"}}
                },
                {
                    "description": "subscriptions are billed every month or year",
                    "required": ["interval"],
                    "properties": {"kind": {"const": "subscription"}, "interval": {"type": "string"}}
                }
            ]),
        );
    }
    if let Some(update) = schemas.get_mut("UpdatePlan").and_then(Value::as_object_mut) {
        if let Some(field) = update
            .get_mut("properties")
            .and_then(|p| p.get_mut("credits"))
        {
            let mut nullable = credits.clone();
            if let Some(forms) = nullable["oneOf"].as_array_mut() {
                forms.push(json!({"type": "null"}));
            }
            *field = nullable;
        }
        let given: Vec<Value> = UPDATE_FIELDS
            .iter()
            .map(|(field, kind)| {
                let kind = if kind.is_empty() {
                    json!(["number", "string"])
                } else {
                    json!(kind)
                };
                json!({"required": [field], "properties": {*field: {"type": kind}}})
            })
            .collect();
        update.insert("minProperties".into(), json!(1));
        update.insert(
            "allOf".into(),
            json!([
                {"description": "at least one field to change, not null", "anyOf": given},
                {
                    "description": "kind one_time clears the interval, so it comes without one",
                    "anyOf": [
                        {"properties": {"kind": {"enum": ["subscription", null]}}},
                        {"properties": {"interval": {"type": "null"}}}
                    ]
                }
            ]),
        );
    }
}
