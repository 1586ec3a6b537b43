//! A provider the test controls, for ID tokens oauth2-mock-server cannot sign: another
//! key, `alg: none`, HS256 with the client secret, ES256. It serves discovery, JWKS, an
//! authorization endpoint (records nonce and PKCE challenge per code) and a token endpoint
//! that checks the PKCE verifier. Its signing keys are made fresh by `openssl` for each
//! test run, so no private key is kept in the repository.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{CLIENT_ID, CLIENT_SECRET};

/// The provider's keys: `rsa` and `ec` are published in `jwks`; `other_rsa` is not.
struct TestKeys {
    rsa: String,
    other_rsa: String,
    ec: String,
    jwks: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian package openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn generate_key(dir: &Path, name: &str, options: &[&str]) -> (String, String) {
    let path = dir.join(name).display().to_string();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["-out", &path]);
    openssl(&args);
    let pem = std::fs::read_to_string(&path).expect("read the generated key");
    (path, pem)
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let rsa_options = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let (rsa_path, rsa) = generate_key(dir.path(), "rsa.pem", &rsa_options);
        let (_, other_rsa) = generate_key(dir.path(), "other.pem", &rsa_options);
        let ec_options = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let (ec_path, ec) = generate_key(dir.path(), "ec.pem", &ec_options);
        let modulus = openssl(&["rsa", "-in", &rsa_path, "-noout", "-modulus"]);
        let modulus = String::from_utf8(modulus).expect("hex modulus");
        let modulus = hex::decode(modulus.trim().trim_start_matches("Modulus=")).expect("hex");
        // A P-256 public key in DER ends with the uncompressed point's x and y, 32 bytes each.
        let ec_public = openssl(&["pkey", "-in", &ec_path, "-pubout", "-outform", "DER"]);
        let (x, y) = ec_public[ec_public.len() - 64..].split_at(32);
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "test-rsa-1", "use": "sig", "alg": "RS256",
             "n": URL_SAFE_NO_PAD.encode(modulus), "e": "AQAB"},
            {"kty": "EC", "kid": "test-ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)},
        ]});
        TestKeys {
            rsa,
            other_rsa,
            ec,
            jwks: jwks.to_string(),
        }
    })
}

/// How the next ID token is signed.
#[derive(Debug, Clone, Copy)]
pub enum Signing {
    Rs256,
    Es256,
    /// Signed with a key that is not in the JWKS, under the id of one that is.
    OtherKeyKnownKid,
    /// Signed with a key that is not in the JWKS, under an id the JWKS does not have.
    OtherKeyUnknownKid,
    AlgNone,
    /// HS256 keyed with the client secret (which the service knows too).
    Hs256WithClientSecret,
}

struct Shared {
    issuer: String,
    /// code → (PKCE challenge, nonce)
    codes: HashMap<String, (String, String)>,
    signing: Signing,
    sub: String,
    email: String,
    jwks_fetches: usize,
}

pub struct ControlledProvider {
    pub issuer: String,
    shared: Arc<Mutex<Shared>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for ControlledProvider {
    fn drop(&mut self) {
        self._server.abort();
    }
}

impl ControlledProvider {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            issuer: issuer.clone(),
            codes: HashMap::new(),
            signing: Signing::Rs256,
            sub: "controlled-user".into(),
            email: "controlled@example.com".into(),
            jwks_fetches: 0,
        }));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            issuer,
            shared,
            _server: server,
        }
    }

    /// How often the service fetched the key set.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.lock().unwrap().jwks_fetches
    }

    pub fn sign_next(&self, signing: Signing, sub: &str, email: &str) {
        let mut shared = self.shared.lock().unwrap();
        shared.signing = signing;
        shared.sub = sub.into();
        shared.email = email.into();
    }
}

type Ctx = State<Arc<Mutex<Shared>>>;

async fn jwks(State(shared): Ctx) -> impl IntoResponse {
    shared.lock().unwrap().jwks_fetches += 1;
    (
        [(header::CONTENT_TYPE, "application/json")],
        keys().jwks.clone(),
    )
}

async fn discovery(State(shared): Ctx) -> Json<Value> {
    let issuer = shared.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn authorize(State(shared): Ctx, Query(q): Query<HashMap<String, String>>) -> Response {
    let code = uuid::Uuid::new_v4().simple().to_string();
    let (Some(challenge), Some(nonce), Some(redirect), Some(state)) = (
        q.get("code_challenge"),
        q.get("nonce"),
        q.get("redirect_uri"),
        q.get("state"),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    shared
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), (challenge.clone(), nonce.clone()));
    let location = format!("{redirect}?code={code}&state={state}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(
    State(shared): Ctx,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected_auth)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut shared = shared.lock().unwrap();
    let code = form.get("code").cloned().unwrap_or_default();
    let Some((challenge, nonce)) = shared.codes.remove(&code) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": shared.issuer, "aud": CLIENT_ID, "sub": shared.sub, "email": shared.email,
        "email_verified": true, "nonce": nonce, "iat": now, "exp": now + 600,
    });
    let id_token = sign(shared.signing, &claims);
    Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

fn sign(signing: Signing, claims: &Value) -> String {
    let with_kid = |alg, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        h
    };
    let rsa = |pem: &str| EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    match signing {
        Signing::Rs256 => jsonwebtoken::encode(
            &with_kid(Algorithm::RS256, "test-rsa-1"),
            claims,
            &rsa(&keys().rsa),
        ),
        Signing::Es256 => jsonwebtoken::encode(
            &with_kid(Algorithm::ES256, "test-ec-1"),
            claims,
            &EncodingKey::from_ec_pem(keys().ec.as_bytes()).unwrap(),
        ),
        Signing::OtherKeyKnownKid => jsonwebtoken::encode(
            &with_kid(Algorithm::RS256, "test-rsa-1"),
            claims,
            &rsa(&keys().other_rsa),
        ),
        Signing::OtherKeyUnknownKid => jsonwebtoken::encode(
            &with_kid(Algorithm::RS256, "test-rsa-other"),
            claims,
            &rsa(&keys().other_rsa),
        ),
        Signing::Hs256WithClientSecret => jsonwebtoken::encode(
            &with_kid(Algorithm::HS256, "test-rsa-1"),
            claims,
            &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        ),
        Signing::AlgNone => {
            let header =
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#);
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            return format!("{header}.{payload}.");
        }
    }
    .unwrap()
}
