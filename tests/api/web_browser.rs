//! The web pages in a real browser (headless Chromium over WebDriver): the flows users go
//! through, and screenshots of every page at desktop and phone widths
//! (target/screenshots/). These are pure UI flows over the same services and store calls
//! the API tests cover on both backends, so they run on SQLite only: a browser per test
//! costs seconds, and the store under them is already proven on PostgreSQL.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp, PASSWORD};
use crate::web_driver::Driver;

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn api_login_works(app: &TestApp, username: &str, password: &str) -> bool {
    app.login_raw(username, password)
        .await
        .status()
        .is_success()
}

/// A page never carries a token: no JWT, no refresh token, no emailed token.
fn assert_no_tokens(source: &str, secrets: &[&str]) {
    assert!(!source.contains("eyJ"), "a JWT in the page source");
    for secret in secrets {
        assert!(!source.contains(secret), "a token in the page source");
    }
}

/// The first `<base>/<path>?token=...` link in a mail.
fn link_in(body: &str, prefix: &str) -> String {
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{body}"));
    let token: String = body[start + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(!token.is_empty());
    format!("{prefix}{token}")
}

/// With the default FRONTEND_URL (the service's own address), the mailed verification
/// link opens the service's page and verifies the address. Also: field errors on a bad
/// sign-up, and screenshots of the public pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_then_the_mailed_link_verifies() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.remove("FRONTEND_URL");
        vars.insert("PORT".into(), port.to_string());
    })
    .await;
    let base = format!("http://localhost:{port}");
    let b = driver.browser().await;

    b.goto(&format!("{base}/")).await;
    b.wait_heading("Sign in").await;
    b.screenshots("login").await;
    b.goto(&format!("{base}/forgot-password")).await;
    b.wait_heading("Forgot your password").await;
    b.screenshots("forgot-password").await;

    // Bad input: each message under its field, tied to it for screen readers.
    b.goto(&format!("{base}/signup")).await;
    b.wait_heading("Create an account").await;
    b.fill("#f-username", "x").await;
    b.fill("#f-email", "not-an-email").await;
    b.fill("#f-password", "short").await;
    b.click("form[action='/signup'] button[type=submit]").await;
    b.wait_text("#e-username", "3 to 32").await;
    for field in ["username", "email", "password"] {
        let input = b
            .client
            .find(fantoccini::Locator::Css(&format!("#f-{field}")))
            .await
            .unwrap();
        let described = input
            .attr("aria-describedby")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            described.contains(&format!("e-{field}")),
            "{field}: {described}"
        );
        assert_eq!(
            input.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );
    }
    b.screenshots("signup-errors").await;

    b.fill("#f-username", "webalice").await;
    b.fill("#f-email", "webalice@example.com").await;
    b.fill("#f-password", PASSWORD).await;
    b.click("form[action='/signup'] button[type=submit]").await;
    b.wait_heading("Your account").await;
    b.wait_text(".badge.warn", "Not verified").await;
    b.wait_text(".notice", "Welcome").await;

    let mail = app.wait_for_mail("webalice@example.com", "verify").await;
    let link = link_in(&mail.decoded_body(), &format!("{base}/verify-email?token="));
    b.goto(&link).await;
    b.wait_heading("Email address verified").await;
    assert_eq!(
        b.path().await,
        "/verify-email?status=verified",
        "the token left the address bar"
    );
    b.screenshots("verify-email").await;
    b.goto(&format!("{base}/account")).await;
    b.wait_text(".badge.ok", "Verified").await;
    let token = link.rsplit('=').next().unwrap();
    assert_no_tokens(&b.source().await, &[token]);

    // Used once: the same link again is refused, readably.
    b.goto(&link).await;
    b.wait_heading("invalid or has expired").await;
    b.close().await;
}

