//! Typed ids: `evt_`, `del_` and `ep_` followed by a ULID, so that ids sort by creation time and
//! the store can page through records newest first by key order alone.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Length of a ULID in Crockford base32.
const ULID_LEN: usize = 26;

/// A value that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} id {value:?}: expected {prefix} followed by 26 Crockford base32 characters"
)]
pub struct IdError {
    /// What kind of id was expected, such as "delivery".
    pub kind: &'static str,
    /// The prefix that id kind starts with.
    pub prefix: &'static str,
    /// The rejected value, cut to 64 characters.
    pub value: String,
}

/// Generator that keeps ids strictly increasing within one process, even within one millisecond.
static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

fn next_ulid() -> ulid::Ulid {
    let now = SystemTime::now();
    with_generator(|generator| make_ulid(generator, now))
}

/// Makes `count` ULIDs in one hold of the generator, so no other id of this process sorts
/// between the first and the last of them. They share one reading of the clock, because a
/// batch of 100 events makes about 200 ids and a reading per id took about 1 % of ingest's time.
fn next_ulids(count: usize) -> Vec<ulid::Ulid> {
    let now = SystemTime::now();
    with_generator(|generator| (0..count).map(|_| make_ulid(generator, now)).collect())
}

/// Writes an id: the prefix, then the ULID in its 26 characters.
fn with_prefix(prefix: &str, ulid: ulid::Ulid) -> String {
    let mut text = [0; ulid::ULID_LEN];
    let mut id = String::with_capacity(prefix.len() + ulid::ULID_LEN);
    id.push_str(prefix);
    id.push_str(ulid.array_to_str(&mut text));
    id
}

fn with_generator<T>(make: impl FnOnce(&mut ulid::Generator) -> T) -> T {
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    make(guard.get_or_insert_with(ulid::Generator::new))
}

/// Makes the next ULID at `now`. A time at or before the last id's takes the last id's time
/// with its random part plus one, so ids keep increasing when the clock goes back.
fn make_ulid(generator: &mut ulid::Generator, now: SystemTime) -> ulid::Ulid {
    // The monotonic generator fails only when 2^80 ids are made in one millisecond. Falling back
    // to a fresh random ULID then keeps ids unique, but it may sort before earlier ids.
    generator
        .generate_from_datetime(now)
        .unwrap_or_else(|_| ulid::Ulid::from_datetime(now))
}

fn check(kind: &'static str, prefix: &'static str, value: &str) -> Result<(), IdError> {
    let valid = value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == ULID_LEN && ulid::Ulid::from_string(rest).is_ok());
    if valid {
        Ok(())
    } else {
        Err(IdError {
            kind,
            prefix,
            value: value.chars().take(64).collect(),
        })
    }
}

/// Characters in a ULID's time part: 48 bits, 5 per character.
const ULID_TIME_CHARS: usize = 10;

