//! Times on the command line and in tables: `--since 1h` as an absolute timestamp, and ages such
//! as `3m ago`.

use std::time::Duration;

use belter_common::duration::parse_duration;
use belter_common::Timestamp;

/// Parses a time flag relative to the current time.
pub(crate) fn parse_time_arg(text: &str) -> Result<Timestamp, String> {
    parse_time_at(text, Timestamp::now())
}

/// Parses a duration ago such as `1h`, RFC 3339 text, or Unix milliseconds, relative to `now`.
pub(crate) fn parse_time_at(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let trimmed = text.trim();
    if let Ok(ago) = parse_duration(trimmed) {
        let millis = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        return Ok(now.minus_millis(millis));
    }
    trimmed.parse::<Timestamp>().map_err(|_| {
        format!(
            "invalid time {text:?}: expected a duration ago such as 30m or 1h, \
             RFC 3339 such as 2026-12-03T14:32:08Z, or Unix milliseconds"
        )
    })
}

/// Formats how long before `now` a moment was, such as `42s ago` or `3d ago`.
pub(crate) fn format_age(moment: Timestamp, now: Timestamp) -> String {
    if moment > now {
        return format!("in {}", format_span(moment.as_millis() - now.as_millis()));
    }
    format!("{} ago", format_span(now.as_millis() - moment.as_millis()))
}

/// Formats a span in its largest whole unit, such as `90ms`, `42s`, `3m`, `5h` or `2d`.
pub(crate) fn format_span(millis: u64) -> String {
    let span = Duration::from_millis(millis);
    let secs = span.as_secs();
    if secs == 0 {
        format!("{millis}ms")
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3_600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3_600)
    } else {
        format!("{}d", secs / 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_796_308_328_120);

    #[test]
    fn duration_is_time_ago() {
        assert_eq!(parse_time_at("1h", NOW), Ok(NOW.minus_millis(3_600_000)));
        assert_eq!(parse_time_at(" 30m ", NOW), Ok(NOW.minus_millis(1_800_000)));
        assert_eq!(parse_time_at("7d", NOW), Ok(NOW.minus_millis(604_800_000)));
    }

    #[test]
    fn absolute_times_pass_through() {
        assert_eq!(
            parse_time_at("2026-12-03T14:32:08.120Z", NOW),
            Ok(Timestamp::from_millis(1_796_308_328_120))
        );
        assert_eq!(
            parse_time_at("2026-12-03T15:32:08.120+01:00", NOW),
            Ok(Timestamp::from_millis(1_796_308_328_120))
        );
        assert_eq!(
            parse_time_at("1700000000000", NOW),
            Ok(Timestamp::from_millis(1_700_000_000_000))
        );
    }

    #[test]
    fn huge_duration_saturates_at_epoch() {
        assert_eq!(
            parse_time_at("99999999d", NOW),
            Ok(Timestamp::from_millis(0))
        );
    }

    #[test]
    fn invalid_time_names_value_and_forms() {
        let error = parse_time_at("yesterday", NOW).unwrap_err();
        assert!(error.contains("\"yesterday\""), "{error}");
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(error.contains("1h"), "{error}");
        assert!(parse_time_at("", NOW).is_err());
        assert!(parse_time_at("-1h", NOW).is_err());
    }

    #[test]
    fn age_uses_largest_unit() {
        assert_eq!(format_age(NOW.minus_millis(250), NOW), "250ms ago");
        assert_eq!(format_age(NOW.minus_millis(42_000), NOW), "42s ago");
        assert_eq!(
            format_age(NOW.minus_millis(3 * 60_000 + 59_000), NOW),
            "3m ago"
        );
        assert_eq!(format_age(NOW.minus_millis(5 * 3_600_000), NOW), "5h ago");
        assert_eq!(format_age(NOW.minus_millis(2 * 86_400_000), NOW), "2d ago");
        assert_eq!(format_age(NOW, NOW), "0ms ago");
    }

    #[test]
    fn future_age_says_in() {
        assert_eq!(format_age(NOW.plus_millis(30_000), NOW), "in 30s");
    }
}
