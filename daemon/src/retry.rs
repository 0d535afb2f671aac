//! When the next attempt of a delivery happens, or whether it gives up: a pure function of the
//! schedule, the attempts made, the outcome and the time.

use std::time::{Duration, SystemTime};

use belter_common::records::{AttemptTrigger, DeliveryStatus};

use crate::store::Completion;

/// Largest share of a retry delay added as jitter, so deliveries that failed together (an
/// endpoint that went down) do not all retry in the same instant.
pub(crate) const MAX_JITTER_SHARE: f64 = 0.1;

/// Longest `Retry-After` the daemon honours, so a receiver cannot park a delivery for weeks.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How an attempt ended, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    /// The receiver responded 2xx in time.
    Succeeded,
    /// Anything else; `retry_after` is the receiver's `Retry-After` on a 429 or 503.
    Failed { retry_after: Option<Duration> },
}

/// Decides what follows an attempt.
///
/// `scheduled_attempts` counts the first attempt and the retries made before this one, and
/// `succeeded_before` is whether the attempt before this one succeeded. A failed first attempt
/// or retry is retried after the schedule's next delay, or gives up once the schedule is used up.
/// A failed replay gives up, unless the delivery was still waiting for scheduled retries, in which
/// case the schedule goes on. A delivery that had succeeded has none left, so replaying many old
/// successes to a broken receiver costs one attempt each. A `Retry-After` lengthens the delay,
/// never shortens it. `jitter`, in `[0, 1)`, adds up to [`MAX_JITTER_SHARE`] of the delay.
pub(crate) fn after_attempt(
    schedule: &[Duration],
    scheduled_attempts: u32,
    succeeded_before: bool,
    trigger: AttemptTrigger,
    outcome: AttemptOutcome,
    ended_at_ms: u64,
    jitter: f64,
) -> Completion {
    let AttemptOutcome::Failed { retry_after } = outcome else {
        return Completion::Final(DeliveryStatus::Succeeded);
    };
    let made = match trigger {
        AttemptTrigger::Replay if succeeded_before => {
            return Completion::Final(DeliveryStatus::Failed)
        }
        AttemptTrigger::Replay => scheduled_attempts.max(1),
        AttemptTrigger::First | AttemptTrigger::Retry => scheduled_attempts + 1,
    };
    let index = usize::try_from(made - 1).unwrap_or(usize::MAX);
    let Some(&delay) = schedule.get(index) else {
        return Completion::Final(DeliveryStatus::Failed);
    };
    let wait = match retry_after {
        Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
        None => delay,
    };
    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    let jitter_ms = (wait_ms as f64 * MAX_JITTER_SHARE * jitter.clamp(0.0, 1.0)) as u64;
    Completion::RetryAt(
        ended_at_ms
            .saturating_add(wait_ms)
            .saturating_add(jitter_ms),
    )
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date measured from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn schedule() -> Vec<Duration> {
        vec![30 * SECOND, 300 * SECOND, 1_800 * SECOND]
    }

    fn failed() -> AttemptOutcome {
        AttemptOutcome::Failed { retry_after: None }
    }

    #[test]
    fn schedule_table() {
        use AttemptTrigger::{First, Replay, Retry};
        use Completion::{Final, RetryAt};
        use DeliveryStatus::{Failed, Succeeded};
        let ok = AttemptOutcome::Succeeded;
        let cases = [
            // (scheduled attempts before, trigger, outcome, expected)
            (0, First, ok, Final(Succeeded)),
            (0, First, failed(), RetryAt(1_000 + 30_000)),
            (1, Retry, failed(), RetryAt(1_000 + 300_000)),
            (2, Retry, failed(), RetryAt(1_000 + 1_800_000)),
            (3, Retry, failed(), Final(Failed)),
            (3, Retry, ok, Final(Succeeded)),
            (4, Replay, failed(), Final(Failed)),
            (1, Replay, failed(), RetryAt(1_000 + 30_000)),
            (0, Replay, failed(), RetryAt(1_000 + 30_000)),
            (4, Replay, ok, Final(Succeeded)),
        ];
        for (before, trigger, outcome, expected) in cases {
            let got = after_attempt(&schedule(), before, false, trigger, outcome, 1_000, 0.0);
            assert_eq!(got, expected, "{before} attempts, {trigger:?}, {outcome:?}");
        }
    }

    #[test]
    fn replay_after_success_gets_one_attempt() {
        let got = after_attempt(
            &schedule(),
            1,
            true,
            AttemptTrigger::Replay,
            failed(),
            1_000,
            0.0,
        );
        assert_eq!(got, Completion::Final(DeliveryStatus::Failed));
        let ok = AttemptOutcome::Succeeded;
        let got = after_attempt(&schedule(), 1, true, AttemptTrigger::Replay, ok, 1_000, 0.0);
        assert_eq!(got, Completion::Final(DeliveryStatus::Succeeded));
        // A delivery still waiting for its retries goes on with the schedule.
        let got = after_attempt(
            &schedule(),
            1,
            false,
            AttemptTrigger::Replay,
            failed(),
            1_000,
            0.0,
        );
        assert_eq!(got, Completion::RetryAt(1_000 + 30_000));
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let base = after_attempt(
            &schedule(),
            0,
            false,
            AttemptTrigger::First,
            failed(),
            0,
            0.0,
        );
        let max_jitter = after_attempt(
            &schedule(),
            0,
            false,
            AttemptTrigger::First,
            failed(),
            0,
            0.999,
        );
        assert_eq!(base, Completion::RetryAt(30_000));
        let Completion::RetryAt(at) = max_jitter else {
            panic!("expected a retry, got {max_jitter:?}");
        };
        assert!((30_000..=33_000).contains(&at), "{at}");
    }

    #[test]
    fn empty_schedule_gives_up_at_once() {
        let got = after_attempt(&[], 0, false, AttemptTrigger::First, failed(), 5, 0.0);
        assert_eq!(got, Completion::Final(DeliveryStatus::Failed));
    }

    #[test]
    fn retry_after_lengthens_only() {
        let longer = AttemptOutcome::Failed {
            retry_after: Some(120 * SECOND),
        };
        let got = after_attempt(&schedule(), 0, false, AttemptTrigger::First, longer, 0, 0.0);
        assert_eq!(got, Completion::RetryAt(120_000));
        let shorter = AttemptOutcome::Failed {
            retry_after: Some(SECOND),
        };
        let got = after_attempt(
            &schedule(),
            0,
            false,
            AttemptTrigger::First,
            shorter,
            0,
            0.0,
        );
        assert_eq!(got, Completion::RetryAt(30_000));
        let huge = AttemptOutcome::Failed {
            retry_after: Some(Duration::from_secs(10 * 24 * 3600)),
        };
        let got = after_attempt(&schedule(), 0, false, AttemptTrigger::First, huge, 0, 0.0);
        assert_eq!(got, Completion::RetryAt(24 * 3600 * 1_000));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("120", now), Some(120 * SECOND));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(10 * SECOND)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
