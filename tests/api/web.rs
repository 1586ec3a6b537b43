//! The web pages over plain HTTP: security headers, cookie flags, CSRF and origin checks,
//! the browser session's binding to the sessions table (both backends), WEB_UI=false.
//! The flows in a real browser are in web_browser.rs.

use std::collections::HashMap;

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp, PASSWORD};

/// A minimal cookie jar: what the server set, sent back as one Cookie header.
#[derive(Default)]
pub struct Jar(pub HashMap<String, String>);

impl Jar {
    pub fn take(&mut self, response: &Response) {
        for line in response.headers().get_all(SET_COOKIE) {
            let line = line.to_str().unwrap();
            let (pair, _) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || line.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub struct Visit<'a> {
    pub app: &'a TestApp,
    pub jar: Jar,
    pub origin: String,
}

impl<'a> Visit<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            jar: Jar::default(),
            origin: app.address.clone(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", self.jar.header())
            .send()
            .await
            .unwrap();
        self.jar.take(&r);
        r
    }

    /// A form post from `self.origin` with the jar's cookies.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.jar.header())
            .header("origin", &self.origin)
            .form(form)
            .send()
            .await
            .unwrap();
        self.jar.take(&r);
        r
    }

    /// The page's CSRF token (the first hidden csrf field).
    pub async fn csrf(&mut self, path: &str) -> String {
        let body = self.get(path).await.text().await.unwrap();
        csrf_in(&body)
    }

