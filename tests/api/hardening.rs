//! Issue 8 (hardening), the auth side: guesses counted before hashing, throttling that
//! neither locks owners out nor links login names, Redis that stalls, reset requests that
//! look alike and are limited per account, pending email changes, outbox claims that stay
//! with their worker, and pruning.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::both_backends;
use crate::helpers::*;
use crate::smtp::SmtpServer;

both_backends!(
    parallel_guesses_are_counted_before_hashing,
    guesses_from_elsewhere_do_not_lock_the_owner_out,
    a_throttled_name_says_nothing_about_other_names,
    reset_requests_answer_alike_and_are_limited_per_account,
    email_change_is_pending_until_confirmed,
    concurrent_email_changes_leave_one_live_link,
    pruning_deletes_exactly_what_can_never_be_used_again,
);

/// Runs `$body` with `$conn` bound to a fresh connection to the app's database.
macro_rules! on_db {
    ($app:expr, |$conn:ident| $body:expr) => {
        match $app.backend {
            Backend::Sqlite => {
                let mut $conn = sqlx::SqliteConnection::connect(&$app.db.url).await.unwrap();
                $body
            }
            Backend::Postgres => {
                let mut $conn = sqlx::PgConnection::connect(&$app.db.url).await.unwrap();
                $body
            }
        }
    };
}

fn trusting_proxy(vars: &mut std::collections::HashMap<String, String>) {
    vars.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
}