/// A password change in one browser signs the other out at once; the account and
/// credits pages render (screenshots), and credits history pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_the_other_browsers_session() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("webbob").await;
    let admin = app.admin("webroot").await;
    for i in 0..25 {
        let r = app
            .post(
                "/credits/add",
                &json!({"amount": "1.25", "user_id": user.id, "description": format!("top-up {i}")}),
                Some(&admin.access),
            )
            .await;
        assert!(r.status().is_success());
    }
    let base = app.address.clone();
    let first = driver.browser().await;
    let second = driver.browser().await;
    first.sign_in(&base, "webbob", PASSWORD).await;
    second.sign_in(&base, "webbob@example.com", PASSWORD).await;
    first.wait_text(".badge.ok", "This device").await;
    first.screenshots("account").await;

    first.goto(&format!("{base}/credits")).await;
    first.wait_heading("Credits").await;
    first.wait_text(".amount", "31.25").await;
    first.wait_text(".pager", "Page 1 of 2").await;
    first.screenshots("credits").await;
    first.click(".pager a[rel=next]").await;
    first.wait_text(".pager", "Page 2 of 2").await;
    first.wait_text("td", "top-up 0").await;

    // A wrong current password: the message sits under that field.
    first.goto(&format!("{base}/account")).await;
    first.fill("#f-current_password", "not my password").await;
    first.fill("#f-new_password", NEW_PASSWORD).await;
    first
        .click("form[action='/account/password'] button[type=submit]")
        .await;
    first
        .wait_text("#e-current_password", "Incorrect password")
        .await;

    first.fill("#f-current_password", PASSWORD).await;
    first.fill("#f-new_password", NEW_PASSWORD).await;
    first
        .click("form[action='/account/password'] button[type=submit]")
        .await;
    first
        .wait_text(".notice", "Your password has been changed")
        .await;

    second.goto(&format!("{base}/account")).await;
    second.wait_heading("Sign in").await;
    assert_eq!(second.path().await, "/login");
    assert!(!api_login_works(&app, "webbob", PASSWORD).await);
    assert!(api_login_works(&app, "webbob", NEW_PASSWORD).await);
    // The first browser (where the change was made) is still signed in.
    first.goto(&format!("{base}/account")).await;
    first.wait_heading("Your account").await;
    first.close().await;
    second.close().await;
}

/// Forgot password → the mailed link → a new password: every old session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_mail_ends_old_sessions() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("webcarol").await;
    let base = app.address.clone();
    let signed_in = driver.browser().await;
    signed_in.sign_in(&base, "webcarol", PASSWORD).await;

    let b = driver.browser().await;
    b.goto(&format!("{base}/forgot-password")).await;
    b.fill("#f-email", &user.email).await;
    b.click("form[action='/forgot-password'] button[type=submit]")
        .await;
    b.wait_heading("Check your inbox").await;

    let mail = app.wait_for_mail(&user.email, "password").await;
    // Tests mail links to FRONTEND_URL=http://frontend.test; the path is what matters here.
    let link = link_in(
        &mail.decoded_body(),
        "http://frontend.test/reset-password?token=",
    );
    let token = link.rsplit('=').next().unwrap().to_owned();
    b.goto(&format!("{base}/reset-password?token={token}"))
        .await;
    b.wait_heading("Choose a new password").await;
    assert_eq!(
        b.path().await,
        "/reset-password",
        "the token left the address bar"
    );
    assert_no_tokens(&b.source().await, &[&token]);
    b.screenshots("reset-password").await;

    b.fill("#f-password", NEW_PASSWORD).await;
    b.fill("#f-confirm", "something else entirely").await;
    b.click("form[action='/reset-password'] button[type=submit]")
        .await;
    b.wait_text("#e-confirm", "do not match").await;
    b.fill("#f-password", NEW_PASSWORD).await;
    b.fill("#f-confirm", NEW_PASSWORD).await;
    b.click("form[action='/reset-password'] button[type=submit]")
        .await;
    b.wait_text(".notice", "Your password has been changed")
        .await;

    signed_in.goto(&format!("{base}/account")).await;
    signed_in.wait_heading("Sign in").await;
    assert_eq!(app.get("/auth/me", Some(&user.access)).await.status(), 401);
    b.sign_in(&base, "webcarol", NEW_PASSWORD).await;
    signed_in.close().await;
    b.close().await;
}

