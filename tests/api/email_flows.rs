//! The flows that run through mail (DESIGN §5, endpoints 4, 5, 7, 12 and 13), delivered
//! to the real SMTP listener of the test, or to files when no server is configured.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::both_backends;
use crate::helpers::*;
use crate::smtp::{ReceivedMail, SmtpServer};

both_backends!(
    registration_mails_a_working_verification_link,
    verification_link_works_by_get,
    verify_email_rejects_bad_tokens,
    resend_verification_mails_a_new_link_and_is_rate_limited,
    reset_request_answers_the_same_for_unknown_addresses,
    reset_password_replaces_password_and_ends_every_session,
    reset_tokens_invalidate_each_other,
    weak_reset_password_keeps_the_token_usable,
    reset_password_rejects_bad_requests,
    email_change_mails_new_and_old_addresses,
    email_change_voids_links_sent_to_the_old_address,
    mail_is_delivered_after_smtp_comes_back,
    mail_goes_to_files_without_a_mail_server,
);

const RESET_MESSAGE: &str = "Password reset link sent to email if account exists";
const VERIFY_LINK: &str = "http://frontend.test/verify-email?token=";
const RESET_LINK: &str = "http://frontend.test/reset-password?token=";
const NEW_PASSWORD: &str = "a brand new passphrase";

async fn me(app: &TestApp, access: &str) -> Value {
    let r = app.get("/auth/me", Some(access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await
}

fn token_of(mail: &ReceivedMail) -> String {
    mail.token()
        .unwrap_or_else(|| panic!("no token in mail:\n{}", mail.decoded()))
}

/// Waits until at least `n` messages to `to` whose subject contains `subject` arrived;
/// returns them in arrival order.
async fn wait_for_n(app: &TestApp, to: &str, subject: &str, n: usize) -> Vec<ReceivedMail> {
    let needle = subject.to_lowercase();
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    loop {
        let found: Vec<ReceivedMail> = app
            .smtp
            .messages_to(to)
            .into_iter()
            .filter(|m| m.subject().to_lowercase().contains(&needle))
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} mails to {to} with {subject:?} arrived",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the outbox holds nothing unsent.
async fn wait_for_empty_outbox(app: &TestApp, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let pending = app.state.store.pending_mail_count().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} mail(s) still pending in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Moves the user's emailed tokens into the past, standing in for a wait of `minutes`.
async fn backdate_email_tokens(app: &TestApp, user_id: i64, minutes: i64) {
    let past = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    let sql = "UPDATE email_tokens SET created_at = $1 WHERE user_id = $2";
    let changed = match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql)
                .bind(past)
                .bind(user_id)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql)
                .bind(past)
                .bind(user_id)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
    };
    assert!(changed >= 1, "the user has emailed tokens");
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

async fn registration_mails_a_working_verification_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let mail = app.wait_for_mail(&alice.email, "verify").await;
    assert_eq!(mail.to, vec![alice.email.clone()], "only the user gets it");
    assert!(
        mail.header("From")
            .unwrap_or_default()
            .contains("noreply@example.com"),
        "{}",
        mail.decoded()
    );
    assert!(
        mail.header("To").unwrap_or_default().contains(&alice.email),
        "{}",
        mail.decoded()
    );
    let text = mail.decoded_body();
    assert!(text.contains(VERIFY_LINK), "{text}");
    assert!(text.contains("alice"), "the mail greets the user: {text}");
    let token = token_of(&mail);
    assert!(
        text.contains(&format!("{VERIFY_LINK}{token}")),
        "the token is in the link"
    );
    assert!(token.len() >= 32, "32 random bytes, encoded: {token}");
    assert_eq!(me(&app, &alice.access).await["is_verified"], false);

    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["message"].is_string());
    assert_eq!(me(&app, &alice.access).await["is_verified"], true);

    // Single use, by POST and by GET.
    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    let r = app
        .get(&format!("/auth/verify-email?token={}", enc(&token)), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(me(&app, &alice.access).await["is_verified"], true);
}

