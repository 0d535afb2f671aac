//! The event log: append-only segment files that hold the record groups of the events tree, so
//! that sled keeps a pointer of a few bytes per group instead of the group itself.
//!
//! sled 0.34 rewrites a whole leaf each time it consolidates or splits one, and a leaf of the
//! events tree holds up to 17 groups of about 40 KiB. A leaf over 128 KiB also goes to a file of
//! its own, created and later removed for each rewrite. Event groups never change once written,
//! so the log writes each one once and sled's leaves stay small.
//!
//! Segments are named by a number that only grows, and a process never appends to a segment that
//! an earlier one wrote. A pointer names its segment, the group's offset and length, and the
//! CRC-32 of its bytes. The log counts the pointers into each segment: the store counts them when
//! it opens, adds one for each group written, and takes one off for each group removed or
//! rewritten in sled. A segment whose count falls to zero is deleted after the next flush of
//! sled, so that no pointer to it can come back after a crash.
//!
//! The flush before a 202 syncs the segments written since the last flush. sled can flush a
//! pointer on its own before that, so after a power loss a pointer of a request that never got
//! its 202 can name bytes that did not reach the disk. A read then finds the length or the
//! checksum wrong and reports the group as lost. A request with an idempotency key syncs the log
//! before its key is written, so that a key on disk always covers groups on disk.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use crate::codec::GroupPointer;

/// A segment takes new groups until it reaches this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Extension of segment files. The stem is the segment number, zero-padded to 20 digits.
const SEGMENT_EXTENSION: &str = "log";

/// An event log operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error(
        "cannot {action} {path} of the event log: {source}; check that the data directory is \
         writable and has free space"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an event group of {0} bytes is too large for the event log")]
    TooLarge(usize),
}

/// The segment that takes new groups.
struct Current {
    number: u64,
    file: Arc<File>,
    len: u64,
}

/// The log's changing state, shared by appends, releases and syncs.
struct State {
    current: Option<Current>,
    next_number: u64,
    /// Segments written since the last sync, by number.
    unsynced: BTreeMap<u64, Arc<File>>,
    /// Whether a segment was created since the last sync of the directory.
    directory_unsynced: bool,
    /// Count of the pointers into each segment that still has any.
    live: FxHashMap<u64, u64>,
    /// Segments without pointers, to delete after the next flush of sled.
    emptied: Vec<u64>,
}

/// The open event log. Shared by every handle of the store.
pub(crate) struct EventLog {
    dir: PathBuf,
    /// A segment takes new groups until it reaches this size.
    segment_bytes: u64,
    state: Mutex<State>,
    readers: Mutex<FxHashMap<u64, Arc<File>>>,
}

impl EventLog {
    /// Opens the log in `dir`, creating it when missing. `live` counts the pointers into each
    /// segment that the store holds, and segments without any are deleted.
    pub(crate) fn open(dir: &Path, live: FxHashMap<u64, u64>) -> Result<Self, EventLogError> {
        Self::open_with_segment_bytes(dir, live, SEGMENT_BYTES)
    }

    fn open_with_segment_bytes(
        dir: &Path,
        live: FxHashMap<u64, u64>,
        segment_bytes: u64,
    ) -> Result<Self, EventLogError> {
        let io = |action, source| EventLogError::Io {
            action,
            path: dir.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io("create", source))?;
        let mut newest = 0;
        for entry in std::fs::read_dir(dir).map_err(|source| io("list", source))? {
            let path = entry.map_err(|source| io("list", source))?.path();
            let Some(number) = segment_number(&path) else {
                continue;
            };
            newest = newest.max(number);
            if !live.contains_key(&number) {
                tracing::info!(
                    segment = number,
                    "deleting an event log segment that nothing points to"
                );
                remove_segment(&path)?;
            }
        }
        // A segment file can be gone while sled still points to it, so its number stays used.
        let newest = live.keys().copied().fold(newest, u64::max);
        let log = Self {
            dir: dir.to_owned(),
            segment_bytes,
            state: Mutex::new(State {
                current: None,
                next_number: newest + 1,
                unsynced: BTreeMap::new(),
                directory_unsynced: false,
                live,
                emptied: Vec::new(),
            }),
            readers: Mutex::default(),
        };
        Ok(log)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn readers(&self) -> MutexGuard<'_, FxHashMap<u64, Arc<File>>> {
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path_of(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}.{SEGMENT_EXTENSION}"))
    }

