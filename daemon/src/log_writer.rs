//! The writer of belterd's log lines. A thread of its own writes them to standard error, so a
//! reader that stops reading blocks only that thread. While the queue is full, new lines are
//! dropped and counted, and a notice with the count is written when the queue has room again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Log lines that may wait for the writer thread.
const QUEUE_LINES: usize = 4_096;

/// How long the guard waits at exit for the queued lines to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    /// Reply once every line queued before has been written.
    Drain(mpsc::Sender<()>),
}

/// Makes one writer per log event for `tracing_subscriber::fmt`.
#[derive(Clone)]
pub struct QueuedStderr {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
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
pub fn queued_stderr() -> std::io::Result<(QueuedStderr, DrainGuard)> {
    queued(std::io::stderr())
}

/// Starts the thread that writes log lines to `output`.
fn queued<W: Write + Send + 'static>(output: W) -> std::io::Result<(QueuedStderr, DrainGuard)> {
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&dropped);
    std::thread::Builder::new()
        .name("belter-log-writer".to_owned())
        .spawn(move || write_lines(output, &receiver, &counted))?;
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
fn write_lines<W: Write>(mut output: W, receiver: &Receiver<Message>, dropped: &AtomicU64) {
    while let Ok(message) = receiver.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let notice =
                format!("belterd: {lost} log lines dropped because standard error was not read\n");
            let _ = output.write_all(notice.as_bytes());
        }
        match message {
            Message::Line(line) => {
                let _ = output.write_all(&line);
            }
            Message::Drain(done) => {
                let _ = output.flush();
                let _ = done.send(());
            }
        }
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
    fn lines_are_written_in_order() {
        let output = Captured::default();
        let (writer, guard) = queued(output.clone()).unwrap();
        log(&writer, "first\n");
        log(&writer, "second\n");
        drop(guard);
        assert_eq!(output.bytes.lock().unwrap().as_slice(), b"first\nsecond\n");
    }

    #[test]
    fn stalled_output_drops_and_counts_lines() {
        let output = Captured::default();
        let closed = output.gate.lock().unwrap();
        let (writer, guard) = queued(output.clone()).unwrap();
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
        assert!(text.contains("log lines dropped"), "{text}");
        assert!(text.ends_with("after\n"), "{text}");
        let written = text.matches("line\n").count();
        assert!(written <= QUEUE_LINES + 1, "{written} lines written");
    }
}
