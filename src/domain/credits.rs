use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of credits in integer cents: never a float inside, so 0.1 + 0.2 is 0.3.
/// Parsed from a JSON number or a decimal string ("10.50"); more than 2 decimals, zero,
/// negatives and more than 1e12 are refused. Serialized as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Credits(i64);

pub const MAX_CREDITS_CENTS: i64 = 1_000_000_000_000 * 100;

/// Below 10^15 cents a decimal has at most 15 significant digits, and every such decimal
/// survives a round trip through the nearest double: printing it gives the decimal back.
const EXACT_AS_F64_CENTS: u64 = 1_000_000_000_000_000;

impl Credits {
    pub fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses a plain decimal ("12", "12.5", "12.50"); the amount rules apply.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || format!("{raw:?} is not a decimal amount with at most 2 decimal places");
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (raw.contains('.') && fraction.is_empty())
        {
            return Err(invalid());
        }
        if fraction.len() > 2 {
            return Err("Amount must have at most 2 decimal places".into());
        }
        // Anything with more than 15 integer digits is over the limit anyway.
        let whole: i64 = whole.trim_start_matches('0').parse().or_else(|_| {
            if whole.bytes().all(|b| b == b'0') {
                Ok(0)
            } else {
                Err("Amount must be at most 1000000000000".to_owned())
            }
        })?;
        let fraction_cents: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
        let cents = whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(fraction_cents))
            .ok_or_else(|| "Amount must be at most 1000000000000".to_owned())?;
        Self::checked(cents)
    }

    fn checked(cents: i64) -> Result<Self, String> {
        if cents <= 0 {
            return Err("Amount must be greater than 0".into());
        }
        if cents > MAX_CREDITS_CENTS {
            return Err("Amount must be at most 1000000000000".into());
        }
        Ok(Self(cents))
    }

    /// The value as a JSON number: cents / 100 is the double nearest the decimal, which
    /// prints as that decimal (30 cents → 0.3).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// The exact decimal as a JSON number, without trailing zeros: "10.5", "12", "0.01".
    fn json_number(self) -> String {
        let fixed = self.to_string();
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

impl fmt::Display for Credits {
    /// Two decimals, exact: "10.50", "-0.05".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", cents / 100, cents % 100)
    }
}

impl Serialize for Credits {
    /// Exact at any size. Below `EXACT_AS_F64_CENTS` the double nearest the decimal prints
    /// as that decimal, so it is written as an ordinary number (cheap, and what non-JSON
    /// serializers expect); above, a double cannot tell neighbouring cents apart, so the
    /// decimal digits themselves are written as the JSON number.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.unsigned_abs() < EXACT_AS_F64_CENTS {
            return serializer.serialize_f64(self.as_f64());
        }
        serde_json::value::RawValue::from_string(self.json_number())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CreditsVisitor)
    }
}

struct CreditsVisitor;

impl Visitor<'_> for CreditsVisitor {
    type Value = Credits;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a positive amount with at most 2 decimal places, as a number or a decimal string",
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Credits, E> {
        let cents = i64::try_from(v)
            .ok()
            .and_then(|v| v.checked_mul(100))
            .unwrap_or(i64::MAX);
        Credits::checked(cents).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Credits, E> {
        Credits::checked(v.saturating_mul(100)).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Credits, E> {
        if !v.is_finite() {
            return Err(E::custom("Amount must be a finite number"));
        }
        if v <= 0.0 {
            return Err(E::custom("Amount must be greater than 0"));
        }
        // Rust prints the shortest decimal that reads back as the same double, i.e. what
        // the client wrote for any amount with few digits: 10.5 → "10.5", 0.125 → "0.125".
        let printed = format!("{v}");
        if printed.contains(['e', 'E']) {
            return Err(E::custom(if v > 1.0 {
                "Amount must be at most 1000000000000"
            } else {
                "Amount must have at most 2 decimal places"
            }));
        }
        Credits::parse(&printed).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Credits, E> {
        Credits::parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(raw: &str) -> Result<Credits, String> {
        serde_json::from_str::<Credits>(raw).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_strings_become_exact_cents() {
        assert_eq!(from_json("10").unwrap().cents(), 1000);
        assert_eq!(from_json("10.5").unwrap().cents(), 1050);
        assert_eq!(from_json("0.1").unwrap().cents(), 10);
        assert_eq!(from_json("0.29").unwrap().cents(), 29);
        assert_eq!(from_json("\"10.50\"").unwrap().cents(), 1050);
        assert_eq!(from_json("\"0.01\"").unwrap().cents(), 1);
        assert_eq!(
            from_json("1000000000000").unwrap().cents(),
            MAX_CREDITS_CENTS
        );
        assert_eq!(
            from_json("\"1000000000000.00\"").unwrap().cents(),
            MAX_CREDITS_CENTS
        );
    }

    #[test]
    fn invalid_amounts_are_refused() {
        for bad in [
            "0",
            "-1",
            "0.001",
            "10.123",
            "\"10.123\"",
            "1000000000000.01",
            "1e13",
            "\"1e3\"",
            "\"abc\"",
            "\"\"",
            "\"-5\"",
            "\" 5\"",
            "\"5.\"",
            "\".5\"",
            "null",
            "true",
            "[]",
            "{}",
            "1e-7",
            "\"0\"",
            "\"0.00\"",
            "99999999999999999999",
        ] {
            assert!(from_json(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn serializes_as_exact_numbers() {
        let sum = Credits::from_cents(
            from_json("0.1").unwrap().cents() + from_json("0.2").unwrap().cents(),
        );
        assert_eq!(serde_json::to_string(&sum).unwrap(), "0.3");
        assert_eq!(
            serde_json::to_string(&Credits::from_cents(1050)).unwrap(),
            "10.5"
        );
        assert_eq!(Credits::from_cents(1050).to_string(), "10.50");
        assert_eq!(Credits::from_cents(-5).to_string(), "-0.05");
    }

    /// What an exact writer prints for `cents`, computed without floats.
    fn exact(cents: i64) -> String {
        Credits::from_cents(cents).json_number()
    }

    #[test]
    fn large_amounts_serialize_exactly() {
        let mut samples = vec![
            1,
            10,
            100,
            7_000_000_000_000_001,
            70_000_000_000_001,
            700_000_000_000_001,
            999_999_999_999_999,
            1_000_000_000_000_000,
            1_000_000_000_000_001,
            i64::MAX,
            i64::MAX - 1,
            -i64::MAX,
            i64::MIN,
        ];
        // Spread over every magnitude, with odd cents.
        let mut x: i64 = 1;
        while let Some(next) = x.checked_mul(7) {
            samples.extend([next, next + 1, next - 1]);
            x = next;
        }
        for cents in samples {
            let json = serde_json::to_string(&Credits::from_cents(cents)).unwrap();
            // A whole number may be written "12.0": the same number.
            let json = json.strip_suffix(".0").unwrap_or(&json);
            assert_eq!(json, exact(cents), "{cents} cents");
        }
        assert_eq!(exact(i64::MAX), "92233720368547758.07");
        assert_eq!(exact(1_200), "12");
        assert_eq!(exact(1_050), "10.5");
        assert_eq!(exact(-1), "-0.01");
    }
}