    /// Appends one group and counts the pointer to it. A caller that then fails to store the
    /// pointer gives it back with [`EventLog::release`].
    pub(crate) fn append(&self, bytes: &[u8]) -> Result<GroupPointer, EventLogError> {
        let len = u32::try_from(bytes.len()).map_err(|_| EventLogError::TooLarge(bytes.len()))?;
        let mut state = self.state();
        let full = state.current.as_ref().is_none_or(|current| {
            current.len > 0 && current.len + u64::from(len) > self.segment_bytes
        });
        if full {
            self.start_segment(&mut state)?;
        }
        let State {
            current: Some(current),
            unsynced,
            live,
            ..
        } = &mut *state
        else {
            return Err(EventLogError::Io {
                action: "write",
                path: self.dir.clone(),
                source: std::io::Error::other("no segment to write to"),
            });
        };
        let (number, offset) = (current.number, current.len);
        current
            .file
            .write_all_at(bytes, offset)
            .map_err(|source| EventLogError::Io {
                action: "write",
                path: self.path_of(number),
                source,
            })?;
        current.len += u64::from(len);
        unsynced
            .entry(number)
            .or_insert_with(|| Arc::clone(&current.file));
        *live.entry(number).or_default() += 1;
        Ok(GroupPointer {
            segment: number,
            offset,
            len,
            crc: crc32fast::hash(bytes),
        })
    }

    /// Creates the next segment and makes it the current one. The one before keeps its count
    /// and is deleted once it has no pointers.
    fn start_segment(&self, state: &mut State) -> Result<(), EventLogError> {
        let number = state.next_number;
        let path = self.path_of(number);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| EventLogError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        state.next_number += 1;
        state.directory_unsynced = true;
        if let Some(previous) = state.current.take() {
            if !state.live.contains_key(&previous.number) {
                state.emptied.push(previous.number);
            }
        }
        state.current = Some(Current {
            number,
            file: Arc::new(file),
            len: 0,
        });
        tracing::debug!(segment = number, "event log segment started");
        Ok(())
    }

