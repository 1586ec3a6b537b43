//! The second factor on every way in (DESIGN §14): a provider sign-in is one factor, like
//! a password, so an account with TOTP gets the mfa_required answer there too (the API
//! callback and the browser callback), and the pages' password login shows a code prompt
//! instead of a session. Codes come from pyotp; the provider is oauth2-mock-server.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::mfa::{enroll_totp, pyotp};
use crate::oidc::{add_provider, browser_code, login_via, MockProvider};
use crate::tokens::claims_of;
use crate::web::{csrf_in, location, Visit};
use crate::web_providers::{app_with_provider, callback_path, public_visit, start_login};

both_backends!(provider_sign_in_of_an_account_with_totp_needs_the_second_factor,);

fn assert_challenge(body: &Value) -> String {
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "no tokens before the second factor: {body}"
    );
    assert_eq!(body["factors"], json!(["totp", "recovery_code"]));
    body["mfa_token"].as_str().expect("mfa_token").to_owned()
}

async fn provider_sign_in_of_an_account_with_totp_needs_the_second_factor(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let Some(mock) = MockProvider::start().await else {
        return;
    };
    let issuer = mock.issuer.clone();
    let app = spawn_app_with(backend, |vars| add_provider(vars, "mock", &issuer)).await;
    mock.sign_in_as("mock-mfa", "mfa@example.com").await;
    let first = ok_json(login_via(&app, "mock").await).await;
    assert_eq!(first["is_new_user"], true);
    let access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access)["amr"], json!(["oidc"]));
    let (_, codes) = enroll_totp(&app, &python, &access).await;

    let r = login_via(&app, "mock").await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = assert_challenge(&ok_json(r).await);
    let wrong = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": token, "recovery_code": "00000-00000"}),
            None,
        )
        .await;
    assert_unauthorized(wrong).await;
    let pair = ok_json(
        app.post(
            "/auth/mfa/verify",
            &json!({"mfa_token": token, "recovery_code": codes[0]}),
            None,
        )
        .await,
    )
    .await;
    let access = pair["access_token"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"], json!(["oidc", "recovery"]));
    assert_eq!(me_status(&app, access).await, StatusCode::OK);
    // A refresh keeps how the session was started.
    let refreshed = ok_json(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
            None,
        )
        .await,
    )
    .await;
    let claims = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"], json!(["oidc", "recovery"]));
    // Single use: the same mfa_token again, even with another good code, is refused.
    let again = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": token, "recovery_code": codes[1]}),
            None,
        )
        .await;
    assert_unauthorized(again).await;
}

/// Posts the prompt's form; the answer and its body.
async fn post_code(
    visit: &mut Visit<'_>,
    prompt: &str,
    code: &str,
) -> (StatusCode, String, String) {
    let marker = "name=\"mfa_token\" value=\"";
    let start = prompt
        .find(marker)
        .expect("the prompt carries the mfa_token")
        + marker.len();
    let token: String = prompt[start..].chars().take_while(|c| *c != '"').collect();
    let csrf = csrf_in(prompt);
    let r = visit
        .post(
            "/login/mfa",
            &[("mfa_token", &token), ("code", code), ("csrf", &csrf)],
        )
        .await;
    let status = r.status();
    let to = location(&r).to_owned();
    (status, to, r.text().await.unwrap())
}

#[tokio::test]
async fn the_pages_ask_for_the_code_after_a_correct_password() {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("page_mfa").await;
    let (_, codes) = enroll_totp(&app, &python, &user.access).await;

    let mut visit = Visit::new(&app);
    let csrf = visit.csrf("/login").await;
    let r = visit
        .post(
            "/login",
            &[
                ("username", user.username.as_str()),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let prompt = r.text().await.unwrap();
    assert!(prompt.contains("Two-step verification"), "{prompt}");
    assert_eq!(visit.get("/account").await.status(), StatusCode::SEE_OTHER);

    // A wrong code: the prompt again, no session; a missing code: a field error.
    let (status, _, page) = post_code(&mut visit, &prompt, "123-not-a-code").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("not valid"), "{page}");
    let (status, _, page) = post_code(&mut visit, &prompt, " ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert_eq!(visit.get("/account").await.status(), StatusCode::SEE_OTHER);

    // A form from another site is refused before the code is looked at.
    let mut foreign = Visit::new(&app);
    foreign.jar = std::mem::take(&mut visit.jar);
    foreign.origin = "https://evil.example".into();
    let (status, _, _) = post_code(&mut foreign, &prompt, &codes[0]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    visit.jar = std::mem::take(&mut foreign.jar);

    let (status, to, _) = post_code(&mut visit, &prompt, &codes[0]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/account");
    assert_eq!(visit.get("/account").await.status(), StatusCode::OK);
    // The token was used: the same form again starts nothing.
    let mut other = Visit::new(&app);
    let csrf = other.csrf("/login").await;
    let reused = prompt.replace(&csrf_in(&prompt), &csrf);
    let (status, _, _) = post_code(&mut other, &reused, &codes[1]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_browser_callback_asks_for_the_code_of_an_account_with_totp() {
    let Some(python) = pyotp() else { return };
    let Some((app, mock)) = app_with_provider().await else {
        return;
    };
    mock.sign_in_as("mock-page-mfa", "pagemfa@example.com")
        .await;
    let first = ok_json(login_via(&app, "mock").await).await;
    let access = first["access_token"].as_str().unwrap().to_owned();
    let (_, codes) = enroll_totp(&app, &python, &access).await;

    let mut visit = public_visit(&app);
    let (url, state) = start_login(&mut visit).await;
    let code = browser_code(&url, &state).await;
    let r = visit.get(&callback_path(&code, &state)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !visit.jar.0.contains_key("auth_oauth"),
        "the state cookie is cleared"
    );
    let prompt = r.text().await.unwrap();
    assert!(prompt.contains("Two-step verification"), "{prompt}");
    assert_eq!(visit.get("/account").await.status(), StatusCode::SEE_OTHER);
    let (status, to, _) = post_code(&mut visit, &prompt, &codes[0]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/account");
    assert_eq!(visit.get("/account").await.status(), StatusCode::OK);
}
