//! Private keys at rest: AES-256-GCM under a key derived from SECRET_KEY (HKDF-SHA256),
//! the key id as associated data so a ciphertext cannot be moved to another row.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

pub struct KeyCipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl KeyCipher {
    pub fn new(secret_key: &[u8]) -> anyhow::Result<Self> {
        let prk = Salt::new(HKDF_SHA256, b"auth-service/signing-keys").extract(secret_key);
        let okm = prk
            .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
            .map_err(|_| anyhow::anyhow!("key derivation failed"))?;
        let unbound: UnboundKey = okm.into();
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// base64(nonce || ciphertext || tag).
    pub fn seal(&self, kid: &str, plain: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(STANDARD.encode(out))
    }

    /// Fails when SECRET_KEY changed since the key was stored (or the row was altered).
    pub fn open(&self, kid: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let bytes = STANDARD.decode(sealed)?;
        anyhow::ensure!(bytes.len() > NONCE_LEN, "sealed key too short");
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| {
                anyhow::anyhow!("signing key {kid} cannot be decrypted with this SECRET_KEY")
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_secret_and_kid() {
        let cipher = KeyCipher::new(b"one secret key long enough for the test").unwrap();
        let sealed = cipher.seal("kid-1", b"private der").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(cipher.open("kid-1", &sealed).unwrap(), b"private der");
        assert!(cipher.open("kid-2", &sealed).is_err());
        let other = KeyCipher::new(b"another secret key long enough for it").unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
    }
}
