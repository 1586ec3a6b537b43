//! Registration, login, sessions and their tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::caller::{AccessClaims, ClientInfo, CurrentUser};
use crate::domain::{Email, Password, Username};
use crate::error::AppError;
use crate::services::audit;
use crate::services::mail::VERIFY_LINK_HOURS;
use crate::services::tokens::{hash_token, new_opaque_token, Assurance, Claims};
use crate::state::AppState;
use crate::store::{
    now, CallerRow, NewSession, NewUser, RefreshRead, Session, TokenGrant, TokenPurpose, User,
};

/// After a rotation the replaced refresh token is still honoured this long (a client
/// retrying a refresh whose answer it lost); after that, presenting it is treated as theft.
pub const REFRESH_REUSE_GRACE_SECONDS: i64 = 10;

/// `last_seen_at` is written at most this often per session, never on every request.
pub const LAST_SEEN_RESOLUTION_SECONDS: i64 = 300;

const INCORRECT_LOGIN: &str = "Incorrect username or password";

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

pub async fn register(
    state: &AppState,
    username: Username,
    email: Email,
    password: Password,
    client: &ClientInfo,
) -> Result<(User, TokenPair), AppError> {
    let password_hash = state.passwords.hash(&password, "password").await?;
    let created_at = now();
    let token = new_opaque_token();
    let grant = TokenGrant {
        purpose: TokenPurpose::VerifyEmail,
        token_hash: hash_token(&token),
        email: email.as_str().to_owned(),
        created_at,
        expires_at: created_at + chrono::Duration::hours(VERIFY_LINK_HOURS),
    };
    let welcome = state
        .mail
        .welcome(email.as_str(), username.as_str(), &token)?;
    let new_user = NewUser {
        username_key: username.key(),
        username: username.into(),
        email: email.into(),
        password_hash,
        is_admin: false,
        is_verified: false,
        created_at,
    };
    let user = state
        .store
        .create_user(
            &new_user,
            Some(&grant),
            &[welcome],
            &audit::plain(audit::REGISTER, None, client),
        )
        .await?;
    state.mail_queued();
    let tokens = start_session(state, &user, client, None).await?;
    Ok((user, tokens))
}

/// What a correct password gives: the token pair, or (on an account with a second factor)
/// the challenge of the second step and no token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    MfaRequired(crate::services::mfa::MfaChallenge),
}

/// `identifier` is a username or an email address. Unknown users and wrong passwords get
/// the same answer after the same work.
pub async fn login(
    state: &AppState,
    identifier: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<LoginOutcome, AppError> {
    let result = check_login(state, identifier, password, client).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(AppError::Unauthorized { .. }) => "invalid_credentials",
        Err(AppError::TooManyRequests { .. }) => "throttled",
        Err(AppError::Forbidden { .. }) => "disabled",
        Err(_) => "error",
    };
    crate::telemetry::metrics::login(outcome);
    result
}

async fn check_login(
    state: &AppState,
    identifier: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<LoginOutcome, AppError> {
    let identifier = identifier.trim().to_lowercase();
    // Counted before the password is checked (see protection/login.rs): parallel guesses
    // cannot all be tried. The key is the name as typed, so the answer never tells which
    // names share an account, nor whether one exists.
    let client_key = client.ip.as_deref().unwrap_or("unknown");
    let ticket = state
        .limiter
        .reserve_login(&identifier, client_key)
        .await
        .map_err(|wait| {
            crate::telemetry::metrics::rate_limited("login");
            too_many_failures(wait)
        })?;
    let user = state.store.user_by_login(&identifier).await?;
    let verified = match &user {
        // An account created through a sign-in provider has no password: it fails like
        // a wrong password, after the same work.
        Some(user) if user.password_hash.is_empty() => {
            state.passwords.verify_dummy(password).await?;
            false
        }
        Some(user) => {
            state
                .passwords
                .verify(password, &user.password_hash)
                .await?
        }
        None => {
            state.passwords.verify_dummy(password).await?;
            false
        }
    };
    let user_id = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|_| verified) else {
        let failure = audit::plain(audit::LOGIN_FAILURE, user_id, client);
        if let Err(e) = state.store.record_activity(&failure).await {
            tracing::warn!(error = %e, "could not record a failed login");
        }
        return Err(AppError::unauthorized(INCORRECT_LOGIN));
    };
    state.limiter.login_succeeded(&ticket).await;
    if !user.is_active {
        return Err(AppError::Forbidden {
            code: "account_disabled",
            detail: "Account is disabled".into(),
        });
    }
    if state.passwords.needs_rehash(&user.password_hash) {
        upgrade_hash(state, &user, password, client).await;
    }
    if let Some(challenge) = crate::services::mfa::challenge_for(
        state,
        &user,
        crate::services::mfa::FirstFactor::Password,
    )
    .await?
    {
        return Ok(LoginOutcome::MfaRequired(challenge));
    }
    start_session(state, &user, client, Some(audit::LOGIN_SUCCESS))
        .await
        .map(LoginOutcome::Tokens)
}

