//! The command line: global options, subcommands and the parsers of their values.

use std::path::PathBuf;

use belter_common::api::{DeliveryFilter, MAX_PAGE_LIMIT};
use belter_common::records::{DeliveryFormat, DeliveryStatus, EventSelection};
use belter_common::rules::RuleScope;
use belter_common::{DeliveryId, EndpointId, EventType, RuleId, Timestamp};
use belter_daemon::packaging::{CompletionsArgs, ManArgs};
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::times::parse_time_arg;

/// Text shown after the option list of `belter --help`.
const AFTER_HELP: &str = "\
Exit status: 0 on success, 1 when a command fails or belterd rejects it, 2 on invalid arguments,
3 when belterd is not reachable on the control socket.";

/// Heading of the options that every subcommand takes.
const GLOBAL_HEADING: &str = "Global options";

/// Manage a running belterd over its control socket: endpoints, events, deliveries and replays.
#[derive(Debug, Parser)]
#[command(name = "belter", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Path of belterd's control socket [default: $XDG_DATA_HOME/belter/control.sock, else
    /// ~/.local/share/belter/control.sock]
    #[arg(
        long,
        global = true,
        env = "BELTER_SOCKET",
        value_name = "PATH",
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) socket: Option<PathBuf>,

    /// Print the API's JSON instead of tables
    #[arg(long, global = true, help_heading = GLOBAL_HEADING)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, inspect and change endpoints
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Post events and list event types
    #[command(subcommand)]
    Events(EventsCommand),
    /// Browse the delivery log
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Manage threshold rules that raise score.threshold_breached events
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Replace the ingest token and print the new one
    RotateIngestToken(RotateIngestTokenArgs),
    /// Send deliveries again, by id or by filter
    Replay(ReplayArgs),
    /// Show delivery totals over a time window
    Stats(StatsArgs),
    /// Check that belterd is running and show its version and addresses
    Health,
    /// Print a shell completion script to standard output
    Completions(CompletionsArgs),
    /// Print the man page to standard output, or write one page per command into a directory
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// List the threshold rules
    List,
    /// Add a rule: evaluations scoring below MIN_SCORE raise score.threshold_breached
    Add(AddRuleArgs),
    /// Remove a rule
    #[command(visible_alias = "delete")]
    Remove(RemoveRuleArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddRuleArgs {
    /// What the rule covers: global, brand, team or agent
    #[arg(long, value_parser = parse_rule_scope, default_value = "global")]
    pub(crate) scope: RuleScope,
    /// The brand, team or agent id; required unless the scope is global
    #[arg(long, value_name = "ID")]
    pub(crate) scope_id: Option<String>,
    /// The criterion to check, such as greeting [default: the overall score]
    #[arg(long, value_name = "NAME")]
    pub(crate) criterion: Option<String>,
    /// A score below this breaks the rule
    #[arg(long, value_name = "SCORE", value_parser = parse_score)]
    pub(crate) min_score: f64,
}

#[derive(Debug, Args)]
pub(crate) struct RotateIngestTokenArgs {
    /// How long the old token is still accepted beside the new one, such as 1h, so services
    /// can switch without a rejected event [default: retire it at once]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text)]
    pub(crate) grace: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveRuleArgs {
    /// Rule id, such as rule_01J…
    pub(crate) id: RuleId,
}

fn parse_rule_scope(text: &str) -> Result<RuleScope, String> {
    text.parse()
}

/// Parses a finite score; JSON has no NaN or infinity to send.
fn parse_score(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(score) if score.is_finite() => Ok(score),
        _ => Err(format!(
            "invalid score {text:?}: expected a number such as 80 or 72.5"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum EndpointsCommand {
    /// Subscribe a URL and print its id and signing secret
    Add(AddEndpointArgs),
    /// List every endpoint
    List,
    /// Show one endpoint
    Show(EndpointIdArg),
    /// Change an endpoint's URL, event types or description
    Update(UpdateEndpointArgs),
    /// Pause an endpoint, so its deliveries queue until it is resumed
    Pause(EndpointIdArg),
    /// Resume a paused endpoint and send its queued deliveries
    Resume(EndpointIdArg),
    /// Replace an endpoint's signing secret and print the new one
    RotateSecret(RotateSecretArgs),
    /// Print an endpoint's signing secret
    Secret(EndpointIdArg),
    /// Delete an endpoint and cancel its pending deliveries
    #[command(visible_alias = "delete")]
    Remove(EndpointIdArg),
}

#[derive(Debug, Args)]
pub(crate) struct EndpointIdArg {
    /// Endpoint id, such as ep_01J…
    pub(crate) id: EndpointId,
}

#[derive(Debug, Args)]
pub(crate) struct AddEndpointArgs {
    /// http or https URL that deliveries are posted to
    pub(crate) url: String,
    /// Comma-separated event types to receive, or '*' for every type
    #[arg(long, value_name = "TYPES", default_value = "*", value_parser = parse_event_selection)]
    pub(crate) events: EventSelection,
    /// A note for operators
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub(crate) description: String,
    /// Create the endpoint paused, so deliveries queue until it is resumed
    #[arg(long)]
    pub(crate) paused: bool,
    /// Payload filter, such as 'data.brand == "northwind" && data.level >= 0.8'; events it
    /// rejects create no delivery to this endpoint
    #[arg(long, value_name = "EXPRESSION")]
    pub(crate) filter: Option<String>,
    /// Body format: raw, slack, pagerduty or teams
    #[arg(long, default_value = "raw", value_parser = parse_format)]
    pub(crate) format: DeliveryFormat,
    /// PagerDuty integration key, required with --format pagerduty
    #[arg(long, value_name = "KEY")]
    pub(crate) routing_key: Option<String>,
    /// Add the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)
    #[arg(long)]
    pub(crate) standard_webhooks: bool,
}

fn parse_format(text: &str) -> Result<DeliveryFormat, String> {
    text.parse()
}

#[derive(Debug, Args)]
pub(crate) struct RotateSecretArgs {
    /// Endpoint id, such as ep_01J…
    pub(crate) id: EndpointId,
    /// How long the old secret keeps signing deliveries beside the new one, such as 24h, so
    /// receivers can switch without rejecting any [default: retire it at once]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text)]
    pub(crate) grace: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "url",
            "events",
            "description",
            "filter",
            "format",
            "routing_key",
            "standard_webhooks",
        ])
))]
pub(crate) struct UpdateEndpointArgs {
    /// Endpoint id, such as ep_01J…
    pub(crate) id: EndpointId,
    /// New URL for deliveries created from now on
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// New comma-separated event types, or '*' for every type
    #[arg(long, value_name = "TYPES", value_parser = parse_event_selection)]
    pub(crate) events: Option<EventSelection>,
    /// New note for operators
    #[arg(long, value_name = "TEXT")]
    pub(crate) description: Option<String>,
    /// New payload filter; an empty text removes the filter
    #[arg(long, value_name = "EXPRESSION")]
    pub(crate) filter: Option<String>,
    /// New body format: raw, slack, pagerduty or teams
    #[arg(long, value_parser = parse_format)]
    pub(crate) format: Option<DeliveryFormat>,
    /// New PagerDuty integration key
    #[arg(long, value_name = "KEY")]
    pub(crate) routing_key: Option<String>,
    /// Turn the Standard Webhooks headers on (true) or off (false)
    #[arg(long, value_name = "BOOL")]
    pub(crate) standard_webhooks: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Post an event from a JSON file that contains {"event": TYPE, "data": {...}}
    Post(PostEventArgs),
    /// List the event types
    Types,
}

#[derive(Debug, Args)]
pub(crate) struct PostEventArgs {
    /// JSON file to post, or - for standard input
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Key that makes a repeated post return the first response instead of a new event
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeliveriesCommand {
    /// List deliveries, newest first
    List(ListDeliveriesArgs),
    /// Show one delivery with its payload, request headers and attempts
    Show(DeliveryIdArg),
}

#[derive(Debug, Args)]
pub(crate) struct DeliveryIdArg {
    /// Delivery id, such as del_01J…
    pub(crate) id: DeliveryId,
}

/// Filters shared by `deliveries list` and `replay`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only deliveries in this status: pending, in_flight, succeeded, failed, paused or cancelled
    #[arg(long)]
    pub(crate) status: Option<DeliveryStatus>,
    /// Only events of this type, such as csat.received
    #[arg(long, value_name = "TYPE")]
    pub(crate) event: Option<EventType>,
    /// Only deliveries to this endpoint id
    #[arg(long, value_name = "ID")]
    pub(crate) endpoint: Option<EndpointId>,
    /// Only deliveries whose target URL or endpoint id contains this text
    #[arg(long, value_name = "TEXT")]
    pub(crate) target: Option<String>,
    /// Only deliveries created at or after this time: a duration ago such as 1h, RFC 3339, or Unix
    /// milliseconds
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub(crate) since: Option<Timestamp>,
    /// Only deliveries created before this time: a duration ago such as 30m, RFC 3339, or Unix
    /// milliseconds
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub(crate) until: Option<Timestamp>,
}

impl FilterArgs {
    /// Converts the flags into the filter of the API.
    pub(crate) fn to_filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            status: self.status,
            event: self.event,
            endpoint: self.endpoint.clone(),
            target: self.target.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ListDeliveriesArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Page size [default: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_LIMIT)))]
    pub(crate) limit: Option<u32>,
    /// Continue after this delivery id, the next_cursor of the previous page
    #[arg(long, value_name = "ID")]
    pub(crate) cursor: Option<DeliveryId>,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("selection")
        .required(true)
        .multiple(true)
        .args(["ids", "all", "status", "event", "endpoint", "target", "since", "until"])
))]
pub(crate) struct ReplayArgs {
    /// Delivery ids to replay; without ids, a filter or --all selects the deliveries
    #[arg(value_name = "ID", conflicts_with_all = ["all", "status", "event", "endpoint", "target", "since", "until"])]
    pub(crate) ids: Vec<DeliveryId>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Replay every delivery in the log
    #[arg(long, conflicts_with_all = ["status", "event", "endpoint", "target", "since", "until"])]
    pub(crate) all: bool,
    /// Print how many deliveries per target would be replayed, and queue nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Replay more than one delivery by filter without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Window length, such as 15m, 24h or 7d [default: 24h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text)]
    pub(crate) window: Option<String>,
}

