//! Points in time as milliseconds since the Unix epoch, shown in the API as RFC 3339 text.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time with millisecond precision, serialized as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(u64);

/// Text that is neither RFC 3339 nor a count of milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {0:?}: expected RFC 3339 such as 2026-12-03T14:32:08Z, or Unix milliseconds"
)]
pub struct TimestampError(pub String);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0);
        Self(millis)
    }

    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time moved later by `millis`, saturating at the maximum.
    pub const fn plus_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// This time moved earlier by `millis`, saturating at the epoch.
    pub const fn minus_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_sub(millis))
    }

    /// RFC 3339 text in UTC with milliseconds, such as `2026-12-03T14:32:08.120Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|moment| moment.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(millis) = text.parse::<u64>() {
            return Ok(Self(millis));
        }
        let moment =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampError(text.to_owned()))?;
        let millis = moment.unix_timestamp_nanos() / 1_000_000;
        u64::try_from(millis)
            .map(Self)
            .map_err(|_| TimestampError(text.to_owned()))
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Timestamp> for String {
    fn from(timestamp: Timestamp) -> String {
        timestamp.to_rfc3339()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Checks that `text` is an RFC 3339 timestamp.
pub fn is_rfc3339(text: &str) -> bool {
    OffsetDateTime::parse(text, &Rfc3339).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let parsed: Timestamp = "2026-12-03T14:32:08.120Z".parse().unwrap();
        assert_eq!(parsed.as_millis(), 1_796_308_328_120);
        assert_eq!(parsed.to_rfc3339(), "2026-12-03T14:32:08.12Z");
        let again: Timestamp = parsed.to_rfc3339().parse().unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn accepts_unix_millis() {
        let parsed: Timestamp = "1796308328120".parse().unwrap();
        assert_eq!(parsed.as_millis(), 1_796_308_328_120);
    }

    #[test]
    fn rejects_other_text() {
        let error = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(error.to_string().contains("\"yesterday\""));
    }
}
