//! SECRET_KEY: required (and long enough) in production; in development generated once and
//! kept beside the data, readable by its owner only, so tokens survive restarts.

use std::path::Path;

use rand::RngCore;

use super::{err, ConfigError, Environment, MIN_SECRET_BYTES};
use crate::secret::Secret;

/// In production SECRET_KEY is required. In development a missing key is generated once
/// and kept in `<DATA_DIR>/secret_key`, so tokens survive restarts.
pub(super) fn resolve_secret_key(
    given: Option<String>,
    env: Environment,
    data_dir: &Path,
) -> Result<Secret, ConfigError> {
    match (given, env) {
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
