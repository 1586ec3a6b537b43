//! The matching rules of DESIGN §10 for a sign-in through a provider: which account it
//! reaches, and the account it creates when none matches.

use serde_json::json;

use super::oidc::{oauth_failed, IdTokenClaims, Provider};
use super::{account_disabled, event, link_refused, Completion};
use crate::caller::ClientInfo;
use crate::domain::Username;
use crate::error::AppError;
use crate::services::auth::start_session_recording;
use crate::services::{audit, mfa};
use crate::state::AppState;
use crate::store::{now, LinkOutcome, NewIdentity, NewUser, StoreError, User};

async fn session(
    state: &AppState,
    user: User,
    provider: &str,
    client: &ClientInfo,
    is_new_user: bool,
) -> Result<Completion, AppError> {
    if !user.is_active {
        return Err(account_disabled());
    }
    // A provider is one factor, like a password: an account with a second factor needs it.
    if let Some(challenge) = mfa::challenge_for(state, &user, mfa::FirstFactor::Provider).await? {
        return Ok(Completion::MfaRequired(challenge));
    }
    let activity = event(audit::LOGIN_SUCCESS, user.id, client, provider);
    let tokens = start_session_recording(
        state,
        &user,
        client,
        Some(activity),
        &crate::services::tokens::Assurance::provider(),
    )
    .await?;
    Ok(Completion::SignedIn {
        user: Box::new(user),
        tokens,
        is_new_user,
    })
}

/// The matching rules of DESIGN §10: by (provider, subject); else by a verified email of
/// a verified local account (linked); an unverified local account with that email is a
/// conflict (no pre-registration takeover); else a new verified account without password.
pub(super) async fn sign_in(
    state: &AppState,
    provider: &Provider,
    claims: &IdTokenClaims,
    identity: NewIdentity,
    email: Option<String>,
    client: &ClientInfo,
) -> Result<Completion, AppError> {
    let name = provider.config.name.as_str();
    if let Some((_, user)) = state.store.user_by_identity(name, &claims.sub).await? {
        return session(state, user, name, client, false).await;
    }
    let email = email.ok_or_else(|| oauth_failed("The provider did not share an email address"))?;
    if !claims.email_verified {
        return Err(oauth_failed(
            "The provider has not verified this email address",
        ));
    }
    if let Some(local) = state.store.user_by_email(&email).await? {
        return link_existing(state, local, &identity, client).await;
    }
    match create_account(state, provider, &identity, &email, client).await {
        Ok(user) => session(state, user, name, client, true).await,
        // Someone registered the address meanwhile: the same rules as above apply.
        Err(AppError::Conflict {
            code: "email_taken",
            ..
        }) => {
            let local = state.store.user_by_email(&email).await?.ok_or_else(|| {
                AppError::conflict("account_exists", "An account with this email exists")
            })?;
            link_existing(state, local, &identity, client).await
        }
        Err(e) => Err(e),
    }
}

async fn link_existing(
    state: &AppState,
    local: User,
    identity: &NewIdentity,
    client: &ClientInfo,
) -> Result<Completion, AppError> {
    if !local.is_verified {
        return Err(AppError::conflict(
            "account_exists",
            "An account with this email exists but its address is not verified; sign in with \
             its password and verify the address, then link the provider",
        ));
    }
    if !local.is_active {
        return Err(account_disabled());
    }
    let activity = audit::activity(
        audit::IDENTITY_LINKED,
        Some(local.id),
        client,
        json!({ "provider": identity.provider, "matched_by": "email" }),
    );
    match state
        .store
        .link_identity(local.id, identity, &activity)
        .await?
    {
        LinkOutcome::Linked | LinkOutcome::AlreadyLinked => {
            session(state, local, &identity.provider, client, false).await
        }
        outcome => Err(link_refused(outcome)),
    }
}

/// A new verified account without a password, named after the email's local part.
async fn create_account(
    state: &AppState,
    provider: &Provider,
    identity: &NewIdentity,
    email: &str,
    client: &ClientInfo,
) -> Result<User, AppError> {
    let base = username_base(email);
    let mut last_error = None;
    for attempt in 0..6 {
        let candidate = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{}", rand::random::<u16>() % 10_000)
        };
        let Ok(username) = Username::parse(&candidate) else {
            continue;
        };
        if state
            .store
            .user_by_username(&username.key())
            .await?
            .is_some()
        {
            continue;
        }
        let welcome = state.mail.welcome_from_provider(
            email,
            username.as_str(),
            &provider.config.display_name,
        )?;
        let created_at = now();
        let new_user = NewUser {
            username_key: username.key(),
            username: username.into(),
            email: email.to_owned(),
            // No password: a hash that no password verifies (see PasswordService).
            password_hash: String::new(),
            is_admin: false,
            is_verified: true,
            created_at,
        };
        // The store fills in the new account's id.
        let details = json!({ "provider": identity.provider });
        let registered = audit::activity(audit::REGISTER, None, client, details.clone());
        let linked = audit::activity(audit::IDENTITY_LINKED, None, client, details);
        match state
            .store
            .create_user_with_identity(&new_user, identity, &[welcome], &[registered, linked])
            .await
        {
            Ok(user) => {
                state.mail_queued();
                return Ok(user);
            }
            Err(StoreError::UsernameTaken) => last_error = Some(StoreError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error
        .map(AppError::from)
        .unwrap_or_else(|| AppError::Internal(anyhow::anyhow!("no free username for {base}"))))
}

/// The email's local part made a valid username (DESIGN §5): other characters become
/// `_`, at most 26 characters (room for a suffix), at least 3.
pub fn username_base(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut name: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(26)
        .collect();
    if name.len() < 3 {
        name.push_str("_user");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_from_emails_are_valid() {
        for (email, expected) in [
            ("alice@example.com", "alice"),
            ("o'neil+tag@example.com", "o_neil_tag"),
            ("ab@example.com", "ab_user"),
            ("x@example.com", "x_user"),
        ] {
            assert_eq!(username_base(email), expected);
            assert!(Username::parse(expected).is_ok());
        }
        let long = username_base(&format!("{}@example.com", "a".repeat(64)));
        assert_eq!(long.len(), 26);
        assert!(Username::parse(&format!("{long}-9999")).is_ok());
    }
}
