//! Integers as JSON Schema counts them: any JSON number whose value is whole, so `646`,
//! `646.0` and `6.46e2` are the same integer while `646.5` is not one. Read from the number's
//! digits, never through a float: `646.0000000000000001` is refused, though the nearest
//! double to it is 646.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::Deserialize;
use serde_json::value::RawValue;

/// An `i64` parsed exactly from any whole JSON number. Deserializes only from JSON (it reads
/// the number's text), which is what every request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonInt(pub i64);

const NOT_WHOLE: &str = "Input should be a whole number";
const TOO_LARGE: &str = "Input is too large for a 64-bit integer";

impl JsonInt {
    /// The integer a JSON number literal names, or why it names none.
    pub fn parse(literal: &str) -> Result<i64, &'static str> {
        let (negative, unsigned) = match literal.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, literal),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e)),
            None => (unsigned, None),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(NOT_WHOLE);
        }
        // The value is `digits` × 10^`scale`.
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        let significant = digits.trim_end_matches('0');
        if significant.is_empty() {
            return Ok(0);
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                if unsigned.is_empty() || !all_digits(unsigned) {
                    return Err(NOT_WHOLE);
                }
                // Any exponent past 40 digits of magnitude is out of range either way.
                let magnitude: i64 = unsigned
                    .trim_start_matches('0')
                    .parse()
                    .unwrap_or(if unsigned.len() > 18 { i64::MAX / 4 } else { 0 });
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        let trailing_zeros = (digits.len() - significant.len()) as i64;
        let scale = exponent - fraction.len() as i64 + trailing_zeros;
        if scale < 0 {
            return Err(NOT_WHOLE);
        }
        // i64 has 19 digits at most.
        if significant.len() as i64 + scale > 19 {
            return Err(TOO_LARGE);
        }
        let magnitude: i128 = format!("{significant}{}", "0".repeat(scale as usize))
            .parse()
            .map_err(|_| TOO_LARGE)?;
        let value = if negative { -magnitude } else { magnitude };
        i64::try_from(value).map_err(|_| TOO_LARGE)
    }
}

impl<'de> Deserialize<'de> for JsonInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get().trim();
        let unexpected = match text.as_bytes().first() {
            Some(b'-' | b'0'..=b'9') => {
                return JsonInt::parse(text).map(JsonInt).map_err(de::Error::custom)
            }
            Some(b'"') => Unexpected::Other("string"),
            Some(b't' | b'f') => Unexpected::Bool(text == "true"),
            Some(b'n') => Unexpected::Unit,
            Some(b'[') => Unexpected::Seq,
            Some(b'{') => Unexpected::Map,
            _ => Unexpected::Other("value"),
        };
        Err(de::Error::invalid_type(unexpected, &Expecting))
    }
}

struct Expecting;

impl de::Expected for Expecting {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
}

/// `#[serde(default, deserialize_with = "json_int::optional")]` for `Option<i64>` fields:
/// absent or `null` is `None`, any whole number is read exactly.
pub mod json_int {
    use serde::{Deserialize, Deserializer};

    use super::JsonInt;

    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<JsonInt>::deserialize(deserializer)?.map(|n| n.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(raw: &str) -> Result<i64, String> {
        serde_json::from_str::<JsonInt>(raw)
            .map(|n| n.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_any_notation() {
        for (raw, value) in [
            ("646", 646),
            ("646.0", 646),
            ("646.000", 646),
            ("6.46e2", 646),
            ("6460E-1", 646),
            ("64600e-2", 646),
            ("1e2", 100),
            ("1E+2", 100),
            ("0", 0),
            ("-0", 0),
            ("0.0", 0),
            ("0e-5", 0),
            ("0e999999999999999999999", 0),
            ("-17", -17),
            ("-1.7e1", -17),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("9.223372036854775807e18", i64::MAX),
        ] {
            assert_eq!(from_json(raw), Ok(value), "{raw}");
        }
    }

    #[test]
    fn fractions_and_overflow_are_refused() {
        for raw in [
            "646.5",
            "0.1",
            "646.0000000000000001",
            "1e-1",
            "6.461e2",
            "9223372036854775808",
            "-9223372036854775809",
            "1e19",
            "1e999999999999999999999",
            "1e-999999999999999999999",
        ] {
            assert!(from_json(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn other_json_types_are_type_errors() {
        for raw in ["\"646\"", "true", "null", "[]", "{}"] {
            let err = from_json(raw).unwrap_err();
            assert!(err.starts_with("invalid type"), "{raw}: {err}");
        }
    }

    #[test]
    fn optional_fields_read_null_as_none() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "json_int::optional")]
            n: Option<i64>,
        }
        let read = |raw: &str| serde_json::from_str::<Body>(raw).map(|b| b.n);
        assert_eq!(read("{}").unwrap(), None);
        assert_eq!(read(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(read(r#"{"n": 5.0}"#).unwrap(), Some(5));
        assert!(read(r#"{"n": 5.5}"#).is_err());
    }
}
