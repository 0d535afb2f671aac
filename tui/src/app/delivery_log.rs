//! The delivery log as the console holds it: a window of at most `MAX_WINDOW_ROWS` rows out of
//! the daemon's log, paged with cursors, plus the selection and the scroll offset. Rows that fall
//! off the top of the window are remembered as cursors only, so scrolling back refetches them.
//!
//! The daemon lists newest first and its cursor continues with older deliveries. Delivery ids
//! are ULIDs and sort by creation time, so the window stays ordered by id, and the console
//! trims the window by using the id of the last kept row as the cursor for the rows below it.
//! Pages are deduplicated by id, so this works whether the daemon's cursor is the last row
//! returned or the first row of the next page.

use belter_common::api::{DeliveryPage, MAX_PAGE_LIMIT};
use belter_common::records::Delivery;
use belter_common::{DeliveryId, Timestamp};

/// Deliveries in one page while scrolling.
pub const PAGE_SIZE: u32 = 200;

/// Deliveries in one page while seeking the oldest delivery, so the seek takes fewer requests.
pub const SEEK_PAGE_SIZE: u32 = MAX_PAGE_LIMIT;

/// Rows the window keeps in memory; beyond that, rows far from the selection are dropped.
pub const MAX_WINDOW_ROWS: usize = 1_000;

/// Rows between the selection's screen and the window's edge at which the next page is fetched.
pub const PREFETCH_MARGIN: usize = 60;

/// What a page fetch does to the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFetch {
    /// Replaces the window with rows listed from `cursor` (the newest rows when `None`).
    Replace {
        /// The cursor the rows are listed from.
        cursor: Option<DeliveryId>,
        /// Select the first row once loaded, instead of keeping the selected delivery.
        select_first: bool,
    },
    /// Appends the page below the window's last row.
    Older,
    /// Puts the page back above the window's first row.
    Newer,
}

/// One page fetch the window asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The window generation it was made for; a reply from an older generation is dropped.
    pub generation: u64,
    /// What the reply does to the window.
    pub fetch: PageFetch,
    /// The daemon cursor to list from.
    pub cursor: Option<DeliveryId>,
    /// The page size.
    pub limit: u32,
}

/// Rows dropped from above the window: the cursor that lists them, and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    cursor: Option<DeliveryId>,
    len: usize,
}

/// What lies below the window's last row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Older {
    /// The first page has not arrived yet.
    NotLoaded,
    /// More rows, listed from this cursor.
    More(DeliveryId),
    /// The window reaches the oldest delivery.
    End,
}

/// A window over the daemon's delivery log, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    rows: Vec<Delivery>,
    selected: usize,
    offset: usize,
    viewport: usize,
    top_cursor: Option<DeliveryId>,
    above: Vec<Chunk>,
    older: Older,
    generation: u64,
    loading: Option<PageFetch>,
    new_above: usize,
    seeking_end: bool,
    /// The generation whose relative time bounds, such as `since:2m`, were resolved, and the
    /// time they were resolved at, so that every page and a replay of the generation agree.
    bounds_at: Option<(u64, Timestamp)>,
}

impl Default for DeliveryLog {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            selected: 0,
            offset: 0,
            viewport: 1,
            top_cursor: None,
            above: Vec::new(),
            older: Older::NotLoaded,
            generation: 0,
            loading: None,
            new_above: 0,
            seeking_end: false,
            bounds_at: None,
        }
    }
}

impl DeliveryLog {
    /// Returns the time that relative bounds of the filter resolve at for the current
    /// generation. The first call of a generation fixes it at `now`.
    pub fn bounds_time(&mut self, now: Timestamp) -> Timestamp {
        match self.bounds_at {
            Some((generation, at)) if generation == self.generation => at,
            _ => {
                self.bounds_at = Some((self.generation, now));
                now
            }
        }
    }

    /// The rows in the window, newest first.
    pub fn rows(&self) -> &[Delivery] {
        &self.rows
    }