    /// Reads the group that `pointer` names. `None` when its segment is gone, or its bytes are
    /// not the ones written.
    pub(crate) fn read(&self, pointer: &GroupPointer) -> Result<Option<Vec<u8>>, EventLogError> {
        let io = |action, source| EventLogError::Io {
            action,
            path: self.path_of(pointer.segment),
            source,
        };
        let Some(file) = self.reader(pointer.segment)? else {
            tracing::error!(
                path = %self.path_of(pointer.segment).display(),
                "event log segment is missing; the groups it held are lost"
            );
            return Ok(None);
        };
        let file_len = file.metadata().map_err(|source| io("read", source))?.len();
        if pointer.offset.saturating_add(u64::from(pointer.len)) > file_len {
            tracing::error!(
                path = %self.path_of(pointer.segment).display(),
                offset = pointer.offset,
                len = pointer.len,
                file_len,
                "event log segment ends before a group it should hold; the group is lost"
            );
            return Ok(None);
        }
        let mut bytes = vec![0; pointer.len as usize];
        file.read_exact_at(&mut bytes, pointer.offset)
            .map_err(|source| io("read", source))?;
        if crc32fast::hash(&bytes) != pointer.crc {
            tracing::error!(
                path = %self.path_of(pointer.segment).display(),
                offset = pointer.offset,
                len = pointer.len,
                "event log group fails its checksum; the group is lost"
            );
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Returns a handle to read segment `number`, opening it the first time. The open runs under
    /// the lock that deletion holds too, so no handle to a deleted segment stays in the cache.
    fn reader(&self, number: u64) -> Result<Option<Arc<File>>, EventLogError> {
        let mut readers = self.readers();
        if let Some(file) = readers.get(&number) {
            return Ok(Some(Arc::clone(file)));
        }
        let path = self.path_of(number);
        let file = match File::open(&path) {
            Ok(file) => Arc::new(file),
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(EventLogError::Io {
                    action: "open",
                    path,
                    source,
                })
            }
        };
        readers.insert(number, Arc::clone(&file));
        Ok(Some(file))
    }

    /// Counts off a pointer that sled no longer contains. A segment left without pointers, other
    /// than the current one, is deleted after [`EventLog::take_emptied`] returns it and sled
    /// is flushed.
    pub(crate) fn release(&self, segment: u64) {
        let mut state = self.state();
        let Some(count) = state.live.get_mut(&segment) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count > 0 {
            return;
        }
        state.live.remove(&segment);
        let current = state.current.as_ref().map(|current| current.number);
        if current != Some(segment) {
            state.emptied.push(segment);
        }
    }

    /// Takes the segments left without pointers so far. The caller flushes sled, which puts the
    /// removal of their last pointers on disk, then passes them to [`EventLog::remove_segments`].
    /// A segment emptied after this call waits for the next one.
    pub(crate) fn take_emptied(&self) -> Vec<u64> {
        std::mem::take(&mut self.state().emptied)
    }

    /// Deletes segments that [`EventLog::take_emptied`] returned, and returns how many. A
    /// segment that cannot be deleted waits for the next call, with those after it.
    pub(crate) fn remove_segments(&self, emptied: Vec<u64>) -> Result<usize, EventLogError> {
        for (at, &number) in emptied.iter().enumerate() {
            // Under the readers' lock, so no read opens the segment between the two steps.
            let removed = {
                let mut readers = self.readers();
                readers.remove(&number);
                remove_segment(&self.path_of(number))
            };
            if let Err(error) = removed {
                self.state().emptied.extend_from_slice(&emptied[at..]);
                return Err(error);
            }
            tracing::info!(segment = number, "event log segment deleted");
        }
        Ok(emptied.len())
    }

    /// Checks whether a segment was written since the last sync.
    #[cfg(test)]
    pub(crate) fn has_unsynced(&self) -> bool {
        !self.state().unsynced.is_empty()
    }

    /// Returns the segments taken but not deleted, for a caller whose flush failed.
    pub(crate) fn keep_emptied(&self, emptied: Vec<u64>) {
        self.state().emptied.extend(emptied);
    }

    /// Syncs every segment written since the last sync, and the directory when a segment was
    /// created, so that the groups written so far survive a power loss.
    pub(crate) fn sync(&self) -> Result<(), EventLogError> {
        let (files, directory) = {
            let mut state = self.state();
            let files = std::mem::take(&mut state.unsynced);
            (files, std::mem::take(&mut state.directory_unsynced))
        };
        let mut pending = files.into_iter();
        while let Some((number, file)) = pending.next() {
            if let Err(source) = file.sync_data() {
                // The failed segment and the ones after it wait for the next sync.
                let mut state = self.state();
                state.directory_unsynced |= directory;
                state.unsynced.entry(number).or_insert(file);
                for (number, file) in pending {
                    state.unsynced.entry(number).or_insert(file);
                }
                return Err(EventLogError::Io {
                    action: "sync",
                    path: self.path_of(number),
                    source,
                });
            }
        }
        if directory {
            if let Err(source) = File::open(&self.dir).and_then(|dir| dir.sync_all()) {
                self.state().directory_unsynced = true;
                return Err(EventLogError::Io {
                    action: "sync",
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        Ok(())
    }
}

/// Returns the number of a segment file, or `None` for any other file.
fn segment_number(path: &Path) -> Option<u64> {
    if path.extension()? != SEGMENT_EXTENSION {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn remove_segment(path: &Path) -> Result<(), EventLogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(EventLogError::Io {
            action: "delete",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_files(dir: &Path) -> Vec<u64> {
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| segment_number(&entry.unwrap().path()))
            .collect();
        numbers.sort_unstable();
        numbers
    }

    #[test]
    fn groups_read_back_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 10).unwrap();
        let groups: [&[u8]; 3] = [b"first group", b"second", b"third group"];
        let pointers: Vec<GroupPointer> = groups
            .iter()
            .map(|group| log.append(group).unwrap())
            .collect();
        log.sync().unwrap();
        assert_eq!(
            pointers.iter().map(|p| p.segment).collect::<Vec<_>>(),
            [1, 2, 3],
            "a segment that reached its size takes no more groups"
        );
        for (pointer, group) in pointers.iter().zip(groups) {
            assert_eq!(log.read(pointer).unwrap().as_deref(), Some(group));
        }
        assert_eq!(segment_files(dir.path()), [1, 2, 3]);
    }

    #[test]
    fn small_groups_share_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 64).unwrap();
        let first = log.append(b"one").unwrap();
        let second = log.append(b"two").unwrap();
        assert_eq!((first.segment, first.offset), (1, 0));
        assert_eq!((second.segment, second.offset), (1, 3));
        assert_eq!(log.read(&second).unwrap().as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn changed_missing_or_cut_bytes_read_as_lost() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), FxHashMap::default()).unwrap();
        let pointer = log.append(b"a group of events").unwrap();
        let wrong_crc = GroupPointer {
            crc: pointer.crc ^ 1,
            ..pointer
        };
        assert_eq!(log.read(&wrong_crc).unwrap(), None);
        let past_end = GroupPointer {
            offset: 100,
            ..pointer
        };
        assert_eq!(log.read(&past_end).unwrap(), None);
        let no_segment = GroupPointer {
            segment: 9,
            ..pointer
        };
        assert_eq!(log.read(&no_segment).unwrap(), None);
        assert!(log.read(&pointer).unwrap().is_some());
    }

    #[test]
    fn empty_segment_deleted_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 4).unwrap();
        let old = log.append(b"old group").unwrap();
        let new = log.append(b"new group").unwrap();
        log.release(new.segment);
        assert!(log.take_emptied().is_empty(), "the current segment stays");
        log.release(old.segment);
        let emptied = log.take_emptied();
        assert_eq!(emptied, [old.segment]);
        assert_eq!(
            segment_files(dir.path()),
            [1, 2],
            "nothing goes before it is asked"
        );
        assert_eq!(log.remove_segments(emptied).unwrap(), 1);
        assert_eq!(segment_files(dir.path()), [2]);
        assert_eq!(log.read(&old).unwrap(), None);
        assert!(log.take_emptied().is_empty());
    }

