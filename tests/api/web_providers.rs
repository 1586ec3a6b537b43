//! Sign in with a provider from the pages (DESIGN §10, §11), over plain HTTP against
//! oauth2-mock-server: the start form's CSRF, the callback page's refusals (bad, used or
//! foreign state: a readable error and no session), the binding of the state to the
//! browser that started it, and the buttons' conditions. In a real browser: signing up
//! with the provider, linking and unlinking from the account page.

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app_with, Backend, TestApp, PASSWORD};
use crate::oidc::{add_provider, browser_code, MockProvider};
use crate::web::{location, Visit};
use crate::web_driver::Driver;

/// The address the app believes it is at (PUBLIC_URL): its default redirect URIs point
/// there, and form posts come from there.
const PUBLIC: &str = "http://auth.test";

pub(crate) async fn app_with_provider() -> Option<(TestApp, MockProvider)> {
    let mock = MockProvider::start().await?;
    let issuer = mock.issuer.clone();
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.remove("FRONTEND_URL");
        vars.insert("PUBLIC_URL".into(), PUBLIC.into());
        add_provider(vars, "mock", &issuer);
    })
    .await;
    Some((app, mock))
}

pub(crate) fn public_visit(app: &TestApp) -> Visit<'_> {
    let mut visit = Visit::new(app);
    visit.origin = PUBLIC.into();
    visit
}

/// Starts a login from the sign-in page's button: (authorization URL, state).
pub(crate) async fn start_login(visit: &mut Visit<'_>) -> (String, String) {
    let csrf = visit.csrf("/login").await;
    let r = visit
        .post("/auth/start/mock", &[("intent", "login"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let url = location(&r).to_owned();
    assert!(visit.jar.0.contains_key("auth_oauth"), "the state is bound");
    let parsed = reqwest::Url::parse(&url).unwrap();
    let state = parsed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let redirect = parsed
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        redirect.as_deref(),
        Some("http://auth.test/auth/callback/mock")
    );
    (url, state)
}

pub(crate) fn callback_path(code: &str, state: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("state", state)
        .finish();
    format!("/auth/callback/mock?{query}")
}

#[tokio::test]
async fn the_login_page_offers_the_provider_and_its_form_needs_csrf() {
    let Some((app, mock)) = app_with_provider().await else {
        return;
    };
    let mut visit = public_visit(&app);
    let r = visit.get("/login").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.text().await.unwrap();
    assert!(body.contains("action=\"/auth/start/mock\""), "{body}");
    assert!(body.contains("Sign in with mock IdP"));
    // The post's redirect to the provider must be allowed by the page's policy.
    let issuer_origin = mock.issuer.trim_end_matches('/').to_owned();
    assert!(
        csp.contains(&format!("form-action 'self' {issuer_origin}")),
        "{csp}"
    );
    let signup = visit.get("/signup").await.text().await.unwrap();
    assert!(signup.contains("Sign up with mock IdP"));

    // Without the token, with a wrong one, or from another origin: refused, no flow.
    let csrf = visit.csrf("/login").await;
    for (token, origin) in [
        ("", PUBLIC),
        ("0123", PUBLIC),
        (csrf.as_str(), "http://evil.test"),
    ] {
        visit.origin = origin.into();
        let r = visit
            .post("/auth/start/mock", &[("intent", "login"), ("csrf", token)])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?} {origin}");
        assert!(!visit.jar.0.contains_key("auth_oauth"));
    }
}

#[tokio::test]
async fn the_callback_page_completes_once_and_only_in_the_browser_that_started() {
    let Some((app, mock)) = app_with_provider().await else {
        return;
    };
    mock.sign_in_as("mock-page-ann", "ann@example.com").await;
    let mut visit = public_visit(&app);
    let (url, state) = start_login(&mut visit).await;
    let code = browser_code(&url, &state).await;

    // Another browser (no binding cookie) cannot use it: readable error, no session.
    let mut stranger = crate::web::Visit::new(&app);
    let r = stranger.get(&callback_path(&code, &state)).await;
    assert_eq!(location(&r), "/login?oauth_error=invalid_state");
    assert!(!stranger.jar.0.contains_key("auth_session"));
    let page = stranger
        .get("/login?oauth_error=invalid_state")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("expired or was already used"), "{page}");
    assert!(page.contains("role=\"alert\""));

    // The browser that started it: signed in, on its account page, address clean.
    let r = visit.get(&callback_path(&code, &state)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account?notice=welcome_provider");
    assert!(visit.jar.0.contains_key("auth_session"));
    assert!(!visit.jar.0.contains_key("auth_oauth"), "binding dropped");
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("ann@example.com"));
    assert!(!account.contains(&code) && !account.contains(&state));

    // The same state again, even with its binding restored: used, refused, no session.
    let mut again = crate::web::Visit::new(&app);
    again.jar.0.insert(
        "auth_oauth".into(),
        hex::encode(Sha256::digest(state.as_bytes())),
    );
    let r = again.get(&callback_path(&code, &state)).await;
    assert_eq!(location(&r), "/login?oauth_error=invalid_state");
    assert!(!again.jar.0.contains_key("auth_session"));

    // Nonsense, missing parts, or the provider's own refusal: readable, no session.
    for path in [
        "/auth/callback/mock?code=abc&state=def".to_owned(),
        "/auth/callback/mock".to_owned(),
        format!("/auth/callback/mock?state={}", "x".repeat(3000)),
    ] {
        let r = again.get(&path).await;
        assert_eq!(location(&r), "/login?oauth_error=invalid_state", "{path}");
    }
    let r = again
        .get("/auth/callback/mock?error=access_denied&state=x")
        .await;
    assert_eq!(location(&r), "/login?oauth_error=cancelled");
    let page = again
        .get("/login?oauth_error=cancelled")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("cancelled at the provider"));
    assert!(!again.jar.0.contains_key("auth_session"));
    // Unknown keys show nothing (the message is never taken from the address).
    let page = again
        .get("/login?oauth_error=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("role=\"alert\""));
}

