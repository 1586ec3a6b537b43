//! Endpoint secrets at rest and signatures on the wire.
//!
//! Secrets are encrypted with keys derived from SECRET_KEY (HMAC-SHA256 as the KDF), as
//! HMAC-SHA256 in counter mode (a PRF keystream over a random 128-bit nonce) with an
//! HMAC-SHA256 tag over nonce and ciphertext (encrypt-then-MAC). Built from the HMAC the
//! service already links rather than adding an AEAD crate; a database dump alone does not
//! reveal the secrets, and a tampered row fails to decrypt instead of signing with garbage.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const NONCE: usize = 16;
const TAG: usize = 32;
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn prf(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[derive(Clone)]
pub struct SecretBox {
    enc: [u8; 32],
    auth: [u8; 32],
}

impl SecretBox {
    pub fn new(secret_key: &str) -> Self {
        let k = secret_key.as_bytes();
        Self {
            enc: prf(k, &[b"auth-service webhook secrets v1 encryption"]),
            auth: prf(k, &[b"auth-service webhook secrets v1 authentication"]),
        }
    }

    fn keystream_xor(&self, nonce: &[u8], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let block = prf(&self.enc, &[nonce, &(i as u32).to_be_bytes()]);
            for (b, k) in chunk.iter_mut().zip(block) {
                *b ^= k;
            }
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut data = plain.as_bytes().to_vec();
        self.keystream_xor(&nonce, &mut data);
        let tag = prf(&self.auth, &[&nonce, &data]);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        out.extend_from_slice(&tag);
        B64.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Option<String> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < NONCE + TAG {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE);
        let (data, tag) = rest.split_at(rest.len() - TAG);
        let mut check = mac(&self.auth);
        check.update(nonce);
        check.update(data);
        check.verify_slice(tag).ok()?;
        let mut data = data.to_vec();
        self.keystream_xor(nonce, &mut data);
        String::from_utf8(data).ok()
    }
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", B64.encode(bytes))
}

/// `v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with the secret's decoded bytes,
/// as the Standard Webhooks libraries verify it.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut m = mac(&key);
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    Some(format!("v1,{}", B64.encode(m.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_tampering_is_refused() {
        let b = SecretBox::new("a-secret-key-of-sufficient-length-0123456789");
        let s = new_secret();
        let sealed = b.seal(&s);
        assert_eq!(b.open(&sealed).as_deref(), Some(s.as_str()));
        let mut raw = B64.decode(&sealed).unwrap();
        raw[NONCE] ^= 1;
        assert_eq!(b.open(&B64.encode(raw)), None);
        assert_eq!(
            SecretBox::new("another-key-0123456789-0123456789").open(&sealed),
            None
        );
    }

    #[test]
    fn signature_matches_the_specification_example() {
        // The Standard Webhooks specification's example.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
