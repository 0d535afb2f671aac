//! `belter events …`: post an event from a file or standard input, and list the event types.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use belter_common::api::IngestResponse;
use belter_common::client::ControlClient;
use belter_common::records::EventTypeInfo;

use crate::cli::{EventsCommand, PostEventArgs};
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs one `events` subcommand.
pub(crate) async fn run(
    client: &ControlClient,
    json: bool,
    command: EventsCommand,
) -> anyhow::Result<()> {
    match command {
        EventsCommand::Post(args) => post(client, json, args).await,
        EventsCommand::Types => {
            let types = client.event_types().await?;
            if json {
                return print_json(&types);
            }
            print_text(&render_types(&types))
        }
    }
}

async fn post(client: &ControlClient, json: bool, args: PostEventArgs) -> anyhow::Result<()> {
    let body = read_body(&args.file)?;
    // A local parse names the file in the error. The daemon still checks the event type and the
    // schema of its data, and the body is sent byte for byte.
    serde_json::from_slice::<serde_json::Value>(&body)
        .with_context(|| format!("invalid JSON in {}", source_name(&args.file)))?;
    let Some(key) = args.idempotency_key.as_deref() else {
        let response = client.post_event(body, None).await?;
        if json {
            return print_json(&response);
        }
        return print_text(&render_accepted(&response));
    };
    let posted = client.post_event_keyed(body, key).await?;
    // The note goes to standard error, so the JSON on standard output stays the first response.
    if posted.repeated {
        eprintln!(
            "Idempotency key {key:?} was used before with this body, so nothing new was stored; \
             this is the first response."
        );
    }
    if json {
        return print_json(&posted.response);
    }
    print_text(&render_accepted(&posted.response))
}

fn read_body(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut body)
            .context("failed to read the event from standard input")?;
        return Ok(body);
    }
    std::fs::read(file).with_context(|| format!("failed to read event file {}", file.display()))
}

fn source_name(file: &Path) -> String {
    if file == Path::new("-") {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    }
}

fn render_accepted(response: &IngestResponse) -> String {
    let mut output = format!(
        "event {} accepted, {}\n",
        response.event_id,
        count_of_deliveries(response.deliveries.len())
    );
    for delivery in &response.deliveries {
        output.push_str(&format!("  {delivery}\n"));
    }
    for derived in &response.derived {
        output.push_str(&format!(
            "derived {} {}, {}\n",
            derived.event,
            derived.event_id,
            count_of_deliveries(derived.deliveries.len())
        ));
        for delivery in &derived.deliveries {
            output.push_str(&format!("  {delivery}\n"));
        }
    }
    output
}

/// Formats a count of deliveries, such as `1 delivery` or `2 deliveries`.
fn count_of_deliveries(count: usize) -> String {
    let noun = if count == 1 { "delivery" } else { "deliveries" };
    format!("{count} {noun}")
}

fn render_types(types: &[EventTypeInfo]) -> String {
    let mut table = Table::new(&["TYPE", "DESCRIPTION"]);
    for info in types {
        table.push(vec![info.name.to_string(), info.description.clone()]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use belter_common::{DeliveryId, EventId, EventType};

    use super::*;

    #[test]
    fn accepted_lists_deliveries() {
        let response = IngestResponse {
            event_id: EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            deliveries: vec![
                DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
                DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAW").unwrap(),
            ],
            derived: Vec::new(),
        };
        assert_eq!(
            render_accepted(&response),
            "event evt_01ARZ3NDEKTSV4RRFFQ69G5FAV accepted, 2 deliveries\n  \
             del_01ARZ3NDEKTSV4RRFFQ69G5FAV\n  del_01ARZ3NDEKTSV4RRFFQ69G5FAW\n"
        );
    }

    #[test]
    fn accepted_without_endpoints_says_zero() {
        let response = IngestResponse {
            event_id: EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            deliveries: Vec::new(),
            derived: Vec::new(),
        };
        assert_eq!(
            render_accepted(&response),
            "event evt_01ARZ3NDEKTSV4RRFFQ69G5FAV accepted, 0 deliveries\n"
        );
    }

    #[test]
    fn derived_event_counts_in_singular() {
        let response = IngestResponse {
            event_id: EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            deliveries: vec![DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap()],
            derived: vec![belter_common::api::DerivedEvent {
                event_id: EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAW").unwrap(),
                event: EventType::ScoreThresholdBreached,
                deliveries: vec![DeliveryId::parse("del_01ARZ3NDEKTSV4RRFFQ69G5FAX").unwrap()],
            }],
        };
        assert_eq!(
            render_accepted(&response),
            "event evt_01ARZ3NDEKTSV4RRFFQ69G5FAV accepted, 1 delivery\n  \
             del_01ARZ3NDEKTSV4RRFFQ69G5FAV\n\
             derived score.threshold_breached evt_01ARZ3NDEKTSV4RRFFQ69G5FAW, 1 delivery\n  \
             del_01ARZ3NDEKTSV4RRFFQ69G5FAX\n"
        );
    }

    #[test]
    fn types_table_has_name_and_description() {
        let types = vec![EventTypeInfo {
            name: EventType::CsatReceived,
            description: EventType::CsatReceived.description().to_owned(),
            schema: serde_json::json!({}),
        }];
        assert_eq!(
            render_types(&types),
            "TYPE           DESCRIPTION\ncsat.received  A customer satisfaction rating arrived.\n"
        );
    }

    #[test]
    fn missing_file_names_path() {
        let error = read_body(Path::new("/nonexistent/event.json")).unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/event.json"),
            "{error:#}"
        );
    }
}
