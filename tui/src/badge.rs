//! The symbol and short label that mark a delivery's or attempt's outcome in every view. The
//! symbol carries the meaning on its own; colour only repeats it.

use belter_common::records::{Attempt, Delivery, DeliveryStatus};
use ratatui::style::Style;

use crate::theme::Theme;

/// The kind of outcome, which picks the style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Delivered.
    Ok,
    /// Gave up, or the attempt failed.
    Failed,
    /// Failed and waiting for a retry.
    Retrying,
    /// An attempt is running.
    Active,
    /// Waiting, paused or cancelled.
    Quiet,
}

impl Tone {
    /// The style of this tone.
    pub fn style(self, theme: Theme) -> Style {
        match self {
            Tone::Ok => theme.ok(),
            Tone::Failed => theme.failed(),
            Tone::Retrying => theme.retrying(),
            Tone::Active => theme.active(),
            Tone::Quiet => theme.dim(),
        }
    }
}

/// A symbol, a label and a tone, such as `✖ 500`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    /// One character that shows the outcome without colour.
    pub symbol: char,
    /// The HTTP status, failure kind or state.
    pub label: String,
    /// The style to draw it in.
    pub tone: Tone,
}

impl Badge {
    /// The symbol and label as one text, such as `✖ timeout`.
    pub fn text(&self) -> String {
        format!("{} {}", self.symbol, self.label)
    }
}

/// The badge of a delivery: its latest outcome, and whether it is final.
pub fn delivery_badge(delivery: &Delivery) -> Badge {
    let tried = delivery.last_status_code.is_some() || delivery.last_failure.is_some();
    let (symbol, label, tone) = match delivery.status {
        DeliveryStatus::Succeeded => ('✔', delivery.outcome_label(), Tone::Ok),
        DeliveryStatus::Failed => ('✖', delivery.outcome_label(), Tone::Failed),
        DeliveryStatus::Pending if tried => ('↻', delivery.outcome_label(), Tone::Retrying),
        DeliveryStatus::Pending => ('·', "pending".to_owned(), Tone::Quiet),
        DeliveryStatus::InFlight => ('▶', "sending".to_owned(), Tone::Active),
        DeliveryStatus::Paused => ('‖', "paused".to_owned(), Tone::Quiet),
        DeliveryStatus::Cancelled => ('–', "cancelled".to_owned(), Tone::Quiet),
    };
    Badge {
        symbol,
        label,
        tone,
    }
}

/// The badge of one attempt.
pub fn attempt_badge(attempt: &Attempt) -> Badge {
    let (symbol, tone) = if attempt.succeeded {
        ('✔', Tone::Ok)
    } else {
        ('✖', Tone::Failed)
    };
    Badge {
        symbol,
        label: attempt.status_label(),
        tone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{delivery, failed_delivery, retrying_delivery};

    #[test]
    fn badge_marks_failures_by_symbol() {
        assert_eq!(delivery_badge(&failed_delivery(1)).text(), "✖ 500");
        assert_eq!(delivery_badge(&retrying_delivery(1)).text(), "↻ timeout");
        assert_eq!(delivery_badge(&delivery(1)).text(), "✔ 200");
    }

    #[test]
    fn badge_of_untried_pending_says_pending() {
        let mut row = delivery(1);
        row.status = DeliveryStatus::Pending;
        row.last_status_code = None;
        assert_eq!(delivery_badge(&row).text(), "· pending");
        row.status = DeliveryStatus::InFlight;
        assert_eq!(delivery_badge(&row).tone, Tone::Active);
    }
}
