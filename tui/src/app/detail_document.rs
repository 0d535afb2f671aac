//! The detail view of one delivery as a list of screen lines, wrapped to the pane's width. It
//! records the line where each section starts, so `update` can scroll and jump by section while
//! `render` only slices the lines.

use belter_common::records::DeliveryDetail;
use belter_common::Timestamp;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::badge::{attempt_badge, delivery_badge};
use crate::format;
use crate::json_pretty;
use crate::theme::Theme;

/// Width of the label column of the summary, in characters.
const LABEL_WIDTH: usize = 10;

/// The delivery detail as screen lines.
#[derive(Debug, Clone, Default)]
pub struct DetailDocument {
    /// Lines, each at most the width given to `build`.
    pub lines: Vec<Line<'static>>,
    /// The index in `lines` of each section's heading.
    pub sections: Vec<usize>,
}

struct Builder {
    theme: Theme,
    width: usize,
    document: DetailDocument,
}

impl Builder {
    fn section(&mut self, title: String) {
        if !self.document.lines.is_empty() {
            self.document.lines.push(Line::default());
        }
        self.document.sections.push(self.document.lines.len());
        self.document
            .lines
            .push(Line::from(Span::styled(title, self.theme.title())));
    }

    /// Adds one logical line, wrapped at the width. Continuation lines start with `indent` spaces.
    fn push(&mut self, spans: Vec<(String, Style)>, indent: usize) {
        let width = self.width.max(indent + 8);
        let mut current: Vec<Span<'static>> = Vec::new();
        let mut used = 0;
        for (text, style) in spans {
            let mut chunk = String::new();
            for character in text.chars() {
                if used == width {
                    if !chunk.is_empty() {
                        current.push(Span::styled(std::mem::take(&mut chunk), style));
                    }
                    self.document
                        .lines
                        .push(Line::from(std::mem::take(&mut current)));
                    current.push(Span::raw(" ".repeat(indent)));
                    used = indent;
                }
                chunk.push(character);
                used += 1;
            }
            if !chunk.is_empty() {
                current.push(Span::styled(chunk, style));
            }
        }
        self.document.lines.push(Line::from(current));
    }

    fn field(&mut self, label: &str, value: String, style: Style) {
        let label = format!("{label:<LABEL_WIDTH$}");
        self.push(vec![(label, self.theme.dim()), (value, style)], LABEL_WIDTH);
    }
}