    /// Index of the selected row within the window.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Index of the first row on screen.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The selected delivery, if the window has rows.
    pub fn selected_delivery(&self) -> Option<&Delivery> {
        self.rows.get(self.selected)
    }

    /// Whether the first page has arrived.
    pub fn is_loaded(&self) -> bool {
        self.older != Older::NotLoaded
    }

    /// Whether a page fetch is under way.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Whether End was pressed and older pages are still being fetched.
    pub fn is_seeking_end(&self) -> bool {
        self.seeking_end
    }

    /// Rows of the log above the window, dropped to bound memory.
    pub fn rows_above_window(&self) -> usize {
        self.above.iter().map(|chunk| chunk.len).sum()
    }

    /// Deliveries that arrived live while the window was away from the newest row.
    pub fn new_above(&self) -> usize {
        self.new_above
    }

    /// Rows newer than the first row on screen: inside the window, above it, and live arrivals.
    pub fn newer_than_screen(&self) -> usize {
        self.offset + self.rows_above_window() + self.new_above
    }

    /// Position of the selected row in the whole log, counted from 1.
    pub fn absolute_position(&self) -> usize {
        self.rows_above_window() + self.selected + 1
    }

    /// The number of matching deliveries, once the window has reached the oldest one.
    pub fn known_total(&self) -> Option<usize> {
        (self.older == Older::End).then(|| self.rows_above_window() + self.rows.len())
    }

    /// Sets the number of rows on screen and keeps the selection visible.
    pub fn set_viewport(&mut self, rows: usize) {
        self.viewport = rows.max(1);
        self.clamp_offset();
    }

    /// Forgets every row and starts a new generation, for a new filter.
    pub fn reset(&mut self) -> PageRequest {
        let viewport = self.viewport;
        *self = DeliveryLog {
            generation: self.generation + 1,
            viewport,
            ..DeliveryLog::default()
        };
        self.start(
            PageFetch::Replace {
                cursor: None,
                select_first: true,
            },
            None,
            PAGE_SIZE,
        )
    }

    /// Refetches the rows in the window, keeping the position, after the stream missed updates
    /// or the connection came back.
    pub fn reload(&mut self) -> PageRequest {
        self.generation += 1;
        self.loading = None;
        self.seeking_end = false;
        let limit = page_limit(self.rows.len().max(PAGE_SIZE as usize));
        let cursor = self.top_cursor.clone();
        self.start(
            PageFetch::Replace {
                cursor: cursor.clone(),
                select_first: false,
            },
            cursor,
            limit,
        )
    }

    /// Moves the selection by `delta` rows and returns a page fetch if it nears an edge.
    pub fn move_by(&mut self, delta: isize) -> Option<PageRequest> {
        let target = self.selected.saturating_add_signed(delta);
        self.select(target);
        self.seeking_end = false;
        self.prefetch()
    }

    /// Moves by one screen.
    pub fn page(&mut self, down: bool) -> Option<PageRequest> {
        let step = self.viewport.saturating_sub(1).max(1) as isize;
        self.move_by(if down { step } else { -step })
    }

    /// Selects the newest delivery, refetching the top of the log when the window is elsewhere.
    pub fn go_to_newest(&mut self) -> Option<PageRequest> {
        self.seeking_end = false;
        if self.top_cursor.is_none() && self.new_above == 0 {
            self.select(0);
            return None;
        }
        self.generation += 1;
        self.loading = None;
        Some(self.start(
            PageFetch::Replace {
                cursor: None,
                select_first: true,
            },
            None,
            PAGE_SIZE,
        ))
    }

    /// Selects the oldest delivery, paging down to it first when the window does not reach it.
    pub fn go_to_oldest(&mut self) -> Option<PageRequest> {
        self.select(self.rows.len().saturating_sub(1));
        if matches!(self.older, Older::More(_)) {
            self.seeking_end = true;
            return self.request_older();
        }
        None
    }

