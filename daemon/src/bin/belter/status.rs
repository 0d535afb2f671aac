//! `belter health` and `belter stats`: whether the daemon runs, and its delivery totals.

use belter_common::client::ControlClient;
use belter_common::duration::format_duration;
use belter_common::records::{Health, Stats};
use belter_common::Timestamp;

use crate::output::{print_json, print_text};
use crate::table::render_fields;
use crate::times::format_age;

/// Runs `belter health`.
pub(crate) async fn health(client: &ControlClient, json: bool) -> anyhow::Result<()> {
    let health = client.health().await?;
    if json {
        return print_json(&health);
    }
    let socket = client.socket().display().to_string();
    print_text(&render_health(&health, &socket, Timestamp::now()))
}

/// Runs `belter stats`.
pub(crate) async fn stats(
    client: &ControlClient,
    json: bool,
    window: Option<&str>,
) -> anyhow::Result<()> {
    let stats = client.stats(window).await?;
    if json {
        return print_json(&stats);
    }
    print_text(&render_stats(&stats))
}

fn render_health(health: &Health, socket: &str, now: Timestamp) -> String {
    render_fields(&[
        ("status", health.status.clone()),
        ("version", health.version.clone()),
        (
            "started",
            format!(
                "{} ({})",
                health.started_at,
                format_age(health.started_at, now)
            ),
        ),
        ("ingest", health.ingest_addr.clone()),
        ("control", socket.to_owned()),
        ("data dir", health.data_dir.clone()),
    ])
}

fn render_stats(stats: &Stats) -> String {
    let attempts = stats.ok.saturating_add(stats.failed);
    // Percent with one decimal, cut rather than rounded, so that 99.96 % never shows as 100 %.
    let success_rate = stats
        .ok
        .saturating_mul(1_000)
        .checked_div(attempts)
        .map(|per_mille| format!("{}.{}%", per_mille / 10, per_mille % 10))
        .unwrap_or_else(|| "-".to_owned());
    render_fields(&[
        (
            "window",
            format!(
                "{} since {}",
                format_duration(std::time::Duration::from_secs(stats.window_secs)),
                stats.since
            ),
        ),
        ("attempts ok", stats.ok.to_string()),
        ("attempts failed", stats.failed.to_string()),
        ("success rate", success_rate),
        ("gave up", stats.gave_up.to_string()),
        ("pending now", stats.pending.to_string()),
        ("endpoints", stats.endpoints.to_string()),
    ])
}

/// Runs `belter rotate-ingest-token`: prints only the new token, so `$(…)` captures it.
pub(crate) async fn rotate_ingest_token(
    client: &ControlClient,
    json: bool,
    grace: Option<&str>,
) -> anyhow::Result<()> {
    let rotated = client.rotate_ingest_token(grace).await?;
    if json {
        return print_json(&rotated);
    }
    if let Some(until) = rotated.previous_valid_until {
        eprintln!("The old token is accepted until {until}.");
    }
    print_text(&format!("{}\n", rotated.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_796_308_328_120);

    fn stats(ok: u64, failed: u64) -> Stats {
        Stats {
            window_secs: 86_400,
            since: NOW.minus_millis(86_400_000),
            ok,
            failed,
            gave_up: 2,
            pending: 5,
            endpoints: 3,
        }
    }

    #[test]
    fn stats_shows_counts_and_rate() {
        assert_eq!(
            render_stats(&stats(999, 1)),
            "window           1d since 2026-12-02T14:32:08.12Z\n\
             attempts ok      999\n\
             attempts failed  1\n\
             success rate     99.9%\n\
             gave up          2\n\
             pending now      5\n\
             endpoints        3\n"
        );
    }

    #[test]
    fn rate_without_attempts_is_a_dash() {
        let output = render_stats(&stats(0, 0));
        assert!(output.contains("success rate     -\n"), "{output}");
    }

    #[test]
    fn health_shows_addresses_and_uptime() {
        let health = Health {
            status: "ok".to_owned(),
            version: "0.1.0".to_owned(),
            started_at: NOW.minus_millis(7_200_000),
            ingest_addr: "127.0.0.1:7700".to_owned(),
            data_dir: "/srv/belter".to_owned(),
        };
        let output = render_health(&health, "/srv/belter/control.sock", NOW);
        assert!(output.contains("status    ok\n"), "{output}");
        assert!(output.contains("(2h ago)\n"), "{output}");
        assert!(output.contains("ingest    127.0.0.1:7700\n"), "{output}");
        assert!(
            output.contains("control   /srv/belter/control.sock\n"),
            "{output}"
        );
    }
}
