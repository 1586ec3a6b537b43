//! The account lifecycle after registration: email verification, password reset,
//! change of password or email, deletion.

use serde_json::json;

use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::{Email, Password, Username};
use crate::error::AppError;
use crate::services::mail::{RESET_LINK_MINUTES, VERIFY_LINK_HOURS};
use crate::services::tokens::{hash_token, new_opaque_token};
use crate::services::{audit, email_change};
use crate::state::AppState;
use crate::store::{now, TokenGrant, TokenPurpose, User};

/// One verification mail per this many seconds and user.
pub const RESEND_VERIFICATION_INTERVAL_SECONDS: i64 = 60;
/// Reset links per account: at most one per this many seconds, and this many an hour.
pub const RESET_MAIL_INTERVAL_SECONDS: i64 = 60;
pub const RESET_MAILS_PER_HOUR: i64 = 5;

/// The "verified" access level (DESIGN §5): with REQUIRE_EMAIL_VERIFICATION, acting on the
/// account (password, email, deletion) needs a verified address.
pub fn ensure_verified(state: &AppState, current: &CurrentUser) -> Result<(), AppError> {
    if state.config.require_email_verification && !current.user.is_verified {
        return Err(AppError::Forbidden {
            code: "email_not_verified",
            detail: "Email not verified".into(),
        });
    }
    Ok(())
}

fn invalid_link() -> AppError {
    AppError::bad_request("invalid_token", "Invalid or expired token")
}

fn incorrect_password() -> AppError {
    AppError::unauthorized("Incorrect password")
}

fn grant(
    purpose: TokenPurpose,
    token: &str,
    email: &str,
    valid_for: chrono::Duration,
) -> TokenGrant {
    let created_at = now();
    TokenGrant {
        purpose,
        token_hash: hash_token(token),
        email: email.to_owned(),
        created_at,
        expires_at: created_at + valid_for,
    }
}

pub async fn verify_email(
    state: &AppState,
    token: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let activity = audit::plain(audit::EMAIL_VERIFIED, None, client);
    match state
        .store
        .verify_email(&hash_token(token), now(), &activity)
        .await?
    {
        Some(true) => Ok(()),
        Some(false) => Err(invalid_link()),
        // Not a verification link: perhaps the confirm link of a pending email change.
        None if email_change::confirm(state, token, client).await? => Ok(()),
        // Unknown, used, expired, or sent to an address the account no longer has.
        None => Err(invalid_link()),
    }
}

pub async fn resend_verification(state: &AppState, current: &CurrentUser) -> Result<(), AppError> {
    let user = &current.user;
    if user.is_verified {
        return Err(AppError::bad_request(
            "already_verified",
            "Email already verified",
        ));
    }
    // The link mailed at registration (created with the account) does not count: a user
    // who did not get it may ask at once. Resends are one a minute.
    let last_resend = state
        .store
        .latest_token_created_at(user.id, TokenPurpose::VerifyEmail)
        .await?
        .filter(|created| *created > user.created_at);
    if let Some(last) = last_resend {
        let wait = RESEND_VERIFICATION_INTERVAL_SECONDS - (now() - last).num_seconds();
        if wait > 0 {
            return Err(AppError::TooManyRequests {
                detail: "Verification email sent recently; try again later".into(),
                retry_after_secs: wait as u64,
            });
        }
    }
    let token = new_opaque_token();
    let mail = state.mail.welcome(&user.email, &user.username, &token)?;
    let g = grant(
        TokenPurpose::VerifyEmail,
        &token,
        &user.email,
        chrono::Duration::hours(VERIFY_LINK_HOURS),
    );
    state.store.grant_token(user.id, &g, &[mail], None).await?;
    state.mail_queued();
    Ok(())
}

/// Answers at once and queues the work off the request path, so an address with an
/// account and one without take the same time to answer. A reset link goes out only to an
/// active account, at most once a minute and `RESET_MAILS_PER_HOUR` times an hour.
/// The one piece of work on the request path, the same for every address: a database
/// that cannot be reached is a 503 here as everywhere, not a silent loss.
pub async fn request_password_reset(
    state: &AppState,
    email: &Email,
    client: &ClientInfo,
) -> Result<(), AppError> {
    state.store.ping().await?;
    let (state, email, client) = (state.clone(), email.clone(), client.clone());
    tokio::spawn(async move {
        if let Err(e) = queue_reset_link(&state, &email, &client).await {
            tracing::warn!(error = %e, "could not queue a password reset link");
        }
    });
    Ok(())
}

