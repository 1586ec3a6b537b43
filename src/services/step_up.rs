//! Step-up (DESIGN §14): on an account with a second factor, the changes an attacker with
//! a stolen session would want (password, email, deleting the account, removing a factor,
//! new recovery codes, linking a provider) need a second-factor check on this session
//! within MFA_STEP_UP_MINUTES. A sign-in that passed the factor counts as one; so does
//! `POST /auth/mfa/step-up` with a code. Accounts without a factor are not affected.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::caller::{ClientInfo, CurrentUser};
use crate::error::AppError;
use crate::services::audit;
use crate::services::mfa::{self, Factor};
use crate::state::AppState;
use crate::store::now;

fn step_up_required(minutes: i64) -> AppError {
    AppError::Forbidden {
        code: "mfa_step_up_required",
        detail: format!(
            "This change needs a code from your authenticator app (or a recovery code) in \
             the last {minutes} minutes: send it to POST /auth/mfa/step-up, or sign in again"
        ),
    }
}

/// Refuses (403 `mfa_step_up_required`) when the account has a second factor and this
/// session has not proved it recently.
pub async fn require_recent_factor(
    state: &AppState,
    current: &CurrentUser,
) -> Result<(), AppError> {
    let minutes = state.config.mfa_step_up_minutes;
    let fresh = current
        .second_factor_at
        .is_some_and(|at| now() - at <= Duration::minutes(minutes));
    if fresh {
        return Ok(());
    }
    if mfa::confirmed(state.store.totp_of(current.user.id).await?).is_none() {
        return Ok(());
    }
    Err(step_up_required(minutes))
}

/// POST /auth/mfa/step-up: a correct factor marks this session freshly verified. Failures
/// count like failed logins (per account and address), as in the login's second step.
pub async fn step_up(
    state: &AppState,
    current: &CurrentUser,
    factor: Factor<'_>,
    client: &ClientInfo,
) -> Result<DateTime<Utc>, AppError> {
    let user = &current.user;
    if mfa::confirmed(state.store.totp_of(user.id).await?).is_none() {
        return Err(AppError::bad_request(
            "mfa_not_active",
            "Set up an authenticator app first",
        ));
    }
    let client_key = client.ip.as_deref().unwrap_or("unknown");
    let ticket = state
        .limiter
        .reserve_login(&format!("mfa:{}", user.id), client_key)
        .await
        .map_err(|retry_after_secs| AppError::TooManyRequests {
            detail: "Too many failed two-step verification attempts; try again later".into(),
            retry_after_secs,
        })?;
    let (ok, method) = mfa::check_factor(state, user, factor).await?;
    if !ok {
        let details = json!({"method": method, "step_up": true});
        mfa::record(state, audit::MFA_FAILED, user.id, client, details).await;
        return Err(AppError::unauthorized("Invalid code"));
    }
    state.limiter.login_succeeded(&ticket).await;
    let at = now();
    if !state
        .store
        .mark_second_factor(&current.session_id, at)
        .await?
    {
        return Err(AppError::invalid_token());
    }
    let details = json!({"method": method, "step_up": true});
    mfa::record(state, audit::MFA_VERIFIED, user.id, client, details).await;
    if method == "recovery" {
        mfa::record(state, audit::RECOVERY_CODE_USED, user.id, client, json!({})).await;
        let what = "A recovery code was used to confirm a change to your account.";
        mfa::notify(state, user, "A recovery code was used", what).await;
    }
    Ok(at + Duration::minutes(state.config.mfa_step_up_minutes))
}
