//! `belter endpoints …`: create, list, show, change, pause, resume and delete endpoints, and read
//! or rotate their signing secrets.

use belter_common::api::{CreateEndpoint, UpdateEndpoint};
use belter_common::client::ControlClient;
use belter_common::records::{Endpoint, EndpointSecret, EndpointState};
use belter_common::Timestamp;

use crate::cli::{AddEndpointArgs, EndpointsCommand, UpdateEndpointArgs};
use crate::output::{print_json, print_text};
use crate::table::{render_fields, Table};
use crate::times::format_age;

/// Runs one `endpoints` subcommand.
pub(crate) async fn run(
    client: &ControlClient,
    json: bool,
    command: EndpointsCommand,
) -> anyhow::Result<()> {
    match command {
        EndpointsCommand::Add(args) => add(client, json, args).await,
        EndpointsCommand::List => {
            let endpoints = client.list_endpoints().await?;
            if json {
                return print_json(&endpoints);
            }
            print_text(&render_list(&endpoints, Timestamp::now()))
        }
        EndpointsCommand::Show(args) => {
            let endpoint = client.get_endpoint(&args.id).await?;
            print_endpoint(json, &endpoint)
        }
        EndpointsCommand::Update(args) => update(client, json, args).await,
        EndpointsCommand::Pause(args) => {
            let endpoint = client.pause_endpoint(&args.id).await?;
            print_change(
                json,
                &endpoint,
                "paused; its deliveries queue until it is resumed",
            )
        }
        EndpointsCommand::Resume(args) => {
            let endpoint = client.resume_endpoint(&args.id).await?;
            print_change(json, &endpoint, "resumed")
        }
        EndpointsCommand::RotateSecret(args) => {
            let secret = match &args.grace {
                Some(grace) => client.rotate_secret_with_grace(&args.id, grace).await?,
                None => client.rotate_secret(&args.id).await?,
            };
            print_secret(json, &secret)
        }
        EndpointsCommand::Secret(args) => {
            let secret = client.endpoint_secret(&args.id).await?;
            print_secret(json, &secret)
        }
        EndpointsCommand::Remove(args) => {
            let endpoint = client.delete_endpoint(&args.id).await?;
            print_change(
                json,
                &endpoint,
                "removed; its pending deliveries are cancelled and their history kept",
            )
        }
    }
}

async fn add(client: &ControlClient, json: bool, args: AddEndpointArgs) -> anyhow::Result<()> {
    let request = CreateEndpoint {
        url: args.url,
        event_types: args.events,
        description: args.description,
        paused: args.paused,
        filter: args.filter,
        format: args.format,
        routing_key: args.routing_key,
        standard_webhooks: args.standard_webhooks,
    };
    let created = client.create_endpoint(&request).await?;
    if json {
        return print_json(&created);
    }
    let mut fields = endpoint_fields(&created.endpoint, Timestamp::now());
    fields.push(("secret", created.secret.clone()));
    print_text(&render_fields(&fields))?;
    eprintln!(
        "Give the secret to the receiver so it can check X-Webhook-Signature; \
         `belter endpoints secret {}` prints it again.",
        created.endpoint.id
    );
    Ok(())
}

async fn update(
    client: &ControlClient,
    json: bool,
    args: UpdateEndpointArgs,
) -> anyhow::Result<()> {
    let request = UpdateEndpoint {
        url: args.url,
        event_types: args.events,
        description: args.description,
        filter: args.filter,
        format: args.format,
        routing_key: args.routing_key,
        standard_webhooks: args.standard_webhooks,
    };
    let endpoint = client.update_endpoint(&args.id, &request).await?;
    print_endpoint(json, &endpoint)
}

fn print_endpoint(json: bool, endpoint: &Endpoint) -> anyhow::Result<()> {
    if json {
        return print_json(endpoint);
    }
    print_text(&render_fields(&endpoint_fields(endpoint, Timestamp::now())))
}

fn print_change(json: bool, endpoint: &Endpoint, change: &str) -> anyhow::Result<()> {
    if json {
        return print_json(endpoint);
    }
    print_text(&format!("endpoint {} {change}\n", endpoint.id))
}

/// Prints the bare secret, so that `$(belter endpoints secret ID)` captures it. The end of a
/// grace period goes to standard error.
fn print_secret(json: bool, secret: &EndpointSecret) -> anyhow::Result<()> {
    if json {
        return print_json(secret);
    }
    print_text(&format!("{}\n", secret.secret))?;
    if let Some(until) = secret.previous_valid_until {
        eprintln!("The previous secret also signs deliveries until {until}.");
    }
    Ok(())
}

fn state_label(state: EndpointState) -> &'static str {
    match state {
        EndpointState::Active => "active",
        EndpointState::Paused => "paused",
    }
}

fn last_success_label(endpoint: &Endpoint, now: Timestamp) -> String {
    endpoint
        .last_success_at
        .map(|moment| format_age(moment, now))
        .unwrap_or_else(|| "-".to_owned())
}