    #[test]
    fn emptied_current_segment_waits_for_next() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 4).unwrap();
        let first = log.append(b"first").unwrap();
        log.release(first.segment);
        assert!(log.take_emptied().is_empty());
        log.append(b"second").unwrap();
        let emptied = log.take_emptied();
        assert_eq!(log.remove_segments(emptied).unwrap(), 1);
        assert_eq!(segment_files(dir.path()), [2]);
    }

    #[test]
    fn open_deletes_unreferenced_segments() {
        let dir = tempfile::tempdir().unwrap();
        let referenced = {
            let log =
                EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 4).unwrap();
            let referenced = log.append(b"referenced group").unwrap();
            log.append(b"orphan").unwrap();
            log.append(b"newest orphan").unwrap();
            log.sync().unwrap();
            referenced
        };
        std::fs::write(dir.path().join("notes.txt"), b"not a segment").unwrap();
        let live = FxHashMap::from_iter([(referenced.segment, 1)]);
        let log = EventLog::open(dir.path(), live).unwrap();
        assert_eq!(segment_files(dir.path()), [1]);
        assert!(dir.path().join("notes.txt").exists(), "other files stay");
        assert_eq!(
            log.read(&referenced).unwrap().as_deref(),
            Some(&b"referenced group"[..])
        );
        let next = log.append(b"after reopen").unwrap();
        assert_eq!(next.segment, 4, "a number is never used twice");
    }

    #[test]
    fn segment_emptied_after_take_stays() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with_segment_bytes(dir.path(), FxHashMap::default(), 4).unwrap();
        let first = log.append(b"first").unwrap();
        let second = log.append(b"second").unwrap();
        log.append(b"third").unwrap();
        log.release(first.segment);
        let taken = log.take_emptied();
        // Released while sled's flush for `taken` runs: not yet on disk, so not deleted.
        log.release(second.segment);
        assert_eq!(log.remove_segments(taken).unwrap(), 1);
        assert_eq!(segment_files(dir.path()), [2, 3]);
        assert_eq!(log.take_emptied(), [second.segment]);
    }

    #[test]
    fn numbers_skip_segments_sled_names() {
        let dir = tempfile::tempdir().unwrap();
        let live = FxHashMap::from_iter([(7, 1)]);
        let log = EventLog::open(dir.path(), live).unwrap();
        assert_eq!(log.append(b"group").unwrap().segment, 8);
    }

    #[test]
    fn pointer_past_the_end_allocates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), FxHashMap::default()).unwrap();
        let pointer = log.append(b"group").unwrap();
        let huge = GroupPointer {
            len: u32::MAX,
            ..pointer
        };
        assert_eq!(log.read(&huge).unwrap(), None);
    }

    #[test]
    fn segment_names_are_twenty_digits() {
        assert_eq!(
            segment_number(Path::new("/x/00000000000000000042.log")),
            Some(42)
        );
        assert_eq!(segment_number(Path::new("/x/42.log")), None);
        assert_eq!(
            segment_number(Path::new("/x/00000000000000000042.tmp")),
            None
        );
        assert_eq!(
            segment_number(Path::new("/x/0000000000000000004x.log")),
            None
        );
    }
}
