//! Rendering: the compiled-in templates, the context every page shares, and how a
//! service's `AppError` becomes messages next to the fields it is about.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::error::AppError;

macro_rules! page_templates {
    ($($name:literal),+ $(,)?) => {
        [$(($name, include_str!(concat!("../../templates/pages/", $name)))),+]
    };
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in page_templates!(
        "base.html",
        "macros.html",
        "login.html",
        "mfa.html",
        "mfa_setup.html",
        "signup.html",
        "forgot.html",
        "reset.html",
        "message.html",
        "account.html",
        "credits.html",
        "admin.html",
        "admin_billing.html",
        "admin_webhooks.html",
    ) {
        // The sources are part of the binary; `templates_parse` (a unit test) and the
        // start-up call in `web::router` catch a broken one before any request.
        if let Err(e) = env.add_template(name, source) {
            panic!("page template {name} does not parse: {e:#}");
        }
    }
    env
});

pub fn templates() -> &'static Environment<'static> {
    &TEMPLATES
}

/// Messages for a form: per field (shown under it, tied by aria-describedby) and general.
#[derive(Debug, Default, Serialize)]
pub struct FormErrors {
    pub fields: BTreeMap<String, String>,
    pub general: Option<String>,
}

impl FormErrors {
    pub fn field(&mut self, name: &str, msg: impl Into<String>) {
        self.fields
            .entry(name.to_owned())
            .or_insert_with(|| sentence(msg.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }

    /// The service's answer, as the API would give it, in words for a page. `rename` maps
    /// the API's field names onto the form's where they differ.
    pub fn from_error(err: &AppError, rename: &[(&str, &str)]) -> Self {
        let mut errors = Self::default();
        match err {
            AppError::Validation(list) => {
                for e in list {
                    let field = e.loc.last().map(String::as_str).unwrap_or_default();
                    let field = rename
                        .iter()
                        .find(|(api, _)| *api == field)
                        .map_or(field, |(_, form)| *form);
                    if field.is_empty() || matches!(field, "body" | "query") {
                        errors.general = Some(e.msg.clone());
                    } else {
                        errors.field(field, e.msg.clone());
                    }
                }
            }
            AppError::TooManyRequests {
                detail,
                retry_after_secs,
            } => {
                errors.general = Some(format!(
                    "{}. Please wait {} and try again.",
                    detail
                        .split(";")
                        .next()
                        .unwrap_or(detail)
                        .trim_end_matches('.'),
                    readable_wait(*retry_after_secs)
                ));
            }
            AppError::Internal(_) | AppError::Unavailable => {
                errors.general =
                    Some("Something went wrong on our side. Please try again in a moment.".into());
            }
            other => errors.general = Some(other.to_string()),
        }
        errors
    }
}

/// Messages start with a capital letter (some domain messages do not).
fn sentence(msg: String) -> String {
    let mut chars = msg.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => msg,
    }
}

pub fn readable_wait(secs: u64) -> String {
    let secs = secs.max(1);
    match secs {
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "1 minute".into(),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

/// One rendered page: a template, its context, a status.
pub struct Page {
    template: &'static str,
    status: StatusCode,
    context: BTreeMap<&'static str, Value>,
}

impl Page {
    pub fn new(template: &'static str) -> Self {
        let mut context = BTreeMap::new();
        // Ours, and plain ASCII: no escaping (which would turn its slashes into entities).
        context.insert(
            "stylesheet",
            Value::from_safe_string(super::stylesheet_url()),
        );
        // Every template may look up `errors.fields[name]` and `errors.general`.
        context.insert("errors", Value::from_serialize(FormErrors::default()));
        Self {
            template,
            status: StatusCode::OK,
            context,
        }
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with(mut self, key: &'static str, value: impl Serialize) -> Self {
        self.context.insert(key, Value::from_serialize(&value));
        self
    }

    pub fn errors(self, errors: &FormErrors) -> Self {
        self.with("errors", errors)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let rendered = templates()
            .get_template(self.template)
            .and_then(|t| t.render(&self.context));
        match rendered {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = self.template, error = %e, "page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>Something went wrong on our side.</p>"),
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for name in [
            "login.html",
            "mfa.html",
            "mfa_setup.html",
            "account.html",
            "admin.html",
            "admin_billing.html",
            "admin_webhooks.html",
            "credits.html",
        ] {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn waits_read_like_words() {
        assert_eq!(readable_wait(0), "1 second");
        assert_eq!(readable_wait(42), "42 seconds");
        assert_eq!(readable_wait(61), "1 minute");
        assert_eq!(readable_wait(900), "15 minutes");
    }

    #[test]
    fn validation_errors_land_on_their_fields() {
        let err = AppError::validation("body", "new_password", "Too short", "value_error");
        let errors = FormErrors::from_error(&err, &[("new_password", "password")]);
        assert_eq!(
            errors.fields.get("password").map(String::as_str),
            Some("Too short")
        );
        let err = AppError::TooManyRequests {
            detail: "Too many failed login attempts; try again later".into(),
            retry_after_secs: 125,
        };
        let general = FormErrors::from_error(&err, &[]).general.unwrap();
        assert!(general.contains("3 minutes"), "{general}");
    }
}
