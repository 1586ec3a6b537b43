//! The admins' page for outgoing webhooks (DESIGN §16): the endpoints, registering one
//! (its secret shown once, on the answer page, never in a URL), changing its URL, events
//! and description, enabling, disabling,
//! testing, rotating the secret, deleting, and an endpoint's latest deliveries with a
//! retry button. The API (/admin/webhooks) does the same for programs; both go through
//! `services::webhooks`. Every change is one form (POST /admin/webhooks/manage) naming its
//! action, like the user flags form of /admin.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::account::when;
use super::admin::not_an_admin;
use super::{forgery_check, user_page, NoticeQuery};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{WebhookDelivery, WebhookEndpoint, EVENT_TYPES};
use crate::web::render::FormErrors;
use crate::web::session::SignedIn;

const PAGE: &str = "/admin/webhooks/manage";
const DELIVERIES_SHOWN: i64 = 50;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WebhooksQuery {
    /// Show this endpoint's latest deliveries.
    deliveries: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WebhookForm {
    csrf: String,
    /// create | update | enable | disable | test | rotate | delete | retry
    action: String,
    endpoint_id: String,
    delivery_id: String,
    url: String,
    /// Event types separated by commas or spaces; empty or `*`: every type.
    events: String,
    description: String,
}

#[derive(Default, Serialize)]
struct NewValues {
    url: String,
    events: String,
    description: String,
}

#[derive(Serialize)]
struct EndpointRow {
    id: i64,
    url: String,
    /// As the edit form's field takes them back.
    events: String,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created: String,
}

impl From<WebhookEndpoint> for EndpointRow {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            events: e.event_types().join(", "),
            id: e.id,
            url: e.url,
            description: e.description.unwrap_or_default(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created: when(e.created_at),
        }
    }
}

#[derive(Serialize)]
struct DeliveryRow {
    id: i64,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last: String,
    next: String,
    created: String,
}

impl From<WebhookDelivery> for DeliveryRow {
    fn from(d: WebhookDelivery) -> Self {
        let last = match (d.last_status_code, d.last_error) {
            (Some(code), _) => format!("HTTP {code}"),
            (None, Some(error)) => error,
            (None, None) => String::new(),
        };
        Self {
            next: if d.status == "pending" {
                when(d.next_attempt_at)
            } else {
                String::new()
            },
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last,
            created: when(d.created_at),
        }
    }
}

/// What one rendering shows besides the list.
#[derive(Default)]
struct View {
    notice: Option<&'static str>,
    /// A secret just made (creation or rotation), shown this once: (endpoint id, secret).
    secret: Option<(i64, String)>,
    deliveries_of: Option<i64>,
    values: NewValues,
    errors: FormErrors,
}

