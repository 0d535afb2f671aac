use super::*;
use crate::fixtures::delivery;
use belter_common::api::DeliveryPage;

/// A fake daemon log of `count` deliveries, newest first.
fn log_of(count: u64) -> Vec<Delivery> {
    (1..=count).map(delivery).collect()
}

/// Serves a page the way the daemon does: newest first, continuing after the cursor.
/// `inclusive` makes the cursor name the first row of the next page instead of the last row.
fn serve(all: &[Delivery], request: &PageRequest, inclusive: bool) -> DeliveryPage {
    let start = match &request.cursor {
        None => 0,
        Some(cursor) if inclusive => all.partition_point(|row| &row.id > cursor),
        Some(cursor) => all.partition_point(|row| &row.id >= cursor),
    };
    let end = (start + request.limit as usize).min(all.len());
    let deliveries = all[start..end].to_vec();
    let next_cursor = if end < all.len() {
        if inclusive {
            Some(all[end].id.clone())
        } else {
            deliveries.last().map(|row| row.id.clone())
        }
    } else {
        None
    };
    DeliveryPage {
        deliveries,
        next_cursor,
    }
}

/// Runs every fetch the window asks for until it is idle, at most `max_fetches` times.
fn settle(log: &mut DeliveryLog, all: &[Delivery], first: Option<PageRequest>, inclusive: bool) {
    let mut next = first;
    for _ in 0..1_000 {
        let Some(request) = next.take() else {
            return;
        };
        assert!(log.apply_page(&request, serve(all, &request, inclusive)));
        next = log.prefetch();
    }
    panic!("the window kept fetching");
}

fn loaded(all: &[Delivery], viewport: usize) -> DeliveryLog {
    let mut log = DeliveryLog::default();
    log.set_viewport(viewport);
    let first = log.reset();
    settle(&mut log, all, Some(first), false);
    log
}

#[test]
fn first_page_selects_newest() {
    let all = log_of(500);
    let log = loaded(&all, 20);
    assert_eq!(log.selected(), 0);
    assert_eq!(log.rows()[0].id, all[0].id);
    assert_eq!(log.rows().len(), PAGE_SIZE as usize);
    assert!(!log.is_loading());
}

#[test]
fn scrolling_whole_log_stays_bounded_and_ordered() {
    for inclusive in [false, true] {
        let all = log_of(5_000);
        let mut log = DeliveryLog::default();
        log.set_viewport(20);
        let first = log.reset();
        settle(&mut log, &all, Some(first), inclusive);
        for step in 0..5_000 {
            let request = log.move_by(1);
            settle(&mut log, &all, request, inclusive);
            assert!(log.rows().len() <= MAX_WINDOW_ROWS + SEEK_PAGE_SIZE as usize);
            let position = log.absolute_position();
            let expected = &all[(position - 1).min(all.len() - 1)];
            assert_eq!(
                log.selected_delivery().map(|row| &row.id),
                Some(&expected.id),
                "step {step}, inclusive {inclusive}"
            );
        }
        assert_eq!(log.known_total(), Some(5_000));
        assert_eq!(log.absolute_position(), 5_000);
        for _ in 0..5_000 {
            let request = log.move_by(-1);
            settle(&mut log, &all, request, inclusive);
            let position = log.absolute_position();
            assert_eq!(
                log.selected_delivery().map(|row| &row.id),
                Some(&all[position - 1].id)
            );
        }
        assert_eq!(log.absolute_position(), 1);
        assert!(log.rows().windows(2).all(|pair| pair[0].id > pair[1].id));
    }
}

#[test]
fn end_seeks_oldest_then_home_returns() {
    let all = log_of(7_500);
    let mut log = loaded(&all, 20);
    let request = log.go_to_oldest();
    assert!(log.is_seeking_end());
    settle(&mut log, &all, request, false);
    assert!(!log.is_seeking_end());
    assert_eq!(log.absolute_position(), 7_500);
    assert_eq!(
        log.selected_delivery().map(|row| &row.id),
        Some(&all[7_499].id)
    );
    assert!(log.rows().len() <= MAX_WINDOW_ROWS + SEEK_PAGE_SIZE as usize);
    let request = log.go_to_newest();
    settle(&mut log, &all, request, false);
    assert_eq!(log.absolute_position(), 1);
    assert_eq!(log.rows_above_window(), 0);
}