/// Re-hashes with today's scheme and cost. Best effort: a failure only means we try again
/// next login. (A password the configured scheme cannot take, such as one over 72 bytes
/// under bcrypt, keeps its old hash and still logs in.)
async fn upgrade_hash(state: &AppState, user: &User, password: &str, client: &ClientInfo) {
    let Ok(password) = Password::parse(password.to_owned()) else {
        return;
    };
    match state.passwords.hash(&password, "password").await {
        Ok(hash) => {
            let details = json!({
                "from": scheme_of(&user.password_hash),
                "to": scheme_of(&hash),
            });
            let activity =
                audit::activity(audit::PASSWORD_HASH_UPGRADE, Some(user.id), client, details);
            let upgraded = state
                .store
                .upgrade_password_hash(user.id, &user.password_hash, &hash, &activity)
                .await;
            if let Err(e) = upgraded {
                tracing::warn!(user_id = user.id, error = %e, "could not store upgraded password hash");
            }
        }
        Err(e) => tracing::info!(user_id = user.id, error = %e, "password hash not upgraded"),
    }
}

/// The kind of a stored hash, for the audit trail (never the hash itself).
fn scheme_of(hash: &str) -> &'static str {
    if hash.starts_with("$argon2id$") {
        "argon2id"
    } else if hash.starts_with("$argon2") {
        "argon2"
    } else if hash.starts_with("$2") {
        "bcrypt"
    } else {
        "other"
    }
}

fn too_many_failures(retry_after_secs: u64) -> AppError {
    AppError::TooManyRequests {
        detail: "Too many failed login attempts; try again later".into(),
        retry_after_secs,
    }
}

pub async fn start_session(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    event: Option<&'static str>,
) -> Result<TokenPair, AppError> {
    let activity = event.map(|event| audit::plain(event, Some(user.id), client));
    start_session_recording(state, user, client, activity, &Assurance::password()).await
}

/// Starts a session and records `activity` (with its details) in the same transaction.
pub async fn start_session_recording(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    activity: Option<crate::store::Activity>,
    assurance: &Assurance,
) -> Result<TokenPair, AppError> {
    let created_at = now();
    let refresh_token = new_opaque_token();
    let session = NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id,
        refresh_token_hash: hash_token(&refresh_token),
        created_at,
        expires_at: created_at + state.config.session_lifetime(),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        assurance: assurance.to_stored(),
        // A sign-in that passed a second factor counts as a fresh step-up.
        second_factor_at: (assurance.aal == "aal2").then_some(created_at),
    };
    state
        .store
        .create_session(&session, activity.as_ref())
        .await?;
    pair(
        state,
        user,
        &session.id,
        session.expires_at,
        refresh_token,
        created_at,
        assurance,
    )
}

fn pair(
    state: &AppState,
    user: &User,
    session_id: &str,
    session_expires_at: DateTime<Utc>,
    refresh_token: String,
    now: DateTime<Utc>,
    assurance: &Assurance,
) -> Result<TokenPair, AppError> {
    let access = state
        .tokens
        .issue_access(user, session_id, session_expires_at, now, assurance)?;
    Ok(TokenPair {
        access_token: access.token,
        token_type: "bearer",
        refresh_token,
        expires_in: access.expires_in,
    })
}

/// Checks a bearer token and its session: the per-request check (one indexed lookup).
pub async fn authenticate(state: &AppState, bearer: &str) -> Result<CurrentUser, AppError> {
    let claims = state
        .tokens
        .verify_access(bearer)
        .await
        .ok_or_else(AppError::invalid_token)?;
    let (session, user) = live_session(state, &claims).await?;
    Ok(seen(state, session, user))
}

/// The browser's form of [`authenticate`]: the web pages' cookie names a session and
/// carries the refresh token it was started with (browsers never rotate it), so revocation,
/// logout-all, password change and reset end a browser session exactly like an API one.
pub async fn authenticate_session(
    state: &AppState,
    session_id: &str,
    refresh_token: &str,
) -> Result<CurrentUser, AppError> {
    let (session, user) = state
        .store
        .session_with_user(session_id)
        .await?
        .ok_or_else(AppError::invalid_token)?;
    let presented = hash_token(refresh_token);
    let matches: bool =
        subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), session.refresh_token_hash.as_bytes())
            .into();
    if !matches || !session.is_live(now()) || !user.is_active {
        return Err(AppError::invalid_token());
    }
    Ok(seen(state, session, user))
}

