//! Durations written as text, such as `250ms`, `30s`, `5m`, `2h` or `7d`, for configuration, flags
//! and query parameters.

use std::time::Duration;

/// Text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected a whole number with a unit of ms, s, m, h or d, such as 30s or 5m")]
pub struct DurationError(pub String);

/// Parses a duration such as `30s`. A bare number is rejected, so a missing unit is never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError(text.to_owned()))?;
    let (digits, unit) = trimmed.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| DurationError(text.to_owned()))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError(text.to_owned())),
    };
    let millis = amount
        .checked_mul(millis_per_unit)
        .ok_or_else(|| DurationError(text.to_owned()))?;
    Ok(Duration::from_millis(millis))
}

/// Parses a comma-separated list of durations, such as `30s,5m,30m,2h,12h`.
pub fn parse_duration_list(text: &str) -> Result<Vec<Duration>, DurationError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(parse_duration).collect()
}

/// Formats a duration in the largest unit that divides it, such as `5m` or `1500ms`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis >= size && millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn rejects_missing_or_unknown_unit() {
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("30w").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn parses_schedule_list() {
        let schedule = parse_duration_list("30s,5m,30m,2h,12h").unwrap();
        assert_eq!(schedule.len(), 5);
        assert_eq!(schedule[4], Duration::from_secs(43_200));
        assert_eq!(parse_duration_list(""), Ok(Vec::new()));
        assert!(parse_duration_list("30s,,5m").is_err());
    }

    #[test]
    fn formats_in_largest_unit() {
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
    }
}