/// Builds the document of `detail` for a pane `width` columns wide, with ages counted to `now`.
pub fn build(
    detail: &DeliveryDetail,
    theme: Theme,
    width: usize,
    now: Timestamp,
) -> DetailDocument {
    let mut builder = Builder {
        theme,
        width,
        document: DetailDocument::default(),
    };
    let delivery = &detail.delivery;
    let badge = delivery_badge(delivery);
    let plain = Style::new();

    builder.section("Delivery".to_owned());
    builder.field("id", delivery.id.to_string(), plain);
    builder.field(
        "event",
        format!("{} {}", delivery.event_type, delivery.event_id),
        plain,
    );
    builder.field(
        "target",
        format!("{} ({})", delivery.target_url, delivery.endpoint_id),
        plain,
    );
    builder.field(
        "status",
        format!(
            "{} {} · {} attempt{}",
            badge.text(),
            delivery.status.as_str(),
            delivery.attempt_count,
            if delivery.attempt_count == 1 { "" } else { "s" }
        ),
        badge.tone.style(theme),
    );
    builder.field(
        "created",
        format!(
            "{} UTC ({} ago)",
            format::full_time(delivery.created_at),
            format::age(
                now.as_millis()
                    .saturating_sub(delivery.created_at.as_millis())
            )
        ),
        plain,
    );
    if let Some(origin) = &detail.derived_from {
        // The event goes on a line of its own when both ids do not fit, so neither id is split.
        let rule = format!("from rule {}", origin.rule_id);
        let event = format!("on event {}", origin.event_id);
        if LABEL_WIDTH + rule.len() + 1 + event.len() <= width {
            builder.field("derived", format!("{rule} {event}"), plain);
        } else {
            builder.field("derived", rule, plain);
            builder.field("", event, plain);
        }
    }
    if let Some(next) = delivery.next_attempt_at {
        let wait = next.as_millis().saturating_sub(now.as_millis());
        builder.field(
            "next try",
            format!("in {}", format::age(wait)),
            theme.retrying(),
        );
    }
    if let Some(error) = &delivery.last_error {
        builder.field("error", error.clone(), theme.failed());
    }

    builder.section("Request headers, as sent".to_owned());
    if detail.request_headers.is_empty() {
        builder.push(vec![("none recorded".to_owned(), theme.dim())], 0);
    }
    for header in &detail.request_headers {
        builder.push(
            vec![
                (format!("{}: ", header.name), theme.dim()),
                (header.value.clone(), plain),
            ],
            2,
        );
    }

    builder.section("Payload".to_owned());
    for line in json_pretty::pretty(detail.payload.get()).lines() {
        builder.push(vec![(line.to_owned(), plain)], 2);
    }

    builder.section(format!("Attempts ({})", detail.attempts.len()));
    if detail.attempts.is_empty() {
        builder.push(vec![("no attempt yet".to_owned(), theme.dim())], 0);
    }
    for attempt in &detail.attempts {
        let badge = attempt_badge(attempt);
        let trigger = match attempt.trigger {
            belter_common::records::AttemptTrigger::First => "first",
            belter_common::records::AttemptTrigger::Retry => "retry",
            belter_common::records::AttemptTrigger::Replay => "replay",
        };
        builder.push(
            vec![
                (format!("#{:<3}", attempt.number), theme.title()),
                (format!("{trigger:<7}"), theme.dim()),
                (
                    format!("{}  ", format::full_time(attempt.started_at)),
                    plain,
                ),
                (format!("{:<10}", badge.text()), badge.tone.style(theme)),
                (format::latency(attempt.latency_ms), plain),
            ],
            4,
        );
        if let Some(error) = &attempt.error {
            builder.push(
                vec![
                    ("    error    ".to_owned(), theme.dim()),
                    (error.clone(), theme.failed()),
                ],
                13,
            );
        }
        match &attempt.response_body {
            Some(body) if !body.is_empty() => {
                for (index, line) in body.lines().enumerate() {
                    let label = if index == 0 {
                        "    response "
                    } else {
                        "             "
                    };
                    builder.push(
                        vec![(label.to_owned(), theme.dim()), (line.to_owned(), plain)],
                        13,
                    );
                }
            }
            _ => builder.push(
                vec![
                    ("    response ".to_owned(), theme.dim()),
                    ("(empty)".to_owned(), theme.dim()),
                ],
                13,
            ),
        }
    }
    builder.document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn text(document: &DetailDocument) -> Vec<String> {
        document.lines.iter().map(|line| line.to_string()).collect()
    }

    #[test]
    fn document_has_four_sections() {
        let document = build(
            &fixtures::sample_detail(),
            Theme { color: false },
            80,
            fixtures::now(),
        );
        let lines = text(&document);
        let headings: Vec<&str> = document
            .sections
            .iter()
            .map(|&i| lines[i].as_str())
            .collect();
        assert_eq!(
            headings,
            [
                "Delivery",
                "Request headers, as sent",
                "Payload",
                "Attempts (1)"
            ]
        );
    }

    fn derived_detail() -> (DeliveryDetail, String, String) {
        let mut json = serde_json::to_value(fixtures::sample_detail()).unwrap();
        let rule = format!("rule_{}", ulid::Ulid::from_parts(fixtures::NOW_MILLIS, 7));
        let event = format!("evt_{}", ulid::Ulid::from_parts(fixtures::NOW_MILLIS, 8));
        json["derived_from"] = serde_json::json!({"rule_id": rule, "event_id": event});
        (serde_json::from_value(json).unwrap(), rule, event)
    }

    #[test]
    fn document_names_rule_and_source_event() {
        let (detail, rule, event) = derived_detail();
        let document = build(&detail, Theme { color: false }, 120, fixtures::now());
        let expected = format!("derived   from rule {rule} on event {event}");
        assert!(text(&document).contains(&expected), "{:?}", text(&document));
    }

    #[test]
    fn document_keeps_derived_ids_whole_when_narrow() {
        let (detail, rule, event) = derived_detail();
        let lines = text(&build(&detail, Theme { color: false }, 80, fixtures::now()));
        let first = lines
            .iter()
            .position(|line| line.starts_with("derived   "))
            .expect("a derived line");
        assert_eq!(lines[first], format!("derived   from rule {rule}"));
        assert_eq!(lines[first + 1], format!("          on event {event}"));
    }

    #[test]
    fn document_wraps_long_header_to_width() {
        let document = build(
            &fixtures::sample_detail(),
            Theme { color: false },
            60,
            fixtures::now(),
        );
        let lines = text(&document);
        assert!(lines.iter().all(|line| line.chars().count() <= 60));
        let signature = lines
            .iter()
            .position(|line| line.starts_with("x-webhook-signature: v1=abab"))
            .unwrap();
        assert!(lines[signature + 1].starts_with("  abab"), "{lines:?}");
    }

    #[test]
    fn document_pretty_prints_payload_and_response() {
        let document = build(
            &fixtures::sample_detail(),
            Theme { color: false },
            80,
            fixtures::now(),
        );
        let lines = text(&document);
        assert!(lines.contains(&"    \"score\": 2".to_owned()), "{lines:?}");
        assert!(lines.iter().any(|line| line.contains("✖ 500")));
        assert!(lines
            .iter()
            .any(|line| line == "    response {\"error\":\"boom\"}"));
        assert!(lines.iter().any(|line| line == "             second line"));
    }
}
