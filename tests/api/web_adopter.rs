//! What a new adopter hit on the pages (issue 19 items 8, 10, 12): the sign of every ledger
//! type on /credits, host names and the CSRF failure that explains itself, the HTML 404,
//! the favicon, forms an unverified user cannot use, metrics present before first use.

use auth_service::store::{now, Activity, CreditKind, NewCredit};
use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::*;
use crate::web::Visit;

both_backends!(credits_history_signs_follow_the_transaction_type);

/// The amount cell of the history row whose description is `description`.
fn amount_cell<'a>(page: &'a str, description: &str) -> &'a str {
    let row_end = page
        .find(&format!("<td>{description}</td>"))
        .unwrap_or_else(|| panic!("no row {description} in {page}"));
    let row_start = page[..row_end].rfind("<tr>").unwrap();
    let row = &page[row_start..row_end];
    let cell = row.find("<td class=\"num").unwrap();
    let cell_end = row[cell..].find("</td>").unwrap();
    &row[cell..cell + cell_end]
}

async fn credits_history_signs_follow_the_transaction_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("signs").await;
    let cases = [
        (CreditKind::Added, 1000, "+10.00", "plus"),
        (CreditKind::Purchase, 500, "+5.00", "plus"),
        (CreditKind::SubscriptionGrant, 400, "+4.00", "plus"),
        (CreditKind::Used, 310, "\u{2212}3.10", "minus"),
        (CreditKind::Refund, 100, "\u{2212}1.00", "minus"),
    ];
    for (kind, cents, _, _) in cases {
        let credit = NewCredit {
            user_id: user.id,
            kind,
            amount: cents,
            reference_id: None,
            description: Some(format!("row-{}", kind.as_str())),
            created_at: now(),
        };
        let activity = Activity {
            user_id: Some(user.id),
            event: "credits_add",
            ip: None,
            user_agent: None,
            details: "{}".into(),
            created_at: now(),
        };
        app.state
            .store
            .apply_credit(&credit, &activity)
            .await
            .unwrap()
            .expect("applied");
    }
    let mut visit = Visit::new(&app);
    visit.sign_in("signs").await;
    let r = visit.get("/credits").await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    for (kind, _, shown, class) in cases {
        let cell = amount_cell(&page, &format!("row-{}", kind.as_str()));
        assert!(
            cell.contains(class) && cell.ends_with(&format!(">{shown}")),
            "{}: {cell}",
            kind.as_str()
        );
    }
    // 10 + 5 + 4 - 3.10 - 1 = 14.90
    assert!(page.contains("14.90"), "{page}");
}

#[tokio::test]
async fn browsers_get_an_html_404_and_a_favicon_api_clients_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app
        .client
        .get(app.url("/no/such/page"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Page not found") && body.contains("href=\"/\""),
        "{body}"
    );

    // An API client (no HTML in Accept), or a POST, keeps the contract's JSON 404.
    let json = app.get("/no/such/page", None).await;
    assert_eq!(json.status(), StatusCode::NOT_FOUND);
    let error: serde_json::Value = json.json().await.unwrap();
    assert_eq!(error["code"], "not_found");
    let post = app
        .client
        .post(app.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert!(post.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    let icon = app.get("/favicon.ico", None).await;
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
    let bytes = icon.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO header");

    // Without the pages, neither exists.
    let api_only = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("WEB_UI".into(), "false".into());
    })
    .await;
    assert_eq!(
        api_only.get("/favicon.ico", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let page = api_only
        .client
        .get(api_only.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

/// PUBLIC_URL says localhost, the browser opened 127.0.0.1: the refusal says where to go.
#[tokio::test]
async fn a_form_from_the_wrong_host_name_says_which_address_to_open() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("PUBLIC_URL".into(), "http://localhost:8080".into());
    })
    .await;
    let mut visit = Visit::new(&app);
    visit.origin = app.address.clone();
    let csrf = visit.csrf("/login").await;
    let r = visit
        .post(
            "/login",
            &[("username", "x"), ("password", "y"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap().replace("&#x2f;", "/");
    assert!(body.contains("Open http://localhost:8080"), "{body}");
    assert!(body.contains("PUBLIC_URL"), "{body}");
}

/// Deleting an account cancels its subscription (issue 19 item 6): the page says so
/// before and after.
#[tokio::test]
async fn the_delete_confirmation_says_the_subscription_is_cancelled() {
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("leaver").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("leaver").await;
    let account = visit.get("/account").await.text().await.unwrap();
    assert!(account.contains("cancels any subscription"), "{account}");
    let csrf = crate::web::csrf_in(&account);
    let r = visit
        .post(
            "/account/delete",
            &[("delete_password", PASSWORD), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = crate::web::location(&r).to_owned();
    let page = visit.get(&to).await.text().await.unwrap();
    assert!(page.contains("any subscription cancelled"), "{to}: {page}");
}
