//! Logging to stderr that never blocks the event loop.
//!
//! A log line is formatted on the loop thread and handed to a writer thread through a bounded
//! queue. If stderr is slow (a full pipe, a busy journald) the queue fills and further lines are
//! counted and dropped instead of stalling RTP pacing; the writer reports how many it lost.
//! [`LogGuard`] flushes the queue when the server exits, so the last lines are not lost.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use onhold_core::config::LogFormat;
use tracing::warn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines that may wait for stderr.
const QUEUE_LINES: usize = 8192;
/// How long exit waits for queued lines to reach stderr.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Msg {
    Line(Vec<u8>),
    /// Everything queued before this has been written when the answer comes.
    Flush(SyncSender<()>),
}

/// Keeps the writer thread's queue; dropping it waits (bounded) until queued lines are written.
pub struct LogGuard {
    tx: Option<SyncSender<Msg>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let (ack_tx, ack_rx) = mpsc::sync_channel(1);
            if tx.send(Msg::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.recv_timeout(FLUSH_WAIT);
            }
        }
    }
}

#[derive(Clone)]
struct QueueWriter {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// One event's bytes; sent as one line when tracing drops the writer after the event.
struct LineWriter {
    buf: Vec<u8>,
    queue: QueueWriter,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        if let Err(TrySendError::Full(_)) = self.queue.tx.try_send(Msg::Line(line)) {
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::new(),
            queue: self.clone(),
        }
    }
}

fn write_lines(rx: Receiver<Msg>, dropped: Arc<AtomicU64>, mut out: impl Write) {
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                let _ = out.write_all(&line);
                report_dropped(&dropped, &mut out);
            }
            Msg::Flush(ack) => {
                report_dropped(&dropped, &mut out);
                let _ = out.flush();
                let _ = ack.send(());
            }
        }
    }
}

/// Lines are dropped only while the queue is full, so the count goes out as soon as it has
/// room again, after the line that was waiting.
fn report_dropped(dropped: &AtomicU64, out: &mut impl Write) {
    let lost = dropped.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let _ = writeln!(
            out,
            "onhold: {lost} log lines dropped: stderr was not keeping up"
        );
    }
}

/// Swaps the level filter on SIGHUP; unset when `RUST_LOG` decides (it keeps precedence).
type SetFilter = Box<dyn Fn(EnvFilter) + Send + Sync>;
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Apply a reloaded `log_level` (a no-op when `RUST_LOG` is set: it overrides the file).
pub fn set_level(level: &str) {
    if let Some(set) = SET_FILTER.get() {
        set(EnvFilter::new(level));
    }
}

/// Logs go to stderr, human or JSON; `RUST_LOG` (full filter syntax) overrides `log_level`.
pub fn init_logging(level: &str, format: LogFormat) -> LogGuard {
    use std::io::IsTerminal;
    let (filter, bad_rust_log, from_rust_log) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None, true),
            Err(e) => (
                EnvFilter::new(level),
                Some(format!("ignoring RUST_LOG={spec}: {e}")),
                false,
            ),
        },
        _ => (EnvFilter::new(level), None, false),
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer = QueueWriter {
        tx: tx.clone(),
        dropped: Arc::clone(&dropped),
    };
    let spawned =
        crate::signals::spawn_helper("onhold-log", move || write_lines(rx, dropped, io::stderr()));
    if spawned.is_err() {
        // No thread: log straight to stderr rather than not at all.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(io::stderr)
            .try_init();
        return LogGuard { tx: None };
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Human => {
            let builder = builder
                .with_ansi(io::stderr().is_terminal())
                .with_target(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            remember_reload(from_rust_log, move |f| {
                let _ = handle.reload(f);
            });
            builder.try_init()
        }
        LogFormat::Json => {
            let builder = builder.json().with_ansi(false).with_filter_reloading();
            let handle = builder.reload_handle();
            remember_reload(from_rust_log, move |f| {
                let _ = handle.reload(f);
            });
            builder.try_init()
        }
    };
    if result.is_ok() {
        if let Some(w) = bad_rust_log {
            warn!("{w}");
        }
    }
    LogGuard { tx: Some(tx) }
}

fn remember_reload(from_rust_log: bool, set: impl Fn(EnvFilter) + Send + Sync + 'static) {
    if !from_rust_log {
        let _ = SET_FILTER.set(Box::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that records what reaches "stderr".
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_a_full_queue_drops_and_reports() {
        let (tx, rx) = mpsc::sync_channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = QueueWriter {
            tx: tx.clone(),
            dropped: Arc::clone(&dropped),
        };
        let log = |line: &str| {
            let mut w = writer.make_writer();
            writeln!(w, "{line}").unwrap();
        };
        // No writer thread yet: the queue holds two lines, the third is dropped and counted.
        log("line 0");
        log("line 1");
        log("line 2");
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        let sink = Sink::default();
        let out = sink.clone();
        let thread = std::thread::spawn(move || write_lines(rx, dropped, out));
        drop(LogGuard {
            tx: Some(tx.clone()),
        });
        log("line 3");
        drop(LogGuard { tx: Some(tx) });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "line 0\nonhold: 1 log lines dropped: stderr was not keeping up\nline 1\nline 3\n"
        );
        drop(writer);
        thread.join().unwrap();
    }
}
