//! The writer of belterd's log lines. A thread of its own writes them to standard error, so a
//! reader that stops reading blocks only that thread. While the queue is full, new lines are
//! dropped and counted. The next line that fits is preceded by a warning with the count, in the
//! log's format, so the warning sits where the lines are missing.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use belter_common::Timestamp;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines that may wait for the writer thread.
const QUEUE_LINES: usize = 4_096;

/// How long the guard waits at exit for the queued lines to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    /// This many lines were dropped here.
    Dropped(u64),
    /// Reply once every line queued before has been written.
    Drain(mpsc::Sender<()>),
}

/// Makes one writer per log event for `tracing_subscriber::fmt`.
#[derive(Clone)]
pub struct QueuedStderr {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// The format of the warning about dropped lines, which matches the other log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeFormat {
    /// Readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Writes the queued lines when dropped, waiting at most [`DRAIN_TIMEOUT`]. Keep it until the
/// daemon ends.
pub struct DrainGuard {
    sender: SyncSender<Message>,
}

/// Collects one log event and queues it when dropped.
pub struct EventWriter {
    line: Vec<u8>,
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Starts the thread that writes log lines to standard error.
pub fn queued_stderr(format: NoticeFormat) -> std::io::Result<(QueuedStderr, DrainGuard)> {
    queued(std::io::stderr(), format)
}

/// Starts the thread that writes log lines to `output`.
fn queued<W: Write + Send + 'static>(
    output: W,
    format: NoticeFormat,
) -> std::io::Result<(QueuedStderr, DrainGuard)> {
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    std::thread::Builder::new()
        .name("belter-log-writer".to_owned())
        .spawn(move || write_lines(output, &receiver, format))?;
    Ok((
        QueuedStderr {
            sender: sender.clone(),
            dropped,
        },
        DrainGuard { sender },
    ))
}

/// Writes queued lines until every sender is gone. Write errors are ignored, because there is
/// nowhere left to report them.
fn write_lines<W: Write>(mut output: W, receiver: &Receiver<Message>, format: NoticeFormat) {
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Line(line) => {
                let _ = output.write_all(&line);
            }
            Message::Dropped(count) => {
                let _ =
                    output.write_all(dropped_notice(format, count, Timestamp::now()).as_bytes());
            }
            Message::Drain(done) => {
                let _ = output.flush();
                let _ = done.send(());
            }
        }
    }
}

/// Formats the warning about `count` dropped lines, written at `now`, as one log line.
fn dropped_notice(format: NoticeFormat, count: u64, now: Timestamp) -> String {
    const MESSAGE: &str = "log lines dropped because standard error was not read";
    match format {
        NoticeFormat::Text => format!(
            "{}  WARN belter_daemon::log_writer: {MESSAGE} dropped={count}\n",
            now.to_rfc3339()
        ),
        NoticeFormat::Json => format!(
            "{}\n",
            serde_json::json!({
                "timestamp": now.to_rfc3339(),
                "level": "WARN",
                "message": MESSAGE,
                "dropped": count,
                "target": "belter_daemon::log_writer",
            })
        ),
    }
}

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            line: Vec::new(),
            sender: self.sender.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            if let Err(TrySendError::Full(_)) = self.sender.try_send(Message::Dropped(lost)) {
                self.dropped.fetch_add(lost + 1, Ordering::Relaxed);
                return;
            }
        }
        let line = std::mem::take(&mut self.line);
        if let Err(TrySendError::Full(_)) = self.sender.try_send(Message::Line(line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        let (done, finished) = mpsc::channel();
        // A full queue means the reader is stalled, and waiting would not help.
        if self.sender.try_send(Message::Drain(done)).is_ok() {
            let _ = finished.recv_timeout(DRAIN_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An output that keeps what was written, or blocks every write until it is opened.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(writer: &QueuedStderr, text: &str) {
        let mut event = writer.make_writer();
        event.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn json_notice_is_one_object() {
        let line = dropped_notice(NoticeFormat::Json, 7, Timestamp::from_millis(0));
        assert!(line.ends_with("}\n"), "{line}");
        let parsed: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(parsed["dropped"], 7);
        assert_eq!(parsed["level"], "WARN");
    }

    #[test]
    fn lines_are_written_in_order() {
        let output = Captured::default();
        let (writer, guard) = queued(output.clone(), NoticeFormat::Text).unwrap();
        log(&writer, "first\n");
        log(&writer, "second\n");
        drop(guard);
        assert_eq!(output.bytes.lock().unwrap().as_slice(), b"first\nsecond\n");
    }

    #[test]
    fn stalled_output_drops_and_counts_lines() {
        let output = Captured::default();
        let closed = output.gate.lock().unwrap();
        let (writer, guard) = queued(output.clone(), NoticeFormat::Text).unwrap();
        // One line blocks the writer thread, the queue fills, and the rest are dropped.
        for _ in 0..QUEUE_LINES + 10 {
            log(&writer, "line\n");
        }
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..5 {
            log(&writer, "line\n");
        }
        drop(closed);
        std::thread::sleep(Duration::from_millis(200));
        log(&writer, "after\n");
        drop(guard);
        let text = String::from_utf8(output.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let last_two = &lines[lines.len() - 2..];
        assert!(
            last_two[0].contains("WARN belter_daemon::log_writer: log lines dropped"),
            "the warning comes right before the first line after the gap: {last_two:?}"
        );
        assert_eq!(last_two[1], "after");
        let written = text.matches("line\n").count();
        assert!(written <= QUEUE_LINES + 1, "{written} lines written");
    }
}