/// Records (at most every few minutes, off the request path) that the session was used.
fn seen(state: &AppState, session: Session, user: User) -> CurrentUser {
    let now = now();
    if now - session.last_seen_at > chrono::Duration::seconds(LAST_SEEN_RESOLUTION_SECONDS) {
        // Off the request path: the answer does not wait for this write.
        let (store, id) = (state.store.clone(), session.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(&id, now).await {
                tracing::debug!(error = %e, "could not record session activity");
            }
        });
    }
    CurrentUser {
        user,
        session_id: session.id,
        second_factor_at: session.second_factor_at,
    }
}

pub(crate) async fn live_session(
    state: &AppState,
    claims: &Claims,
) -> Result<(Session, User), AppError> {
    let user_id = claims.user_id().ok_or_else(AppError::invalid_token)?;
    let found = state.store.session_with_user(&claims.sid).await?;
    check_session(user_id, found)
}

/// The per-request rules for a token's session, however it was read: it exists, belongs to
/// the token's subject, is neither revoked nor expired, and its user is active (a deleted
/// user has no sessions left).
fn check_session(token_user_id: i64, found: CallerRow) -> Result<(Session, User), AppError> {
    let (session, user) = found.ok_or_else(AppError::invalid_token)?;
    if session.user_id != token_user_id || !session.is_live(now()) || !user.is_active {
        return Err(AppError::invalid_token());
    }
    Ok((session, user))
}

/// Completes the authentication of a verified token whose session was read together with a
/// read's data (`services::reads`): the same rules as [`authenticate`].
pub fn admit(
    state: &AppState,
    claims: &AccessClaims,
    found: CallerRow,
) -> Result<CurrentUser, AppError> {
    let (session, user) = check_session(claims.user_id, found)?;
    claims.note_authenticated(user.id);
    Ok(seen(state, session, user))
}

/// The session check alone, for a verified token (a read that needs nothing else).
pub async fn admit_session(
    state: &AppState,
    claims: &AccessClaims,
) -> Result<CurrentUser, AppError> {
    let found = state.store.session_with_user(&claims.session_id).await?;
    admit(state, claims, found)
}

/// Exchanges a refresh token for a new pair, rotating it. A rotated token presented again
/// after the grace window revokes the whole session: one of its two holders is a thief.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    client: &ClientInfo,
) -> Result<TokenPair, AppError> {
    let presented = hash_token(refresh_token);
    let now = now();
    // One statement: the session the token is current for, or was retired from, with its user.
    let RefreshRead {
        session,
        user,
        retired_at,
    } = state
        .store
        .read_refresh(&presented)
        .await?
        .ok_or_else(AppError::invalid_token)?;
    if let Some(retired_at) = retired_at {
        if now - retired_at > chrono::Duration::seconds(REFRESH_REUSE_GRACE_SECONDS) {
            let reuse = audit::activity(
                audit::REFRESH_REUSE_DETECTED,
                Some(session.user_id),
                client,
                json!({ "session_id": session.id }),
            );
            if state
                .store
                .revoke_session(session.user_id, &session.id, &reuse)
                .await?
            {
                tracing::warn!(session_id = %session.id, user_id = session.user_id,
                    "refresh token reuse detected; session revoked");
            }
            return Err(AppError::invalid_token());
        }
        // Within the grace window: a retry of a refresh whose answer was lost.
    }
    if !session.is_live(now) || !user.is_active {
        return Err(AppError::invalid_token());
    }
    rotate(state, &session, &user, now).await
}

/// Replaces the session's current refresh token; concurrent rotations have one winner.
async fn rotate(
    state: &AppState,
    session: &Session,
    user: &User,
    now: DateTime<Utc>,
) -> Result<TokenPair, AppError> {
    let new_token = new_opaque_token();
    let rotated = state
        .store
        .rotate_refresh_token(
            &session.id,
            &session.refresh_token_hash,
            &hash_token(&new_token),
            now,
        )
        .await?;
    if !rotated {
        // Lost a race with a concurrent refresh or a revocation.
        return Err(AppError::invalid_token());
    }
    // A refreshed token keeps how the session was started (aal2 after a second factor).
    pair(
        state,
        user,
        &session.id,
        session.expires_at,
        new_token,
        now,
        &Assurance::from_stored(&session.assurance),
    )
}

/// The original service's form: an unexpired access token buys a new pair for its session.
pub async fn refresh_with_access_token(
    state: &AppState,
    access_token: &str,
) -> Result<TokenPair, AppError> {
    let claims = state
        .tokens
        .verify_access(access_token)
        .await
        .ok_or_else(AppError::invalid_token)?;
    let (session, user) = live_session(state, &claims).await?;
    rotate(state, &session, &user, now()).await
}

pub async fn logout(
    state: &AppState,
    current: &CurrentUser,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let activity = audit::plain(audit::LOGOUT, Some(current.user.id), client);
    state
        .store
        .revoke_session(current.user.id, &current.session_id, &activity)
        .await?;
    Ok(())
}
