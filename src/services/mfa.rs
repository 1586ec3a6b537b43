//! Second factors: an authenticator app (RFC 6238 TOTP: SHA-1, 6 digits, 30 s), recovery
//! codes, and the second step of a login (`mfa_token` → token pair).

use chrono::Duration;
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use utoipa::ToSchema;

use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::services::audit;
use crate::services::auth::{start_session_recording, TokenPair};
use crate::services::tokens::{hash_token, new_opaque_token, Assurance};
use crate::state::AppState;
use crate::store::{now, TotpRow, User};

pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Steps of clock skew accepted either side of now.
pub const TOTP_SKEW_STEPS: i64 = 1;
pub const RECOVERY_CODE_COUNT: usize = 10;
pub const MFA_TOKEN_MINUTES: i64 = 5;
const ISSUER: &str = "auth-service";

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// The shared secret, base32 (RFC 4648, no padding), for typing into an app.
    pub secret: String,
    pub otpauth_url: String,
    /// The otpauth URL as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// 10 single-use codes, shown once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatus {
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

/// The answer to a correct password on an account with a second factor: no tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallenge {
    pub mfa_required: bool,
    /// Opaque, single use, valid 5 minutes; send it to POST /auth/mfa/verify.
    pub mfa_token: String,
    pub factors: Vec<&'static str>,
}

/// The second factor presented with an mfa_token.
pub enum Factor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

fn totp_for(secret_b32: &str, account: &str) -> Result<TOTP, AppError> {
    let secret = base32_decode(secret_b32)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored TOTP secret is not base32")))?;
    Ok(TOTP::new_unchecked(
        Algorithm::SHA1,
        TOTP_DIGITS,
        0,
        TOTP_STEP_SECONDS,
        secret,
        Some(ISSUER.to_owned()),
        account.to_owned(),
    ))
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(s.to_owned()).to_bytes().ok()
}

fn unix_now() -> u64 {
    now().timestamp().max(0) as u64
}

/// The time step a code matches within ±TOTP_SKEW_STEPS of `at`, if any (constant-time
/// comparison of each candidate).
pub fn matching_step(totp: &TOTP, code: &str, at: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = (at / TOTP_STEP_SECONDS) as i64;
    let mut found = None;
    for delta in -TOTP_SKEW_STEPS..=TOTP_SKEW_STEPS {
        let candidate = step + delta;
        if candidate < 0 {
            continue;
        }
        let expected = totp.generate(candidate as u64 * TOTP_STEP_SECONDS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(candidate);
        }
    }
    found
}

pub async fn enroll(state: &AppState, user: &User) -> Result<TotpEnrollment, AppError> {
    let mut raw = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        TOTP_DIGITS,
        0,
        TOTP_STEP_SECONDS,
        raw.to_vec(),
        Some(ISSUER.to_owned()),
        user.username.clone(),
    );
    let secret = totp.get_secret_base32();
    if !state.store.begin_totp(user.id, &secret, now()).await? {
        return Err(AppError::Conflict {
            code: "mfa_already_active",
            detail: "An authenticator app is already set up".into(),
        });
    }
    let otpauth_url = totp.get_url();
    let qr_svg = qr_svg(&otpauth_url)?;
    Ok(TotpEnrollment {
        secret,
        otpauth_url,
        qr_svg,
    })
}

/// The otpauth:// URL of a stored (base32) secret, for showing a pending one again.
pub fn otpauth_url(secret_b32: &str, account: &str) -> Result<String, AppError> {
    Ok(totp_for(secret_b32, account)?.get_url())
}

/// `url` as a QR code, an SVG document (inline in the pages, a string in the API).
pub fn qr_svg(url: &str) -> Result<String, AppError> {
    Ok(qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("QR code: {e}")))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build())
}

fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut b = [0u8; 5];
            rand::rngs::OsRng.fill_bytes(&mut b);
            let h = hex::encode(b);
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| hash_recovery_code(c)).collect();
    (codes, hashes)
}

/// Codes are compared as typed without spaces, dashes or case.
fn hash_recovery_code(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hash_token(&normal)
}

fn invalid_code() -> AppError {
    AppError::bad_request("invalid_code", "The code is not valid")
}