/// Renders the endpoint table of `endpoints list`.
fn render_list(endpoints: &[Endpoint], now: Timestamp) -> String {
    if endpoints.is_empty() {
        return "no endpoints; add one with `belter endpoints add URL`\n".to_owned();
    }
    let mut table = Table::new(&[
        "ID",
        "STATE",
        "EVENTS",
        "FAILING",
        "LAST OK",
        "URL",
        "DESCRIPTION",
    ]);
    for endpoint in endpoints {
        table.push(vec![
            endpoint.id.to_string(),
            state_label(endpoint.state).to_owned(),
            endpoint.event_types.to_text(),
            endpoint.consecutive_failures.to_string(),
            last_success_label(endpoint, now),
            endpoint.url.clone(),
            endpoint.description.clone(),
        ]);
    }
    table.render()
}

/// Lists the labels and values of `endpoints show`.
fn endpoint_fields(endpoint: &Endpoint, now: Timestamp) -> Vec<(&'static str, String)> {
    vec![
        ("id", endpoint.id.to_string()),
        ("url", endpoint.url.clone()),
        ("events", endpoint.event_types.to_text()),
        ("state", state_label(endpoint.state).to_owned()),
        ("description", endpoint.description.clone()),
        ("created", endpoint.created_at.to_string()),
        ("updated", endpoint.updated_at.to_string()),
        (
            "failing",
            format!("{} attempts in a row", endpoint.consecutive_failures),
        ),
        (
            "recent failures",
            format!("{} in the stats window", endpoint.recent_failures),
        ),
        ("last success", last_success_label(endpoint, now)),
        ("filter", endpoint.filter.clone().unwrap_or_default()),
        ("format", endpoint.format.as_str().to_owned()),
        (
            "headers",
            if endpoint.standard_webhooks {
                "belter and Standard Webhooks"
            } else {
                "belter"
            }
            .to_owned(),
        ),
        (
            "paused reason",
            endpoint.paused_reason.clone().unwrap_or_default(),
        ),
        (
            "resend on reset",
            endpoint.resends_paused_until.map_or_else(
                || "allowed".to_owned(),
                |until| format!("paused until {until}"),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use belter_common::records::EventSelection;
    use belter_common::{EndpointId, EventType};

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_796_308_328_120);

    fn endpoint(id: &str, url: &str) -> Endpoint {
        Endpoint {
            id: EndpointId::parse(id).unwrap(),
            url: url.to_owned(),
            event_types: EventSelection::All,
            description: String::new(),
            state: EndpointState::Active,
            created_at: NOW.minus_millis(86_400_000),
            updated_at: NOW.minus_millis(60_000),
            consecutive_failures: 0,
            recent_failures: 0,
            last_success_at: None,
            filter: None,
            paused_reason: None,
            format: Default::default(),
            standard_webhooks: false,
            resends_paused_until: None,
        }
    }

    #[test]
    fn list_shows_one_row_per_endpoint() {
        let first = endpoint("ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://127.0.0.1:9000/a");
        let mut second = endpoint("ep_01ARZ3NDEKTSV4RRFFQ69G5FAW", "https://example.com/hook");
        second.state = EndpointState::Paused;
        second.event_types = EventSelection::Only(vec![
            EventType::CsatReceived,
            EventType::FrustrationDetected,
        ]);
        second.consecutive_failures = 3;
        second.last_success_at = Some(NOW.minus_millis(120_000));
        second.description = "support team".to_owned();

        let expected = "\
ID                             STATE   EVENTS                              FAILING  LAST OK  URL                       DESCRIPTION
ep_01ARZ3NDEKTSV4RRFFQ69G5FAV  active  *                                   0        -        http://127.0.0.1:9000/a
ep_01ARZ3NDEKTSV4RRFFQ69G5FAW  paused  csat.received,frustration.detected  3        2m ago   https://example.com/hook  support team
";
        assert_eq!(render_list(&[first, second], NOW), expected);
    }

    #[test]
    fn empty_list_says_how_to_add() {
        let output = render_list(&[], NOW);
        assert!(output.contains("belter endpoints add"), "{output}");
    }

    #[test]
    fn fields_show_state_and_times() {
        let output = render_fields(&endpoint_fields(
            &endpoint("ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a"),
            NOW,
        ));
        assert!(output.contains("state            active\n"), "{output}");
        assert!(
            output.contains("created          2026-12-02T14:32:08.12Z\n"),
            "{output}"
        );
        assert!(output.contains("last success     -\n"), "{output}");
        assert!(output.contains("resend on reset  allowed\n"), "{output}");
    }

    #[test]
    fn fields_show_resend_pause() {
        let mut paused = endpoint("ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a");
        paused.resends_paused_until = Some(NOW.plus_millis(600_000));
        let output = render_fields(&endpoint_fields(&paused, NOW));
        assert!(
            output.contains("resend on reset  paused until 2026-12-03T14:42:08.12Z\n"),
            "{output}"
        );
    }
}
