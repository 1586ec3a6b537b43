//! Second factors from the outside (DESIGN §14): an admin's reset of a user who lost their
//! app and codes (DELETE /admin/users/{username}/mfa), and the mails that tell the user of
//! every change to how the account signs in.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::mfa::{mfa_token_of, pyotp, with_totp};

both_backends!(
    an_admin_reset_removes_every_factor_audits_and_mails,
    factor_changes_and_recovery_codes_are_mailed,
);

async fn an_admin_reset_removes_every_factor_audits_and_mails(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, _, _) = with_totp(&app, &python, "mfa_lost").await;
    let other = app.register("mfa_other").await;
    let admin = app.admin("root").await;
    let path = format!("/admin/users/{}/mfa", user.username);

    assert_unauthorized(app.delete(&path, None).await).await;
    assert_eq!(
        app.delete(&path, Some(&other.access)).await.status(),
        StatusCode::FORBIDDEN
    );
    for unknown in ["/admin/users/nobody_here/mfa", "/admin/users/%00/mfa"] {
        assert_eq!(
            app.delete(unknown, Some(&admin.access)).await.status(),
            StatusCode::NOT_FOUND,
            "{unknown}"
        );
    }
    // Refusals changed nothing: the second step is still asked for.
    mfa_token_of(&app, &user).await;

    let reset = ok_json(app.delete(&path, Some(&admin.access)).await).await;
    assert_eq!(reset["removed"], true, "{reset}");
    let status = ok_json(app.get("/auth/mfa", Some(&user.access)).await).await;
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    let body = app.login(&user.username, &user.password).await;
    assert!(body["access_token"].is_string(), "{body}");

    let mail = app
        .wait_for_mail(&user.email, "Two-step verification was turned off")
        .await;
    assert!(mail.decoded_body().contains("An administrator"));
    let trail = ok_json(
        app.get(
            &format!("/admin/activity?user_id={}", user.id),
            Some(&admin.access),
        )
        .await,
    )
    .await;
    let removed: Vec<_> = trail["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["event"] == "mfa_removed")
        .collect();
    assert_eq!(removed.len(), 1, "{trail}");
    assert_eq!(removed[0]["details"]["by"], admin.id);

    // Again: nothing left to remove, said so, nothing audited twice.
    let again = ok_json(app.delete(&path, Some(&admin.access)).await).await;
    assert_eq!(again["removed"], false);
}

async fn factor_changes_and_recovery_codes_are_mailed(backend: Backend) {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(backend).await;
    let (user, _, codes) = with_totp(&app, &python, "mfa_mailed").await;
    app.wait_for_mail(&user.email, "Two-step verification is on")
        .await;

    let token = mfa_token_of(&app, &user).await;
    let pair = ok_json(
        app.post(
            "/auth/mfa/verify",
            &json!({"mfa_token": token, "recovery_code": codes[0]}),
            None,
        )
        .await,
    )
    .await;
    let strong = pair["access_token"].as_str().unwrap().to_owned();
    let mail = app
        .wait_for_mail(&user.email, "A recovery code was used")
        .await;
    assert!(
        mail.decoded_body().contains("9 of them are left"),
        "{}",
        mail.decoded_body()
    );

    let r = app.delete("/auth/mfa/totp", Some(&strong)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mail = app
        .wait_for_mail(&user.email, "Two-step verification was turned off")
        .await;
    assert!(mail.decoded_body().contains("were removed"));
}