pub async fn confirm(
    state: &AppState,
    user: &User,
    code: &str,
    client: &ClientInfo,
) -> Result<RecoveryCodes, AppError> {
    let row = state.store.totp_of(user.id).await?;
    let Some(row) = row.filter(|r| r.confirmed_at.is_none()) else {
        return Err(invalid_code());
    };
    let totp = totp_for(&row.secret, &user.username)?;
    let step = matching_step(&totp, code, unix_now()).ok_or_else(invalid_code)?;
    let (codes, hashes) = new_recovery_codes();
    if !state
        .store
        .confirm_totp(user.id, step, &hashes, now())
        .await?
    {
        return Err(invalid_code());
    }
    record(
        state,
        audit::MFA_ENROLLED,
        user.id,
        client,
        json!({"factor": "totp"}),
    )
    .await;
    notify(
        state,
        user,
        "Two-step verification is on",
        "An authenticator app was set up for two-step verification of your account.",
    )
    .await;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

pub async fn status(state: &AppState, user: &User) -> Result<MfaStatus, AppError> {
    let totp = confirmed(state.store.totp_of(user.id).await?).is_some();
    Ok(MfaStatus {
        totp,
        passkeys: 0,
        recovery_codes_left: state.store.recovery_codes_left(user.id).await?,
    })
}

pub(crate) fn confirmed(row: Option<TotpRow>) -> Option<TotpRow> {
    row.filter(|r| r.confirmed_at.is_some())
}

pub async fn remove(state: &AppState, user: &User, client: &ClientInfo) -> Result<(), AppError> {
    if confirmed(state.store.totp_of(user.id).await?).is_none() {
        return Err(AppError::not_found("No authenticator app is set up"));
    }
    state.store.remove_totp(user.id).await?;
    record(
        state,
        audit::MFA_REMOVED,
        user.id,
        client,
        json!({"factor": "totp"}),
    )
    .await;
    notify(
        state,
        user,
        "Two-step verification was turned off",
        "The authenticator app and the recovery codes of your account were removed: you now sign in with your password alone.",
    )
    .await;
    Ok(())
}

pub async fn regenerate_recovery_codes(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
) -> Result<RecoveryCodes, AppError> {
    if confirmed(state.store.totp_of(user.id).await?).is_none() {
        return Err(AppError::bad_request(
            "mfa_not_active",
            "Set up an authenticator app first",
        ));
    }
    let (codes, hashes) = new_recovery_codes();
    state
        .store
        .replace_recovery_codes(user.id, &hashes, now())
        .await?;
    record(
        state,
        audit::MFA_ENROLLED,
        user.id,
        client,
        json!({"factor": "recovery_codes"}),
    )
    .await;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// The first step of a sign-in, as `amr` names it: a password or a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstFactor {
    Password,
    Provider,
}

impl FirstFactor {
    fn amr(self) -> &'static str {
        match self {
            FirstFactor::Password => "pwd",
            FirstFactor::Provider => "oidc",
        }
    }
}

/// For the sign-in paths (password or provider): a challenge when the account has a
/// confirmed factor, so no session starts on the first step alone.
pub async fn challenge_for(
    state: &AppState,
    user: &User,
    first: FirstFactor,
) -> Result<Option<MfaChallenge>, AppError> {
    if confirmed(state.store.totp_of(user.id).await?).is_none() {
        return Ok(None);
    }
    let token = new_opaque_token();
    let created = now();
    state
        .store
        .save_mfa_token(
            &hash_token(&token),
            user.id,
            first.amr(),
            created,
            created + Duration::minutes(MFA_TOKEN_MINUTES),
        )
        .await?;
    Ok(Some(MfaChallenge {
        mfa_required: true,
        mfa_token: token,
        factors: vec!["totp", "recovery_code"],
    }))
}

fn bad_second_step() -> AppError {
    AppError::unauthorized("Invalid or expired two-step verification")
}

/// Finishes a login: the mfa_token and a correct factor give the token pair.
pub async fn verify(
    state: &AppState,
    mfa_token: &str,
    factor: Factor<'_>,
    client: &ClientInfo,
) -> Result<TokenPair, AppError> {
    let token_hash = hash_token(mfa_token);
    let (user_id, first_factor) = state
        .store
        .mfa_token_user(&token_hash, now())
        .await?
        .ok_or_else(bad_second_step)?;
    // Only what this service wrote: anything else would put an unknown method in amr.
    let first_factor = match first_factor.as_str() {
        "oidc" => FirstFactor::Provider,
        _ => FirstFactor::Password,
    };
    // Counted before the code is checked, like a password guess (protection/login.rs).
    let client_key = client.ip.as_deref().unwrap_or("unknown");
    let ticket = state
        .limiter
        .reserve_login(&format!("mfa:{user_id}"), client_key)
        .await
        .map_err(|retry_after_secs| AppError::TooManyRequests {
            detail: "Too many failed two-step verification attempts; try again later".into(),
            retry_after_secs,
        })?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(bad_second_step)?;
    let (ok, method) = check_factor(state, &user, factor).await?;
    if !ok {
        record(
            state,
            audit::MFA_FAILED,
            user.id,
            client,
            json!({"method": method}),
        )
        .await;
        return Err(AppError::unauthorized("Invalid code"));
    }
    // Single use: of parallel correct answers, one wins.
    if !state.store.consume_mfa_token(&token_hash).await? {
        return Err(bad_second_step());
    }
    state.limiter.login_succeeded(&ticket).await;
    if method == "recovery" {
        record(state, audit::RECOVERY_CODE_USED, user.id, client, json!({})).await;
        // The sign-in goes on even if the count cannot be read.
        let what = match state.store.recovery_codes_left(user.id).await {
            Ok(left) => format!(
                "A recovery code was used to sign in to your account; {left} of them are left."
            ),
            Err(_) => "A recovery code was used to sign in to your account.".to_owned(),
        };
        notify(state, &user, "A recovery code was used", &what).await;
    }
    let activity = audit::activity(
        audit::MFA_VERIFIED,
        Some(user.id),
        client,
        json!({"method": method}),
    );
    let assurance = Assurance::new("aal2", &[first_factor.amr(), method]);
    start_session_recording(state, &user, client, Some(activity), &assurance).await
}