/// Parses `a,b` or `*` into an event selection.
fn parse_event_selection(text: &str) -> Result<EventSelection, String> {
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    EventSelection::parse(&names)
}

/// Checks a duration such as a stats window locally, so a typo fails before the request is sent.
fn parse_duration_text(text: &str) -> Result<String, String> {
    belter_common::duration::parse_duration(text)
        .map(|_| text.trim().to_owned())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    const DELIVERY: &str = "del_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const OTHER_DELIVERY: &str = "del_01ARZ3NDEKTSV4RRFFQ69G5FAW";
    const ENDPOINT: &str = "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV";

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("belter").chain(args.iter().copied()))
    }

    fn error_kind(args: &[&str]) -> ErrorKind {
        match parse(args) {
            Ok(cli) => panic!("expected an error for {args:?}, parsed {cli:?}"),
            Err(error) => error.kind(),
        }
    }

    #[test]
    fn rules_add_rejects_non_finite_scores() {
        for score in ["NaN", "inf", "-infinity", "eighty"] {
            let flag = format!("--min-score={score}");
            let error = parse(&["rules", "add", &flag]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{score}");
            let message = error.to_string();
            assert!(message.contains(&format!("{score:?}")), "{message}");
            assert!(message.contains("such as 80 or 72.5"), "{message}");
        }
        let cli = parse(&["rules", "add", "--min-score", "72.5"]).unwrap();
        let Command::Rules(RulesCommand::Add(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.min_score, 72.5);
    }

    #[test]
    fn command_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["endpoints", "list", "--json", "--socket", "/tmp/x.sock"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/x.sock")));
        let cli = parse(&["--json", "health"]).unwrap();
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Health));
    }

    #[test]
    fn endpoints_add_defaults_to_every_event() {
        let cli = parse(&["endpoints", "add", "http://127.0.0.1:9000/hook"]).unwrap();
        let Command::Endpoints(EndpointsCommand::Add(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.url, "http://127.0.0.1:9000/hook");
        assert_eq!(args.events, EventSelection::All);
        assert_eq!(args.description, "");
        assert!(!args.paused);
    }

    #[test]
    fn endpoints_add_parses_event_list() {
        let cli = parse(&[
            "endpoints",
            "add",
            "http://127.0.0.1:9000/hook",
            "--events",
            "csat.received, frustration.detected",
            "--description",
            "support",
            "--paused",
        ])
        .unwrap();
        let Command::Endpoints(EndpointsCommand::Add(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(
            args.events,
            EventSelection::Only(vec![
                EventType::CsatReceived,
                EventType::FrustrationDetected
            ])
        );
        assert_eq!(args.description, "support");
        assert!(args.paused);
    }

    #[test]
    fn endpoints_add_rejects_unknown_event() {
        let error = parse(&["endpoints", "add", "http://x", "--events", "csat"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(error.to_string().contains("unknown event type"), "{error}");
    }

    #[test]
    fn events_star_selects_all() {
        assert_eq!(parse_event_selection("*"), Ok(EventSelection::All));
        assert_eq!(
            parse_event_selection("csat.received,*"),
            Ok(EventSelection::All)
        );
        assert!(parse_event_selection("").is_err());
        assert!(parse_event_selection(",").is_err());
    }

    #[test]
    fn endpoint_commands_validate_ids() {
        assert_eq!(
            error_kind(&["endpoints", "show", "ep_nope"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn rotate_secret_takes_grace() {
        let cli = parse(&["endpoints", "rotate-secret", ENDPOINT]).unwrap();
        let Command::Endpoints(EndpointsCommand::RotateSecret(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.grace, None);
        let cli = parse(&["endpoints", "rotate-secret", ENDPOINT, "--grace", "24h"]).unwrap();
        let Command::Endpoints(EndpointsCommand::RotateSecret(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.grace.as_deref(), Some("24h"));
        assert_eq!(
            error_kind(&["endpoints", "rotate-secret", ENDPOINT, "--grace", "soon"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn endpoints_update_needs_a_change() {
        assert_eq!(
            error_kind(&["endpoints", "update", ENDPOINT]),
            ErrorKind::MissingRequiredArgument
        );
        let cli = parse(&["endpoints", "update", ENDPOINT, "--description", ""]).unwrap();
        let Command::Endpoints(EndpointsCommand::Update(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.description.as_deref(), Some(""));
        assert_eq!(args.url, None);
        assert_eq!(args.events, None);
    }

    #[test]
    fn events_post_takes_file_or_stdin() {
        let cli = parse(&["events", "post", "-", "--idempotency-key", "k1"]).unwrap();
        let Command::Events(EventsCommand::Post(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.file, PathBuf::from("-"));
        assert_eq!(args.idempotency_key.as_deref(), Some("k1"));
    }

    #[test]
    fn deliveries_list_parses_filters() {
        let cli = parse(&[
            "deliveries",
            "list",
            "--status",
            "failed",
            "--event",
            "csat.received",
            "--endpoint",
            ENDPOINT,
            "--target",
            "example.com",
            "--since",
            "2026-12-03T14:32:08Z",
            "--until",
            "1796308328120",
            "--limit",
            "10",
            "--cursor",
            DELIVERY,
        ])
        .unwrap();
        let Command::Deliveries(DeliveriesCommand::List(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        let filter = args.filter.to_filter();
        assert_eq!(filter.status, Some(DeliveryStatus::Failed));
        assert_eq!(filter.event, Some(EventType::CsatReceived));
        assert_eq!(filter.endpoint.map(String::from).as_deref(), Some(ENDPOINT));
        assert_eq!(filter.target.as_deref(), Some("example.com"));
        assert_eq!(
            filter.since.map(Timestamp::as_millis),
            Some(1_796_308_328_000)
        );
        assert_eq!(
            filter.until.map(Timestamp::as_millis),
            Some(1_796_308_328_120)
        );
        assert_eq!(args.limit, Some(10));
        assert_eq!(args.cursor.map(String::from).as_deref(), Some(DELIVERY));
    }

    #[test]
    fn deliveries_list_rejects_bad_values() {
        assert_eq!(
            error_kind(&["deliveries", "list", "--status", "done"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            error_kind(&["deliveries", "list", "--limit", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            error_kind(&["deliveries", "list", "--limit", "1001"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            error_kind(&["deliveries", "list", "--since", "yesterday"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn relative_since_is_in_the_past() {
        let before = Timestamp::now();
        let cli = parse(&["deliveries", "list", "--since", "1h"]).unwrap();
        let Command::Deliveries(DeliveriesCommand::List(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        let since = args.filter.since.unwrap().as_millis();
        assert!(since <= before.as_millis() - 3_600_000 + 5_000, "{since}");
        assert!(since >= before.as_millis() - 3_600_000 - 5_000, "{since}");
    }

    #[test]
    fn delete_is_an_alias_of_remove() {
        let cli = parse(&["endpoints", "delete", ENDPOINT]).unwrap();
        assert!(
            matches!(cli.command, Command::Endpoints(EndpointsCommand::Remove(_))),
            "{:?}",
            cli.command
        );
    }

    #[test]
    fn replay_takes_many_ids() {
        let cli = parse(&["replay", DELIVERY, OTHER_DELIVERY]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.ids.len(), 2);
        assert!(args.filter.to_filter().is_empty());
        assert!(!args.all);
    }

    #[test]
    fn replay_takes_a_filter() {
        let cli = parse(&[
            "replay",
            "--status",
            "failed",
            "--since",
            "2h",
            "--dry-run",
            "--yes",
        ])
        .unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert!(args.ids.is_empty());
        assert_eq!(args.filter.status, Some(DeliveryStatus::Failed));
        assert!(args.filter.since.is_some());
        assert!(args.dry_run);
        assert!(args.yes);
    }

    #[test]
    fn replay_needs_ids_filter_or_all() {
        assert_eq!(error_kind(&["replay"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            error_kind(&["replay", "--yes"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            error_kind(&["replay", "--dry-run"]),
            ErrorKind::MissingRequiredArgument
        );
        let cli = parse(&["replay", "--all", "--dry-run"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert!(args.all);
    }

    #[test]
    fn replay_rejects_ids_with_filter() {
        assert_eq!(
            error_kind(&["replay", DELIVERY, "--status", "failed"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            error_kind(&["replay", DELIVERY, "--all"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            error_kind(&["replay", "--all", "--event", "csat.received"]),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn stats_checks_window() {
        let cli = parse(&["stats", "--window", "15m"]).unwrap();
        let Command::Stats(args) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.window.as_deref(), Some("15m"));
        assert_eq!(
            error_kind(&["stats", "--window", "15"]),
            ErrorKind::ValueValidation
        );
    }
}
