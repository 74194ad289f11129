//! Time as FLUO shows and accepts it: the one clock reading ([`now_ms`]),
//! the one formatter ([`rfc3339`]) and the one parser of client-sent times
//! ([`parse`]). Sits in the model layer: no I/O, depends on nothing of FLUO.
//!
//! Every time a client sends is bounded to [`MIN_UNIX_MS`]..=[`MAX_UNIX_MS`]
//! (1970 to the end of year 9999) before it is stored or compared, and the
//! formatter never panics: humantime's RFC 3339 formatter panics from year
//! 10000 on, so values beyond are shown as the last representable instant
//! (values from before this bound existed may be stored).

/// The earliest time accepted from a client: the Unix epoch.
pub const MIN_UNIX_MS: u64 = 0;
/// The latest time accepted from a client and shown: 9999-12-31T23:59:59.999Z.
pub const MAX_UNIX_MS: u64 = 253_402_300_799_999;
/// The longest client text quoted back in an error message.
const QUOTED_CHARS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("{field} must be RFC 3339 or milliseconds since the epoch, not {text:?}")]
    Malformed { field: String, text: String },
    #[error("{field} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z")]
    OutOfRange { field: String },
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or(0)
}

/// `2026-11-27T10:00:00.000Z`; infallible: times past [`MAX_UNIX_MS`] are shown as it.
pub fn rfc3339(unix_ms: u64) -> String {
    let clamped = unix_ms.min(MAX_UNIX_MS);
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(clamped)).to_string()
}

/// A time a client sent, as RFC 3339 (`2026-11-27T10:00:00Z`) or milliseconds
/// since the epoch, within [`MIN_UNIX_MS`]..=[`MAX_UNIX_MS`]. `field` names it
/// in the error.
pub fn parse(field: &str, text: &str) -> Result<u64, TimeError> {
    let out_of_range = || TimeError::OutOfRange { field: field.into() };
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        // All digits: milliseconds. Too many digits for u64 is out of range too.
        let millis = text.parse::<u64>().map_err(|_| out_of_range())?;
        return if (MIN_UNIX_MS..=MAX_UNIX_MS).contains(&millis) { Ok(millis) } else { Err(out_of_range()) };
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|_| TimeError::Malformed { field: field.into(), text: text.chars().take(QUOTED_CHARS).collect() })?;
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| out_of_range())?;
    let millis = u64::try_from(since.as_millis()).map_err(|_| out_of_range())?;
    if millis > MAX_UNIX_MS { Err(out_of_range()) } else { Ok(millis) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_the_years_1970_to_9999() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(MAX_UNIX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(MAX_UNIX_MS + 1), "9999-12-31T23:59:59.999Z", "clamped, not a panic");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse("t", "9999-12-31T23:59:59.999Z"), Ok(MAX_UNIX_MS));
        assert_eq!(parse("t", &MAX_UNIX_MS.to_string()), Ok(MAX_UNIX_MS));
        assert_eq!(parse("t", "1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("t", "2026-11-27T10:00:00Z"), Ok(1_795_773_600_000));
        for far in [(MAX_UNIX_MS + 1).to_string(), u64::MAX.to_string(), "99999999999999999999999".into()] {
            assert_eq!(parse("expires_at", &far), Err(TimeError::OutOfRange { field: "expires_at".into() }), "{far}");
        }
        assert!(parse("t", "1969-12-31T23:59:59Z").is_err(), "before the epoch (humantime itself refuses it)");
        assert!(matches!(parse("t", "+5"), Err(TimeError::Malformed { .. })));
        assert!(matches!(parse("t", ""), Err(TimeError::Malformed { .. })));
        assert!(matches!(parse("t", "10000-01-01T00:00:00Z"), Err(TimeError::Malformed { .. })));
        let long = "x".repeat(100_000);
        let message = parse("t", &long).unwrap_err().to_string();
        assert!(message.len() < 200, "the client's text is quoted only in part: {message}");
    }

    proptest! {
        #[test]
        fn formatting_never_panics_and_parses_back(unix_ms in any::<u64>()) {
            let text = rfc3339(unix_ms);
            prop_assert_eq!(parse("t", &text), Ok(unix_ms.min(MAX_UNIX_MS)));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = parse("t", &text);
        }
    }
}
