//! The account page's sign-in providers: the linked identities with unlink, and a "link"
//! button for each configured provider not linked yet (the flow is in `providers.rs`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::account::{refused, when};
use super::forgery_check;
use super::providers::{buttons, ProviderButton};
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::services::{account, identity};
use crate::state::AppState;
use crate::web::session::SignedIn;

#[derive(Serialize)]
pub struct IdentityRow {
    provider: String,
    display_name: String,
    email: String,
    linked: String,
}

/// What the account page shows about sign-in providers.
#[derive(Serialize, Default)]
pub struct ProvidersSection {
    /// Anything to show: providers configured or identities linked.
    pub shown: bool,
    pub identities: Vec<IdentityRow>,
    /// Configured providers this account can still link.
    pub to_link: Vec<ProviderButton>,
    /// Linking (and the list, like GET /auth/identities) needs a verified address.
    pub may_link: bool,
}

pub async fn section(state: &AppState, signed_in: &SignedIn) -> Result<ProvidersSection, AppError> {
    let current = &signed_in.current;
    let may_link = account::ensure_verified(state, current).is_ok();
    let configured = !state.identity.all().is_empty();
    if !may_link {
        return Ok(ProvidersSection {
            shown: configured,
            ..ProvidersSection::default()
        });
    }
    let linked = identity::identities(state, current.user.id).await?;
    let display_name = |name: &str| {
        state
            .identity
            .get(name)
            .map_or_else(|| name.to_owned(), |p| p.config.display_name.clone())
    };
    let to_link = buttons(state)
        .into_iter()
        .filter(|b| !linked.iter().any(|i| i.provider == b.name))
        .collect();
    Ok(ProvidersSection {
        shown: configured || !linked.is_empty(),
        identities: linked
            .into_iter()
            .map(|i| IdentityRow {
                display_name: display_name(&i.provider),
                provider: i.provider,
                email: i.email.unwrap_or_default(),
                linked: when(i.linked_at),
            })
            .collect(),
        to_link,
        may_link,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UnlinkForm {
    provider: String,
    csrf: String,
}

/// Unlinks a provider, unless it is the account's last way to sign in (400
/// `last_sign_in_method`, shown on the page).
pub async fn unlink(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<UnlinkForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let result = match account::ensure_verified(&state, &signed_in.current) {
        Ok(()) => identity::unlink(&state, &signed_in.current, &form.provider, &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account?notice=identity_unlinked").into_response(),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}
