//! Two-step verification on the pages alone (DESIGN §14): set up an authenticator app
//! from /account (QR code and key, a code from pyotp to confirm, recovery codes shown
//! once), sign out and back in with a code, replace the codes and turn the app off — the
//! last two only with a recent second factor on the browser's session.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::{away_from_step_edge, pyotp, pyotp_code};
use crate::web::{csrf_in, location, Visit};

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn recovery_codes(page: &str) -> Vec<String> {
    page.split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next())
        .map(str::to_owned)
        .collect()
}

async fn post_form(
    visit: &mut Visit<'_>,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let r = visit.post(path, fields).await;
    let status = r.status();
    let to = location(&r).to_owned();
    (status, to, r.text().await.unwrap())
}

#[tokio::test]
async fn an_authenticator_app_is_set_up_used_and_removed_from_the_pages() {
    let Some(python) = pyotp() else { return };
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("pages_mfa").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("pages_mfa").await;
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("Set up an authenticator app"), "{account}");

    let csrf = csrf_in(&account);
    let (status, _, setup) = post_form(&mut visit, "/account/mfa/setup", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(setup.contains("<svg"), "the QR code is inline");
    let secret = between(&setup, "Key: <code>", "</code>")
        .expect("the key as text")
        .to_owned();

    // A wrong code: the same key again with a message, nothing turned on.
    let (status, _, again) = post_form(
        &mut visit,
        "/account/mfa/confirm",
        &[("code", "000000x"), ("csrf", &csrf_in(&setup))],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert!(again.contains(&secret), "the pending key is shown again");
    away_from_step_edge().await;
    let code = pyotp_code(&python, &secret, 0);
    let (status, _, done) = post_form(
        &mut visit,
        "/account/mfa/confirm",
        &[("code", &code), ("csrf", &csrf_in(&again))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let codes = recovery_codes(&done);
    assert_eq!(codes.len(), 10, "{done}");
    // The same codes as a text file to download.
    let marker = "download=\"recovery-codes.txt\" href=\"data:text/plain;charset=utf-8,";
    let start = done.find(marker).expect("a download link") + marker.len();
    let href = &done[start..start + done[start..].find('"').unwrap()];
    let file: String = form_urlencoded::parse(format!("f={href}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .collect();
    for code in &codes {
        assert!(
            file.lines().any(|l| l == code),
            "{code} not in the file: {file:?}"
        );
    }
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("Recovery codes left: 10"), "{account}");

    // This browser's session never gave a code: replacing the codes needs a step-up.
    let (status, _, refused) = post_form(
        &mut visit,
        "/account/mfa/recovery-codes",
        &[("csrf", &csrf_in(&account))],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    // Sign out, sign in with the password and a recovery code.
    let (status, _, _) = post_form(&mut visit, "/logout", &[("csrf", &csrf_in(&account))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let csrf = visit.csrf("/login").await;
    let (status, _, prompt) = post_form(
        &mut visit,
        "/login",
        &[
            ("username", "pages_mfa"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = between(&prompt, "name=\"mfa_token\" value=\"", "\"")
        .unwrap()
        .to_owned();
    let (status, to, _) = post_form(
        &mut visit,
        "/login/mfa",
        &[
            ("mfa_token", &token),
            ("code", &codes[0]),
            ("csrf", &csrf_in(&prompt)),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/account"));

    // Now the session is fresh: new codes, then turn the app off.
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("Recovery codes left: 9"), "{account}");
    let (status, _, fresh) = post_form(
        &mut visit,
        "/account/mfa/recovery-codes",
        &[("csrf", &csrf_in(&account))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(recovery_codes(&fresh).len(), 10);
    let account = visit.get("/account").await.text().await.unwrap();
    let (status, to, _) = post_form(
        &mut visit,
        "/account/mfa/remove",
        &[("csrf", &csrf_in(&account))],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/account?notice=mfa_removed");
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("Set up an authenticator app"), "{account}");
    // A forged post (no token) changes nothing.
    let (status, _, _) = post_form(&mut visit, "/account/mfa/setup", &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
