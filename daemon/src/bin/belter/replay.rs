//! `belter replay …`: queue deliveries for a new attempt, by id or by filter, with a dry run and
//! a confirmation before a replay by filter touches more than one delivery.

use anyhow::Context;
use belter_common::api::{DeliveryFilter, ReplayRequest, ReplayResponse};
use belter_common::client::ControlClient;

use crate::cli::ReplayArgs;
use crate::confirm::confirm;
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs `belter replay`.
pub(crate) async fn run(
    client: &ControlClient,
    json: bool,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    if !args.ids.is_empty() {
        let response = match args.ids.as_slice() {
            [id] if !args.dry_run => client.replay(id).await?,
            _ => {
                let request = ReplayRequest {
                    ids: args.ids,
                    filter: None,
                    dry_run: args.dry_run,
                };
                client.replay_many(&request).await?
            }
        };
        return print_response(json, &response);
    }

    let filter = if args.all {
        DeliveryFilter::default()
    } else {
        args.filter.to_filter()
    };
    let request = |dry_run| ReplayRequest {
        ids: Vec::new(),
        filter: Some(filter.clone()),
        dry_run,
    };

    if args.dry_run {
        let preview = client.replay_many(&request(true)).await?;
        return print_response(json, &preview);
    }

    if !args.yes {
        let preview = client.replay_many(&request(true)).await?;
        if needs_confirmation(preview.queued) {
            // The preview goes to standard error, next to the question, so that standard output
            // carries only the result.
            eprint!("{}", render_response(&preview));
            let question = format!("Replay {} deliveries?", preview.queued);
            let confirmed = confirm(&question).with_context(|| {
                format!("replay of {} deliveries not confirmed", preview.queued)
            })?;
            if !confirmed {
                anyhow::bail!("replay cancelled, nothing was queued");
            }
        }
    }

    // NOTE: the set is matched again here, so deliveries that began to match after the preview
    // are replayed too.
    let response = client.replay_many(&request(false)).await?;
    print_response(json, &response)
}

/// Whether a replay by filter of `count` deliveries needs `--yes` or confirmation on a terminal.
fn needs_confirmation(count: u64) -> bool {
    count > 1
}

fn print_response(json: bool, response: &ReplayResponse) -> anyhow::Result<()> {
    if json {
        return print_json(response);
    }
    print_text(&render_response(response))
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        "delivery"
    } else {
        "deliveries"
    }
}

/// Renders the summary line and the count per target.
fn render_response(response: &ReplayResponse) -> String {
    let verb = if response.dry_run {
        "would queue"
    } else {
        "queued"
    };
    let mut output = format!(
        "{verb} {} {} for a new attempt, {} skipped",
        response.queued,
        plural(response.queued),
        response.skipped
    );
    if let Some(reasons) = response.skip_reasons() {
        output.push_str(&format!(" ({reasons})"));
    }
    output.push('\n');
    if response.paused > 0 {
        output.push_str(&format!(
            "{} of them {} for a paused endpoint and {} once it is resumed\n",
            response.paused,
            if response.paused == 1 { "is" } else { "are" },
            if response.dry_run {
                "would be sent"
            } else {
                "will be sent"
            }
        ));
    }
    if !response.targets.is_empty() {
        let mut table = Table::new(&["COUNT", "TARGET"]);
        for target in &response.targets {
            table.push(vec![target.count.to_string(), target.url.clone()]);
        }
        output.push_str(&table.render());
    }
    output
}

#[cfg(test)]
mod tests {
    use belter_common::api::TargetCount;

    use super::*;

    fn response(dry_run: bool) -> ReplayResponse {
        ReplayResponse {
            queued: 12,
            skipped: 1,
            skipped_in_flight: 1,
            skipped_no_endpoint: 0,
            paused: 0,
            targets: vec![
                TargetCount {
                    url: "https://a.example/hook".to_owned(),
                    count: 10,
                },
                TargetCount {
                    url: "http://127.0.0.1:9000/b".to_owned(),
                    count: 2,
                },
            ],
            dry_run,
        }
    }

    #[test]
    fn dry_run_says_would_queue() {
        assert_eq!(
            render_response(&response(true)),
            "would queue 12 deliveries for a new attempt, 1 skipped \
             (1 in flight now)\n\
             COUNT  TARGET\n\
             10     https://a.example/hook\n\
             2      http://127.0.0.1:9000/b\n"
        );
    }

    #[test]
    fn replay_names_paused_endpoints() {
        let paused = ReplayResponse {
            paused: 1,
            ..response(false)
        };
        assert!(
            render_response(&paused).contains(
                "\n1 of them is for a paused endpoint and will be sent once it is resumed\n"
            ),
            "{}",
            render_response(&paused)
        );
    }

    #[test]
    fn replay_says_queued() {
        let output = render_response(&response(false));
        assert!(
            output.starts_with(
                "queued 12 deliveries for a new attempt, 1 skipped \
                 (1 in flight now)\n"
            ),
            "{output}"
        );
    }

    #[test]
    fn single_delivery_has_no_table_when_targets_empty() {
        let single = ReplayResponse {
            queued: 1,
            skipped: 0,
            skipped_in_flight: 0,
            skipped_no_endpoint: 0,
            paused: 0,
            targets: Vec::new(),
            dry_run: false,
        };
        assert_eq!(
            render_response(&single),
            "queued 1 delivery for a new attempt, 0 skipped\n"
        );
    }

    #[test]
    fn confirmation_only_above_one() {
        assert!(!needs_confirmation(0));
        assert!(!needs_confirmation(1));
        assert!(needs_confirmation(2));
    }
}
