//! The log filter as typed in the console, such as
//! `event:csat.received target:example status:failed since:1h`, and its translation into the
//! daemon's `DeliveryFilter`.

use std::fmt;
use std::time::Duration;

use belter_common::api::DeliveryFilter;
use belter_common::duration::{format_duration, parse_duration};
use belter_common::records::{Delivery, DeliveryStatus};
use belter_common::{EndpointId, EventType, Timestamp};

/// Filter keys in the order the console writes them.
const KEYS: [&str; 6] = ["event", "target", "endpoint", "status", "since", "until"];

/// A time limit of the filter: relative to the moment the query is sent, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// This long before now, written like `1h`.
    Ago(Duration),
    /// A fixed time, written as RFC 3339.
    At(Timestamp),
}

impl TimeBound {
    fn parse(text: &str) -> Result<Self, String> {
        if let Ok(duration) = parse_duration(text) {
            return Ok(TimeBound::Ago(duration));
        }
        text.parse::<Timestamp>()
            .map(TimeBound::At)
            .map_err(|_| {
                format!("invalid time {text:?}: expected a duration such as 1h, or RFC 3339 such as 2026-12-03T14:00:00Z")
            })
    }

    /// Resolves the bound to a point in time, given the current time.
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            TimeBound::Ago(duration) => {
                let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                now.minus_millis(millis)
            }
            TimeBound::At(at) => at,
        }
    }
}

impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeBound::Ago(duration) => f.write_str(&format_duration(*duration)),
            TimeBound::At(at) => f.write_str(&at.to_rfc3339()),
        }
    }
}

/// The console's log filter. Every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Only this event type.
    pub event: Option<EventType>,
    /// Only targets whose URL or endpoint id contains this text.
    pub target: Option<String>,
    /// Only deliveries to this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Only this status; `None` is `status:all`.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries created at or after this time.
    pub since: Option<TimeBound>,
    /// Only deliveries created before this time.
    pub until: Option<TimeBound>,
}

