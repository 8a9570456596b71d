//! The live classes' feeds: per live class of the library, the jitter buffer the runtime's
//! audio goes into ([`LiveBuffer`]) and what is known of its source (connected, outages).
//!
//! The runtime owns the connection and the decoding; it hands over PCM as it arrives
//! (`Server::live_audio`) and says when the source comes and goes (`Server::live_source`). A feed
//! is kept by class name, so a reload that renumbers the classes keeps every buffer; `by_class`
//! maps the library in use to them for the packet path.

use std::time::Duration;

use super::outbox::Outbox;
use super::{Event, LiveInfo, LiveState};
use crate::media::{ClassId, Library, LiveBuffer};

#[derive(Debug)]
pub(crate) struct Feed {
    name: String,
    url: String,
    pub buffer: LiveBuffer,
    connected: bool,
    outages: u64,
    /// Until the first connection, a failure is an outage too; after one, only the drop is.
    ever_down: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Feeds {
    feeds: Vec<Feed>,
    /// The feed of each class of the library in use (`None`: not live).
    by_class: Vec<Option<usize>>,
    g722: bool,
}

/// Samples (8 kHz) in a duration, and back.
fn samples(d: Duration) -> u64 {
    (d.as_micros() / 125) as u64
}

fn duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 125)
}

impl Feeds {
    pub fn new(g722: bool) -> Feeds {
        Feeds {
            g722,
            ..Feeds::default()
        }
    }

    /// Map `library`'s live classes to their feeds, making the new ones.
    pub fn relink(&mut self, library: &Library) {
        self.by_class = vec![None; library.class_count()];
        for (class, name, spec) in library.live_classes() {
            let i = match self.feeds.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    self.feeds.push(Feed {
                        name: name.to_string(),
                        url: spec.url.clone(),
                        buffer: LiveBuffer::new(samples(spec.buffer), self.g722),
                        connected: false,
                        outages: 0,
                        ever_down: false,
                        last_error: None,
                    });
                    self.feeds.len() - 1
                }
            };
            self.feeds[i].url = spec.url.clone();
            self.by_class[class.0 as usize] = Some(i);
        }
    }

    /// The feed a class plays, if it is live.
    #[inline]
    pub fn of(&mut self, class: ClassId) -> Option<&mut Feed> {
        let i = (*self.by_class.get(class.0 as usize)?)?;
        self.feeds.get_mut(i)
    }

    fn named(&mut self, class: &str) -> Option<&mut Feed> {
        let i = self
            .by_class
            .iter()
            .flatten()
            .find(|&&i| self.feeds[i].name == class)?;
        self.feeds.get_mut(*i)
    }

    /// Audio for `class` arrived at grid position `grid`.
    pub fn audio(&mut self, out: &mut Outbox, class: &str, grid: u64, pcm8: &[i16], pcm16: &[i16]) {
        let Some(feed) = self.named(class) else {
            return;
        };
        let was = feed.buffer.playing();
        feed.buffer.push(grid, pcm8, pcm16);
        if !was && feed.buffer.playing() {
            feed.event(out, LiveState::Playing, None);
        }
    }

    /// The runtime reached the source (`Ok`) or lost it (`Err`, why).
    pub fn source(&mut self, out: &mut Outbox, class: &str, state: Result<(), String>) {
        let Some(feed) = self.named(class) else {
            return;
        };
        match state {
            Ok(()) if !feed.connected => {
                feed.connected = true;
                feed.event(out, LiveState::Connected, None);
            }
            Ok(()) => {}
            Err(why) => {
                // A retry that fails again is the same outage.
                if feed.connected || !feed.ever_down {
                    feed.outages += 1;
                    feed.event(out, LiveState::Down, Some(why.clone()));
                }
                feed.connected = false;
                feed.ever_down = true;
                feed.last_error = Some(why);
            }
        }
    }

    pub fn info(&self, grid: u64) -> Vec<LiveInfo> {
        self.by_class
            .iter()
            .flatten()
            .map(|&i| {
                let f = &self.feeds[i];
                LiveInfo {
                    class: f.name.clone(),
                    url: f.url.clone(),
                    connected: f.connected,
                    // With no caller reading, an underrun shows as an empty buffer.
                    playing: f.buffer.playing() && f.buffer.buffered(grid) > 0,
                    outages: f.outages,
                    underruns: f.buffer.underruns(),
                    buffered: duration(f.buffer.buffered(grid)),
                    target: duration(f.buffer.target()),
                    received: duration(f.buffer.received()),
                    last_error: f.last_error.clone(),
                }
            })
            .collect()
    }
}

impl Feed {
    pub fn event(&self, out: &mut Outbox, state: LiveState, reason: Option<String>) {
        out.event(Event::Live {
            class: self.name.clone(),
            state,
            reason,
        });
    }
}
