//! What a stored bcrypt hash must look like before the service trusts it: the modular
//! crypt format `$2a$`/`$2b$`/`$2y$`, a two-digit cost between the lowest and the highest
//! the service itself would ever set, and 53 characters of bcrypt's base64 (22 of salt,
//! 31 of hash). Anything else (an imported `$2$31$…`, a truncated string) is refused at
//! import and, if it reached the database some other way, verified as the dummy hash so it
//! neither pins a hasher thread nor answers faster than an unknown user.

/// The lowest cost bcrypt accepts.
pub const MIN_BCRYPT_COST: u32 = 4;
/// The highest cost the service sets (BCRYPT_COST's ceiling): 14 is about a second per
/// check on a current core, already more than a login should cost; each step doubles it,
/// so cost 31 would hold a hasher thread for days.
pub const MAX_BCRYPT_COST: u32 = 14;

const BCRYPT_ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The cost of a well-formed bcrypt hash within the service's limits; `Err` says why not.
pub fn check_bcrypt_hash(stored: &str) -> Result<u32, String> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|prefix| stored.strip_prefix(prefix))
        .ok_or("not a bcrypt hash ($2a$, $2b$ or $2y$)")?;
    let (cost, body) = rest
        .split_once('$')
        .ok_or("bcrypt hash without a cost field")?;
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bcrypt cost is not two digits".into());
    }
    let cost: u32 = cost.parse().map_err(|_| "bcrypt cost is not a number")?;
    if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside {MIN_BCRYPT_COST}..={MAX_BCRYPT_COST}"
        ));
    }
    if body.len() != 53 || !body.bytes().all(|b| BCRYPT_ALPHABET.contains(&b)) {
        return Err("bcrypt salt and hash are not 53 base64 characters".into());
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_hashes_and_refuses_the_rest() {
        let real = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(check_bcrypt_hash(&real), Ok(4));
        let body = &real[7..];
        for prefix in ["$2a$", "$2y$", "$2b$"] {
            assert_eq!(check_bcrypt_hash(&format!("{prefix}12${body}")), Ok(12));
        }
        for bad in [
            format!("$2b$31${body}"),
            format!("$2b$15${body}"),
            format!("$2b$03${body}"),
            format!("$2x$12${body}"),
            format!("$2$12${body}"),
            format!("$2b$1${body}"),
            format!("$2b$12${}", &body[1..]),
            format!("$2b$12${}!", &body[1..]),
            "$2b$12$".to_owned(),
            "$2".to_owned(),
            String::new(),
            "plain text".to_owned(),
        ] {
            assert!(check_bcrypt_hash(&bad).is_err(), "{bad}");
        }
    }
}
