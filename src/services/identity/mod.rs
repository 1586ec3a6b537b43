//! Sign in with Google and other OpenID Connect providers (DESIGN §10): starting an
//! authorization, completing its callback (login or link), the matching and linking rules,
//! and unlinking. HTTP-free, so the API routes and the web pages share it.

mod matching;
pub mod oidc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::Email;
use crate::error::AppError;
use crate::services::audit;
use crate::services::auth::TokenPair;
use crate::services::tokens::{hash_token, new_opaque_token};
use crate::state::AppState;
use crate::store::{now, Identity, LinkOutcome, NewIdentity, OAuthState, UnlinkOutcome, User};
pub use oidc::OidcProviders;
use oidc::{oauth_failed, pkce_challenge, Provider};

/// How long an authorization may take, from `authorize` to `callback`.
pub const STATE_MINUTES: i64 = 10;
const SCOPE: &str = "openid email profile";
const INTENT_LOGIN: &str = "login";
const INTENT_LINK: &str = "link";

/// What the authorization is for.
#[derive(Debug, Clone, Copy)]
pub enum Intent {
    Login,
    /// Link the provider identity to this (verified) account.
    Link {
        user_id: i64,
    },
}

pub struct Authorization {
    pub authorization_url: String,
    pub state: String,
}

pub enum Completion {
    SignedIn {
        user: Box<User>,
        tokens: TokenPair,
        is_new_user: bool,
    },
    Linked {
        provider: String,
        email: Option<String>,
    },
    /// The account has a second factor: no session until `mfa::verify` (DESIGN §14).
    MfaRequired(crate::services::mfa::MfaChallenge),
}

fn provider_not_found() -> AppError {
    AppError::NotFound {
        code: "provider_not_found",
        detail: "Unknown sign-in provider".into(),
    }
}

fn invalid_state() -> AppError {
    AppError::bad_request(
        "invalid_state",
        "Unknown, expired or already used state; start the sign-in again",
    )
}

fn account_disabled() -> AppError {
    AppError::Forbidden {
        code: "account_disabled",
        detail: "Account is disabled".into(),
    }
}

pub fn provider<'a>(state: &'a AppState, name: &str) -> Result<&'a Provider, AppError> {
    state
        .identity
        .get(name)
        .map(|p| p.as_ref())
        .ok_or_else(provider_not_found)
}

/// The redirect URIs a client may use with this provider: its configured one and
/// ALLOWED_REDIRECT_URIS, compared exactly (never a prefix: no open redirect).
pub fn allowed_redirect_uri(
    state: &AppState,
    provider: &Provider,
    asked: Option<&str>,
) -> Result<String, AppError> {
    let configured = provider.config.redirect_uri(&state.config.frontend_url);
    match asked {
        None => Ok(configured),
        Some(uri) if uri == configured => Ok(configured),
        Some(uri)
            if state
                .config
                .oidc
                .allowed_redirect_uris
                .iter()
                .any(|a| a == uri) =>
        {
            Ok(uri.to_owned())
        }
        Some(_) => Err(AppError::bad_request(
            "invalid_redirect_uri",
            "redirect_uri is not one of the configured redirect URIs",
        )),
    }
}

