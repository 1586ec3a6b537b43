//! The OpenAPI document, generated from the handlers' annotations, and a Swagger UI page
//! whose assets are compiled into the binary (no network needed to browse it).

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceExt;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin_webhooks;
use super::{
    admin, auth, billing, credit_holds, credits, email_links, health, identities, introspect,
    metrics, mfa, oauth, plans, sessions, signing_keys, test_info, users, webhooks, wellknown,
    ErrorBody, MessageResponse,
};
use crate::config::PasswordScheme;
use crate::domain::MAX_PASSWORD_CHARS;
use crate::services::auth::TokenPair;
use crate::services::passwords::BCRYPT_MAX_BYTES;

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-service", description = "Authentication and credits service"),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::me,
        email_links::verify_email, email_links::verify_email_link, email_links::resend_verification,
        email_links::password_reset_request, email_links::reset_password,
        email_links::cancel_email_change, email_links::cancel_email_change_link,
        users::get_user, users::change_password, users::change_email, users::delete_user,
        credits::balance, credits::add, credits::use_credits, credits::transactions,
        credit_holds::create_hold, credit_holds::capture_hold, credit_holds::release_hold,
        credit_holds::get_hold, credit_holds::list_holds,
        sessions::list_sessions, sessions::revoke_session, sessions::logout_all, sessions::own_activity,
        admin::list_users, admin::update_user, admin::activity, admin::reset_mfa,
        admin_webhooks::create_endpoint, admin_webhooks::list_endpoints, admin_webhooks::get_endpoint,
        admin_webhooks::update_endpoint, admin_webhooks::delete_endpoint, admin_webhooks::rotate_secret,
        admin_webhooks::deliveries, admin_webhooks::retry_delivery, admin_webhooks::send_test,
        health::health,
        oauth::providers, oauth::authorize, oauth::callback,
        identities::list_identities, identities::unlink_identity,
        mfa::enroll, mfa::confirm, mfa::status, mfa::remove, mfa::regenerate, mfa::verify,
        mfa::step_up,
        health::live,
        health::ready,
        metrics::scrape,
        plans::list_plans, plans::admin_list_plans, plans::create_plan, plans::update_plan,
        billing::checkout, billing::portal, billing::subscription, billing::cancel_subscription,
        billing::payment_methods, billing::detach_payment_method, billing::events,
        webhooks::stripe_webhook,
        test_info::test_info,
        wellknown::jwks, wellknown::openid_configuration, introspect::introspect,
        signing_keys::list_keys, signing_keys::rotate_keys,
    ),
    components(schemas(ErrorBody, MessageResponse, TokenPair)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document of an instance with the default configuration (what `auth-service openapi`
/// prints).
pub fn openapi_json() -> &'static serde_json::Value {
    openapi_json_for(PasswordScheme::Argon2id)
}

/// The document as JSON for an instance hashing new passwords with `scheme`, built once per
/// scheme: the longest accepted new password depends on it (72 bytes under bcrypt).
pub fn openapi_json_for(scheme: PasswordScheme) -> &'static serde_json::Value {
    static ARGON2ID: OnceLock<serde_json::Value> = OnceLock::new();
    static BCRYPT: OnceLock<serde_json::Value> = OnceLock::new();
    let cell = match scheme {
        PasswordScheme::Argon2id => &ARGON2ID,
        PasswordScheme::Bcrypt => &BCRYPT,
    };
    cell.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        super::openapi_contract::complete(&mut doc);
        state_password_limits(&mut doc, scheme);
        doc
    })
}

/// The request fields that set a new password, as (schema, property).
const NEW_PASSWORD_FIELDS: [(&str, &str); 3] = [
    ("RegisterRequest", "password"),
    ("ResetPasswordRequest", "new_password"),
    ("ChangePasswordRequest", "new_password"),
];

/// States the configured scheme's length limit on every new-password field: 1024
/// characters under argon2id (exact); under bcrypt 72 bytes of UTF-8, which JSON Schema
/// (counting characters) can only bound: `maxLength` 72 and the rule in the description.
fn state_password_limits(doc: &mut serde_json::Value, scheme: PasswordScheme) {
    let (max, description) = match scheme {
        PasswordScheme::Argon2id => (
            MAX_PASSWORD_CHARS,
            format!("At least 8 and at most {MAX_PASSWORD_CHARS} characters."),
        ),
        PasswordScheme::Bcrypt => (
            BCRYPT_MAX_BYTES,
            format!(
                "At least 8 characters and at most {BCRYPT_MAX_BYTES} bytes of UTF-8 \
                 (bcrypt is this instance's password hash)."
            ),
        ),
    };
    for (schema, field) in NEW_PASSWORD_FIELDS {
        let property = doc
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
            .and_then(serde_json::Value::as_object_mut);
        if let Some(property) = property {
            property.insert("maxLength".into(), max.into());
            property.insert("description".into(), description.clone().into());
        }
    }
}

/// The Swagger UI page's policy: its script, style sheet and the document come from this
/// origin only; no inline script runs. (Swagger UI sets element styles and uses `data:`
/// images, hence those two allowances.)
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Our own page instead of the crate's: that one starts Swagger UI with an inline script,
/// which a CSP without 'unsafe-inline' would block. This one loads a script file.
const DOCS_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>auth-service API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec="/openapi.json"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-initializer.js"></script>
</body>
</html>
"#;

/// Starts Swagger UI on the document the page names (`data-spec`).
const DOCS_INITIALIZER: &str = "window.onload = () => {\n\
  const root = document.getElementById('swagger-ui');\n\
  window.ui = SwaggerUIBundle({ url: root.dataset.spec, dom_id: '#swagger-ui' });\n\
};\n";

async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
        ],
        DOCS_PAGE,
    )
}

async fn docs_initializer() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        DOCS_INITIALIZER,
    )
}

/// The pages and the document of an instance hashing new passwords with `scheme`.
pub fn router(scheme: PasswordScheme) -> Router {
    // The crate's routes serve the vendored assets (compiled into the binary); the page
    // and its starter script are ours.
    let assets = swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: "/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json"),
        title: Some("auth-service API"),
    });
    let mut router = Router::new()
        .route(
            "/openapi.json",
            get(move || async move { Json(openapi_json_for(scheme)) }),
        )
        .route("/docs", get(docs_page))
        .route("/docs/", get(docs_page))
        .route("/docs/swagger-initializer.js", get(docs_initializer));
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui.css.map",
        "swagger-ui-bundle.js.map",
        "oauth2-redirect.html",
        "oauth2-redirect.js",
    ] {
        let assets = assets.clone();
        router = router.route(
            &format!("/docs/{asset}"),
            get(|request: Request| async move {
                match assets.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }),
        );
    }
    router
}
