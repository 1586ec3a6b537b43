//! The account page's newer parts over plain HTTP: the pending address of an email change.

use crate::helpers::{spawn_app, Backend};
use crate::web::{location, Visit};

/// A requested change shows "waiting for confirmation at" the new address until the
/// change is cancelled or completed.
#[tokio::test]
async fn the_pending_address_is_shown_until_settled() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.verified_user("pender").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("pender").await;
    let page = visit.get("/account").await.text().await.unwrap();
    assert!(!page.contains("waiting for confirmation"));

    let r = visit.change_email("pending@example.com").await;
    assert_eq!(location(&r), "/account?notice=email_change_requested");
    let page = visit.get("/account").await.text().await.unwrap();
    assert!(page.contains("waiting for confirmation"), "{page}");
    assert!(page.contains("<strong>pending@example.com</strong>"));

    let cancel = app.wait_for_mail(&user.email, "changed").await;
    let token = cancel.token().expect("a cancel link");
    visit
        .get(&format!("/cancel-email-change?token={token}"))
        .await;
    let page = visit.get("/account").await.text().await.unwrap();
    assert!(!page.contains("waiting for confirmation"), "{page}");
    assert!(!page.contains("pending@example.com"));
}