async fn verification_link_works_by_get(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let bob_mail = app.wait_for_mail(&bob.email, "verify").await;
    let alice_mail = app.wait_for_mail(&alice.email, "verify").await;
    let bob_token = token_of(&bob_mail);
    assert_ne!(bob_token, token_of(&alice_mail));

    let r = app
        .get(
            &format!("/auth/verify-email?token={}", enc(&bob_token)),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Bob's link verifies bob, and nobody else.
    assert_eq!(me(&app, &bob.access).await["is_verified"], true);
    assert_eq!(me(&app, &alice.access).await["is_verified"], false);

    let r = app
        .get(
            &format!("/auth/verify-email?token={}", enc(&bob_token)),
            None,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
}

async fn verify_email_rejects_bad_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let mail = app.wait_for_mail(&alice.email, "verify").await;
    let token = token_of(&mail);

    // Garbage, near misses and tokens of another kind.
    let mut near_miss = token.clone();
    let last = near_miss.pop().unwrap();
    near_miss.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        "garbage".to_owned(),
        "x".repeat(5000),
        near_miss.clone(),
        format!("{token}x"),
        token[..token.len() - 1].to_owned(),
        token.to_uppercase(),
        alice.access.clone(),
        alice.refresh.clone(),
        "'; DROP TABLE users; --".to_owned(),
    ] {
        if bad == token {
            continue;
        }
        let r = app
            .post("/auth/verify-email", &json!({"token": bad}), None)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
        let r = app
            .get(&format!("/auth/verify-email?token={}", enc(&bad)), None)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    }

    // Missing token, wrong types, malformed bodies.
    let r = app.post("/auth/verify-email", &json!({}), None).await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "body.token");
    let r = app.get("/auth/verify-email", None).await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "query.token");
    for bad in [
        json!({"token": 12345}),
        json!({"token": null}),
        json!({"token": [token.clone()]}),
        json!([token.clone()]),
    ] {
        let r = app.post("/auth/verify-email", &bad, None).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
    let r = app
        .client
        .post(app.url("/auth/verify-email"))
        .header("content-type", "application/json")
        .body("{\"token\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = app
        .client
        .post(app.url("/auth/verify-email"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "JSON only");

    // None of that verified or burnt anything: the real token still works once.
    assert_eq!(me(&app, &alice.access).await["is_verified"], false);
    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(me(&app, &alice.access).await["is_verified"], true);
}

async fn resend_verification_mails_a_new_link_and_is_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let welcome = app.wait_for_mail(&alice.email, "verify").await;

    // Right after registering: the welcome mail does not count against the limit.
    let r = app
        .post("/auth/resend-verification", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["message"].is_string());
    let mails = wait_for_n(&app, &alice.email, "verify", 2).await;
    let resent = &mails[1];
    assert!(resent.decoded_body().contains(VERIFY_LINK));
    let new_token = token_of(resent);
    assert_ne!(new_token, token_of(&welcome), "a fresh token");

    // Again at once: too soon.
    let r = app
        .post("/auth/resend-verification", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Without authentication, or with a bad token.
    let r = app
        .post("/auth/resend-verification", &json!({}), None)
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .post("/auth/resend-verification", &json!({}), Some("nope"))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // The new link verifies; then there is nothing left to resend.
    let r = app
        .post("/auth/verify-email", &json!({"token": new_token}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(me(&app, &alice.access).await["is_verified"], true);
    backdate_email_tokens(&app, alice.id, 5).await;
    let r = app
        .post("/auth/resend-verification", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(r).await["code"].is_string());

    // A user verified from the start (an admin) gets 400 too, and no mail.
    let admin = app.admin("root").await;
    let r = app
        .post("/auth/resend-verification", &json!({}), Some(&admin.access))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    wait_for_empty_outbox(&app, MAIL_WAIT).await;
    assert!(app.smtp.messages_to(&admin.email).is_empty());
    assert_eq!(app.smtp.messages_to(&alice.email).len(), 2);
}

// ---------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------

async fn request_reset(app: &TestApp, email: &str) -> String {
    let r = app
        .post(
            "/auth/password-reset-request",
            &json!({"email": email}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "reset request for {email}");
    r.text().await.unwrap()
}

async fn reset(app: &TestApp, token: &str, new_password: &str) -> Response {
    app.post(
        "/auth/reset-password",
        &json!({"token": token, "new_password": new_password}),
        None,
    )
    .await
}

async fn reset_request_answers_the_same_for_unknown_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    app.wait_for_mail(&alice.email, "verify").await;

    // Unknown address first: had it queued anything, that mail would go out first.
    let unknown = request_reset(&app, "nobody@example.com").await;
    let known = request_reset(&app, "ALICE@Example.com").await;
    assert_eq!(unknown, known, "identical answers");
    let parsed: Value = serde_json::from_str(&known).unwrap();
    assert_eq!(parsed, json!({"message": RESET_MESSAGE}));

    let mail = app.wait_for_mail(&alice.email, "password").await;
    assert_eq!(mail.to, vec![alice.email.clone()]);
    let text = mail.decoded_body();
    assert!(text.contains(RESET_LINK), "{text}");
    assert!(text.contains(&format!("{RESET_LINK}{}", token_of(&mail))));
    wait_for_empty_outbox(&app, MAIL_WAIT).await;
    assert!(app.smtp.messages_to("nobody@example.com").is_empty());
    assert_eq!(
        app.smtp.messages().len(),
        2,
        "welcome + reset, nothing else"
    );

    // Not an address, or no address: 422.
    for bad in [
        json!({"email": "not-an-email"}),
        json!({"email": ""}),
        json!({"email": 42}),
        json!({"email": null}),
        json!({}),
        json!({"mail": "alice@example.com"}),
    ] {
        let r = app.post("/auth/password-reset-request", &bad, None).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&b), "body.email", "{bad}: {b}");
    }
    let r = app
        .client
        .post(app.url("/auth/password-reset-request"))
        .header("content-type", "application/json")
        .body("{\"email\"")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}

async fn reset_password_replaces_password_and_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let bob = app.verified_user("bob").await;

    request_reset(&app, &alice.email).await;
    let mail = app.wait_for_mail(&alice.email, "password").await;
    let token = token_of(&mail);

    let r = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["message"].is_string());

    // New password in, old out.
    let r = app.login_raw("alice", PASSWORD).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let fresh = app.login("alice", NEW_PASSWORD).await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(me(&app, fresh_access).await["username"], "alice");

    // Every session that existed before the reset is over: access and refresh tokens.
    let accesses = [
        alice.access.clone(),
        second["access_token"].as_str().unwrap().to_owned(),
    ];
    let refreshes = [
        alice.refresh.clone(),
        second["refresh_token"].as_str().unwrap().to_owned(),
    ];
    for access in &accesses {
        let r = app.get("/auth/me", Some(access)).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let r = app
            .post("/auth/refresh", &json!({"token": access}), None)
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for refresh in &refreshes {
        let r = app
            .post("/auth/refresh", &json!({"refresh_token": refresh}), None)
            .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // Other users keep theirs.
    assert_eq!(me(&app, &bob.access).await["username"], "bob");

    // The token is spent.
    let r = reset(&app, &token, "yet another passphrase").await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    app.login("alice", NEW_PASSWORD).await;
    // A reset token is not a verification token, nor the other way round.
    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
}

async fn reset_tokens_invalidate_each_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let welcome = app.wait_for_mail(&alice.email, "verify").await;

    request_reset(&app, &alice.email).await;
    wait_for_n(&app, &alice.email, "password", 1).await;
    // Reset links are limited to one a minute per account: as if a minute had passed.
    backdate_email_tokens(&app, alice.id, 2).await;
    request_reset(&app, &alice.email).await;
    let mails = wait_for_n(&app, &alice.email, "password", 2).await;
    let first = token_of(&mails[0]);
    let second = token_of(&mails[1]);
    assert_ne!(first, second, "two requests, two tokens");

    // A verification token does not reset a password.
    let r = reset(&app, &token_of(&welcome), NEW_PASSWORD).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;

    let r = reset(&app, &second, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = reset(&app, &first, "the first token's password").await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    app.login("alice", NEW_PASSWORD).await;
    assert_eq!(
        app.login_raw("alice", "the first token's password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn weak_reset_password_keeps_the_token_usable(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    request_reset(&app, &alice.email).await;
    let token = token_of(&app.wait_for_mail(&alice.email, "password").await);

    for weak in [
        "short".to_owned(),
        String::new(),
        "x".repeat(73),
        "é".repeat(37),
    ] {
        let r = reset(&app, &token, &weak).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&b), "body.new_password", "{weak:?}: {b}");
    }
    // Nothing changed yet: the old password and session still work.
    app.login("alice", PASSWORD).await;
    assert_eq!(me(&app, &alice.access).await["username"], "alice");

    let r = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login("alice", NEW_PASSWORD).await;
}

async fn reset_password_rejects_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    request_reset(&app, &alice.email).await;
    let token = token_of(&app.wait_for_mail(&alice.email, "password").await);

    for bad in ["garbage", "", &format!("{token}x"), &alice.access] {
        let r = reset(&app, bad, NEW_PASSWORD).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    }
    for (bad, loc) in [
        (json!({"new_password": NEW_PASSWORD}), "body.token"),
        (json!({"token": token}), "body.new_password"),
        (
            json!({"token": 5, "new_password": NEW_PASSWORD}),
            "body.token",
        ),
        (
            json!({"token": token, "new_password": 123456789}),
            "body.new_password",
        ),
    ] {
        let r = app.post("/auth/reset-password", &bad, None).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&b), loc, "{bad}: {b}");
    }
    let r = app
        .client
        .post(app.url("/auth/reset-password"))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // The real token survived all that.
    app.login("alice", PASSWORD).await;
    let r = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Email change
