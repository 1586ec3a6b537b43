//! JSON, form and query extractors whose failures are 422s in the FastAPI-compatible shape
//! (`loc` names the offending field), 413 for oversized bodies, never a 500.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldError};

pub struct AppJson<T>(pub T);
pub struct AppQuery<T>(pub T);
/// A body that may be JSON or `application/x-www-form-urlencoded` (OAuth2 password login).
/// Unlike the others it lets NUL through: login answers such text with its usual 401.
pub struct JsonOrForm<T>(pub T);
/// A JSON body that may be absent (no JSON content type, empty, or `null`): `None` then. A JSON
/// body that is present must parse.
pub struct OptionalJson<T>(pub Option<T>);

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json(content_type: &str) -> bool {
    content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"))
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AppError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::validation("body", "", "Could not read the request body", "body_error")
        }
    })
}

fn wrong_content_type(expected: &str) -> AppError {
    AppError::validation(
        "body",
        "",
        format!("Expected a body with Content-Type {expected}"),
        "content_type",
    )
}

/// Turns a deserialisation failure into a 422 entry naming the field.
fn field_error(location: &str, path: &str, message: &str, syntax: bool) -> FieldError {
    // serde_json appends " at line L column C"; the client wants the reason.
    let message = message.split(" at line ").next().unwrap_or(message);
    if syntax {
        return FieldError::new(
            location,
            "",
            format!("Invalid {location}: {message}"),
            "json_invalid",
        );
    }
    let path = if path == "." { "" } else { path };
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let full = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return FieldError::new(location, &full, "Field required", "missing");
    }
    let kind = if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "type_error"
    } else {
        "value_error"
    };
    FieldError::new(location, path, message, kind)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let json_error = |path: &str, err: serde_json::Error| {
        let syntax = err.is_syntax() || err.is_eof();
        AppError::Validation(vec![field_error("body", path, &err.to_string(), syntax)])
    };
    // Every request body is an object; serde would otherwise fill a struct from an array
    // by position (`["alice", "pw"]` as {username, password}).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(AppError::validation(
            "body",
            "",
            "Input should be a JSON object",
            "type_error",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(err) => {
            let path = err.path().to_string();
            let err = err.into_inner();
            let first = field_error(
                "body",
                &path,
                &err.to_string(),
                err.is_syntax() || err.is_eof(),
            );
            return Err(AppError::Validation(every_field_error::<T>(bytes, first)));
        }
    };
    de.end().map_err(|err| json_error("", err))?;
    Ok(value)
}

/// serde stops at the first bad field; a client (and the pages) want every one, as the
/// original's validation gives. Each bad top-level field is taken out and the rest tried
/// again, until it parses or a field is missing: serde names one missing field at a time,
/// and one we took out would be named next, so that is where the list ends.
fn every_field_error<T: DeserializeOwned>(bytes: &[u8], first: FieldError) -> Vec<FieldError> {
    const MAX_FIELDS: usize = 32;
    let top = |e: &FieldError| e.loc.get(1).cloned();
    let mut errors = vec![first];
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(bytes) else {
        return errors;
    };
    while errors.len() < MAX_FIELDS {
        let Some(field) = top(&errors[errors.len() - 1]) else {
            break;
        };
        if object.remove(&field).is_none() {
            break; // a missing field: the next try would name it again
        }
        let Ok(rest) = serde_json::to_vec(&object) else {
            break;
        };
        let mut de = serde_json::Deserializer::from_slice(&rest);
        let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut de) else {
            break;
        };
        let path = err.path().to_string();
        let next = field_error("body", &path, &err.into_inner().to_string(), false);
        if errors.iter().any(|e| top(e) == top(&next)) {
            break; // the field we took out, now reported missing
        }
        errors.push(next);
    }
    errors
}

fn parse_urlencoded<T: DeserializeOwned>(location: &str, raw: &[u8]) -> Result<T, AppError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        AppError::Validation(vec![field_error(
            location,
            &path,
            &err.into_inner().to_string(),
            false,
        )])
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&content_type(req.headers())) {
            return Err(wrong_content_type("application/json"));
        }
        let bytes = body_bytes(req, state).await?;
        super::storable::check_json(&bytes)?;
        parse_json(&bytes).map(AppJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&content_type(req.headers())) {
            return Ok(OptionalJson(None));
        }
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        super::storable::check_json(&bytes)?;
        // A JSON `null` says "no body" as plainly as an empty one (the document's optional
        // bodies are nullable).
        parse_json::<Option<T>>(&bytes).map(OptionalJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let kind = content_type(req.headers());
        if is_json(&kind) {
            let bytes = body_bytes(req, state).await?;
            parse_json(&bytes).map(JsonOrForm)
        } else if kind == "application/x-www-form-urlencoded" {
            let bytes = body_bytes(req, state).await?;
            parse_urlencoded("body", &bytes).map(JsonOrForm)
        } else {
            Err(wrong_content_type(
                "application/json or application/x-www-form-urlencoded",
            ))
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        super::storable::check_query(raw)?;
        parse_urlencoded("query", raw.as_bytes()).map(AppQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Body {
        name: String,
        count: u32,
    }

    fn first_error(result: Result<Body, AppError>) -> FieldError {
        match result {
            Err(AppError::Validation(errors)) => errors[0].clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_field_names_it() {
        let e = first_error(parse_json(br#"{"name": "x"}"#));
        assert_eq!(e.loc, ["body", "count"]);
        assert_eq!(e.kind, "missing");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = first_error(parse_json(br#"{"name": "x", "count": "many"}"#));
        assert_eq!(e.loc, ["body", "count"]);
        assert_eq!(e.kind, "type_error");
        assert!(!e.msg.contains("line"), "{}", e.msg);
    }

    #[test]
    fn malformed_and_trailing_json_are_rejected() {
        assert_eq!(
            first_error(parse_json(br#"{"name": "#)).kind,
            "json_invalid"
        );
        assert_eq!(
            first_error(parse_json(br#"{"name":"x","count":1} trailing"#)).kind,
            "json_invalid"
        );
        assert_eq!(first_error(parse_json(b"")).kind, "json_invalid");
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let e = first_error(parse_urlencoded("query", b"name=x&count=-1"));
        assert_eq!(e.loc, ["query", "count"]);
    }
}
