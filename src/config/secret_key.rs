//! SECRET_KEY: required (and long enough) in production; in development generated once and
//! kept beside the data, readable by its owner only, so tokens survive restarts.

use std::path::Path;

use rand::RngCore;

use super::{err, ConfigError, Environment, MIN_SECRET_BYTES};
use crate::secret::Secret;

/// In production SECRET_KEY is required. In development a missing key is generated once
/// and kept in `<DATA_DIR>/secret_key`, so tokens survive restarts.
/// Keys that were ever published as examples in this repository (deploy files, docs): a
/// deployment that kept one signs its tokens with a key everyone has. Production refuses
/// them, and anything that still reads like a placeholder.
pub const PUBLISHED_EXAMPLE_KEYS: &[&str] = &[
    "change-me-to-a-long-random-secret-of-32-bytes-or-more",
    "replace-with-at-least-32-random-bytes-0123456789",
];

/// True for a key production must not run with: a published example or a placeholder.
pub fn is_example_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    PUBLISHED_EXAMPLE_KEYS.contains(&key)
        || [
            "change-me",
            "changeme",
            "replace-with",
            "replace-me",
            "example",
        ]
        .iter()
        .any(|word| lower.contains(word))
}

pub(super) fn resolve_secret_key(
    given: Option<String>,
    env: Environment,
    data_dir: &Path,
) -> Result<Secret, ConfigError> {
    match (given, env) {
        (Some(key), Environment::Production) if is_example_key(&key) => Err(err(
            "ENVIRONMENT=production refuses this SECRET_KEY: it is a published example or a \
             placeholder; generate one with `openssl rand -hex 32`",
        )),
        (Some(key), Environment::Production) if key.len() < MIN_SECRET_BYTES => Err(err(format!(
            "ENVIRONMENT=production needs a SECRET_KEY of at least {MIN_SECRET_BYTES} bytes"
        ))),
        (Some(key), _) => {
            if key.len() < MIN_SECRET_BYTES {
                eprintln!("WARNING: SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes; use a longer one.");
            }
            Ok(Secret::new(key))
        }
        (None, Environment::Production) => Err(err("ENVIRONMENT=production requires SECRET_KEY")),
        (None, Environment::Development) => load_or_create_dev_secret(data_dir),
    }
}

fn load_or_create_dev_secret(data_dir: &Path) -> Result<Secret, ConfigError> {
    let path = data_dir.join("secret_key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= MIN_SECRET_BYTES {
            return Ok(Secret::new(existing));
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    std::fs::create_dir_all(data_dir)
        .and_then(|_| write_private(&path, &key))
        .map_err(|e| {
            err(format!(
                "cannot persist a generated SECRET_KEY at {}: {e}",
                path.display()
            ))
        })?;
    eprintln!(
        "WARNING: SECRET_KEY is not set. Generated a random key and saved it to {}. \
         Set SECRET_KEY (and ENVIRONMENT=production) for any real deployment.",
        path.display()
    );
    Ok(Secret::new(key))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every literal SECRET_KEY value written in the repository's docs and deploy files.
    fn published_keys() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md"), root.join("Dockerfile")];
        for dir in ["docs", "deploy", "deploy/k8s"] {
            if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        let mut found = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                let Some(at) = line.find("SECRET_KEY") else {
                    continue;
                };
                if line[..at].ends_with('_') {
                    continue; // STRIPE_SECRET_KEY and the like
                }
                let rest = line[at + "SECRET_KEY".len()..]
                    .trim_start_matches(['"', '\''])
                    .trim_start_matches([':', '=', ' ']);
                let value: String = rest
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '`'))
                    .collect();
                let computed =
                    value.starts_with('$') || value.starts_with("...") || value.is_empty();
                if !computed && value.chars().all(|c| c.is_ascii_graphic()) && value.len() > 8 {
                    found.push((file.display().to_string(), value));
                }
            }
        }
        found
    }

    #[test]
    fn production_refuses_every_key_published_in_the_repository() {
        let dir = std::env::temp_dir();
        for key in PUBLISHED_EXAMPLE_KEYS {
            assert!(
                resolve_secret_key(Some((*key).into()), Environment::Production, &dir).is_err(),
                "{key}"
            );
        }
        for (file, key) in published_keys() {
            assert!(
                resolve_secret_key(Some(key.clone()), Environment::Production, &dir).is_err(),
                "{file} publishes SECRET_KEY {key:?}, which production accepts"
            );
        }
        let random = "3f9a0c1e7b2d4a6f8e0c2b4d6f8a0c1e3f5a7b9d";
        assert!(resolve_secret_key(Some(random.into()), Environment::Production, &dir).is_ok());
    }

    #[test]
    fn deploy_files_have_no_default_secret() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap();
        let line = compose
            .lines()
            .find(|l| l.trim_start().starts_with("SECRET_KEY:"))
            .expect("compose passes SECRET_KEY");
        assert!(
            line.contains("${SECRET_KEY:?"),
            "compose must require it: {line}"
        );
        let secret = std::fs::read_to_string(root.join("deploy/k8s/secret.example.yaml")).unwrap();
        assert!(secret.contains("SECRET_KEY: \"\""), "{secret}");
    }
}
