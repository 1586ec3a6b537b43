//! Changing the email address (DESIGN §5 #7): the change stays pending until the link
//! mailed to the new address is followed. Until then the current address stays the
//! account's, verified and usable for resets; another request replaces the pending address
//! (the earlier links stop working); the current address is told, with a link that
//! cancels the change.

use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::Email;
use crate::error::AppError;
use crate::services::audit;
use crate::services::mail::VERIFY_LINK_HOURS;
use crate::services::tokens::{hash_token, new_opaque_token};
use crate::state::AppState;
use crate::store::{now, EmailChange, StoreError, TokenGrant, TokenPurpose};

fn email_taken() -> AppError {
    AppError::bad_request("email_taken", "Email already registered")
}

fn grant(purpose: TokenPurpose, token: &str, new_email: &str) -> TokenGrant {
    let created_at = now();
    TokenGrant {
        purpose,
        token_hash: hash_token(token),
        email: new_email.to_owned(),
        created_at,
        expires_at: created_at + chrono::Duration::hours(VERIFY_LINK_HOURS),
    }
}

/// Records `new_email` as the pending address and mails both addresses. Returns it.
pub async fn request_change(
    state: &AppState,
    current: &CurrentUser,
    new_email: &Email,
    current_password: &str,
    client: &ClientInfo,
) -> Result<String, AppError> {
    let user = &current.user;
    crate::services::step_up::require_recent_factor(state, current).await?;
    if !state
        .passwords
        .verify(current_password, &user.password_hash)
        .await?
    {
        return Err(AppError::unauthorized("Incorrect password"));
    }
    let new_email = new_email.as_str();
    if new_email == user.email {
        return Err(AppError::bad_request(
            "email_unchanged",
            "New email is the same as the current one",
        ));
    }
    // Checked again when the change completes: the unique constraint decides then.
    if state.store.user_by_email(new_email).await?.is_some() {
        return Err(email_taken());
    }
    let (confirm_token, cancel_token) = (new_opaque_token(), new_opaque_token());
    let change = EmailChange {
        confirm: grant(TokenPurpose::ChangeEmail, &confirm_token, new_email),
        cancel: grant(TokenPurpose::CancelEmailChange, &cancel_token, new_email),
        mail: vec![
            state
                .mail
                .verify_new_email(new_email, &user.username, &confirm_token)?,
            state.mail.email_changed_notice(
                &user.email,
                &user.username,
                new_email,
                &cancel_token,
            )?,
        ],
    };
    // Addresses are personal data; the trail records that a change was asked for, not what to.
    let activity = audit::plain(audit::EMAIL_CHANGE_REQUEST, Some(user.id), client);
    state
        .store
        .request_email_change(user.id, &change, &activity)
        .await?;
    state.mail_queued();
    Ok(new_email.to_owned())
}

/// The address a change is waiting to be confirmed at, if one was asked for and neither
/// confirmed nor cancelled since.
pub async fn pending(state: &AppState, user_id: i64) -> Result<Option<String>, AppError> {
    Ok(state.store.pending_email(user_id).await?)
}

/// Follows a confirm link. `Ok(false)`: not a (usable) confirm link.
pub async fn confirm(state: &AppState, token: &str, client: &ClientInfo) -> Result<bool, AppError> {
    let activity = audit::plain(audit::EMAIL_CHANGE, None, client);
    match state
        .store
        .confirm_email_change(&hash_token(token), now(), &activity)
        .await
    {
        Ok(Some(user_id)) => {
            crate::services::billing::sync_customer_email(state, user_id).await;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(StoreError::EmailTaken) => Err(email_taken()),
        Err(e) => Err(e.into()),
    }
}

/// Follows a cancel link. `Ok(false)`: not a usable cancel link.
pub async fn cancel(state: &AppState, token: &str, client: &ClientInfo) -> Result<bool, AppError> {
    let activity = audit::plain(audit::EMAIL_CHANGE_CANCEL, None, client);
    Ok(state
        .store
        .cancel_email_change(&hash_token(token), now(), &activity)
        .await?)
}
