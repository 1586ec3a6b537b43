use std::fmt;

use serde::Deserialize;

/// A password as received. At least 8 and at most 1024 characters (so nobody can make the
/// hasher chew megabytes); that is the whole rule under argon2id, the default, and what the
/// OpenAPI document's `maxLength` states. The scheme-specific limit (bcrypt's 72 bytes,
/// only while bcrypt is the configured hash) is checked by the password service, which
/// knows the configured scheme. Never printed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!(
                "Password must be at least {MIN_PASSWORD_CHARS} characters long"
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!(
                "Password must be at most {MAX_PASSWORD_CHARS} characters long"
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_count_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // 8 characters, 16 bytes: characters count, not bytes.
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        // The ceiling counts characters too: 1024 four-byte characters are accepted.
        assert!(Password::parse("🔑".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert!(Password::parse("🔑".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
    }

    #[test]
    fn debug_hides_the_value() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
