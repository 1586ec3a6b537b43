//! Refuses request text a database cannot store (NUL) with a 422 naming the field, before
//! a handler sees it: the same answer on PostgreSQL, which would fail the query, and on
//! SQLite, which would store it.

use serde_json::Value;

use crate::domain::is_storable;
use crate::error::AppError;

const MESSAGE: &str = "Text must not contain NUL characters";
const KIND: &str = "string_nul";

/// A JSON body: valid JSON carries NUL only as the escape `\u0000`, so bodies without it
/// pass at a glance and only the others are walked to find the field.
pub fn check_json(bytes: &[u8]) -> Result<(), AppError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    // Malformed JSON is left to the parser, which names the syntax error.
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    match field_with_nul(&value) {
        Some(path) => Err(AppError::validation("body", &path, MESSAGE, KIND)),
        None => Ok(()),
    }
}

/// A query string: NUL can only arrive percent-encoded.
pub fn check_query(raw: &str) -> Result<(), AppError> {
    if !raw.contains("%00") {
        return Ok(());
    }
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if !is_storable(&name) || !is_storable(&value) {
            let name = name.replace('\0', "");
            return Err(AppError::validation("query", &name, MESSAGE, KIND));
        }
    }
    Ok(())
}

/// The dotted path of the first string (or key) with a NUL; "" for the top level.
fn field_with_nul(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => (!is_storable(s)).then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| field_with_nul(item).map(|rest| join(&i.to_string(), &rest))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if !is_storable(key) {
                return Some(key.replace('\0', ""));
            }
            field_with_nul(item).map(|rest| join(key, &rest))
        }),
        _ => None,
    }
}

fn join(head: &str, rest: &str) -> String {
    if rest.is_empty() {
        head.to_owned()
    } else {
        format!("{head}.{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_loc(raw: &str) -> Option<Vec<String>> {
        match check_json(raw.as_bytes()) {
            Ok(()) => None,
            Err(AppError::Validation(errors)) => Some(errors[0].loc.clone()),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_names_the_field_with_nul() {
        assert_eq!(json_loc(r#"{"a": "x", "b": "y"}"#), None);
        assert_eq!(
            json_loc(r#"{"a": "x\\u0000"}"#),
            None,
            "an escaped backslash is text"
        );
        assert_eq!(
            json_loc(r#"{"a": "x", "reference_id": "ab\u0000c"}"#).unwrap(),
            ["body", "reference_id"]
        );
        assert_eq!(
            json_loc(r#"{"items": [{"n": "ok"}, {"n": "\u0000"}]}"#).unwrap(),
            ["body", "items", "1", "n"]
        );
        assert_eq!(json_loc(r#"{"k\u0000": 1}"#).unwrap(), ["body", "k"]);
        assert_eq!(
            json_loc(r#"{"broken": "\u0000"#),
            None,
            "left to the parser"
        );
    }

    #[test]
    fn query_names_the_parameter() {
        assert!(check_query("search=abc&skip=0").is_ok());
        match check_query("skip=0&search=ab%00c") {
            Err(AppError::Validation(errors)) => assert_eq!(errors[0].loc, ["query", "search"]),
            other => panic!("{other:?}"),
        }
    }
}
