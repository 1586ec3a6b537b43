//! The signing keys every instance shares (DESIGN §13): read from the database, kept in
//! memory as a [`KeySet`], re-read every 60 s (and on an unknown `kid`), rotated through
//! next → current → previous → retired.

pub mod cipher;
pub mod material;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;
use serde_json::Value;

use crate::store::{KeyChange, NewSigningKey, SigningKeyRow, Store};
use cipher::KeyCipher;
pub use material::{alg_name, is_asymmetric};

/// A key's public facts, as `keys list` and `GET /admin/keys` show them (no private part).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// next, current, previous or retired
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub struct Verifier {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// What one read of the table gives an instance.
#[derive(Default)]
pub struct KeySet {
    /// The current key, when signing is asymmetric.
    pub signer: Option<(String, Algorithm, EncodingKey)>,
    /// Every key still trusted (next, current, unexpired previous), by kid.
    pub verifiers: HashMap<String, Verifier>,
    /// The published JWKS document (next, current, previous).
    pub jwks: Value,
    /// HS* tokens signed with SECRET_KEY before the switch to asymmetric keys are accepted
    /// until then (they were live when the switch happened).
    pub hs_accepted_until: Option<DateTime<Utc>>,
}

/// The key rules that depend on configuration.
pub struct KeyPolicy {
    pub algorithm: Algorithm,
    /// ACCESS_TOKEN_EXPIRE_MINUTES + 5 min: how long a previous key keeps verifying.
    pub retire_after: Duration,
}

pub struct SigningKeys {
    store: Arc<dyn Store>,
    cipher: KeyCipher,
    policy: KeyPolicy,
}

impl SigningKeys {
    pub fn new(
        store: Arc<dyn Store>,
        secret_key: &[u8],
        policy: KeyPolicy,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            cipher: KeyCipher::new(secret_key)?,
            policy,
        })
    }

    async fn make(&self, alg: Algorithm) -> anyhow::Result<NewSigningKey> {
        let made = tokio::task::spawn_blocking(move || material::generate(alg)).await??;
        Ok(NewSigningKey {
            private_key_enc: self.cipher.seal(&made.kid, &made.private_der)?,
            kid: made.kid,
            alg: alg_name(alg).to_owned(),
            public_jwk: made.public_jwk.to_string(),
        })
    }

    /// At start: makes sure the current key is of the configured algorithm (creating the
    /// first current and next keys on a new install), or, under HS*, that no asymmetric
    /// key signs any more. Safe when several instances start at once: one wins, the others
    /// re-read.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        for _ in 0..5 {
            let rows = self.store.signing_keys().await?;
            let current = rows.iter().find(|r| r.state == "current");
            let now = Utc::now();
            let change = if is_asymmetric(self.policy.algorithm) {
                let wanted = alg_name(self.policy.algorithm);
                let next_ok = rows.iter().any(|r| r.state == "next" && r.alg == wanted);
                match current {
                    Some(c) if c.alg == wanted && next_ok => return Ok(()),
                    Some(c) if c.alg == wanted => KeyChange::Rotate {
                        next: self.make(self.policy.algorithm).await?,
                    },
                    _ => KeyChange::Start {
                        current: self.make(self.policy.algorithm).await?,
                        next: self.make(self.policy.algorithm).await?,
                        hs_accepted_until: now + self.policy.retire_after,
                    },
                }
            } else {
                if current.is_none() && !rows.iter().any(|r| r.state == "next") {
                    return Ok(());
                }
                KeyChange::Stop
            };
            let seen = current.map(|c| c.kid.clone());
            if self
                .store
                .change_signing_keys(seen.as_deref(), &change, now)
                .await?
            {
                return Ok(());
            }
        }
        anyhow::bail!("signing keys kept changing under us at start")
    }

    /// next → current, current → previous, a new next. Answers the new current kid, or
    /// [`RotationBusy`] when other rotations kept changing the keys under this one.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        anyhow::ensure!(
            is_asymmetric(self.policy.algorithm),
            "ALGORITHM={} signs with SECRET_KEY: there are no keys to rotate",
            alg_name(self.policy.algorithm)
        );
        for _ in 0..5 {
            self.ensure().await?;
            let rows = self.store.signing_keys().await?;
            let Some(current) = rows.iter().find(|r| r.state == "current") else {
                continue;
            };
            let Some(next) = rows.iter().find(|r| r.state == "next") else {
                continue;
            };
            let change = KeyChange::Rotate {
                next: self.make(self.policy.algorithm).await?,
            };
            if self
                .store
                .change_signing_keys(Some(&current.kid), &change, Utc::now())
                .await?
            {
                return Ok(next.kid.clone());
            }
        }
        Err(RotationBusy.into())
    }

    pub async fn list(&self) -> anyhow::Result<Vec<KeyInfo>> {
        self.retire().await?;
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|r| KeyInfo {
                kid: r.kid,
                alg: r.alg,
                state: r.state,
                created_at: r.created_at,
                activated_at: r.activated_at,
                deactivated_at: r.deactivated_at,
                retired_at: r.retired_at,
            })
            .collect())
    }

    /// Retires previous keys nothing they signed can still be valid for.
    pub async fn retire(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        self.store
            .retire_signing_keys(now - self.policy.retire_after, now)
            .await?;
        Ok(())
    }

    /// Reads the table into what signing and verifying need.
    pub async fn load(&self) -> anyhow::Result<KeySet> {
        let now = Utc::now();
        let rows = self.store.signing_keys().await?;
        let mut set = KeySet::default();
        let mut published = Vec::new();
        for row in &rows {
            if !self.trusted(row, now) {
                continue;
            }
            let Some(alg) = material::parse_alg(&row.alg) else {
                continue;
            };
            let jwk: Value = serde_json::from_str(&row.public_jwk)?;
            set.verifiers.insert(
                row.kid.clone(),
                Verifier {
                    alg,
                    key: material::decoding_key(alg, &jwk)?,
                },
            );
            if row.state == "current" {
                set.hs_accepted_until = row.hs_accepted_until;
                if is_asymmetric(self.policy.algorithm) {
                    let der = self.cipher.open(&row.kid, &row.private_key_enc)?;
                    set.signer = Some((row.kid.clone(), alg, material::encoding_key(alg, &der)?));
                }
            }
            // No current key (an instance switched to HS* during a rolling change): the
            // newest previous key keeps signing here until this instance restarts.
            if row.state == "previous"
                && is_asymmetric(self.policy.algorithm)
                && !rows.iter().any(|r| r.state == "current")
            {
                let der = self.cipher.open(&row.kid, &row.private_key_enc)?;
                set.signer = Some((row.kid.clone(), alg, material::encoding_key(alg, &der)?));
            }
            published.push(jwk);
        }
        if !is_asymmetric(self.policy.algorithm) {
            // Under HS* nothing is published (keys of an earlier asymmetric run still verify
            // until they retire).
            published.clear();
        }
        set.jwks = serde_json::json!({ "keys": published });
        Ok(set)
    }

    fn trusted(&self, row: &SigningKeyRow, now: DateTime<Utc>) -> bool {
        match row.state.as_str() {
            "next" | "current" => true,
            "previous" => row
                .deactivated_at
                .is_some_and(|at| at + self.policy.retire_after > now),
            _ => false,
        }
    }
}

/// Rotations from elsewhere kept changing the keys while this one tried: try again.
#[derive(Debug, thiserror::Error)]
#[error("another rotation changed the signing keys at the same time; try again")]
pub struct RotationBusy;