    /// The next page fetch the window needs: the next seek page, or a page near the selection.
    pub fn prefetch(&mut self) -> Option<PageRequest> {
        if self.seeking_end {
            return self.request_older();
        }
        let near_bottom = self.selected + self.viewport + PREFETCH_MARGIN >= self.rows.len();
        if near_bottom {
            if let Some(request) = self.request_older() {
                return Some(request);
            }
        }
        let near_top = self.selected < self.viewport + PREFETCH_MARGIN;
        if near_top && !self.above.is_empty() {
            return self.request_newer();
        }
        None
    }

    /// Applies a page reply. Returns false when the reply belongs to an older generation.
    pub fn apply_page(&mut self, request: &PageRequest, page: DeliveryPage) -> bool {
        if request.generation != self.generation {
            return false;
        }
        self.loading = None;
        let next = match page.next_cursor {
            Some(cursor) => Older::More(cursor),
            None => Older::End,
        };
        match &request.fetch {
            PageFetch::Replace {
                cursor,
                select_first,
            } => self.replace(cursor.clone(), *select_first, page.deliveries, next),
            PageFetch::Older => self.append(page.deliveries, next),
            PageFetch::Newer => self.prepend(request, page.deliveries),
        }
        true
    }

    /// Records a failed page fetch, so the next move may try again.
    pub fn page_failed(&mut self, request: &PageRequest) {
        if request.generation == self.generation {
            self.loading = None;
            self.seeking_end = false;
        }
    }

    /// Applies a delivery from the live stream: an update replaces its row in place, and a new
    /// delivery that `matches` the filter is inserted in id order. The selected delivery stays
    /// selected and on the same screen line, unless the selection is on the newest row, where
    /// the log follows new deliveries.
    pub fn upsert(&mut self, delivery: Delivery, matches: bool) {
        if let Some(row) = self.rows.iter_mut().find(|row| row.id == delivery.id) {
            *row = delivery;
            return;
        }
        if !matches || !self.is_loaded() {
            return;
        }
        let index = self.rows.partition_point(|row| row.id > delivery.id);
        if index == 0 && self.top_cursor.is_some() {
            self.new_above += 1;
            return;
        }
        if index == self.rows.len() && !self.rows.is_empty() && self.older != Older::End {
            // It belongs below the window and comes with the page that lists it.
            return;
        }
        let following = self.selected == 0 && self.offset == 0 && self.top_cursor.is_none();
        self.rows.insert(index, delivery);
        if !following && index <= self.selected {
            self.selected += 1;
            self.offset += 1;
        }
        self.clamp_offset();
        self.trim_bottom();
    }

    fn start(&mut self, fetch: PageFetch, cursor: Option<DeliveryId>, limit: u32) -> PageRequest {
        self.loading = Some(fetch.clone());
        PageRequest {
            generation: self.generation,
            fetch,
            cursor,
            limit,
        }
    }

    fn request_older(&mut self) -> Option<PageRequest> {
        if self.loading.is_some() {
            return None;
        }
        let Older::More(cursor) = &self.older else {
            self.seeking_end = false;
            return None;
        };
        let cursor = Some(cursor.clone());
        let limit = if self.seeking_end {
            SEEK_PAGE_SIZE
        } else {
            PAGE_SIZE
        };
        Some(self.start(PageFetch::Older, cursor, limit))
    }

    fn request_newer(&mut self) -> Option<PageRequest> {
        if self.loading.is_some() {
            return None;
        }
        let chunk = self.above.last()?.clone();
        // One extra row covers a daemon cursor that includes the row it names. At the top of the
        // log, rows that arrived live since the chunk was dropped come first.
        let mut wanted = chunk.len + 1;
        if chunk.cursor.is_none() {
            wanted += self.new_above;
        }
        Some(self.start(PageFetch::Newer, chunk.cursor, page_limit(wanted)))
    }

