//! Text formatting for the console's narrow columns: counts, latencies, times, ages and targets.

use belter_common::Timestamp;
use time::OffsetDateTime;

const MILLIS_PER_DAY: u64 = 86_400_000;

/// Formats a count with thousands separators, such as `3,892`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Formats a latency in milliseconds to at most six characters: `87ms`, `1.2s`, `12s`, `4m`.
pub fn latency(millis: u64) -> String {
    if millis < 1_000 {
        format!("{millis}ms")
    } else if millis < 10_000 {
        format!("{}.{}s", millis / 1_000, (millis % 1_000) / 100)
    } else if millis < 600_000 {
        format!("{}s", millis / 1_000)
    } else {
        format!("{}m", millis / 60_000)
    }
}

/// Formats an elapsed time in its two largest units, such as `45s`, `3m 05s`, `2h 13m` or `3d 4h`.
pub fn age(millis: u64) -> String {
    let seconds = millis / 1_000;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {:02}s", seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

fn utc(at: Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.as_millis()) * 1_000_000).ok()
}

/// Formats `at` in UTC for the log's time column: `14:32:08` on the same UTC day as `now`, or
/// the weekday and minute (`Mon 14:32`) before that, which is unique within the seven-day log.
pub fn log_time(at: Timestamp, now: Timestamp) -> String {
    let Some(moment) = utc(at) else {
        return "?".to_owned();
    };
    if at.as_millis() / MILLIS_PER_DAY == now.as_millis() / MILLIS_PER_DAY {
        format!(
            "{:02}:{:02}:{:02}",
            moment.hour(),
            moment.minute(),
            moment.second()
        )
    } else {
        let weekday = moment.weekday().to_string();
        format!(
            "{} {:02}:{:02}",
            &weekday[..3],
            moment.hour(),
            moment.minute()
        )
    }
}

/// Formats `at` as a full UTC time with milliseconds, such as `2026-12-03 14:32:08.120`.
pub fn full_time(at: Timestamp) -> String {
    let Some(moment) = utc(at) else {
        return at.as_millis().to_string();
    };
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        moment.millisecond()
    )
}

/// Cuts `text` to `width` characters, ending with `…` when anything was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Shortens a target URL to `width` characters: the scheme is dropped, then the middle of the
/// path, so the host and the last path segment stay readable.
pub fn target(url: &str, width: usize) -> String {
    let bare = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let length = bare.chars().count();
    if length <= width {
        return bare.to_owned();
    }
    let (host, path) = match bare.find('/') {
        Some(slash) => bare.split_at(slash),
        None => (bare, ""),
    };
    let host_length = host.chars().count();
    // Keep the whole host and at least a few characters of the path's end, else cut the host.
    if host_length + 4 <= width && !path.is_empty() {
        let tail_length = width - host_length - 1;
        let path_length = path.chars().count();
        let tail: String = path.chars().skip(path_length - tail_length).collect();
        return format!("{host}…{tail}");
    }
    truncate(bare, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_groups_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(3_892), "3,892");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn latency_fits_six_characters() {
        assert_eq!(latency(87), "87ms");
        assert_eq!(latency(999), "999ms");
        assert_eq!(latency(1_250), "1.2s");
        assert_eq!(latency(12_400), "12s");
        assert_eq!(latency(900_000), "15m");
        for millis in [0, 999, 9_999, 599_999, 10_000_000] {
            assert!(latency(millis).chars().count() <= 6, "{millis}");
        }
    }

    #[test]
    fn age_uses_two_units() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(185_000), "3m 05s");
        assert_eq!(age(7_980_000), "2h 13m");
        assert_eq!(age(288_000_000), "3d 8h");
    }

    #[test]
    fn log_time_shows_weekday_before_today() {
        let now: Timestamp = "2026-12-03T18:00:00Z".parse().unwrap();
        let today: Timestamp = "2026-12-03T14:32:08.5Z".parse().unwrap();
        let earlier: Timestamp = "2026-11-30T09:05:00Z".parse().unwrap();
        assert_eq!(log_time(today, now), "14:32:08");
        assert_eq!(log_time(earlier, now), "Mon 09:05");
    }

    #[test]
    fn full_time_has_milliseconds() {
        let at: Timestamp = "2026-12-03T14:32:08.12Z".parse().unwrap();
        assert_eq!(full_time(at), "2026-12-03 14:32:08.120");
    }

    #[test]
    fn target_drops_scheme_then_middle() {
        let url = "https://hooks.example.com/integrations/csat/receive";
        assert_eq!(
            target(url, 60),
            "hooks.example.com/integrations/csat/receive"
        );
        assert_eq!(target(url, 30), "hooks.example.com…csat/receive");
        assert_eq!(target(url, 30).chars().count(), 30);
        assert_eq!(target(url, 12), "hooks.examp…");
        assert_eq!(target("http://127.0.0.1:8080", 9), "127.0.0.…");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(
            truncate("score.threshold_breached", 21),
            "score.threshold_brea…"
        );
        assert_eq!(truncate("short", 21), "short");
        assert_eq!(truncate("abc", 0), "");
    }
}
