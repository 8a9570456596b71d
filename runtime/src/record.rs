//! Call recording: what callers send (decoded by the core, `Event::Heard`) written as WAV files
//! named by time and Call-ID in `record_dir`, on a writer thread so the loop never waits for a
//! disk. Each file has a valid header from its first byte and its sizes are written when the
//! recording stops: at the call's end, when asked, or on shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onhold_core::config::Config;
use onhold_core::{CallHandle, CallInfo};
use tracing::{info, warn};

use crate::control::taps::wav_header;
use crate::signals::spawn_helper;

enum Msg {
    Start {
        call: CallHandle,
        path: PathBuf,
        rate: u32,
    },
    Audio {
        call: CallHandle,
        data: Arc<[u8]>,
    },
    Stop {
        call: CallHandle,
    },
    Finish(mpsc::SyncSender<()>),
}

/// The loop's side: which calls are recorded, and the channel to the writer.
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    dir: PathBuf,
    /// Classes whose every call is recorded.
    classes: BTreeSet<String>,
    active: BTreeMap<CallHandle, PathBuf>,
}

impl Recorder {
    /// A recorder when `record_dir` is set; `Err` is one line (the writer thread did not start).
    pub fn start(config: &Config) -> Result<Option<Recorder>, String> {
        let Some(dir) = config.record_dir.clone() else {
            return Ok(None);
        };
        let (tx, rx) = mpsc::channel();
        let limits = (
            config.record_max_bytes as u64,
            config.record_total_bytes as u64,
        );
        let writer_dir = dir.clone();
        spawn_helper("onhold-record", move || write_loop(&writer_dir, limits, rx))
            .map_err(|e| format!("cannot start the recording thread: {e}"))?;
        let classes = config
            .music
            .classes
            .iter()
            .filter(|c| c.record)
            .map(|c| c.name.clone())
            .collect();
        Ok(Some(Recorder {
            tx,
            dir,
            classes,
            active: BTreeMap::new(),
        }))
    }

    /// The calls being recorded (the loop taps them).
    pub fn calls(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.active.keys().copied()
    }

    /// A call's media started: record it if its class says so.
    pub fn call_started(&mut self, info: &CallInfo) {
        let class = info.media.as_ref().map(|m| m.source.as_str());
        if class.is_some_and(|c| self.classes.contains(c)) {
            self.begin(info);
        }
    }

    /// Start recording a call (its media must have started); the file's path.
    pub fn begin(&mut self, info: &CallInfo) -> Option<PathBuf> {
        let media = info.media.as_ref()?;
        if let Some(path) = self.active.get(&info.call) {
            return Some(path.clone());
        }
        let rate = media.codec.sample_rate();
        let path = self.dir.join(file_name(SystemTime::now(), &info.call_id));
        let _ = self.tx.send(Msg::Start {
            call: info.call,
            path: path.clone(),
            rate,
        });
        self.active.insert(info.call, path.clone());
        Some(path)
    }

    /// Stop recording a call (at its end, or when asked); the file's path if it was.
    pub fn end(&mut self, call: CallHandle) -> Option<PathBuf> {
        let path = self.active.remove(&call)?;
        let _ = self.tx.send(Msg::Stop { call });
        Some(path)
    }

    pub fn audio(&self, call: CallHandle, data: &Arc<[u8]>) {
        if self.active.contains_key(&call) {
            let data = Arc::clone(data);
            let _ = self.tx.send(Msg::Audio { call, data });
        }
    }

    /// Finish every file (shutdown), waiting at most `within` for the disk.
    pub fn finish(&mut self, within: Duration) {
        self.active.clear();
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Finish(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(within);
        }
    }
}

/// `20261206T174145Z-<Call-ID>.wav`, the Call-ID reduced to characters safe in a file name.
fn file_name(at: SystemTime, call_id: &str) -> String {
    let stamp: String = crate::control::rfc3339(at)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(15)
        .collect();
    let id: String = call_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .take(64)
        .collect();
    format!("{stamp}Z-{id}.wav")
}

/// An open recording.
struct Open {
    file: File,
    path: PathBuf,
    rate: u32,
    /// Bytes of samples written, and whether a cap stopped it.
    data: u64,
    capped: bool,
}

impl Open {
    /// Write the sizes into the header.
    fn finish(mut self) {
        let data = u32::try_from(self.data).unwrap_or(u32::MAX - 36);
        let sized = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(&wav_header(self.rate, data)))
            .and_then(|()| self.file.flush());
        match sized {
            Ok(()) => info!(
                file = %self.path.display(),
                seconds = self.data as f64 / 2.0 / f64::from(self.rate),
                "recording finished"
            ),
            Err(e) => warn!(file = %self.path.display(), "recording: {e}"),
        }
    }
}

/// The bytes of the WAV files already in `dir` (they count against the total).
fn used(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn write_loop(dir: &Path, (per_call, total_cap): (u64, u64), rx: mpsc::Receiver<Msg>) {
    let mut open: BTreeMap<CallHandle, Open> = BTreeMap::new();
    let mut total = used(dir);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Start { call, path, rate } => {
                if total >= total_cap {
                    warn!(file = %path.display(), "record_total_bytes reached: not recording");
                    continue;
                }
                let created = std::fs::create_dir_all(dir)
                    .and_then(|()| File::create(&path))
                    .and_then(|mut f| f.write_all(&wav_header(rate, 0)).map(|()| f));
                match created {
                    Ok(file) => {
                        total += 44;
                        open.insert(
                            call,
                            Open {
                                file,
                                path,
                                rate,
                                data: 0,
                                capped: false,
                            },
                        );
                    }
                    Err(e) => warn!(file = %path.display(), "cannot record: {e}"),
                }
            }
            Msg::Audio { call, data } => {
                let Some(o) = open.get_mut(&call) else {
                    continue;
                };
                let room = per_call
                    .saturating_sub(44 + o.data)
                    .min(total_cap.saturating_sub(total));
                // Whole samples only.
                let n = (data.len() as u64).min(room) as usize & !1;
                if n < data.len() && !o.capped {
                    o.capped = true;
                    warn!(file = %o.path.display(), "recording cap reached: the rest is not kept");
                }
                if n > 0 {
                    if let Err(e) = o.file.write_all(&data[..n]) {
                        warn!(file = %o.path.display(), "recording: {e}");
                        o.capped = true;
                        continue;
                    }
                    o.data += n as u64;
                    total += n as u64;
                }
            }
            Msg::Stop { call } => {
                if let Some(o) = open.remove(&call) {
                    o.finish();
                }
            }
            Msg::Finish(done) => {
                for (_, o) in std::mem::take(&mut open) {
                    o.finish();
                }
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_time_and_a_safe_call_id() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_579_305);
        assert_eq!(
            file_name(at, "abc/../x@host:5060"),
            "20261206T174825Z-abc_.._x_host_5060.wav"
        );
    }
}