async fn login_from(app: &TestApp, name: &str, password: &str, ip: &str) -> Response {
    app.client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", ip)
        .form(&[("username", name), ("password", password)])
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// login throttling

async fn parallel_guesses_are_counted_before_hashing(backend: Backend) {
    for shared in [false, true] {
        if shared && !redis_available().await {
            continue;
        }
        let app = spawn_app_with(backend, |vars| {
            if shared {
                vars.insert("REDIS_URL".into(), test_redis_url());
            }
        })
        .await;
        app.register("victim").await;
        let before = app.state.passwords.verifications();
        let answers = join_all((0..40).map(|i| {
            let app = &app;
            async move {
                app.login_raw("victim", &format!("wrong guess {i}"))
                    .await
                    .status()
            }
        }))
        .await;
        let hashed = app.state.passwords.verifications() - before;
        let judged = answers
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count();
        let throttled = answers
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert!(
            hashed <= 5,
            "redis={shared}: {hashed} of 40 parallel guesses reached the hasher"
        );
        assert_eq!(judged as u64, hashed, "redis={shared}: {answers:?}");
        assert_eq!(judged + throttled, 40, "redis={shared}: {answers:?}");
    }
}

async fn guesses_from_elsewhere_do_not_lock_the_owner_out(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        trusting_proxy(vars);
        vars.insert("LOGIN_NAME_FAILURE_CEILING".into(), "8".into());
    })
    .await;
    let owner = app.register("owner").await;
    let (home, attacker) = ("198.51.100.7", "203.0.113.1");

    // 12 anonymous guesses from one address: that address is throttled...
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            login_from(&app, "owner", "wrong guess!", attacker)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // ...the owner, elsewhere, is not.
    let r = login_from(&app, "owner", PASSWORD, home).await;
    assert_eq!(r.status(), StatusCode::OK, "the owner logs in from home");

    // A distributed attack reaches the name-wide ceiling (8): then the name is throttled
    // from everywhere, the owner included.
    for i in 0..3 {
        let r = login_from(
            &app,
            "owner",
            "wrong guess!",
            &format!("203.0.113.{}", 10 + i),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_from(&app, "owner", PASSWORD, home).await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // A password reset (the owner controls the mailbox) clears the throttle everywhere.
    let r = app
        .post(
            "/auth/password-reset-request",
            &json!({"email": owner.email}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = app
        .wait_for_mail(&owner.email, "reset")
        .await
        .token()
        .unwrap();
    let r = app
        .post(
            "/auth/reset-password",
            &json!({"token": token, "new_password": "a fresh password 1"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = login_from(&app, "owner", "a fresh password 1", home).await;
    assert_eq!(r.status(), StatusCode::OK, "after the reset, from home");
    let r = login_from(&app, "owner", "a fresh password 1", attacker).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "and from the throttled address too"
    );
}

/// (status, body, Retry-After present, WWW-Authenticate present)
async fn answer(r: Response) -> (u16, Value, bool, bool) {
    let status = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    let www = r.headers().contains_key("www-authenticate");
    (status, json_of(r).await, retry, www)
}

async fn a_throttled_name_says_nothing_about_other_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let heidi = app.register("heidi").await;
    app.register("other").await;
    for _ in 0..5 {
        assert_eq!(
            app.login_raw("heidi", "wrong guess!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login_raw("heidi", "wrong guess!").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Her email answers exactly like any address that is not throttled, whether it has an
    // account (other@) or not (nobody@): the 429 on "heidi" does not confirm her email.
    let own_email = answer(app.login_raw(&heidi.email, "wrong guess!").await).await;
    let unrelated = answer(app.login_raw("other@example.com", "wrong guess!").await).await;
    let unknown = answer(app.login_raw("nobody@example.com", "wrong guess!").await).await;
    assert_eq!(own_email.0, 401, "{own_email:?}");
    assert_eq!(own_email, unrelated);
    assert_eq!(own_email, unknown);
    // And the other way round: throttling her email leaves the username's answers alone
    // once its own block is over (each name has its own count).
    for _ in 0..4 {
        assert_eq!(
            app.login_raw(&heidi.email, "wrong guess!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login_raw(&heidi.email, "wrong guess!").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let unknown = answer(app.login_raw("nobody2@example.com", "x wrong guess").await).await;
    assert_eq!(unknown.0, 401);
}

// ---------------------------------------------------------------------------------------
// password reset requests

async fn backdate_reset_tokens(app: &TestApp, user_id: i64) {
    let past = chrono::Utc::now() - chrono::Duration::minutes(2);
    let sql =
        "UPDATE email_tokens SET created_at = $1 WHERE user_id = $2 AND purpose = 'reset_password'";
    on_db!(app, |conn| sqlx::query(sql)
        .bind(past)
        .bind(user_id)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected());
}

async fn reset_mails_to(app: &TestApp, to: &str) -> usize {
    app.smtp
        .messages_to(to)
        .iter()
        .filter(|m| m.subject().to_lowercase().contains("reset"))
        .count()
}

async fn reset_requests_answer_alike_and_are_limited_per_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.register("victim").await;
    let mut seen = Vec::new();
    for email in [victim.email.as_str(), "nobody@example.com"] {
        let answers = join_all((0..15).map(|_| {
            let app = &app;
            async move {
                let r = app
                    .post(
                        "/auth/password-reset-request",
                        &json!({"email": email}),
                        None,
                    )
                    .await;
                let mut headers: Vec<String> = r
                    .headers()
                    .keys()
                    .filter(|k| !k.as_str().starts_with("x-request-id") && *k != "date")
                    .map(|k| k.to_string())
                    .collect();
                headers.sort();
                (r.status().as_u16(), headers, r.text().await.unwrap())
            }
        }))
        .await;
        seen.push(answers);
    }
    let strip = |v: &Vec<(u16, Vec<String>, String)>| {
        v.iter()
            .map(|(s, h, b)| (*s, h.clone(), b.clone()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        strip(&seen[0]).len(),
        1,
        "every answer alike: {:?}",
        seen[0]
    );
    assert_eq!(strip(&seen[0]), strip(&seen[1]), "known and unknown alike");

    // 15 requests: one mail.
    app.wait_for_mail(&victim.email, "reset").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reset_mails_to(&app, &victim.email).await, 1);

    // At most RESET_MAILS_PER_HOUR (5) an hour, even a minute apart.
    for expected in 2..=5 {
        backdate_reset_tokens(&app, victim.id).await;
        app.post(
            "/auth/password-reset-request",
            &json!({"email": victim.email}),
            None,
        )
        .await;
        let deadline = Instant::now() + MAIL_WAIT;
        while reset_mails_to(&app, &victim.email).await < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(reset_mails_to(&app, &victim.email).await, expected);
    }
    backdate_reset_tokens(&app, victim.id).await;
    app.post(
        "/auth/password-reset-request",
        &json!({"email": victim.email}),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        reset_mails_to(&app, &victim.email).await,
        5,
        "the hourly cap"
    );
}

// ---------------------------------------------------------------------------------------
// pending email change

async fn me(app: &TestApp, access: &str) -> Value {
    ok_json(app.get("/auth/me", Some(access)).await).await
}

async fn put_email(app: &TestApp, user: &TestUser, new_email: &str) -> Response {
    app.put(
        &format!("/auth/users/{}/email", user.username),
        &json!({"new_email": new_email, "current_password": user.password}),
        Some(&user.access),
    )
    .await
}

/// The confirm link mailed to `to` (newest) and the cancel link mailed to `old` (newest).
async fn change_links(app: &TestApp, to: &str, old: &str, nth: usize) -> (String, String) {
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        let confirms = app.smtp.messages_to(to);
        let notices: Vec<_> = app
            .smtp
            .messages_to(old)
            .into_iter()
            .filter(|m| m.subject().contains("about to be changed"))
            .collect();
        if !confirms.is_empty() && notices.len() >= nth {
            let cancel = notices[nth - 1].decoded_body();
            let cancel = cancel
                .split("cancel-email-change?token=")
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            return (confirms.last().unwrap().token().unwrap(), cancel);
        }
        assert!(Instant::now() < deadline, "change mails did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn email_change_is_pending_until_confirmed(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;

    // A mistyped address: pending; the account keeps working with the old one.
    let r = put_email(&app, &alice, "alice@typo.example").await;
    let body = ok_json(r).await;
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], alice.email);
    assert_eq!(body["pending_email"], "alice@typo.example");
    assert!(body["message"].is_string());
    let profile = me(&app, &alice.access).await;
    assert_eq!(
        (profile["email"].clone(), profile["is_verified"].clone()),
        (json!(alice.email), json!(true))
    );
    let (typo_confirm, typo_cancel) =
        change_links(&app, "alice@typo.example", &alice.email, 1).await;
    assert_ne!(typo_confirm, typo_cancel);
    // Resets still go to the current address and work.
    app.post(
        "/auth/password-reset-request",
        &json!({"email": alice.email}),
        None,
    )
    .await;
    app.wait_for_mail(&alice.email, "reset").await;

    // Another PUT replaces the pending address: the typo's links stop working.
    let r = put_email(&app, &alice, "alice@right.example").await;
    assert_eq!(ok_json(r).await["pending_email"], "alice@right.example");
    let (confirm, cancel) = change_links(&app, "alice@right.example", &alice.email, 2).await;
    let r = app
        .post("/auth/verify-email", &json!({"token": typo_confirm}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    let r = app
        .post(
            "/auth/cancel-email-change",
            &json!({"token": typo_cancel}),
            None,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(me(&app, &alice.access).await["email"], alice.email);

    // The cancel link of the live change cancels it; its confirm link then is dead.
    let r = app
        .get(
            &format!("/auth/cancel-email-change?token={}", enc(&cancel)),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post("/auth/verify-email", &json!({"token": confirm}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(me(&app, &alice.access).await["email"], alice.email);

    // A third change, confirmed: the new address is the account's, verified.
    put_email(&app, &alice, "alice@final.example").await;
    let (confirm, cancel) = change_links(&app, "alice@final.example", &alice.email, 3).await;
    let r = app
        .get(&format!("/auth/verify-email?token={}", enc(&confirm)), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let profile = me(&app, &alice.access).await;
    assert_eq!(profile["email"], "alice@final.example");
    assert_eq!(profile["is_verified"], true);
    app.login("alice@final.example", PASSWORD).await;
    assert_eq!(
        app.login_raw(&alice.email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Used links are dead; the old address's cancel link too.
    let r = app
        .post("/auth/verify-email", &json!({"token": confirm}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    let r = app
        .post("/auth/cancel-email-change", &json!({"token": cancel}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    // Bad tokens are 400 / 422, never 500.
    let r = app
        .post("/auth/cancel-email-change", &json!({"token": ""}), None)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_token").await;
    let r = app
        .post("/auth/cancel-email-change", &json!({"tok": 1}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn concurrent_email_changes_leave_one_live_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.verified_user("bob").await;
    let (a, b) = tokio::join!(
        put_email(&app, &bob, "bob@one.example"),
        put_email(&app, &bob, "bob@two.example")
    );
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    let one = app
        .wait_for_mail("bob@one.example", "confirm")
        .await
        .token()
        .unwrap();
    let two = app
        .wait_for_mail("bob@two.example", "confirm")
        .await
        .token()
        .unwrap();
    let r_one = app
        .post("/auth/verify-email", &json!({"token": one}), None)
        .await
        .status();
    let r_two = app
        .post("/auth/verify-email", &json!({"token": two}), None)
        .await
        .status();
    let ok = [r_one, r_two]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "exactly one link works: {r_one} {r_two}");
    let email = me(&app, &bob.access).await["email"].clone();
    let winner = if r_one == StatusCode::OK {
        "bob@one.example"
    } else {
        "bob@two.example"
    };
    assert_eq!(email, winner);
}

// ---------------------------------------------------------------------------------------
// pruning

async fn count(app: &TestApp, sql: &str) -> i64 {
    on_db!(app, |conn| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap())
}

async fn insert_token(
    app: &TestApp,
    user_id: i64,
    hash: &str,
    age_minutes: i64,
    expires_in_minutes: i64,
    used: bool,
) {
    let now = chrono::Utc::now();
    let sql = "INSERT INTO email_tokens (user_id, purpose, token_hash, email, created_at, expires_at, used_at) \
               VALUES ($1, 'verify_email', $2, 'x@example.com', $3, $4, $5)";
    let used_at = used.then_some(now - chrono::Duration::minutes(1));
    on_db!(app, |conn| sqlx::query(sql)
        .bind(user_id)
        .bind(hash)
        .bind(now - chrono::Duration::minutes(age_minutes))
        .bind(now + chrono::Duration::minutes(expires_in_minutes))
        .bind(used_at)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected());
}

async fn pruning_deletes_exactly_what_can_never_be_used_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await; // session 1 (live)
                                             // Session 1 rotates: its retired hash stays (reuse detection on a live session).
    let r = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    let live = ok_json(r).await;
    // Session 2: rotated, then logged out (revoked): it and its retired hash go.
    let s2 = app.login("alice", PASSWORD).await;
    let s2 = ok_json(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": s2["refresh_token"]}),
            None,
        )
        .await,
    )
    .await;
    app.post("/auth/logout", &json!({}), s2["access_token"].as_str())
        .await;
    // Session 3: expired.
    let s3 = app.login("alice", PASSWORD).await;
    on_db!(app, |conn| sqlx::query(
        "UPDATE sessions SET expires_at = $1 WHERE refresh_token_hash = $2"
    )
    .bind(chrono::Utc::now() - chrono::Duration::minutes(1))
    .bind(auth_service::services::tokens::hash_token(
        s3["refresh_token"].as_str().unwrap()
    ))
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 3);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM retired_refresh_tokens").await,
        2
    );

    insert_token(&app, alice.id, "used-old", 120, 60, true).await; // goes
    insert_token(&app, alice.id, "expired-old", 120, -30, false).await; // goes
    insert_token(&app, alice.id, "used-recent", 10, 60, true).await; // stays: hourly limits count it
    insert_token(&app, alice.id, "live-old", 120, 60, false).await; // stays: still usable
    let tokens_before = count(&app, "SELECT COUNT(*) FROM email_tokens").await;
    on_db!(app, |conn| {
        sqlx::query(
        "INSERT INTO user_activity (user_id, event, details, created_at) VALUES ($1, 'login_success', '{}', $2)"
    )
    .bind(alice.id)
    .bind(chrono::Utc::now() - chrono::Duration::days(40))
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected()
    });
    let activity_before = count(&app, "SELECT COUNT(*) FROM user_activity").await;
    // Outbox rows: sent 8 days ago (goes), sent yesterday (stays), never sent (stays).
    for (subject, sent_days_ago) in [("old", Some(8)), ("recent", Some(1)), ("unsent", None)] {
        let created = chrono::Utc::now() - chrono::Duration::days(30);
        let sent = sent_days_ago.map(|days| chrono::Utc::now() - chrono::Duration::days(days));
        on_db!(app, |conn| {
            sqlx::query(
            "INSERT INTO mail_outbox (recipient, subject, text_body, html_body, created_at, next_attempt_at, sent_at) \
             VALUES ('a@example.com', $1, '', '', $2, $2, $3)"
        )
        .bind(subject)
        .bind(created)
        .bind(sent)
        .execute(&mut conn)
        .await
        .unwrap().rows_affected()
        });
    }
    let mail_before = count(&app, "SELECT COUNT(*) FROM mail_outbox").await;

    // The default keeps the audit trail forever.
    let mut config = app.state.config.hardening.clone();
    assert_eq!(config.audit_retention_days, None);
    let report = auth_service::services::pruning::prune_once(app.state.store.as_ref(), &config)
        .await
        .unwrap();
    assert_eq!(
        (
            report.sessions,
            report.email_tokens,
            report.activities,
            report.sent_mail
        ),
        (2, 2, 0, 1)
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM mail_outbox WHERE subject IN ('recent', 'unsent')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM mail_outbox").await,
        mail_before - 1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM retired_refresh_tokens").await,
        1
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM email_tokens").await,
        tokens_before - 2
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM email_tokens WHERE token_hash IN ('used-recent', 'live-old')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM user_activity").await,
        activity_before
    );
    // Nothing usable was touched: the live session works and refreshes.
    assert_eq!(
        me_status(&app, live["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    assert_eq!(
        refresh_status(&app, live["refresh_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // With a retention, older audit rows go; a second pass (another instance) finds nothing.
    config.audit_retention_days = Some(30);
    let report = auth_service::services::pruning::prune_once(app.state.store.as_ref(), &config)
        .await
        .unwrap();
    assert_eq!(report.activities, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM user_activity").await,
        activity_before - 1
    );
    let again = auth_service::services::pruning::prune_once(app.state.store.as_ref(), &config)
        .await
        .unwrap();
    assert_eq!(
        (
            again.sessions,
            again.email_tokens,
            again.activities,
            again.sent_mail
        ),
        (0, 0, 0, 0)
    );
}

// ---------------------------------------------------------------------------------------
// outbox claims (PostgreSQL: several instances on one database)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_smtp_with_short_leases_delivers_each_message_once() {
    if !Backend::Postgres.available().await {
        return;
    }
    let smtp = SmtpServer::start_slow(Duration::from_millis(700)).await;
    let app = spawn_app_with_smtp(Backend::Postgres, smtp, |vars| {
        vars.insert("MAIL_LEASE_MS".into(), "1500".into());
    })
    .await;
    let _second = app.another_instance(|_| {}).await;
    let n = 8;
    for i in 0..n {
        app.register_raw(
            &format!("user{i}"),
            &format!("user{i}@example.com"),
            PASSWORD,
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while app.smtp.messages().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for any second delivery of a lapsed claim to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut recipients: Vec<String> = app
        .smtp
        .messages()
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    recipients.sort();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..n).map(|i| format!("user{i}@example.com")).collect();
        v.sort();
        v
    };
    assert_eq!(recipients, expected, "each message delivered exactly once");
}

// ---------------------------------------------------------------------------------------
// Redis that stalls (the store is not involved: SQLite only)

const FORWARD: u8 = 0;
const STALL: u8 = 1;
const REFUSE: u8 = 2;

/// A TCP proxy to Redis that can be told to stall (hold every byte) or refuse.
struct RedisProxy {
    port: u16,
    mode: Arc<AtomicU8>,
}

impl RedisProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let m = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if m.load(Ordering::SeqCst) == REFUSE {
                    drop(client);
                    continue;
                }
                let (m, target) = (m.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::select! {
                        _ = pipe(cr, uw, m.clone()) => {}
                        _ = pipe(ur, cw, m) => {}
                    }
                });
            }
        });
        Self { port, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while mode.load(Ordering::SeqCst) == STALL {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if mode.load(Ordering::SeqCst) == REFUSE || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn redis_health(app: &TestApp) -> String {
    let body = ok_json(app.get("/health", None).await).await;
    body["checks"]["redis"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_for_redis(app: &TestApp, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis_health(app).await != want {
        assert!(Instant::now() < deadline, "redis never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The slowest of a few logins and profile reads; every one must succeed.
async fn slowest_request(app: &TestApp, user: &TestUser) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let r = app.login_raw(&user.username, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.get("/auth/me", Some(&user.access)).await;
        assert_eq!(r.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_or_refusing_redis_costs_milliseconds_and_recovers() {
    if !redis_available().await {
        return;
    }
    let target = test_redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = RedisProxy::start(target).await;
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert(
            "REDIS_URL".into(),
            format!("redis://127.0.0.1:{}", proxy.port),
        );
        vars.insert("REDIS_PROBE_INTERVAL_MS".into(), "200".into());
        vars.insert("REDIS_TIMEOUT_MS".into(), "50".into());
    })
    .await;
    wait_for_redis(&app, "ok").await;
    let user = app.register("stally").await;
    slowest_request(&app, &user).await;

    for mode in [STALL, REFUSE] {
        proxy.set(mode);
        // A generous bound (the timeout is 50 ms): seconds per request was the bug.
        let slowest = slowest_request(&app, &user).await;
        assert!(
            slowest < Duration::from_millis(500),
            "mode {mode}: a login and a read took {slowest:?} with Redis away"
        );
        assert_eq!(redis_health(&app).await, "degraded");
        proxy.set(FORWARD);
        wait_for_redis(&app, "ok").await;
        slowest_request(&app, &user).await;
    }
}
