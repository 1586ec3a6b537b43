//! Text a database can store. Rust strings are valid UTF-8 already; what PostgreSQL still
//! refuses (in `text` and in JSON alike) is the NUL character, so it is refused at the edge
//! on both backends, before it can reach a query.

/// False for text no backend may be given.
pub fn is_storable(text: &str) -> bool {
    !text.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_the_one_character_refused() {
        assert!(is_storable("plain ascii, ünïcödé, emoji 🎉, \u{1}\u{7f}"));
        assert!(!is_storable("ab\0c"));
        assert!(!is_storable("\0"));
    }
}
