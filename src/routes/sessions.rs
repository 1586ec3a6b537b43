//! The caller's own login sessions and activity: list, revoke one, revoke all.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ErrorBody, MessageResponse};
use crate::caller::{AccessClaims, ClientInfo, CurrentUser};
use crate::error::AppError;
use crate::extract::AppQuery;
use crate::services::{reads, sessions};
use crate::state::AppState;
use crate::store::{ActivityRecord, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/sessions", get(list_sessions))
        .route("/auth/sessions/{id}", delete(revoke_session))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/activity", get(own_activity))
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    id: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// True for the session of the token that asked.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsResponse {
    sessions: Vec<SessionResponse>,
}

fn session_response(s: Session, current_id: &str) -> SessionResponse {
    SessionResponse {
        current: s.id == current_id,
        id: s.id,
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        ip: s.ip,
        user_agent: s.user_agent,
    }
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = SessionsResponse), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    claims: AccessClaims,
) -> Result<Json<SessionsResponse>, AppError> {
    // One statement: the session check joined with the user's live sessions.
    let (current_id, sessions) = reads::live_sessions(&state, &claims).await?;
    Ok(Json(SessionsResponse {
        sessions: sessions
            .into_iter()
            .map(|s| session_response(s, &current_id))
            .collect(),
    }))
}

/// Ends one of the caller's sessions (possibly the current one).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No live session of yours has this id", body = ErrorBody),
    ))]
async fn revoke_session(
    State(state): State<AppState>,
    client: ClientInfo,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<MessageResponse>, AppError> {
    sessions::revoke(&state, &current, &id, &client).await?;
    Ok(Json(MessageResponse::new("Session revoked")))
}

#[derive(Serialize, ToSchema)]
pub struct LogoutAllResponse {
    message: &'static str,
    /// How many sessions ended, the caller's own included.
    revoked: u64,
}

/// Ends every session of the caller, this one included.
#[utoipa::path(post, path = "/auth/logout-all", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = LogoutAllResponse), (status = 401, body = ErrorBody)))]
async fn logout_all(
    State(state): State<AppState>,
    client: ClientInfo,
    current: CurrentUser,
) -> Result<Json<LogoutAllResponse>, AppError> {
    let revoked = sessions::revoke_all(&state, &current, &client).await?;
    Ok(Json(LogoutAllResponse {
        message: "All sessions revoked",
        revoked,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    pub skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityResponse {
    id: i64,
    user_id: Option<i64>,
    event: String,
    ip: Option<String>,
    user_agent: Option<String>,
    #[schema(value_type = Object)]
    details: Value,
    created_at: DateTime<Utc>,
}

impl From<ActivityRecord> for ActivityResponse {
    fn from(a: ActivityRecord) -> Self {
        Self {
            id: a.id,
            user_id: a.user_id,
            event: a.event,
            ip: a.ip,
            user_agent: a.user_agent,
            details: serde_json::from_str(&a.details).unwrap_or(Value::Null),
            created_at: a.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActivityPage {
    activities: Vec<ActivityResponse>,
    total_count: i64,
}

pub async fn activity_page(
    state: &AppState,
    user_id: Option<i64>,
    skip: u32,
    limit: Option<i64>,
) -> Result<ActivityPage, AppError> {
    let limit = page_limit(limit)?;
    let (rows, total_count) = state
        .store
        .activities(user_id, i64::from(skip), limit)
        .await?;
    Ok(ActivityPage {
        activities: rows.into_iter().map(Into::into).collect(),
        total_count,
    })
}

/// The caller's own security events, newest first.
#[utoipa::path(get, path = "/auth/activity", tag = "sessions", params(ActivityQuery), security(("bearer" = [])),
    responses((status = 200, body = ActivityPage), (status = 401, body = ErrorBody), (status = 422, description = "Bad paging")))]
async fn own_activity(
    State(state): State<AppState>,
    current: CurrentUser,
    AppQuery(query): AppQuery<ActivityQuery>,
) -> Result<Json<ActivityPage>, AppError> {
    Ok(Json(
        activity_page(&state, Some(current.user.id), query.skip, query.limit).await?,
    ))
}