/// Whether `factor` is right for `user` (a used-up recovery code or a replayed TOTP step
/// is not), and its `amr` name. A right recovery code is spent by this check.
pub(crate) async fn check_factor(
    state: &AppState,
    user: &User,
    factor: Factor<'_>,
) -> Result<(bool, &'static str), AppError> {
    Ok(match factor {
        Factor::Totp(code) => (check_totp(state, user, code).await?, "otp"),
        Factor::RecoveryCode(code) => (
            state
                .store
                .use_recovery_code(user.id, &hash_recovery_code(code), now())
                .await?,
            "recovery",
        ),
    })
}

async fn check_totp(state: &AppState, user: &User, code: &str) -> Result<bool, AppError> {
    let Some(row) = confirmed(state.store.totp_of(user.id).await?) else {
        return Ok(false);
    };
    let totp = totp_for(&row.secret, &user.username)?;
    let Some(step) = matching_step(&totp, code, unix_now()) else {
        return Ok(false);
    };
    // A code is accepted once: the step must be later than the last one used.
    Ok(state.store.use_totp_step(user.id, step).await?)
}

/// Mails the account about a change to how it signs in. Best effort: the change stands
/// (and is audited) even when the mail cannot be queued; the failure is logged.
pub(crate) async fn notify(state: &AppState, user: &User, subject: &str, what: &str) {
    let queued = match state
        .mail
        .security_notice(&user.email, &user.username, subject, what)
    {
        Ok(mail) => state
            .store
            .queue_mail(&[mail], now())
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match queued {
        Ok(()) => state.mail_queued(),
        Err(e) => {
            tracing::warn!(error = %e, user_id = user.id, "could not queue a security notice")
        }
    }
}

/// DELETE /admin/users/{username}/mfa: every factor of the account removed (an admin
/// helping someone who lost their phone and their recovery codes). Audited with the
/// admin's id and mailed to the account. False when there was nothing to remove.
pub async fn admin_reset(
    state: &AppState,
    admin_id: i64,
    user: &User,
    client: &ClientInfo,
) -> Result<bool, AppError> {
    let removed = state.store.remove_totp(user.id).await?;
    if removed {
        record(
            state,
            audit::MFA_REMOVED,
            user.id,
            client,
            json!({"factor": "all", "by": admin_id}),
        )
        .await;
        notify(
            state,
            user,
            "Two-step verification was turned off",
            "An administrator removed the two-step verification of your account: you now sign in with your password alone until you set up an authenticator app again.",
        )
        .await;
    }
    Ok(removed)
}

pub(crate) async fn record(
    state: &AppState,
    event: &'static str,
    user_id: i64,
    client: &ClientInfo,
    details: serde_json::Value,
) {
    let activity = audit::activity(event, Some(user_id), client, details);
    if let Err(e) = state.store.record_activity(&activity).await {
        tracing::warn!(error = %e, event, "could not record an audit row");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 are the 6-digit code).
    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let totp8 =
            TOTP::new_unchecked(Algorithm::SHA1, 8, 0, 30, secret.clone(), None, "t".into());
        let totp6 = TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, secret, None, "t".into());
        for (t, expected) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(totp8.generate(t), expected, "t={t}");
            assert_eq!(totp6.generate(t), &expected[2..], "t={t}");
            let step = (t / 30) as i64;
            assert_eq!(matching_step(&totp6, &expected[2..], t), Some(step));
            assert_eq!(matching_step(&totp6, &expected[2..], t + 30), Some(step));
            assert_eq!(matching_step(&totp6, &expected[2..], t + 60), None);
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, vec![1; 20], None, "t".into());
        for code in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(matching_step(&totp, code, 1_000_000), None);
        }
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hashed_normalised() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        assert_eq!(
            hashes[0],
            hash_recovery_code(&codes[0].to_uppercase().replace('-', " "))
        );
    }
}