// ---------------------------------------------------------------------------

async fn email_change_mails_new_and_old_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let r = app
        .put(
            "/auth/users/alice/email",
            &json!({"new_email": "Alice.New@Example.org", "current_password": PASSWORD}),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_email = "alice.new@example.org";

    let confirm = app.wait_for_mail(new_email, "Confirm").await;
    assert_eq!(confirm.to, vec![new_email.to_owned()]);
    let text = confirm.decoded_body();
    assert!(text.contains(VERIFY_LINK), "{text}");
    let token = token_of(&confirm);

    let notice = app.wait_for_mail(&alice.email, "changed").await;
    assert_eq!(notice.to, vec![alice.email.clone()]);
    let notice_text = notice.decoded_body();
    assert!(
        notice_text.contains(new_email),
        "the old address learns the new one: {notice_text}"
    );
    assert!(
        !notice_text.contains(&token),
        "the old address cannot confirm the new one"
    );
    // Nothing else goes to the old address beyond the welcome mail and the notice.
    wait_for_empty_outbox(&app, MAIL_WAIT).await;
    assert_eq!(app.smtp.messages_to(&alice.email).len(), 2);
    assert_eq!(app.smtp.messages_to(new_email).len(), 1);

    let pending = me(&app, &alice.access).await;
    assert_eq!(
        pending["is_verified"], true,
        "the current address stays verified"
    );
    assert_eq!(
        pending["email"], alice.email,
        "and stays the account's until confirmed"
    );
    let r = app
        .get(&format!("/auth/verify-email?token={}", enc(&token)), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let profile = me(&app, &alice.access).await;
    assert_eq!(profile["is_verified"], true);
    assert_eq!(profile["email"], new_email);
    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
}

async fn email_change_voids_links_sent_to_the_old_address(backend: Backend) {
    // Without the verification requirement an unverified user may change address, so the
    // welcome link is still unused when the address changes.
    let app = spawn_app_with(backend, |vars| {
        vars.insert("REQUIRE_EMAIL_VERIFICATION".into(), "false".into());
    })
    .await;
    let alice = app.register("alice").await;
    let welcome = app.wait_for_mail(&alice.email, "verify").await;
    let old_token = token_of(&welcome);

    let r = app
        .put(
            "/auth/users/alice/email",
            &json!({"new_email": "alice@example.net", "current_password": PASSWORD}),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let confirm = app.wait_for_mail("alice@example.net", "Confirm").await;
    app.wait_for_mail(&alice.email, "changed").await;

    // Until the change completes the old address is the account's: nothing is voided.
    // Completing it voids the links sent to the old address.
    let r = app
        .post(
            "/auth/verify-email",
            &json!({"token": token_of(&confirm)}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let profile = me(&app, &alice.access).await;
    assert_eq!(profile["is_verified"], true);
    assert_eq!(profile["email"], "alice@example.net");
    let r = app
        .post("/auth/verify-email", &json!({"token": old_token}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
}

// ---------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------

async fn mail_is_delivered_after_smtp_comes_back(backend: Backend) {
    let free_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = spawn_app_with(backend, |vars| {
        vars.insert("MAIL_PORT".into(), free_port.to_string());
    })
    .await;
    // Registration does not depend on the mail server.
    let alice = app.register("alice").await;
    let reset_body = request_reset(&app, &alice.email).await;
    assert_eq!(
        serde_json::from_str::<Value>(&reset_body).unwrap(),
        json!({"message": RESET_MESSAGE})
    );

    // While nothing listens, the messages wait in the outbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.state.store.pending_mail_count().await.unwrap(), 2);

    let server = SmtpServer::start_on(free_port).await;
    let welcome = server
        .wait_for(&alice.email, "verify", Duration::from_secs(15))
        .await;
    let reset_mail = server
        .wait_for(&alice.email, "password", Duration::from_secs(15))
        .await;
    wait_for_empty_outbox(&app, Duration::from_secs(15)).await;
    assert_eq!(
        server.messages_to(&alice.email).len(),
        2,
        "each message exactly once"
    );

    // The delayed links work.
    let r = app
        .post(
            "/auth/verify-email",
            &json!({"token": token_of(&welcome)}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = reset(&app, &token_of(&reset_mail), NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login("alice", NEW_PASSWORD).await;
}

async fn mail_goes_to_files_without_a_mail_server(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.remove("MAIL_SERVER");
    })
    .await;
    let alice = app.register("alice").await;
    let dir = app.dir.path().join("mail");

    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    let raw = loop {
        let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(path) = files.first() {
            assert_eq!(files.len(), 1, "one mail so far: {files:?}");
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml file appeared in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mail = ReceivedMail {
        from: String::new(),
        to: vec![],
        raw,
    };
    assert!(mail.subject().to_lowercase().contains("verify"));
    assert!(mail.header("To").unwrap_or_default().contains(&alice.email));
    let text = mail.decoded_body();
    assert!(text.contains(VERIFY_LINK), "{text}");
    let token = token_of(&mail);
    wait_for_empty_outbox(&app, MAIL_WAIT).await;
    assert!(app.smtp.messages().is_empty(), "nothing went over SMTP");

    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(me(&app, &alice.access).await["is_verified"], true);
}