/// A password account registered (unverified) with the provider's address is not taken
/// over: the page says why.
#[tokio::test]
async fn account_exists_and_disabled_read_as_sentences() {
    let Some((app, mock)) = app_with_provider().await else {
        return;
    };
    app.register("bea").await;
    mock.sign_in_as("mock-bea", "bea@example.com").await;
    let mut visit = public_visit(&app);
    let (url, state) = start_login(&mut visit).await;
    let code = browser_code(&url, &state).await;
    let r = visit.get(&callback_path(&code, &state)).await;
    assert_eq!(location(&r), "/login?oauth_error=account_exists");
    assert!(!visit.jar.0.contains_key("auth_session"));
    let page = visit.get(location(&r)).await.text().await.unwrap();
    assert!(page.contains("its address is not verified yet"), "{page}");

    // A deactivated account: no session, and the page says so.
    mock.sign_in_as("mock-fay", "fay@example.com").await;
    let mut first = public_visit(&app);
    let (url, state) = start_login(&mut first).await;
    let code = browser_code(&url, &state).await;
    first.get(&callback_path(&code, &state)).await;
    crate::oidc::exec_sql(
        &app,
        "UPDATE users SET is_active = FALSE WHERE username = 'fay'",
    )
    .await;
    let mut again = public_visit(&app);
    let (url, state) = start_login(&mut again).await;
    let code = browser_code(&url, &state).await;
    let r = again.get(&callback_path(&code, &state)).await;
    assert_eq!(location(&r), "/login?oauth_error=account_disabled");
    assert!(!again.jar.0.contains_key("auth_session"));
    let page = again.get(location(&r)).await.text().await.unwrap();
    assert!(page.contains("This account is disabled"), "{page}");
}

/// Buttons appear only where the flow can come back to these pages: the page's own
/// callback must be the provider's redirect URI or an allowed one.
#[tokio::test]
async fn no_button_when_the_provider_returns_elsewhere() {
    let Some(mock) = MockProvider::start().await else {
        return;
    };
    let issuer = mock.issuer.clone();
    // The test default: FRONTEND_URL is another site, which owns /auth/callback.
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("PUBLIC_URL".into(), PUBLIC.into());
        add_provider(vars, "mock", &issuer);
    })
    .await;
    let mut visit = public_visit(&app);
    let body = visit.get("/login").await.text().await.unwrap();
    assert!(!body.contains("/auth/start/mock"), "{body}");
    let csrf = visit.csrf("/login").await;
    let r = visit
        .post("/auth/start/mock", &[("intent", "login"), ("csrf", &csrf)])
        .await;
    assert_eq!(location(&r), "/login?oauth_error=unknown_provider");
    // Allowing the page's callback brings the button back.
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("PUBLIC_URL".into(), PUBLIC.into());
        vars.insert(
            "ALLOWED_REDIRECT_URIS".into(),
            format!("{PUBLIC}/auth/callback/mock"),
        );
        add_provider(vars, "mock", &issuer);
    })
    .await;
    let mut visit = public_visit(&app);
    let body = visit.get("/login").await.text().await.unwrap();
    assert!(body.contains("/auth/start/mock"));
}

