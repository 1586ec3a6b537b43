//! ID tokens signed wrongly, from the provider the test controls: every one is refused,
//! while RS256 and ES256 tokens signed by the provider's published keys are accepted.

use reqwest::StatusCode;

use super::controlled::{ControlledProvider, Signing};
use super::{add_provider, login_via};
use crate::both_backends;
use crate::helpers::{assert_error, ok_json, spawn_app_with, Backend};

async fn badly_signed_tokens_are_refused_and_good_ones_accepted(backend: Backend) {
    let provider = ControlledProvider::start().await;
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(backend, |vars| add_provider(vars, "ctl", &issuer)).await;

    for signing in [
        Signing::OtherKeyKnownKid,
        Signing::OtherKeyUnknownKid,
        Signing::AlgNone,
        Signing::Hs256WithClientSecret,
    ] {
        provider.sign_next(signing, "ctl-mallory", "mallory@example.com");
        let r = login_via(&app, "ctl").await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "oauth_failed").await;
        eprintln!("{signing:?}: {body}");
    }

    provider.sign_next(Signing::Rs256, "ctl-rsa", "rsa@example.com");
    let tokens = ok_json(login_via(&app, "ctl").await).await;
    assert_eq!(tokens["is_new_user"], true);

    provider.sign_next(Signing::Es256, "ctl-ec", "ec@example.com");
    let tokens = ok_json(login_via(&app, "ctl").await).await;
    assert_eq!(tokens["is_new_user"], true);
    // Keys are cached: an unknown key id refetches the set at most every 30 s, so a
    // stream of tokens with made-up ids costs the provider nothing.
    assert_eq!(provider.jwks_fetches(), 1);
    // The refused tokens created nothing: mallory has no account.
    let r = app.login_raw("mallory", "whatever password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn an_unreachable_provider_is_degraded_not_fatal(backend: Backend) {
    // Nothing listens there yet: discovery fails at start, the service starts anyway.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let issuer = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(backend, |vars| {
        add_provider(vars, "down", &issuer);
        vars.insert("OIDC_DISCOVERY_RETRY_SECONDS".into(), "1".into());
    })
    .await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["checks"]["oidc"]["down"]["status"], "degraded");
    let r = app
        .post("/auth/oauth/down/authorize", &serde_json::json!({}), None)
        .await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable").await;
    // Password sign-in is unaffected.
    let user = app.register("unaffected").await;
    app.login(&user.username, &user.password).await;

    // When the provider comes up, the background retry finds it.
    let _provider = ControlledProvider::start_on(port).await;
    let mut status = serde_json::Value::Null;
    for _ in 0..300 {
        let health: serde_json::Value = app.get("/health", None).await.json().await.unwrap();
        status = health["checks"]["oidc"]["down"]["status"].clone();
        if status == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "ok");
}

both_backends!(
    badly_signed_tokens_are_refused_and_good_ones_accepted,
    an_unreachable_provider_is_degraded_not_fatal,
);
