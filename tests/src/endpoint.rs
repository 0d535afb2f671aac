//! Subscribing a test receiver as an endpoint, so its signature checks use the right secret.

use belter_common::api::{CreateEndpoint, CreatedEndpoint};
use belter_common::client::ControlClient;
use belter_common::records::EventSelection;

use crate::receiver::Receiver;

/// Creates an active endpoint for every event type at the receiver's URL and gives the receiver
/// its secret.
pub async fn subscribe(client: &ControlClient, receiver: &Receiver) -> CreatedEndpoint {
    subscribe_with(client, receiver, EventSelection::All, false).await
}

/// Creates an endpoint at the receiver's URL and gives the receiver its secret.
pub async fn subscribe_with(
    client: &ControlClient,
    receiver: &Receiver,
    event_types: EventSelection,
    paused: bool,
) -> CreatedEndpoint {
    let request = CreateEndpoint {
        url: receiver.url(),
        event_types,
        description: "test receiver".to_owned(),
        paused,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };
    let created = client
        .create_endpoint(&request)
        .await
        .unwrap_or_else(|error| panic!("create endpoint for {}: {error}", receiver.url()));
    receiver.set_secret(&created.secret);
    created
}
