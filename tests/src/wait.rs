//! Bounded polling for state that the daemon changes in the background, such as a delivery's
//! status. Every wait has a deadline and fails the test with the last state it saw.

use std::future::Future;
use std::time::Duration;

use belter_common::api::DeliveryQuery;
use belter_common::client::ControlClient;
use belter_common::records::{DeliveryDetail, DeliveryStatus};
use belter_common::{DeliveryId, EndpointId};

/// Time between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Default deadline of a wait: long enough for a loaded two-core machine, short enough that a
/// broken daemon fails the test quickly.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls `check` until it returns `Ok`, at most for `timeout`.
///
/// # Panics
///
/// Panics at the deadline with `description` and the description of the last state that `check`
/// returned as `Err`.
pub async fn poll_until<T, F, Fut>(description: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {description}; last state: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the delivery passes `accept`, then returns its detail.
pub async fn wait_for_delivery<P>(
    client: &ControlClient,
    id: &DeliveryId,
    description: &str,
    accept: P,
) -> DeliveryDetail
where
    P: Fn(&DeliveryDetail) -> bool,
{
    poll_until(description, WAIT_TIMEOUT, || async {
        match client.get_delivery(id).await {
            Ok(detail) if accept(&detail) => Ok(detail),
            Ok(detail) => Err(format!(
                "{id} is {} after {} attempts",
                detail.delivery.status.as_str(),
                detail.attempts.len()
            )),
            Err(error) => Err(error.to_string()),
        }
    })
    .await
}

/// Waits until the delivery has `status`, then returns its detail.
pub async fn wait_for_status(
    client: &ControlClient,
    id: &DeliveryId,
    status: DeliveryStatus,
) -> DeliveryDetail {
    let description = format!("{id} to be {}", status.as_str());
    wait_for_delivery(client, id, &description, |detail| {
        detail.delivery.status == status
    })
    .await
}

/// Waits until the delivery has at least `count` attempts recorded, then returns its detail.
pub async fn wait_for_attempts(
    client: &ControlClient,
    id: &DeliveryId,
    count: usize,
) -> DeliveryDetail {
    let description = format!("{id} to have {count} attempts");
    wait_for_delivery(client, id, &description, |detail| {
        detail.attempts.len() >= count
    })
    .await
}

/// Waits until the stats count `expected` waiting deliveries, at most for `timeout`.
pub async fn wait_for_pending(client: &ControlClient, expected: u64, timeout: Duration) {
    poll_until(
        &format!("the stats to count {expected} waiting deliveries"),
        timeout,
        || async {
            let stats = client
                .stats(None)
                .await
                .map_err(|error| error.to_string())?;
            if stats.pending == expected {
                Ok(())
            } else {
                Err(format!("{} pending", stats.pending))
            }
        },
    )
    .await
}

/// Waits until the log lists no pending delivery to `endpoint`, at most for `timeout`.
pub async fn wait_for_none_pending_to(
    client: &ControlClient,
    endpoint: &EndpointId,
    timeout: Duration,
) {
    let query = DeliveryQuery {
        status: Some(DeliveryStatus::Pending),
        endpoint: Some(endpoint.clone()),
        limit: Some(1),
        ..DeliveryQuery::default()
    };
    poll_until(
        &format!("no pending delivery to {endpoint}"),
        timeout,
        || async {
            let page = client
                .list_deliveries(&query)
                .await
                .map_err(|error| error.to_string())?;
            match page.deliveries.len() {
                0 => Ok(()),
                pending => Err(format!("{pending} pending")),
            }
        },
    )
    .await;
}