/// Linking from the account page needs its CSRF token and a verified account; unlinking
/// too; the last way to sign in cannot be unlinked.
#[tokio::test]
async fn link_and_unlink_forms_are_guarded() {
    let Some((app, mock)) = app_with_provider().await else {
        return;
    };
    app.verified_user("cleo").await;
    let mut visit = public_visit(&app);
    visit.sign_in("cleo").await;
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("Link mock IdP"), "{account}");
    for path in ["/auth/start/mock", "/account/identities/unlink"] {
        let r = visit
            .post(
                path,
                &[("intent", "link"), ("provider", "mock"), ("csrf", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // An unverified account is told to verify first; nothing starts.
    app.register("dora").await;
    let mut unverified = visit_signed_in(&app, "dora").await;
    let page = unverified.get("/account").await.text().await.unwrap();
    assert!(page.contains("Verify your email address to link"), "{page}");
    assert!(!page.contains("Link mock IdP"));
    let csrf = unverified.csrf("/account").await;
    let r = unverified
        .post("/auth/start/mock", &[("intent", "link"), ("csrf", &csrf)])
        .await;
    assert_eq!(location(&r), "/account?oauth_error=email_not_verified");
    let page = unverified.get(location(&r)).await.text().await.unwrap();
    assert!(
        page.contains("Verify your email address before linking"),
        "{page}"
    );

    // A provider-only account cannot unlink its only way in: the page says so.
    mock.sign_in_as("mock-only-eve", "eve@example.com").await;
    let mut eve = public_visit(&app);
    let (url, state) = start_login(&mut eve).await;
    let code = browser_code(&url, &state).await;
    eve.get(&callback_path(&code, &state)).await;
    let csrf = eve.csrf("/account").await;
    let r = eve
        .post(
            "/account/identities/unlink",
            &[("provider", "mock"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(body.contains("only way to sign in"), "{body}");
    assert!(body.contains("has no password"), "{body}");

    // Cleo links the identity that is eve's: refused, said on cleo's account page.
    let csrf = visit.csrf("/account").await;
    let r = visit
        .post("/auth/start/mock", &[("intent", "link"), ("csrf", &csrf)])
        .await;
    let url = location(&r).to_owned();
    let state = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let code = browser_code(&url, &state).await;
    let r = visit.get(&callback_path(&code, &state)).await;
    assert_eq!(location(&r), "/account?oauth_error=identity_in_use");
    let page = visit.get(location(&r)).await.text().await.unwrap();
    assert!(page.contains("already linked to another account"), "{page}");
}

async fn visit_signed_in<'a>(app: &'a TestApp, username: &str) -> Visit<'a> {
    let mut v = public_visit(app);
    v.sign_in(username).await;
    v
}

/// In a real browser: "Sign up with" creates a verified account and lands on it; another
/// user links the provider from the account page and unlinks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_up_with_the_provider_then_links_and_unlinks() {
    let Some(mock) = MockProvider::start().await else {
        return;
    };
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let issuer = mock.issuer.clone();
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.remove("FRONTEND_URL");
        vars.insert("PORT".into(), port.to_string());
        add_provider(vars, "mock", &issuer);
    })
    .await;
    let base = format!("http://localhost:{port}");

    mock.sign_in_as("mock-webzoe", "zoe@example.com").await;
    let b = driver.browser().await;
    b.goto(&format!("{base}/signup")).await;
    b.wait_heading("Create an account").await;
    b.goto(&format!("{base}/login?oauth_error=account_exists"))
        .await;
    b.wait_text(".alert", "not verified yet").await;
    b.screenshots("login-provider-error").await;
    b.goto(&format!("{base}/login")).await;
    b.wait_heading("Sign in").await;
    b.screenshots("login-providers").await;
    b.click("form[action='/auth/start/mock'] button").await;
    b.wait_heading("Your account").await;
    assert_eq!(b.path().await, "/account?notice=welcome_provider");
    b.wait_text(".badge.ok", "Verified").await;
    b.wait_text(".identity", "zoe@example.com").await;
    b.wait_text(".callout", "has no password").await;
    b.screenshots("account-provider-only").await;
    // Its only way in: unlinking is refused, readably.
    b.click("button[aria-label='Unlink mock IdP']").await;
    b.wait_text(".alert", "only way to sign in").await;
    b.close().await;

    app.verified_user("webyan").await;
    mock.sign_in_as("mock-yan", "yan.work@example.org").await;
    let b = driver.browser().await;
    b.sign_in(&base, "webyan", PASSWORD).await;
    b.wait_text(".link-buttons", "Link mock IdP").await;
    b.click(".link-buttons button").await;
    b.wait_text(".notice", "linked to your account").await;
    b.wait_text(".identity", "yan.work@example.org").await;
    b.screenshots("account-identities").await;
    b.click("button[aria-label='Unlink mock IdP']").await;
    b.wait_text(".notice", "has been unlinked").await;
    b.wait_text(".link-buttons", "Link mock IdP").await;

    // An email change waits for confirmation at the new address, and says so.
    b.fill("#f-new_email", "yan.new@example.com").await;
    b.fill("#f-email_password", PASSWORD).await;
    b.click("form[action='/account/email'] button").await;
    b.wait_text(".notice", "Check your new address").await;
    b.wait_text("#pending-email", "waiting for confirmation")
        .await;
    b.screenshots("account-pending-email").await;
    b.close().await;
}
