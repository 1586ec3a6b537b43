//! Step-up (DESIGN §14): on an account with a second factor, a session that has not
//! proved it in the last MFA_STEP_UP_MINUTES cannot change the password or email, delete
//! the account, remove the factor, replace the recovery codes or link a provider (403
//! `mfa_step_up_required`), and nothing changes; a code sent to POST /auth/mfa/step-up, or
//! a sign-in through the second step, opens that window; accounts without a factor are not
//! affected. Codes come from pyotp.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::mfa::{mfa_token_of, pyotp, pyotp_code, with_totp};
use crate::oidc::exec_sql;

both_backends!(
    sensitive_changes_need_a_recent_second_factor,
    a_step_up_goes_stale_and_bad_step_ups_change_nothing,
);

async fn sensitive_changes_need_a_recent_second_factor(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, _, codes) = with_totp(&app, &python, "stepper").await;
    let weak = user.access.clone();
    let password_path = format!("/auth/users/{}/password", user.username);
    let new_password =
        json!({"current_password": PASSWORD, "new_password": "another long password"});

    // The registration session never proved the factor: every sensitive change is refused.
    let refusals = [
        app.put(&password_path, &new_password, Some(&weak)).await,
        app.put(
            &format!("/auth/users/{}/email", user.username),
            &json!({"new_email": "elsewhere@example.com", "current_password": PASSWORD}),
            Some(&weak),
        )
        .await,
        app.delete(
            &format!(
                "/auth/users/{}?password={}",
                user.username, "correct%20horse%20battery"
            ),
            Some(&weak),
        )
        .await,
        app.delete("/auth/mfa/totp", Some(&weak)).await,
        app.post("/auth/mfa/recovery-codes", &json!({}), Some(&weak))
            .await,
    ];
    for refused in refusals {
        assert_error(refused, StatusCode::FORBIDDEN, "mfa_step_up_required").await;
    }
    // Nothing changed: the old password still logs in (to the second step), the factor is on.
    mfa_token_of(&app, &user).await;
    let status = ok_json(app.get("/auth/mfa", Some(&weak)).await).await;
    assert_eq!(status["totp"], true);
    // Reads are not affected.
    assert_eq!(me_status(&app, &weak).await, StatusCode::OK);

    // A step-up with a recovery code opens the window for this session.
    let stepped = ok_json(
        app.post(
            "/auth/mfa/step-up",
            &json!({"recovery_code": codes[0]}),
            Some(&weak),
        )
        .await,
    )
    .await;
    assert!(stepped["valid_until"].is_string(), "{stepped}");
    let r = app.put(&password_path, &new_password, Some(&weak)).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // An account without a factor is not asked.
    let plain = app.verified_user("no_factor").await;
    let r = app
        .put(
            &format!("/auth/users/{}/password", plain.username),
            &new_password,
            Some(&plain.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post(
            "/auth/mfa/step-up",
            &json!({"code": "123456"}),
            Some(&plain.access),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "mfa_not_active").await;
}

async fn a_step_up_goes_stale_and_bad_step_ups_change_nothing(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, secret, _) = with_totp(&app, &python, "stale").await;
    // Signing in through the second step counts as a step-up.
    let token = mfa_token_of(&app, &user).await;
    let step = chrono::Utc::now().timestamp() / 30;
    while chrono::Utc::now().timestamp() / 30 == step {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    crate::mfa::away_from_step_edge().await;
    let code = pyotp_code(&python, &secret, 0);
    let pair = ok_json(
        app.post(
            "/auth/mfa/verify",
            &json!({"mfa_token": token, "code": code}),
            None,
        )
        .await,
    )
    .await;
    let strong = pair["access_token"].as_str().unwrap().to_owned();

    // Sixteen minutes later (the default window is 15) the same session must step up again.
    let past = match app.backend {
        Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-16 minutes')",
        Backend::Postgres => "now() - interval '16 minutes'",
    };
    exec_sql(
        &app,
        &format!(
            "UPDATE sessions SET second_factor_at = {past} WHERE second_factor_at IS NOT NULL"
        ),
    )
    .await;
    let r = app
        .post("/auth/mfa/recovery-codes", &json!({}), Some(&strong))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "mfa_step_up_required").await;

    // Bad step-ups: a replayed code, garbage, both or neither field, no session.
    let replay = app
        .post("/auth/mfa/step-up", &json!({"code": code}), Some(&strong))
        .await;
    assert_unauthorized(replay).await;
    for body in [json!({}), json!({"code": "123456", "recovery_code": "x"})] {
        let r = app.post("/auth/mfa/step-up", &body, Some(&strong)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let r = app
        .post(
            "/auth/mfa/step-up",
            &json!({"recovery_code": "x".repeat(5000)}),
            Some(&strong),
        )
        .await;
    assert_unauthorized(r).await;
    let r = app
        .post("/auth/mfa/step-up", &json!({"code": "123456"}), None)
        .await;
    assert_unauthorized(r).await;
    // Still refused: none of those opened the window.
    let r = app
        .post("/auth/mfa/recovery-codes", &json!({}), Some(&strong))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "mfa_step_up_required").await;

    // A fresh code opens it again.
    crate::mfa::away_from_step_edge().await;
    let next = pyotp_code(&python, &secret, 1);
    ok_json(
        app.post("/auth/mfa/step-up", &json!({"code": next}), Some(&strong))
            .await,
    )
    .await;
    ok_json(
        app.post("/auth/mfa/recovery-codes", &json!({}), Some(&strong))
            .await,
    )
    .await;
}