/// Revoking one session from the list ends it; "sign out everywhere" ends the rest,
/// API sessions included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_one_session_then_sign_out_everywhere() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("webdave").await;
    let base = app.address.clone();
    let a = driver.browser().await;
    let b = driver.browser().await;
    a.sign_in(&base, "webdave", PASSWORD).await;
    b.sign_in(&base, "webdave", PASSWORD).await;

    // The list shows the API session (from registration) and both browsers.
    a.goto(&format!("{base}/account")).await;
    let sessions = a
        .client
        .find_all(fantoccini::Locator::Css(".session"))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 3);
    // B's session is the newest non-current one: the first revoke button in the list.
    a.click("form[action='/account/sessions/revoke'] button")
        .await;
    a.wait_text(".notice", "The session has been signed out")
        .await;
    b.goto(&format!("{base}/account")).await;
    b.wait_heading("Sign in").await;
    assert_eq!(app.get("/auth/me", Some(&user.access)).await.status(), 200);

    a.click("form[action='/account/sessions/revoke-all'] button")
        .await;
    a.wait_text(".notice", "signed out on every device").await;
    a.goto(&format!("{base}/account")).await;
    a.wait_heading("Sign in").await;
    assert_eq!(app.get("/auth/me", Some(&user.access)).await.status(), 401);
    a.close().await;
    b.close().await;
}

/// Deleting the account needs the password; then the account is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_the_account() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("weberin").await;
    let base = app.address.clone();
    let b = driver.browser().await;
    b.sign_in(&base, "weberin", PASSWORD).await;
    b.fill("#f-delete_password", "wrong password").await;
    b.click("form[action='/account/delete'] button").await;
    b.wait_text("#e-delete_password", "Incorrect password")
        .await;
    b.fill("#f-delete_password", PASSWORD).await;
    b.click("form[action='/account/delete'] button").await;
    b.wait_text(".notice", "Your account has been deleted")
        .await;
    assert!(!api_login_works(&app, "weberin", PASSWORD).await);
    b.close().await;
}

/// An admin deactivates a user; the user's open page lands on sign-in at the next click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deactivates_a_user() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    app.admin("webroot").await;
    app.verified_user("webfrank").await;
    let base = app.address.clone();
    let admin = driver.browser().await;
    let user = driver.browser().await;
    user.sign_in(&base, "webfrank", PASSWORD).await;
    admin.sign_in(&base, "webroot", PASSWORD).await;

    admin.goto(&format!("{base}/admin")).await;
    admin.wait_heading("Administration").await;
    admin.fill("#f-search", "webfrank").await;
    admin.click("form.search button").await;
    admin.wait_path("/admin?search=webfrank").await;
    admin.wait_text("td", "webfrank@example.com").await;

    // Grant credits with a reason; a missing reason is refused under its field.
    admin.fill("#f-grant_username", "webfrank").await;
    admin.fill("#f-amount", "12.50").await;
    admin.click("form[action='/admin/credits'] button").await;
    admin.wait_text("#e-reason", "Give a reason").await;
    admin.fill("#f-reason", "Welcome bonus").await;
    admin.click("form[action='/admin/credits'] button").await;
    admin
        .wait_text(".notice", "credits have been granted")
        .await;
    admin.screenshots("admin").await;

    admin.fill("#f-search", "webfrank").await;
    admin.click("form.search button").await;
    admin
        .click("button[aria-label='Deactivate webfrank']")
        .await;
    admin
        .wait_text(".notice", "The account has been updated")
        .await;
    admin.wait_text(".badge.bad", "Deactivated").await;

    // The user's page was open; the next click (to Credits) lands on sign-in.
    user.click("nav a[href='/credits']").await;
    user.wait_heading("Sign in").await;
    user.fill("#f-username", "webfrank").await;
    user.fill("#f-password", PASSWORD).await;
    user.click("form[action='/login'] button[type=submit]")
        .await;
    user.wait_text(".alert", "disabled").await;
    admin.close().await;
    user.close().await;
}