#[test]
fn stale_generation_is_dropped() {
    let all = log_of(10);
    let mut log = DeliveryLog::default();
    let old = log.reset();
    let _new = log.reset();
    assert!(!log.apply_page(&old, serve(&all, &old, false)));
    assert!(log.rows().is_empty());
}

#[test]
fn live_row_follows_at_newest() {
    let all = log_of(50);
    let mut log = loaded(&all[1..], 10);
    log.upsert(all[0].clone(), true);
    assert_eq!(log.rows()[0].id, all[0].id);
    assert_eq!(log.selected(), 0);
    assert_eq!(log.selected_delivery().map(|row| &row.id), Some(&all[0].id));
}

#[test]
fn live_row_keeps_selection_steady() {
    let all = log_of(50);
    let mut log = loaded(&all[3..], 10);
    log.move_by(5);
    let selected_id = log.selected_delivery().map(|row| row.id.clone());
    let screen_line = log.selected() - log.offset();
    for row in all[..3].iter().rev() {
        log.upsert(row.clone(), true);
    }
    assert_eq!(
        log.selected_delivery().map(|row| row.id.clone()),
        selected_id
    );
    assert_eq!(log.selected() - log.offset(), screen_line);
    assert_eq!(log.newer_than_screen(), 3);
}

#[test]
fn live_update_replaces_row_in_place() {
    let all = log_of(20);
    let mut log = loaded(&all, 10);
    let mut changed = all[4].clone();
    changed.status = belter_common::records::DeliveryStatus::Failed;
    log.upsert(changed.clone(), false);
    assert_eq!(log.rows()[4], changed);
    assert_eq!(log.rows().len(), 20);
}

#[test]
fn live_row_not_matching_is_ignored() {
    let all = log_of(20);
    let mut log = loaded(&all[1..], 10);
    log.upsert(all[0].clone(), false);
    assert_eq!(log.rows().len(), 19);
}

#[test]
fn live_rows_above_moved_window_are_counted() {
    let all = log_of(3_000);
    let mut log = loaded(&all[1..], 20);
    for _ in 0..1_500 {
        let request = log.move_by(1);
        settle(&mut log, &all[1..], request, false);
    }
    assert!(log.rows_above_window() > 0);
    log.upsert(all[0].clone(), true);
    assert_eq!(log.new_above(), 1);
    let request = log.go_to_newest();
    settle(&mut log, &all, request, false);
    assert_eq!(log.new_above(), 0);
    assert_eq!(log.rows()[0].id, all[0].id);
}

#[test]
fn live_growth_stays_bounded() {
    let all = log_of(3_000);
    let mut log = loaded(&all[2_500..], 20);
    for row in all[..2_500].iter().rev() {
        log.upsert(row.clone(), true);
    }
    assert!(log.rows().len() <= MAX_WINDOW_ROWS);
    assert_eq!(log.rows()[0].id, all[0].id);
    let request = log.go_to_oldest();
    settle(&mut log, &all, request, false);
    assert_eq!(log.absolute_position(), 3_000);
}

#[test]
fn reload_keeps_selected_delivery() {
    let all = log_of(300);
    let mut log = loaded(&all, 10);
    log.move_by(42);
    let request = log.reload();
    settle(&mut log, &all, Some(request), false);
    assert_eq!(
        log.selected_delivery().map(|row| &row.id),
        Some(&all[42].id)
    );
}

#[test]
fn failed_page_allows_retry() {
    let all = log_of(500);
    let mut log = loaded(&all, 10);
    let request = log.move_by(150).expect("prefetch near the edge");
    assert!(log.is_loading());
    log.page_failed(&request);
    assert!(!log.is_loading());
    assert!(log.move_by(1).is_some());
}