async fn queue_reset_link(
    state: &AppState,
    email: &Email,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let Some(user) = state.store.user_by_email(email.as_str()).await? else {
        return Ok(());
    };
    if !user.is_active {
        return Ok(());
    }
    let token = new_opaque_token();
    let mail = state
        .mail
        .password_reset(&user.email, &user.username, &token)?;
    let g = grant(
        TokenPurpose::ResetPassword,
        &token,
        &user.email,
        chrono::Duration::minutes(RESET_LINK_MINUTES),
    );
    let activity = audit::plain(audit::PASSWORD_RESET_REQUEST, Some(user.id), client);
    let queued = state
        .store
        .grant_token_limited(
            user.id,
            &g,
            &[mail],
            &activity,
            chrono::Duration::seconds(RESET_MAIL_INTERVAL_SECONDS),
            RESET_MAILS_PER_HOUR,
        )
        .await?;
    if queued {
        state.mail_queued();
    } else {
        tracing::info!(
            user_id = user.id,
            "password reset link not sent: per-account limit"
        );
    }
    Ok(())
}

pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: &Password,
    client: &ClientInfo,
) -> Result<(), AppError> {
    // Policy first, so a weak password is a 422 and does not burn the token.
    state.passwords.check_policy(new_password, "new_password")?;
    let hash = state.passwords.hash(new_password, "new_password").await?;
    let activity = audit::plain(audit::PASSWORD_RESET, None, client);
    let user_id = state
        .store
        .reset_password(&hash_token(token), &hash, &activity)
        .await?
        .ok_or_else(invalid_link)?;
    // The owner proved control of the mailbox: failed-login throttling of the account's
    // names starts afresh, from every address.
    if let Some(user) = state.store.user_by_id(user_id).await? {
        let username_key = user.username.to_lowercase();
        state
            .limiter
            .clear_login_throttle(&[&username_key, &user.email])
            .await;
    }
    Ok(())
}

/// The account named in the path, which the caller may act on only if it is their own
/// (or, where `admin_may` is set, if they are an admin).
pub async fn target_account(
    state: &AppState,
    current: &CurrentUser,
    username: &str,
    admin_may: bool,
) -> Result<User, AppError> {
    let target = account_named(state, username).await?;
    if target.id != current.user.id && !(admin_may && current.is_admin()) {
        return Err(AppError::forbidden(
            "Not allowed to act on another user's account",
        ));
    }
    Ok(target)
}

/// The account with this username (any case), or 404.
pub async fn account_named(state: &AppState, username: &str) -> Result<User, AppError> {
    let key = Username::parse(username)
        .map_err(|_| AppError::user_not_found())?
        .key();
    state
        .store
        .user_by_username(&key)
        .await?
        .ok_or_else(AppError::user_not_found)
}

pub async fn change_password(
    state: &AppState,
    current: &CurrentUser,
    current_password: &str,
    new_password: &Password,
    client: &ClientInfo,
) -> Result<(), AppError> {
    state.passwords.check_policy(new_password, "new_password")?;
    crate::services::step_up::require_recent_factor(state, current).await?;
    if !state
        .passwords
        .verify(current_password, &current.user.password_hash)
        .await?
    {
        return Err(incorrect_password());
    }
    let hash = state.passwords.hash(new_password, "new_password").await?;
    let activity = audit::plain(audit::PASSWORD_CHANGE, Some(current.user.id), client);
    state
        .store
        .change_password(current.user.id, &hash, &current.session_id, &activity)
        .await?;
    Ok(())
}

/// Deletes `target`. The owner must confirm with their password; an admin deleting
/// someone else's account needs none.
pub async fn delete_account(
    state: &AppState,
    current: &CurrentUser,
    target: &User,
    password: Option<&str>,
    client: &ClientInfo,
) -> Result<(), AppError> {
    if target.id == current.user.id {
        let password = password.ok_or_else(|| {
            AppError::validation(
                "query",
                "password",
                "Field required to delete your own account",
                "missing",
            )
        })?;
        crate::services::step_up::require_recent_factor(state, current).await?;
        if !state
            .passwords
            .verify(password, &target.password_hash)
            .await?
        {
            return Err(incorrect_password());
        }
    }
    let activity = audit::activity(
        audit::ACCOUNT_DELETE,
        Some(target.id),
        client,
        json!({ "username": target.username, "by": current.user.id }),
    );
    // A live subscription would go on charging the card of an account that is gone.
    crate::services::billing::cancel_before_deletion(state, target.id).await?;
    if !state.store.delete_user(target.id, &activity).await? {
        return Err(AppError::user_not_found());
    }
    Ok(())
}