    pub async fn change_email(&mut self, to: &str) -> Response {
        let csrf = self.csrf("/account").await;
        self.post(
            "/account/email",
            &[
                ("new_email", to),
                ("email_password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    pub async fn sign_in(&mut self, username: &str) {
        let csrf = self.csrf("/login").await;
        let r = self
            .post(
                "/login",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
    }
}

pub fn csrf_in(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("a csrf field") + marker.len();
    body[start..].chars().take_while(|c| *c != '"').collect()
}

pub fn location(r: &Response) -> &str {
    r.headers()
        .get(LOCATION)
        .map_or("", |v| v.to_str().unwrap())
}

pub fn set_cookie_line(r: &Response, name: &str) -> String {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie {name}"))
}

#[tokio::test]
async fn pages_carry_security_headers_and_refuse_framing() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut visit = Visit::new(&app);
    let r = visit.get("/login").await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    let visitor = set_cookie_line(&r, "auth_visitor");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(visitor.contains(flag), "{visitor}");
    }
    assert!(!visitor.contains("Secure"), "plain http: no Secure flag");
    let body = r.text().await.unwrap();
    assert!(!body.contains("<script"), "no script at all");
    assert!(body.contains("<label for=\"f-username\">"));

    // The stylesheet: content-hashed name, cached for a year; other names are 404.
    let start = body.find("/static/app.").unwrap();
    let href: String = body[start..].chars().take_while(|c| *c != '"').collect();
    let css = visit.get(&href).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert_eq!(
        visit.get("/static/app.css").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        visit.get("/static/..%2fCargo.toml").await.status(),
        StatusCode::NOT_FOUND
    );

    // Home sends visitors to sign in; signed-in users to their account.
    let home = visit.get("/").await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&home), "/login");
    assert_eq!(location(&visit.get("/account").await), "/login");
    app.verified_user("hdrs").await;
    visit.sign_in("hdrs").await;
    assert_eq!(location(&visit.get("/").await), "/account");
    let account = visit.get("/account").await;
    assert_eq!(account.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(account.headers()["x-frame-options"], "DENY");
    let source = account.text().await.unwrap();
    assert!(!source.contains("eyJ"), "no JWT in the page");
    let session_cookie = visit.jar.0["auth_session"].clone();
    let (_, refresh) = session_cookie.split_once('.').unwrap();
    assert!(!source.contains(refresh), "no refresh token in the page");
}

#[tokio::test]
async fn web_ui_false_removes_the_pages() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("WEB_UI".into(), "false".into());
    })
    .await;
    for path in [
        "/",
        "/login",
        "/signup",
        "/account",
        "/reset-password?token=x",
    ] {
        assert_eq!(
            app.get(path, None).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forms_need_a_valid_csrf_token_from_our_own_origin() {
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("csrfuser").await;
    let mut visit = Visit::new(&app);
    let csrf = visit.csrf("/login").await;
    let login = |csrf: &str| {
        vec![
            ("username".to_owned(), "csrfuser".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
            ("csrf".to_owned(), csrf.to_owned()),
        ]
    };
    let post = |visit: &Visit, form: Vec<(String, String)>, origin: &str, cookies: bool| {
        let mut request = app
            .client
            .post(app.url("/login"))
            .header("origin", origin)
            .form(&form);
        if cookies {
            request = request.header("cookie", visit.jar.header());
        }
        request.send()
    };
    // No token, a wrong one, the right one from another site, the right one without the
    // cookie it is bound to: all refused, and no session is started.
    let cases = [
        (login(""), app.address.clone(), true),
        (login(&"0".repeat(64)), app.address.clone(), true),
        (login(&csrf), "http://evil.test".to_owned(), true),
        (login(&csrf), "null".to_owned(), true),
        (login(&csrf), app.address.clone(), false),
    ];
    for (form, origin, cookies) in cases {
        let r = post(&visit, form, &origin, cookies).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "origin {origin}, cookies {cookies}"
        );
        assert!(r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("auth_session=")));
    }
    let missing = app
        .client
        .post(app.url("/login"))
        .header("cookie", visit.jar.header())
        .form(&[("username", "csrfuser"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);

    // The real thing works, and its cookie has the flags of DESIGN §11.
    let r = post(&visit, login(&csrf), &app.address, true)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account");
    let cookie = set_cookie_line(&r, "auth_session");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    visit.jar.take(&r);

    // Signed in: the visitor token no longer counts; a state change without the
    // session's token is refused and changes nothing.
    let r = visit
        .post("/account/sessions/revoke-all", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = visit.post("/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(visit.get("/account").await.status(), StatusCode::OK);
    let session_csrf = visit.csrf("/account").await;
    assert_ne!(session_csrf, csrf);
    visit.origin = "http://evil.test".into();
    let r = visit.post("/logout", &[("csrf", &session_csrf)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    visit.origin = app.address.clone();
    let r = visit.post("/logout", &[("csrf", &session_csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&visit.get("/account").await), "/login");
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_prefixed() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("PUBLIC_URL".into(), "https://id.example.test".into());
    })
    .await;
    app.verified_user("tlsuser").await;
    let mut visit = Visit::new(&app);
    visit.origin = "https://id.example.test".into();
    let r = visit.get("/login").await;
    let visitor = set_cookie_line(&r, "__Host-auth_visitor");
    assert!(visitor.contains("; Secure"), "{visitor}");
    let csrf = csrf_in(&r.text().await.unwrap());
    let r = visit
        .post(
            "/login",
            &[
                ("username", "tlsuser"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie_line(&r, "__Host-auth_session");
    for flag in ["; Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The http origin of the same host is another site.
    visit.origin = "http://id.example.test".into();
    let csrf = visit.csrf("/account").await;
    assert_eq!(
        visit.post("/logout", &[("csrf", &csrf)]).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn mailed_link_tokens_leave_the_address_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut visit = Visit::new(&app);
    let r = visit.get("/reset-password?token=abcDEF123_-").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/reset-password");
    let kept = set_cookie_line(&r, "auth_reset");
    assert!(
        kept.contains("HttpOnly") && kept.contains("Max-Age=1800"),
        "{kept}"
    );
    let form = visit.get("/reset-password").await.text().await.unwrap();
    assert!(!form.contains("abcDEF123_-"));
    // An unknown token is refused when used, and forgotten.
    let csrf = csrf_in(&form);
    let r = visit
        .post(
            "/reset-password",
            &[
                ("password", "another password"),
                ("confirm", "another password"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!visit.jar.0.contains_key("auth_reset"));
    let r = visit.get("/reset-password?token=<script>").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = visit.get("/verify-email?token=not-a-real-token").await;
    assert_eq!(location(&r), "/verify-email?status=invalid");
    let page = visit.get("/verify-email?status=invalid").await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);

    // Checkout's default return addresses are pages too; they never echo the query.
    let back = visit.get("/billing/success?session_id=cs_test_123").await;
    assert_eq!(back.status(), StatusCode::OK);
    assert!(!back.text().await.unwrap().contains("cs_test_123"));
    assert_eq!(visit.get("/billing/cancel").await.status(), StatusCode::OK);
}

/// The browser's session is a row of the sessions table: the API lists it, and revoking
/// it there (or changing the password elsewhere) ends it on the next page.
async fn browser_sessions_are_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.verified_user("rowuser").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("rowuser").await;
    let cookie = visit.jar.0["auth_session"].clone();
    let (session_id, _) = cookie.split_once('.').unwrap();
    let listed: serde_json::Value = app
        .get("/auth/sessions", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&session_id), "{listed}");
    // A forged cookie (right id, wrong secret) is not a session.
    let mut forged = Visit::new(&app);
    forged
        .jar
        .0
        .insert("auth_session".into(), format!("{session_id}.forged"));
    assert_eq!(location(&forged.get("/account").await), "/login");

    assert_eq!(visit.get("/account").await.status(), StatusCode::OK);
    let r = app
        .delete(&format!("/auth/sessions/{session_id}"), Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = visit.get("/account").await;
    assert_eq!(location(&r), "/login");
    assert!(set_cookie_line(&r, "auth_session").contains("Max-Age=0"));

    // A password change through the API ends browser sessions too.
    visit.sign_in("rowuser").await;
    let r = app
        .put(
            "/auth/users/rowuser/password",
            &serde_json::json!({"current_password": PASSWORD, "new_password": "changed elsewhere"}),
            Some(&user.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(location(&visit.get("/account").await), "/login");
}

both_backends!(browser_sessions_are_sessions);

/// The pages show the services' refusals as the API gives them: a throttled login as a
/// readable wait, a taken username under its field.
#[tokio::test]
async fn pages_show_the_services_refusals() {
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("slowuser").await;
    let mut visit = Visit::new(&app);
    let mut last = String::new();
    let mut status = StatusCode::OK;
    for _ in 0..8 {
        let csrf = visit.csrf("/login").await;
        let r = visit
            .post(
                "/login",
                &[
                    ("username", "slowuser"),
                    ("password", "wrong guess"),
                    ("csrf", &csrf),
                ],
            )
            .await;
        status = r.status();
        last = r.text().await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(last.contains("Incorrect username or password"));
    }
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(last.contains("Please wait"), "{last}");
    assert!(last.contains("role=\"alert\""));
    assert!(last.contains("value=\"slowuser\""), "the name is kept");

    let csrf = visit.csrf("/signup").await;
    let r = visit
        .post(
            "/signup",
            &[
                ("username", "SlowUser"),
                ("email", "someone@example.com"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"e-username\""), "{body}");
    assert!(body.contains("aria-describedby=\"e-username"), "{body}");
}

/// Email change from the account page is the pending change of the API: the link to the
/// new address completes it; the link to the old one cancels it. Both land on pages.
#[tokio::test]
async fn email_change_links_land_on_pages() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("mover").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("mover").await;
    let r = visit.change_email("moved@example.com").await;
    assert_eq!(location(&r), "/account?notice=email_change_requested");
    let cancel = app.wait_for_mail(&user.email, "changed").await;
    let token = cancel.token().expect("a cancel link");
    let r = visit
        .get(&format!("/cancel-email-change?token={token}"))
        .await;
    assert_eq!(location(&r), "/cancel-email-change?status=cancelled");
    assert_eq!(
        visit
            .get("/cancel-email-change?status=cancelled")
            .await
            .status(),
        StatusCode::OK
    );
    let r = visit
        .get(&format!("/cancel-email-change?token={token}"))
        .await;
    assert_eq!(location(&r), "/cancel-email-change?status=invalid");

    let r = visit.change_email("moved2@example.com").await;
    assert_eq!(location(&r), "/account?notice=email_change_requested");
    let confirm = app.wait_for_mail("moved2@example.com", "new email").await;
    let token = confirm.token().expect("a confirm link");
    let r = visit.get(&format!("/verify-email?token={token}")).await;
    assert_eq!(location(&r), "/verify-email?status=verified");
    let page = visit.get("/account").await.text().await.unwrap();
    assert!(page.contains("moved2@example.com"), "{page}");

    // Wrong password: refused under its field, nothing pending.
    let csrf = visit.csrf("/account").await;
    let r = visit
        .post(
            "/account/email",
            &[
                ("new_email", "third@example.com"),
                ("email_password", "nope nope"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("id=\"e-email_password\""));
}