    fn replace(
        &mut self,
        cursor: Option<DeliveryId>,
        select_first: bool,
        rows: Vec<Delivery>,
        next: Older,
    ) {
        let kept_id = self.selected_delivery().map(|row| row.id.clone());
        let screen_line = self.selected - self.offset;
        if cursor.is_none() {
            self.above.clear();
            self.new_above = 0;
        }
        self.rows = below_cursor(rows, cursor.as_ref()).collect();
        self.top_cursor = cursor;
        self.older = next;
        let kept_index = kept_id.and_then(|id| self.rows.iter().position(|row| row.id == id));
        let index = match (select_first, kept_index) {
            (true, _) => 0,
            (false, Some(index)) => index,
            (false, None) => self.selected,
        };
        self.selected = index.min(self.rows.len().saturating_sub(1));
        self.offset = self.selected.saturating_sub(screen_line);
        if select_first {
            self.offset = 0;
        }
        self.clamp_offset();
    }

    fn append(&mut self, rows: Vec<Delivery>, next: Older) {
        let last_id = self.rows.last().map(|row| row.id.clone());
        let fresh = rows
            .into_iter()
            .filter(|row| last_id.as_ref().is_none_or(|last| &row.id < last));
        self.rows.extend(fresh);
        self.older = next;
        if self.seeking_end {
            self.selected = self.rows.len().saturating_sub(1);
            self.offset = self.rows.len().saturating_sub(self.viewport);
            if self.older == Older::End {
                self.seeking_end = false;
            }
        }
        self.trim_top();
    }

    fn prepend(&mut self, request: &PageRequest, rows: Vec<Delivery>) {
        if self.above.last().map(|chunk| &chunk.cursor) != Some(&request.cursor) {
            return;
        }
        let Some(chunk) = self.above.pop() else {
            return;
        };
        let first_id = self.rows.first().map(|row| row.id.clone());
        let fresh: Vec<Delivery> = below_cursor(rows, chunk.cursor.as_ref())
            .filter(|row| first_id.as_ref().is_none_or(|first| &row.id > first))
            .collect();
        let added = fresh.len();
        self.rows.splice(0..0, fresh);
        self.selected += added;
        self.offset += added;
        self.top_cursor = chunk.cursor;
        if self.top_cursor.is_none() {
            self.new_above = 0;
        }
        self.trim_bottom();
    }

    /// Drops rows above the screen while the window is too large.
    fn trim_top(&mut self) {
        let excess = self.rows.len().saturating_sub(MAX_WINDOW_ROWS);
        let count = excess.min(self.offset);
        if count == 0 {
            return;
        }
        self.above.push(Chunk {
            cursor: self.top_cursor.clone(),
            len: count,
        });
        self.top_cursor = Some(self.rows[count - 1].id.clone());
        self.rows.drain(..count);
        self.selected -= count;
        self.offset -= count;
    }

    /// Drops rows below the screen while the window is too large.
    fn trim_bottom(&mut self) {
        let keep = MAX_WINDOW_ROWS
            .max(self.offset + self.viewport)
            .max(self.selected + 1);
        if self.rows.len() <= keep {
            return;
        }
        self.rows.truncate(keep);
        if let Some(last) = self.rows.last() {
            self.older = Older::More(last.id.clone());
        }
    }

    fn select(&mut self, index: usize) {
        self.selected = index.min(self.rows.len().saturating_sub(1));
        self.clamp_offset();
    }

    fn clamp_offset(&mut self) {
        if self.selected < self.offset {
            self.offset = self.selected;
        }
        if self.selected >= self.offset + self.viewport {
            self.offset = self.selected + 1 - self.viewport;
        }
    }
}

/// The rows strictly older than `cursor`, dropping the cursor's own row where the daemon
/// includes it.
fn below_cursor(
    rows: Vec<Delivery>,
    cursor: Option<&DeliveryId>,
) -> impl Iterator<Item = Delivery> + '_ {
    rows.into_iter()
        .filter(move |row| cursor.is_none_or(|cursor| &row.id < cursor))
}

fn page_limit(rows: usize) -> u32 {
    u32::try_from(rows)
        .unwrap_or(MAX_PAGE_LIMIT)
        .clamp(1, MAX_PAGE_LIMIT)
}

#[cfg(test)]
mod tests;
