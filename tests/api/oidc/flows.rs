//! The happy paths against oauth2-mock-server: sign-up, sign-in again, linking by email
//! and by intent, unlinking, the providers list, two instances.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{add_provider, authorize, browser_code, callback, events, login_via, MockProvider};
use crate::both_backends;
use crate::helpers::{assert_error, ok_json, spawn_app_with, Backend, TestApp, PASSWORD};

async fn app_with_mock(backend: Backend) -> Option<(TestApp, MockProvider)> {
    let mock = MockProvider::start().await?;
    let issuer = mock.issuer.clone();
    let app = spawn_app_with(backend, |vars| add_provider(vars, "mock", &issuer)).await;
    Some((app, mock))
}

async fn new_user_signs_up_then_signs_in_to_the_same_account(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    mock.sign_in_as("mock-alice", "Alice@Example.com").await;
    let r = login_via(&app, "mock").await;
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let first = ok_json(r).await;
    assert_eq!(first["is_new_user"], true);
    assert_eq!(first["token_type"], "bearer");
    let access = first["access_token"].as_str().unwrap().to_owned();
    let me = ok_json(app.get("/auth/me", Some(&access)).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_verified"], true);

    // The welcome mail carries no verification link.
    let mail = app.wait_for_mail("alice@example.com", "Welcome").await;
    assert!(
        !mail.decoded_body().contains("verify-email"),
        "{}",
        mail.decoded_body()
    );
    assert!(mail.decoded_body().contains("mock IdP"));

    // No password: password login fails exactly like a wrong password.
    let wrong = app.login_raw("alice", "any password at all").await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let empty = app.login_raw("alice", "").await;
    assert_error(empty, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let again = ok_json(login_via(&app, "mock").await).await;
    assert_eq!(again["is_new_user"], false);
    let me_again = ok_json(
        app.get("/auth/me", Some(again["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(me_again["id"], me["id"]);

    let identities = ok_json(app.get("/auth/identities", Some(&access)).await).await;
    assert_eq!(identities.as_array().unwrap().len(), 1);
    assert_eq!(identities[0]["provider"], "mock");
    assert_eq!(identities[0]["email"], "alice@example.com");
    assert!(identities[0]["linked_at"].is_string());

    let trail = events(&app, &access).await;
    let logins: Vec<&Value> = trail
        .iter()
        .filter(|e| e["event"] == "login_success")
        .collect();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0]["details"]["provider"], "mock");
    assert!(trail.iter().any(|e| e["event"] == "identity_linked"));

    // Admins see the identity in their user listing.
    let admin = app.admin("root").await;
    let page = ok_json(
        app.get("/admin/users?search=alice", Some(&admin.access))
            .await,
    )
    .await;
    assert_eq!(page["users"][0]["identities"][0]["provider"], "mock");
}

async fn a_verified_local_account_is_linked_by_email(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    let bob = app.verified_user("bob").await;
    mock.sign_in_as("mock-bob", "bob@example.com").await;
    let tokens = ok_json(login_via(&app, "mock").await).await;
    assert_eq!(tokens["is_new_user"], false);
    let me = ok_json(
        app.get("/auth/me", Some(tokens["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(me["id"], bob.id);
    let trail = events(&app, &bob.access).await;
    let linked = trail
        .iter()
        .find(|e| e["event"] == "identity_linked")
        .expect("identity_linked recorded");
    assert_eq!(linked["details"]["provider"], "mock");
    // The password still works too.
    app.login("bob", PASSWORD).await;
}

async fn link_with_a_bearer_token_then_unlink(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    let carol = app.verified_user("carol").await;
    // The provider's address need not be the account's.
    mock.sign_in_as("mock-carol", "carol.work@example.org")
        .await;

    // Linking needs a bearer token, at the start and at the end.
    let r = app
        .post(
            "/auth/oauth/mock/authorize",
            &json!({"intent": "link"}),
            None,
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let (url, state) =
        authorize(&app, "mock", json!({"intent": "link"}), Some(&carol.access)).await;
    let code = browser_code(&url, &state).await;
    let r = callback(&app, "mock", &code, &state, None).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let (url, state) =
        authorize(&app, "mock", json!({"intent": "link"}), Some(&carol.access)).await;
    let code = browser_code(&url, &state).await;
    let linked = ok_json(callback(&app, "mock", &code, &state, Some(&carol.access)).await).await;
    assert_eq!(
        linked,
        json!({"provider": "mock", "email": "carol.work@example.org"})
    );

    // Signing in with the provider now reaches carol's account.
    let tokens = ok_json(login_via(&app, "mock").await).await;
    let me = ok_json(
        app.get("/auth/me", Some(tokens["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(me["id"], carol.id);

    let r = app
        .delete("/auth/identities/mock", Some(&carol.access))
        .await;
    ok_json(r).await;
    let identities = ok_json(app.get("/auth/identities", Some(&carol.access)).await).await;
    assert_eq!(identities, json!([]));
    let r = app
        .delete("/auth/identities/mock", Some(&carol.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "identity_not_found").await;
    assert!(events(&app, &carol.access)
        .await
        .iter()
        .any(|e| e["event"] == "identity_unlinked" && e["details"]["provider"] == "mock"));

    // An unverified account cannot start a link.
    let dave = app.register("dave").await;
    let r = app
        .post(
            "/auth/oauth/mock/authorize",
            &json!({"intent": "link"}),
            Some(&dave.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "email_not_verified").await;
}

async fn providers_are_listed_and_reported_on_health(backend: Backend) {
    let Some((app, _mock)) = app_with_mock(backend).await else {
        return;
    };
    let providers = ok_json(app.get("/auth/providers", None).await).await;
    assert_eq!(
        providers,
        json!([{"name": "mock", "display_name": "mock IdP"}])
    );
    // Discovery runs in the background at start; authorize discovers on demand too.
    authorize(&app, "mock", json!({}), None).await;
    let health = ok_json(app.get("/health", None).await).await;
    assert_eq!(health["checks"]["oidc"]["mock"]["status"], "ok");

    let r = app
        .post("/auth/oauth/nope/authorize", &json!({}), None)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "provider_not_found").await;
    let r = app
        .post(
            "/auth/oauth/mock/authorize",
            &json!({"intent": "steal"}),
            None,
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    for bad in [
        "http://evil.test/cb",
        "http://frontend.test/auth/callback/mock/",
        "",
    ] {
        let r = app
            .post(
                "/auth/oauth/mock/authorize",
                &json!({"redirect_uri": bad}),
                None,
            )
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    }
}

async fn authorize_on_one_instance_and_finish_on_another(backend: Backend) {
    let Some((app, mock)) = app_with_mock(backend).await else {
        return;
    };
    let other = app.another_instance(|_| {}).await;
    mock.sign_in_as("mock-erin", "erin@example.com").await;
    let (url, state) = authorize(&app, "mock", json!({}), None).await;
    let code = browser_code(&url, &state).await;
    let r = app
        .client
        .post(other.url("/auth/oauth/mock/callback"))
        .json(&json!({"code": code, "state": state}))
        .send()
        .await
        .unwrap();
    let tokens = ok_json(r).await;
    assert_eq!(tokens["is_new_user"], true);
    // Used once, whichever instance sees it again.
    let r = callback(&app, "mock", &code, &state, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_state").await;
}

both_backends!(
    new_user_signs_up_then_signs_in_to_the_same_account,
    a_verified_local_account_is_linked_by_email,
    link_with_a_bearer_token_then_unlink,
    providers_are_listed_and_reported_on_health,
    authorize_on_one_instance_and_finish_on_another,
);