/// Decodes the time part of a valid ULID's text, its first 10 characters in Crockford's base 32,
/// in either case. It reads 10 characters where a full decode reads all 26, for callers that
/// sort or filter many ids by time. Returns `None` for a character outside that alphabet.
fn ulid_time_ms(text: &str) -> Option<u64> {
    let time = text.as_bytes().get(..ULID_TIME_CHARS)?;
    time.iter().try_fold(0_u64, |value, &character| {
        let digit = match character.to_ascii_uppercase() {
            digit @ b'0'..=b'9' => digit - b'0',
            letter @ b'A'..=b'H' => letter - b'A' + 10,
            b'J' => 18,
            b'K' => 19,
            b'M' => 20,
            b'N' => 21,
            letter @ b'P'..=b'T' => letter - b'P' + 22,
            letter @ b'V'..=b'Z' => letter - b'V' + 27,
            _ => return None,
        };
        Some(value << 5 | u64::from(digit))
    })
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Generates a new id, later in sort order than every id this process made before.
            pub fn generate() -> Self {
                Self(with_prefix($prefix, next_ulid()))
            }

            /// Generates `count` new ids in increasing order, with no other id of this process
            /// between the first and the last.
            pub fn generate_run(count: usize) -> Vec<Self> {
                next_ulids(count)
                    .into_iter()
                    .map(|ulid| Self(with_prefix($prefix, ulid)))
                    .collect()
            }

            /// Returns the smallest id that can be generated at `ms` (milliseconds since the Unix
            /// epoch), a bound for scanning the ids generated at or after that time.
            pub fn first_at(ms: u64) -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::from_parts(ms, 0)))
            }

            /// Parses and validates an id.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check($kind, $prefix, value)?;
                Ok(Self(value.to_owned()))
            }

            /// The id as text, prefix included.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Creation time of the id in milliseconds since the Unix epoch, from its ULID.
            pub fn timestamp_ms(&self) -> u64 {
                ulid_time_ms(&self.0[$prefix.len()..]).unwrap_or(0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                check($kind, $prefix, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

typed_id!(
    /// Id of one accepted event, `evt_…`.
    EventId,
    "event",
    "evt_"
);
typed_id!(
    /// Id of one delivery, the pair of an event and one endpoint, `del_…`. It stays the same
    /// across retries and replays, so receivers can de-duplicate on it.
    DeliveryId,
    "delivery",
    "del_"
);
typed_id!(
    /// Id of one subscribed endpoint, `ep_…`.
    EndpointId,
    "endpoint",
    "ep_"
);
typed_id!(
    /// Id of one threshold rule, `rule_…`.
    RuleId,
    "rule",
    "rule_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_time_matches_full_decode() {
        let mut times = vec![0, 1, 31, 32, (1 << 48) - 1, 1_765_000_000_000];
        times.extend((0..200_u64).map(|step| step.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16));
        for ms in times {
            let ulid = ulid::Ulid::from_parts(ms, u128::from(ms) * 7919);
            let text = ulid.to_string();
            assert_eq!(ulid_time_ms(&text), Some(ms), "{text}");
            assert_eq!(ulid_time_ms(&text.to_ascii_lowercase()), Some(ms), "{text}");
        }
        let id = EventId::generate();
        let full = ulid::Ulid::from_string(&id.as_str()[EventId::PREFIX.len()..]).unwrap();
        assert_eq!(id.timestamp_ms(), full.timestamp_ms());
        assert_eq!(ulid_time_ms("01ARZ3NDEU"), None, "U is not in the alphabet");
        assert_eq!(ulid_time_ms("01AR"), None, "too short");
    }

    #[test]
    fn run_of_ids_increases() {
        let run = EventId::generate_run(50);
        assert_eq!(run.len(), 50);
        assert!(run.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(EventId::generate() > run[49]);
    }

    #[test]
    fn run_of_ids_shares_one_time() {
        let before = SystemTime::now();
        let run = DeliveryId::generate_run(300);
        let first = run[0].timestamp_ms();
        assert!(run.iter().all(|id| id.timestamp_ms() == first));
        let before_ms = before
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(u128::from(first) >= before_ms);
    }

    #[test]
    fn ids_increase_when_the_clock_goes_back() {
        let mut generator = ulid::Generator::new();
        let now = SystemTime::now();
        let first = make_ulid(&mut generator, now);
        let earlier = make_ulid(&mut generator, now - std::time::Duration::from_secs(60));
        assert!(earlier > first);
        assert_eq!(earlier.timestamp_ms(), first.timestamp_ms());
    }

    #[test]
    fn generated_ids_parse_and_sort() {
        let first = DeliveryId::generate();
        let second = DeliveryId::generate();
        assert!(first < second);
        assert_eq!(DeliveryId::parse(first.as_str()), Ok(first.clone()));
        assert!(first.as_str().starts_with("del_"));
        assert!(first.timestamp_ms() > 1_700_000_000_000);
    }

    #[test]
    fn first_at_bounds_later_ids() {
        let made = DeliveryId::generate();
        let bound = DeliveryId::first_at(made.timestamp_ms());
        assert!(bound <= made);
        assert_eq!(bound.timestamp_ms(), made.timestamp_ms());
        assert!(DeliveryId::first_at(made.timestamp_ms() + 1) > made);
        assert_eq!(DeliveryId::parse(bound.as_str()), Ok(bound));
    }

    #[test]
    fn parse_rejects_wrong_prefix_and_length() {
        let event = EventId::generate();
        assert!(DeliveryId::parse(event.as_str()).is_err());
        assert!(DeliveryId::parse("del_").is_err());
        assert!(DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FA").is_err());
        assert!(DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAVX").is_err());
        assert!(DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
    }

    #[test]
    fn error_names_value_and_format() {
        let error = EndpointId::parse("ep_nope").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"ep_nope\""), "{message}");
        assert!(message.contains("ep_ followed by 26"), "{message}");
    }

    #[test]
    fn deserialize_validates() {
        let parsed: Result<EventId, _> = serde_json::from_str("\"evt_bad\"");
        assert!(parsed.is_err());
    }
}
