//! The rules that stop takeovers and replays, against oauth2-mock-server: pre-registration,
//! identities of others, the last sign-in method, and every way a state or a token from the
//! provider can be wrong.

use reqwest::StatusCode;
use serde_json::json;

use super::{add_provider, authorize, browser_code, callback, exec_sql, login_via, MockProvider};
use crate::both_backends;
use crate::helpers::{assert_error, join_all, ok_json, spawn_app_with, Backend, TestApp, PASSWORD};

/// The mock registered twice, as `mock` and `other`, so a state can be taken elsewhere.
async fn app_with_mock(backend: Backend) -> Option<(TestApp, MockProvider)> {
    let mock = MockProvider::start().await?;
    let issuer = mock.issuer.clone();
    let app = spawn_app_with(backend, |vars| {
        add_provider(vars, "mock", &issuer);
        add_provider(vars, "other", &issuer);
    })
    .await;
    Some((app, mock))
}

async fn pre_registered_unverified_account_is_not_taken_over(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    // Someone registers the victim's address with their own password, never verifying it.
    let squatter = app.register("squatter").await;
    mock.sign_in_as("mock-victim", &squatter.email).await;
    let r = login_via(&app, "mock").await;
    assert_error(r, StatusCode::CONFLICT, "account_exists").await;
    // The local account is untouched: not linked, not verified, its password unchanged.
    let me = ok_json(app.get("/auth/me", Some(&squatter.access)).await).await;
    assert_eq!(me["is_verified"], false);
    app.login("squatter", PASSWORD).await;
    let trail = super::events(&app, &squatter.access).await;
    assert!(!trail.iter().any(|e| e["event"] == "identity_linked"));
}

async fn an_identity_of_another_account_cannot_be_linked(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    mock.sign_in_as("mock-shared", "first@example.com").await;
    ok_json(login_via(&app, "mock").await).await;
    let second = app.verified_user("second").await;
    let (url, state) = authorize(
        &app,
        "mock",
        json!({"intent": "link"}),
        Some(&second.access),
    )
    .await;
    let code = browser_code(&url, &state).await;
    let r = callback(&app, "mock", &code, &state, Some(&second.access)).await;
    assert_error(r, StatusCode::CONFLICT, "identity_in_use").await;
    let identities = ok_json(app.get("/auth/identities", Some(&second.access)).await).await;
    assert_eq!(identities, json!([]));
}

async fn the_last_sign_in_method_cannot_be_unlinked(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    mock.sign_in_as("mock-solo", "solo@example.com").await;
    let tokens = ok_json(login_via(&app, "mock").await).await;
    let access = tokens["access_token"].as_str().unwrap();
    // A second identity (the same provider under another name) ...
    let (url, state) = authorize(&app, "other", json!({"intent": "link"}), Some(access)).await;
    let code = browser_code(&url, &state).await;
    ok_json(callback(&app, "other", &code, &state, Some(access)).await).await;
    // ... then both unlinked at once: one may go, the other is the last way to sign in.
    let statuses: Vec<StatusCode> = join_all(["mock", "other"].into_iter().map(|p| {
        let path = format!("/auth/identities/{p}");
        let app = &app;
        async move { app.delete(&path, Some(access)).await.status() }
    }))
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "{statuses:?}"
    );
    let left = ok_json(app.get("/auth/identities", Some(access)).await).await;
    let left = left[0]["provider"].as_str().unwrap().to_owned();
    let r = app
        .delete(&format!("/auth/identities/{left}"), Some(access))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "last_sign_in_method").await;

    // The reset flow gives the account a password; then the identity may go.
    let r = app
        .post(
            "/auth/password-reset-request",
            &json!({"email": "solo@example.com"}),
            None,
        )
        .await;
    ok_json(r).await;
    let mail = app.wait_for_mail("solo@example.com", "Reset").await;
    let token = mail.token().expect("reset token");
    let r = app
        .post(
            "/auth/reset-password",
            &json!({"token": token, "new_password": PASSWORD}),
            None,
        )
        .await;
    ok_json(r).await;
    let fresh = app.login("solo", PASSWORD).await;
    let access = fresh["access_token"].as_str().unwrap();
    ok_json(
        app.delete(&format!("/auth/identities/{left}"), Some(access))
            .await,
    )
    .await;
}

async fn states_are_single_use_short_lived_and_bound_to_their_provider(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    mock.sign_in_as("mock-state", "state@example.com").await;

    // Unknown.
    let r = callback(&app, "mock", "some-code", "never-issued", None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;

    // Reused: the first use wins, the second is refused.
    let (url, state) = authorize(&app, "mock", json!({}), None).await;
    let code = browser_code(&url, &state).await;
    ok_json(callback(&app, "mock", &code, &state, None).await).await;
    let r = callback(&app, "mock", &code, &state, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;

    // Raced: of concurrent callbacks with one state, exactly one goes through.
    mock.sign_in_as("mock-race", "race@example.com").await;
    let (url, state) = authorize(&app, "mock", json!({}), None).await;
    let code = browser_code(&url, &state).await;
    let statuses = join_all((0..5).map(|_| {
        let (app, code, state) = (&app, &code, &state);
        async move { callback(app, "mock", code, state, None).await.status() }
    }))
    .await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((won, refused), (1, 4), "{statuses:?}");

    // From another provider.
    let (url, state) = authorize(&app, "mock", json!({}), None).await;
    let code = browser_code(&url, &state).await;
    let r = callback(&app, "other", &code, &state, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // ...and spent by that attempt.
    let r = callback(&app, "mock", &code, &state, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;

    // Expired (older than 10 minutes).
    let (url, state) = authorize(&app, "mock", json!({}), None).await;
    let code = browser_code(&url, &state).await;
    exec_sql(&app, "UPDATE oauth_states SET expires_at = created_at").await;
    let r = callback(&app, "mock", &code, &state, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;

    // Malformed bodies are 422s.
    for body in [
        json!({"code": "x"}),
        json!({"code": "", "state": "s"}),
        json!({"code": 1, "state": "s"}),
    ] {
        let r = app.post("/auth/oauth/mock/callback", &body, None).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
}

/// Tokens the provider signs properly but whose claims must be refused.
async fn tokens_with_wrong_claims_are_refused(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    let base = json!({"sub": "mock-claims", "email": "claims@example.com", "email_verified": true});
    let cases = [
        ("nonce mismatch", json!({"nonce": "not-the-nonce-we-sent"})),
        ("wrong aud", json!({"aud": "someone-else"})),
        ("wrong iss", json!({"iss": "http://127.0.0.1:1/evil"})),
        ("expired", json!({"iat": now - 7200, "exp": now - 3600})),
        (
            "issued in the future",
            json!({"iat": now + 3600, "exp": now + 7200}),
        ),
        ("email not verified", json!({"email_verified": false})),
    ];
    for (case, change) in cases {
        let mut claims = base.clone();
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        mock.set_claims(claims).await;
        let r = login_via(&app, "mock").await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "oauth_failed").await;
        eprintln!("{case}: {body}");
    }
    // None of them created an account: the first good sign-in is a sign-up.
    mock.set_claims(base).await;
    let tokens = ok_json(login_via(&app, "mock").await).await;
    assert_eq!(tokens["is_new_user"], true);
}

both_backends!(
    pre_registered_unverified_account_is_not_taken_over,
    an_identity_of_another_account_cannot_be_linked,
    the_last_sign_in_method_cannot_be_unlinked,
    states_are_single_use_short_lived_and_bound_to_their_provider,
    tokens_with_wrong_claims_are_refused,
);
