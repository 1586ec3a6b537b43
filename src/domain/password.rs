use std::fmt;

use serde::Deserialize;

/// A password as received. At least 8 characters; at most 1024 bytes so nobody can make
/// the hasher chew megabytes. The scheme-specific limit (bcrypt's 72 bytes) is checked
/// by the password service, which knows the configured scheme. Never printed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "Password must be at least {MIN_PASSWORD_CHARS} characters long"
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "Password must be at most {MAX_PASSWORD_BYTES} bytes long"
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
        assert!(Password::parse("x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn debug_hides_the_value() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