async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    view: View,
    status: StatusCode,
) -> Response {
    let endpoints = match state.webhooks.endpoints().await {
        Ok(all) => all,
        Err(e) => return e.into_response(),
    };
    let deliveries = match view.deliveries_of {
        Some(id) => match state.webhooks.deliveries(id, None, DELIVERIES_SHOWN).await {
            Ok(rows) => Some(rows.into_iter().map(DeliveryRow::from).collect::<Vec<_>>()),
            // An endpoint deleted meanwhile (or a hand-made URL): the list alone.
            Err(AppError::NotFound { .. }) => None,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    user_page("admin_webhooks.html", signed_in)
        .status(status)
        .with("active", "admin")
        .with("notice", view.notice)
        .with(
            "endpoints",
            endpoints
                .into_iter()
                .map(EndpointRow::from)
                .collect::<Vec<_>>(),
        )
        .with("event_types", EVENT_TYPES)
        .with("secret", view.secret)
        .with("deliveries_of", view.deliveries_of)
        .with("deliveries", deliveries)
        .with("new", view.values)
        .errors(&view.errors)
        .into_response()
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<WebhooksQuery>,
) -> Response {
    if !signed_in.current.is_admin() {
        return not_an_admin();
    }
    let notice = NoticeQuery {
        notice: query.notice,
        oauth_error: None,
    };
    let view = View {
        notice: notice.message(),
        deliveries_of: query.deliveries.as_deref().and_then(|d| d.parse().ok()),
        ..View::default()
    };
    render(&state, &signed_in, view, StatusCode::OK).await
}

fn event_list(raw: &str) -> Vec<String> {
    let types: Vec<String> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if types.is_empty() {
        vec!["*".to_owned()]
    } else {
        types
    }
}

pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<WebhookForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    if !signed_in.current.is_admin() {
        return not_an_admin();
    }
    let id: Option<i64> = form.endpoint_id.trim().parse().ok();
    let after = |notice: &str| {
        let mut to = format!("{PAGE}?notice={notice}");
        if let Some(id) = id.filter(|_| notice == "delivery_retried") {
            to.push_str(&format!("&deliveries={id}"));
        }
        Redirect::to(&to).into_response()
    };
    let webhooks = &state.webhooks;
    let result: Result<Response, AppError> = match (form.action.as_str(), id) {
        ("create", _) => {
            let description = Some(form.description.trim()).filter(|d| !d.is_empty());
            let events = event_list(&form.events);
            match webhooks.create(form.url.trim(), &events, description).await {
                Ok(created) => {
                    let view = View {
                        secret: Some((created.endpoint.id, created.secret)),
                        ..View::default()
                    };
                    return render(&state, &signed_in, view, StatusCode::CREATED).await;
                }
                Err(e) => {
                    let view = View {
                        errors: FormErrors::from_error(&e, &[]),
                        values: NewValues {
                            url: form.url,
                            events: form.events,
                            description: form.description,
                        },
                        ..View::default()
                    };
                    return render(&state, &signed_in, view, e.status()).await;
                }
            }
        }
        ("update", Some(id)) => {
            let events = event_list(&form.events);
            let description = Some(form.description.trim()).filter(|d| !d.is_empty());
            webhooks
                .update(
                    id,
                    Some(form.url.trim()),
                    Some(&events),
                    Some(description),
                    None,
                )
                .await
                .map(|_| after("endpoint_updated"))
        }
        ("enable", Some(id)) => webhooks
            .update(id, None, None, None, Some(true))
            .await
            .map(|_| after("endpoint_enabled")),
        ("disable", Some(id)) => webhooks
            .update(id, None, None, None, Some(false))
            .await
            .map(|_| after("endpoint_disabled")),
        ("test", Some(id)) => webhooks.send_test(id).await.map(|_| after("test_sent")),
        ("delete", Some(id)) => webhooks
            .delete(id)
            .await
            .map(|()| after("endpoint_deleted")),
        ("retry", Some(id)) => match form.delivery_id.trim().parse() {
            Ok(delivery) => webhooks
                .retry(id, delivery)
                .await
                .map(|()| after("delivery_retried")),
            Err(_) => Err(AppError::not_found("Delivery not found")),
        },
        ("rotate", Some(id)) => match webhooks.rotate(id).await {
            Ok(secret) => {
                let view = View {
                    secret: Some((id, secret)),
                    ..View::default()
                };
                return render(&state, &signed_in, view, StatusCode::OK).await;
            }
            Err(e) => Err(e),
        },
        (_, None) => Err(AppError::not_found("Webhook endpoint not found")),
        _ => Err(AppError::BadRequest {
            code: "unknown_action",
            detail: "Unknown action".into(),
        }),
    };
    match result {
        Ok(response) => response,
        Err(e) => {
            let view = View {
                errors: FormErrors::from_error(&e, &[]),
                ..View::default()
            };
            render(&state, &signed_in, view, e.status()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::event_list;

    #[test]
    fn events_are_split_on_commas_and_spaces_and_default_to_all() {
        assert_eq!(event_list(""), vec!["*"]);
        assert_eq!(event_list(" , "), vec!["*"]);
        assert_eq!(
            event_list("user.created, credits.low_balance\nuser.deleted"),
            vec!["user.created", "credits.low_balance", "user.deleted"]
        );
    }
}
