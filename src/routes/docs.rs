//! The OpenAPI document, generated from the handlers' annotations, and a Swagger UI page
//! whose assets are compiled into the binary (no network needed to browse it).

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, auth, billing, credits, email_links, health, metrics, plans, sessions, test_info, users,
    webhooks, ErrorBody, MessageResponse,
};
use crate::services::auth::TokenPair;

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
        sessions::list_sessions, sessions::revoke_session, sessions::logout_all, sessions::own_activity,
        admin::list_users, admin::update_user, admin::activity,
        health::health,
        health::live,
        health::ready,
        metrics::scrape,
        plans::list_plans, plans::admin_list_plans, plans::create_plan, plans::update_plan,
        billing::checkout, billing::portal, billing::subscription, billing::cancel_subscription,
        billing::payment_methods, billing::detach_payment_method, billing::events,
        webhooks::stripe_webhook,
        test_info::test_info,
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

/// The document as JSON, built once.
pub fn openapi_json() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        super::openapi_contract::complete(&mut doc);
        doc
    })
}

pub fn router() -> Router {
    Router::new()
        .route("/openapi.json", get(|| async { Json(openapi_json()) }))
        .merge(swagger_ui_dist::generate_routes(
            swagger_ui_dist::ApiDefinition {
                uri_prefix: "/docs",
                api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json"),
                title: Some("auth-service API"),
            },
        ))
}
