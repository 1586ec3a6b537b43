//! Making key pairs and their public JWKs. ES256 and EdDSA keys come from `ring` (already
//! built for rustls); RSA keys from the `rsa` crate (ring cannot generate them).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// A freshly made key pair: the private DER (never stored in clear) and the public JWK.
pub struct KeyMaterial {
    pub kid: String,
    pub alg: Algorithm,
    /// PKCS#8 (ES256, EdDSA) or PKCS#1 (RS256) DER, as jsonwebtoken reads it.
    pub private_der: Vec<u8>,
    pub public_jwk: Value,
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unsupported",
    }
}

pub fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

pub fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    b64(&bytes)
}

/// Makes a key pair for `alg` (ES256, EdDSA or RS256). RSA-2048 takes a moment: callers
/// run this off the async runtime.
pub fn generate(alg: Algorithm) -> anyhow::Result<KeyMaterial> {
    let rng = SystemRandom::new();
    let kid = new_kid();
    let (private_der, mut jwk) = match alg {
        Algorithm::ES256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| anyhow::anyhow!("P-256 key unreadable"))?;
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            anyhow::ensure!(point.len() == 65, "unexpected P-256 public key");
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
            (pkcs8.as_ref().to_vec(), jwk)
        }
        Algorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("Ed25519 key unreadable"))?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
            (pkcs8.as_ref().to_vec(), jwk)
        }
        Algorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
            let der = key.to_pkcs1_der()?.as_bytes().to_vec();
            let jwk = json!({"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())});
            (der, jwk)
        }
        other => anyhow::bail!("{other:?} keys are not made here"),
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg_name(alg));
    jwk["use"] = json!("sig");
    Ok(KeyMaterial {
        kid,
        alg,
        private_der,
        public_jwk: jwk,
    })
}

pub fn encoding_key(alg: Algorithm, der: &[u8]) -> anyhow::Result<EncodingKey> {
    Ok(match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(der),
        Algorithm::RS256 => EncodingKey::from_rsa_der(der),
        other => anyhow::bail!("no private key for {other:?}"),
    })
}

/// The verifying key of a published JWK.
pub fn decoding_key(alg: Algorithm, jwk: &Value) -> anyhow::Result<DecodingKey> {
    let field = |name: &str| {
        jwk[name]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("JWK without {name}"))
    };
    Ok(match alg {
        Algorithm::ES256 => DecodingKey::from_ec_components(field("x")?, field("y")?)?,
        Algorithm::EdDSA => DecodingKey::from_ed_components(field("x")?)?,
        Algorithm::RS256 => DecodingKey::from_rsa_components(field("n")?, field("e")?)?,
        other => anyhow::bail!("no public key for {other:?}"),
    })
}
