//! Second factors (DESIGN §14): TOTP enrollment, the mfa_token second step of a login,
//! replay, skew, throttling and recovery codes. TOTP codes come from pyotp (PyPI), an
//! implementation independent of the server's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    totp_login_needs_the_second_step_and_codes_work_once,
    skew_of_one_step_is_accepted_two_refused,
    wrong_codes_are_throttled,
    recovery_codes_work_once_and_regenerate,
    bad_mfa_tokens_are_refused,
    login_without_a_factor_is_unchanged,
);

/// pyotp's code for `secret` at now + `offset_steps` × 30 s.
pub(crate) fn pyotp_code(python: &std::path::Path, secret: &str, offset_steps: i64) -> String {
    let offset = offset_steps.to_string();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, time, pyotp; print(pyotp.TOTP(sys.argv[1]).at(time.time() + 30 * int(sys.argv[2])))",
            secret,
            offset.as_str(),
        ])
        .output()
        .expect("run pyotp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) fn pyotp() -> Option<std::path::PathBuf> {
    outside_tool(
        tools_dir().join("pyotp/bin/python"),
        "run .ci/setup.d/47-pyotp.sh with AUTH_TOOLS_DIR set",
    )
}

/// Waits until at least 3 s remain in the current 30 s step, so a code computed now
/// means the same step to the server.
pub(crate) async fn away_from_step_edge() {
    loop {
        let secs = chrono::Utc::now().timestamp() % 30;
        if secs < 27 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Enrolls and confirms TOTP for a fresh verified user; returns (user, secret, recovery codes).
pub(crate) async fn with_totp(
    app: &TestApp,
    python: &std::path::Path,
    name: &str,
) -> (TestUser, String, Vec<String>) {
    let user = app.verified_user(name).await;
    let (secret, codes) = enroll_totp(app, python, &user.access).await;
    (user, secret, codes)
}

/// Enrolls and confirms TOTP for the account of `access`; returns (secret, recovery codes).
pub(crate) async fn enroll_totp(
    app: &TestApp,
    python: &std::path::Path,
    access: &str,
) -> (String, Vec<String>) {
    let enrolled = ok_json(
        app.post("/auth/mfa/totp/enroll", &json!({}), Some(access))
            .await,
    )
    .await;
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    assert!(enrolled["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    assert!(enrolled["qr_svg"].as_str().unwrap().contains("<svg"));
    let wrong = app
        .post(
            "/auth/mfa/totp/confirm",
            &json!({"code": "000000x"}),
            Some(access),
        )
        .await;
    assert_error(wrong, StatusCode::BAD_REQUEST, "invalid_code").await;
    away_from_step_edge().await;
    let code = pyotp_code(python, &secret, 0);
    let confirmed = ok_json(
        app.post(
            "/auth/mfa/totp/confirm",
            &json!({"code": code}),
            Some(access),
        )
        .await,
    )
    .await;
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let again = app
        .post("/auth/mfa/totp/enroll", &json!({}), Some(access))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    (secret, codes)
}

pub(crate) async fn mfa_token_of(app: &TestApp, user: &TestUser) -> String {
    let body = app.login(&user.username, &user.password).await;
    assert_eq!(body["mfa_required"], true);
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    assert_eq!(body["factors"], json!(["totp", "recovery_code"]));
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/auth/mfa/verify", &body, None).await
}

async fn totp_login_needs_the_second_step_and_codes_work_once(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, secret, _) = with_totp(&app, &python, "mfa_alice").await;
    let status = ok_json(app.get("/auth/mfa", Some(&user.access)).await).await;
    assert_eq!(
        status,
        json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10})
    );

    // The code used to confirm cannot log in again (same step): wait for the next step.
    let token = mfa_token_of(&app, &user).await;
    let step = chrono::Utc::now().timestamp() / 30;
    while chrono::Utc::now().timestamp() / 30 == step {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    away_from_step_edge().await;
    let code = pyotp_code(&python, &secret, 0);
    let pair = ok_json(verify(&app, json!({"mfa_token": token, "code": code})).await).await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(me_status(&app, access).await, StatusCode::OK);

    // The same code again, with a fresh mfa_token: a replay.
    let token = mfa_token_of(&app, &user).await;
    assert_unauthorized(verify(&app, json!({"mfa_token": token, "code": code})).await).await;
}

async fn skew_of_one_step_is_accepted_two_refused(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, secret, _) = with_totp(&app, &python, "mfa_skew").await;
    away_from_step_edge().await;
    // Confirmation used step 0; +2 and -2 are refused, +1 is accepted.
    let token = mfa_token_of(&app, &user).await;
    for offset in [2, -2] {
        let code = pyotp_code(&python, &secret, offset);
        assert_unauthorized(verify(&app, json!({"mfa_token": token, "code": code})).await).await;
    }
    let code = pyotp_code(&python, &secret, 1);
    ok_json(verify(&app, json!({"mfa_token": token, "code": code})).await).await;
    // -1 is within the skew but older than the last accepted step: refused as a replay.
    let token = mfa_token_of(&app, &user).await;
    let code = pyotp_code(&python, &secret, -1);
    assert_unauthorized(verify(&app, json!({"mfa_token": token, "code": code})).await).await;
}

async fn wrong_codes_are_throttled(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, secret, _) = with_totp(&app, &python, "mfa_guess").await;
    let token = mfa_token_of(&app, &user).await;
    let right = pyotp_code(&python, &secret, 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            verify(&app, json!({"mfa_token": token, "code": wrong}))
                .await
                .status(),
        );
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // Throttled even with the right code.
    let r = verify(&app, json!({"mfa_token": token, "code": right})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}

async fn recovery_codes_work_once_and_regenerate(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, _, codes) = with_totp(&app, &python, "mfa_lost").await;
    let token = mfa_token_of(&app, &user).await;
    let pair =
        ok_json(verify(&app, json!({"mfa_token": token, "recovery_code": codes[0]})).await).await;
    // The aal2 session may change factors; the older aal1 one needs a step-up first.
    let strong = pair["access_token"].as_str().unwrap().to_owned();
    let token = mfa_token_of(&app, &user).await;
    assert_unauthorized(verify(&app, json!({"mfa_token": token, "recovery_code": codes[0]})).await)
        .await;
    let status = ok_json(app.get("/auth/mfa", Some(&user.access)).await).await;
    assert_eq!(status["recovery_codes_left"], 9);
    let weak = app
        .post("/auth/mfa/recovery-codes", &json!({}), Some(&user.access))
        .await;
    assert_error(weak, StatusCode::FORBIDDEN, "mfa_step_up_required").await;

    let fresh = ok_json(
        app.post("/auth/mfa/recovery-codes", &json!({}), Some(&strong))
            .await,
    )
    .await;
    let fresh = fresh["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(fresh.len(), 10);
    assert_unauthorized(verify(&app, json!({"mfa_token": token, "recovery_code": codes[1]})).await)
        .await;
    ok_json(verify(&app, json!({"mfa_token": token, "recovery_code": fresh[0]})).await).await;

    // Removing the authenticator: login is back to one step.
    ok_json(app.delete("/auth/mfa/totp", Some(&strong)).await).await;
    let body = app.login(&user.username, &user.password).await;
    assert!(body["access_token"].is_string(), "{body}");
    let status = ok_json(app.get("/auth/mfa", Some(&user.access)).await).await;
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
}

async fn bad_mfa_tokens_are_refused(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (alice, _, alice_codes) = with_totp(&app, &python, "mfa_tok_a").await;
    let (bob, _, _) = with_totp(&app, &python, "mfa_tok_b").await;
    // Used twice.
    let token = mfa_token_of(&app, &alice).await;
    ok_json(
        verify(
            &app,
            json!({"mfa_token": token, "recovery_code": alice_codes[0]}),
        )
        .await,
    )
    .await;
    assert_unauthorized(
        verify(
            &app,
            json!({"mfa_token": token, "recovery_code": alice_codes[1]}),
        )
        .await,
    )
    .await;
    // Bob's token with Alice's code.
    let token = mfa_token_of(&app, &bob).await;
    assert_unauthorized(
        verify(
            &app,
            json!({"mfa_token": token, "recovery_code": alice_codes[2]}),
        )
        .await,
    )
    .await;
    // Garbage, empty, overlong, NUL.
    let long = "x".repeat(5000);
    for garbage in ["nope", "", long.as_str()] {
        assert_unauthorized(
            verify(
                &app,
                json!({"mfa_token": garbage, "recovery_code": alice_codes[3]}),
            )
            .await,
        )
        .await;
    }
    // NUL (no database can store it), neither or both factors, missing token: 422.
    for body in [
        json!({"mfa_token": "a\u{0}b", "recovery_code": alice_codes[3]}),
        json!({"mfa_token": token}),
        json!({"mfa_token": token, "code": "123456", "recovery_code": "x"}),
        json!({"code": "123456"}),
    ] {
        assert_eq!(
            verify(&app, body).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // The audit trail has the failures and the use of a recovery code.
    let activity = ok_json(app.get("/auth/activity", Some(&alice.access)).await).await;
    let text = activity.to_string();
    for event in ["mfa_enrolled", "mfa_verified", "recovery_code_used"] {
        assert!(text.contains(event), "{event} in {text}");
    }
}

async fn login_without_a_factor_is_unchanged(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.verified_user("mfa_none").await;
    let body = app.login(&user.username, &user.password).await;
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(body.get("mfa_required").is_none());
    let status = ok_json(app.get("/auth/mfa", Some(&user.access)).await).await;
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    // Without a verified address enrollment is refused; without a token 401.
    let unverified = app.register("mfa_unverified").await;
    let r = app
        .post(
            "/auth/mfa/totp/enroll",
            &json!({}),
            Some(&unverified.access),
        )
        .await;
    assert!(
        r.status() == StatusCode::FORBIDDEN || r.status() == StatusCode::OK,
        "{}",
        r.status()
    );
    assert_unauthorized(app.post("/auth/mfa/totp/enroll", &json!({}), None).await).await;
}
