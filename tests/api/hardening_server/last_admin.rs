//! The only active admin cannot delete their own account (nobody could administer the
//! service afterwards), also when two admins delete themselves at the same moment.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    the_only_active_admin_cannot_delete_themself,
    two_admins_deleting_themselves_at_once_leave_one
);

async fn delete_self(app: &TestApp, user: &TestUser) -> reqwest::Response {
    app.delete(
        &format!(
            "/auth/users/{}?password={}",
            user.username,
            enc(&user.password)
        ),
        Some(&user.access),
    )
    .await
}

async fn the_only_active_admin_cannot_delete_themself(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let r = delete_self(&app, &root).await;
    let body = assert_error(r, StatusCode::CONFLICT, "last_admin").await;
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
    assert_eq!(
        me_status(&app, &root.access).await,
        StatusCode::OK,
        "still there"
    );

    // An inactive second admin does not count.
    let other = app.admin("other_admin").await;
    let r = app
        .client
        .patch(app.url("/admin/users/other_admin"))
        .bearer_auth(&root.access)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = delete_self(&app, &root).await;
    assert_error(r, StatusCode::CONFLICT, "last_admin").await;

    // With another active admin it may go; plain users were never concerned.
    let r = app
        .client
        .patch(app.url("/admin/users/other_admin"))
        .bearer_auth(&root.access)
        .json(&json!({"is_active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let plain = app.verified_user("plain_user").await;
    assert_eq!(delete_self(&app, &plain).await.status(), StatusCode::OK);
    assert_eq!(delete_self(&app, &root).await.status(), StatusCode::OK);
    let other = app.login(&other.username, &other.password).await;
    let access = other["access_token"].as_str().unwrap();
    assert_eq!(me_status(&app, access).await, StatusCode::OK);
}

async fn two_admins_deleting_themselves_at_once_leave_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut survivor = app.admin("admin_first").await;
    for round in 0..3 {
        // Exactly two active admins race to delete themselves: one must stay.
        let newcomer = app.admin(&format!("admin_round{round}")).await;
        let pair = [survivor, newcomer];
        let statuses: Vec<StatusCode> = join_all(pair.iter().map(|u| delete_self(&app, u)))
            .await
            .iter()
            .map(|r| r.status())
            .collect();
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {statuses:?}"
        );
        let [first, second] = pair;
        survivor = if statuses[0] == StatusCode::OK {
            second
        } else {
            first
        };
        assert_eq!(me_status(&app, &survivor.access).await, StatusCode::OK);
    }
}