/// The PKCE verifier of a state: derived with the service's key instead of stored, so the
/// database holds nothing that redeems a code, and any instance can finish the flow.
fn pkce_verifier(state: &AppState, oauth_state: &str) -> Result<String, AppError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.secret_key.expose().as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("HMAC key: {e}")))?;
    mac.update(b"oidc-pkce-verifier:");
    mac.update(oauth_state.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Starts an authorization: stores the state (hashed, 10 minutes) and returns the URL to
/// send the browser to.
pub async fn start(
    state: &AppState,
    provider_name: &str,
    redirect_uri: Option<&str>,
    intent: Intent,
) -> Result<Authorization, AppError> {
    let provider = provider(state, provider_name)?;
    let redirect_uri = allowed_redirect_uri(state, provider, redirect_uri)?;
    let metadata = state.identity.metadata(provider).await?;
    let oauth_state = new_opaque_token();
    let nonce = new_opaque_token();
    let verifier = pkce_verifier(state, &oauth_state)?;
    let created_at = now();
    let (intent_name, user_id) = match intent {
        Intent::Login => (INTENT_LOGIN, None),
        Intent::Link { user_id } => (INTENT_LINK, Some(user_id)),
    };
    state
        .store
        .save_oauth_state(&OAuthState {
            state_hash: hash_token(&oauth_state),
            provider: provider.config.name.clone(),
            intent: intent_name.into(),
            user_id,
            nonce_hash: hash_token(&nonce),
            redirect_uri: redirect_uri.clone(),
            created_at,
            expires_at: created_at + chrono::Duration::minutes(STATE_MINUTES),
        })
        .await?;
    let url = reqwest::Url::parse_with_params(
        &metadata.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", provider.config.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", SCOPE),
            ("state", oauth_state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", pkce_challenge(&verifier).as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|_| oauth_failed("The provider's authorization endpoint is not a valid URL"))?;
    Ok(Authorization {
        authorization_url: url.into(),
        state: oauth_state,
    })
}

/// Completes a callback: the state is consumed (once, whatever happens next), the code
/// redeemed, the ID token verified, then the account signed in or the identity linked.
/// `caller` is the bearer's account, needed (and required to match) for a link.
pub async fn complete(
    state: &AppState,
    provider_name: &str,
    code: &str,
    oauth_state: &str,
    caller: Option<&CurrentUser>,
    client: &ClientInfo,
) -> Result<Completion, AppError> {
    let provider = provider(state, provider_name)?;
    let pending = state
        .store
        .take_oauth_state(&hash_token(oauth_state))
        .await?
        .ok_or_else(invalid_state)?;
    if pending.provider != provider.config.name || pending.expires_at <= now() {
        return Err(invalid_state());
    }
    let link_user = match (pending.intent.as_str(), pending.user_id) {
        (INTENT_LINK, Some(user_id)) => Some(link_caller(state, caller, user_id)?),
        (INTENT_LOGIN, None) => None,
        _ => return Err(invalid_state()),
    };
    let verifier = pkce_verifier(state, oauth_state)?;
    let id_token = state
        .identity
        .exchange_code(provider, code, &pending.redirect_uri, &verifier)
        .await?;
    let claims = state
        .identity
        .verify_id_token(provider, &id_token, &pending.nonce_hash)
        .await?;
    let email = claims
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .map(String::from);
    let identity = NewIdentity {
        provider: provider.config.name.clone(),
        subject: claims.sub.clone(),
        email: email.clone(),
        linked_at: now(),
    };
    match link_user {
        Some(user) => link(state, &user, &identity, client).await,
        None => matching::sign_in(state, provider, &claims, identity, email, client).await,
    }
}

/// The account a link flow may be finished by: the one that started it, still verified.
fn link_caller(
    state: &AppState,
    caller: Option<&CurrentUser>,
    user_id: i64,
) -> Result<User, AppError> {
    let current = caller.ok_or_else(|| {
        AppError::unauthorized("Linking an identity needs the bearer token of the account")
    })?;
    if current.user.id != user_id {
        return Err(AppError::forbidden(
            "This authorization was started by another account",
        ));
    }
    if state.config.require_email_verification && !current.user.is_verified {
        return Err(AppError::Forbidden {
            code: "email_not_verified",
            detail: "Email not verified".into(),
        });
    }
    Ok(current.user.clone())
}

fn event(
    name: &'static str,
    user_id: i64,
    client: &ClientInfo,
    provider: &str,
) -> crate::store::Activity {
    audit::activity(name, Some(user_id), client, json!({ "provider": provider }))
}

async fn link(
    state: &AppState,
    user: &User,
    identity: &NewIdentity,
    client: &ClientInfo,
) -> Result<Completion, AppError> {
    let activity = event(audit::IDENTITY_LINKED, user.id, client, &identity.provider);
    match state
        .store
        .link_identity(user.id, identity, &activity)
        .await?
    {
        LinkOutcome::Linked | LinkOutcome::AlreadyLinked => Ok(Completion::Linked {
            provider: identity.provider.clone(),
            email: identity.email.clone(),
        }),
        outcome => Err(link_refused(outcome)),
    }
}

fn link_refused(outcome: LinkOutcome) -> AppError {
    match outcome {
        LinkOutcome::ProviderAlreadyLinked => AppError::conflict(
            "provider_already_linked",
            "Another identity of this provider is linked to the account; unlink it first",
        ),
        _ => AppError::conflict(
            "identity_in_use",
            "This sign-in identity is linked to another account",
        ),
    }
}

pub async fn identities(state: &AppState, user_id: i64) -> Result<Vec<Identity>, AppError> {
    Ok(state.store.identities_of(user_id).await?)
}

/// Unlinks the caller's identity at `provider`, unless it is their last way to sign in.
pub async fn unlink(
    state: &AppState,
    current: &CurrentUser,
    provider_name: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let activity = event(
        audit::IDENTITY_UNLINKED,
        current.user.id,
        client,
        provider_name,
    );
    match state
        .store
        .unlink_identity(current.user.id, provider_name, &activity)
        .await?
    {
        UnlinkOutcome::Unlinked => Ok(()),
        UnlinkOutcome::NotLinked => Err(AppError::NotFound {
            code: "identity_not_found",
            detail: "No identity of this provider is linked to the account".into(),
        }),
        UnlinkOutcome::LastSignInMethod => Err(AppError::bad_request(
            "last_sign_in_method",
            "This is the account's only way to sign in; set a password (password reset) or link another provider first",
        )),
    }
}