impl FilterSpec {
    /// Parses filter text: whitespace-separated `key:value` terms, where a bare word is a target.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut spec = FilterSpec::default();
        for term in text.split_whitespace() {
            let (key, value) = term.split_once(':').unwrap_or(("target", term));
            if value.is_empty() {
                return Err(format!("missing value after {key:?} in the filter"));
            }
            match key {
                "event" => spec.event = Some(parse_event(value)?),
                "target" => spec.target = Some(value.to_owned()),
                "endpoint" => {
                    spec.endpoint = Some(EndpointId::parse(value).map_err(|e| e.to_string())?)
                }
                "status" => spec.status = parse_status(value)?,
                "since" => spec.since = Some(TimeBound::parse(value)?),
                "until" => spec.until = Some(TimeBound::parse(value)?),
                other => {
                    return Err(format!(
                        "unknown filter key {other:?}: expected one of {}",
                        KEYS.join(", ")
                    ))
                }
            }
        }
        if let (Some(since), Some(until)) = (spec.since, spec.until) {
            let now = Timestamp::now();
            if since.resolve(now) >= until.resolve(now) {
                return Err(format!(
                    "since:{since} is not before until:{until}, so no delivery can match: swap \
                     the two times"
                ));
            }
        }
        Ok(spec)
    }

    /// Checks whether no term is set.
    pub fn is_empty(&self) -> bool {
        self == &FilterSpec::default()
    }

    /// Converts the filter to the daemon's form, with relative times resolved against `now`.
    // Every field is set today. The default covers filter fields the contract may add later.
    #[allow(clippy::needless_update)]
    pub fn to_filter(&self, now: Timestamp) -> DeliveryFilter {
        DeliveryFilter {
            status: self.status,
            event: self.event,
            endpoint: self.endpoint.clone(),
            target: self.target.clone(),
            since: self.since.map(|bound| bound.resolve(now)),
            until: self.until.map(|bound| bound.resolve(now)),
            ..DeliveryFilter::default()
        }
    }

    /// Checks whether `delivery` passes the filter by the same rules the daemon applies, so rows
    /// from the live stream can join the log without a new query.
    pub fn matches(&self, delivery: &Delivery, now: Timestamp) -> bool {
        if self.status.is_some_and(|status| status != delivery.status) {
            return false;
        }
        if self.event.is_some_and(|event| event != delivery.event_type) {
            return false;
        }
        if self
            .endpoint
            .as_ref()
            .is_some_and(|endpoint| endpoint != &delivery.endpoint_id)
        {
            return false;
        }
        if let Some(target) = &self.target {
            let in_url = delivery.target_url.contains(target.as_str());
            let in_endpoint = delivery.endpoint_id.as_str().contains(target.as_str());
            if !in_url && !in_endpoint {
                return false;
            }
        }
        if let Some(since) = self.since {
            if delivery.created_at < since.resolve(now) {
                return false;
            }
        }
        if let Some(until) = self.until {
            if delivery.created_at >= until.resolve(now) {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut terms = Vec::new();
        if let Some(event) = self.event {
            terms.push(format!("event:{event}"));
        }
        if let Some(target) = &self.target {
            terms.push(format!("target:{target}"));
        }
        if let Some(endpoint) = &self.endpoint {
            terms.push(format!("endpoint:{endpoint}"));
        }
        if let Some(status) = self.status {
            terms.push(format!("status:{}", status.as_str()));
        }
        if let Some(since) = self.since {
            terms.push(format!("since:{since}"));
        }
        if let Some(until) = self.until {
            terms.push(format!("until:{until}"));
        }
        f.write_str(&terms.join(" "))
    }
}

/// Parses an event type by its full name, or by a prefix that only one type name starts with.
fn parse_event(value: &str) -> Result<EventType, String> {
    if let Ok(kind) = value.parse::<EventType>() {
        return Ok(kind);
    }
    let candidates: Vec<EventType> = EventType::ALL
        .into_iter()
        .filter(|kind| kind.as_str().starts_with(value))
        .collect();
    match candidates.as_slice() {
        [kind] => Ok(*kind),
        _ => Err(format!(
            "unknown event type {value:?}: expected one of {}",
            EventType::names().join(", ")
        )),
    }
}

fn parse_status(value: &str) -> Result<Option<DeliveryStatus>, String> {
    if value == "all" {
        return Ok(None);
    }
    value
        .parse::<DeliveryStatus>()
        .map(Some)
        .map_err(|error| format!("{error}, or all"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(url: &str, status: DeliveryStatus, created_at: Timestamp) -> Delivery {
        let mut row = crate::fixtures::delivery(1);
        row.target_url = url.to_owned();
        row.status = status;
        row.event_type = EventType::CsatReceived;
        row.created_at = created_at;
        row
    }

    #[test]
    fn parse_reads_every_key() {
        let spec =
            FilterSpec::parse("event:csat.received target:example status:failed since:1h").unwrap();
        assert_eq!(spec.event, Some(EventType::CsatReceived));
        assert_eq!(spec.target.as_deref(), Some("example"));
        assert_eq!(spec.status, Some(DeliveryStatus::Failed));
        assert_eq!(spec.since, Some(TimeBound::Ago(Duration::from_secs(3_600))));
        assert_eq!(spec.until, None);
    }

    #[test]
    fn parse_takes_bare_word_as_target() {
        let spec = FilterSpec::parse("  hooks.example  ").unwrap();
        assert_eq!(spec.target.as_deref(), Some("hooks.example"));
    }

    #[test]
    fn parse_accepts_unique_event_prefix() {
        let spec = FilterSpec::parse("event:frustration").unwrap();
        assert_eq!(spec.event, Some(EventType::FrustrationDetected));
    }

    #[test]
    fn parse_status_all_clears() {
        let spec = FilterSpec::parse("status:all").unwrap();
        assert_eq!(spec.status, None);
        assert!(spec.is_empty());
    }

    #[test]
    fn parse_rejects_bad_terms() {
        let error = FilterSpec::parse("colour:red").unwrap_err();
        assert!(error.contains("\"colour\""), "{error}");
        assert!(error.contains("event, target"), "{error}");
        let error = FilterSpec::parse("status:broken").unwrap_err();
        assert!(error.contains("\"broken\""), "{error}");
        let error = FilterSpec::parse("since:yesterday").unwrap_err();
        assert!(error.contains("\"yesterday\""), "{error}");
        let error = FilterSpec::parse("event:").unwrap_err();
        assert!(error.contains("missing value"), "{error}");
        assert!(FilterSpec::parse("event:s").is_err());
    }

    #[test]
    fn display_round_trips() {
        let text = "event:csat.received target:example status:failed since:1h";
        let spec = FilterSpec::parse(text).unwrap();
        assert_eq!(spec.to_string(), text);
        assert_eq!(FilterSpec::parse(&spec.to_string()).unwrap(), spec);
    }

    #[test]
    fn reversed_window_is_rejected() {
        let error = FilterSpec::parse("since:2h until:3h").unwrap_err();
        assert_eq!(
            error,
            "since:2h is not before until:3h, so no delivery can match: swap the two times"
        );
        assert!(FilterSpec::parse("since:3h until:2h").is_ok());
        assert!(
            FilterSpec::parse("since:2026-12-03T14:00:00Z until:2026-12-03T13:00:00Z").is_err()
        );
    }

    #[test]
    fn to_filter_resolves_relative_time() {
        let now = Timestamp::from_millis(10_000_000);
        let spec = FilterSpec::parse("since:1h until:2099-12-03T14:00:00Z").unwrap();
        let filter = spec.to_filter(now);
        assert_eq!(
            filter.since,
            Some(Timestamp::from_millis(10_000_000 - 3_600_000))
        );
        assert_eq!(filter.until, Some("2099-12-03T14:00:00Z".parse().unwrap()));
    }

    #[test]
    fn matches_follows_each_term() {
        let now = Timestamp::from_millis(10_000_000);
        let row = delivery(
            "http://127.0.0.1:9000/hooks/crm",
            DeliveryStatus::Failed,
            now.minus_millis(60_000),
        );
        let yes = |text: &str| FilterSpec::parse(text).unwrap().matches(&row, now);
        assert!(yes(""));
        assert!(yes(
            "status:failed target:hooks/crm event:csat.received since:5m"
        ));
        assert!(yes(&format!("target:{}", &row.endpoint_id.as_str()[..8])));
        assert!(!yes("status:succeeded"));
        assert!(!yes("event:frustration.detected"));
        assert!(!yes("target:nowhere"));
        assert!(!yes("since:30s"));
        assert!(!yes("until:2m"));
    }
}
