//! The event stream behind `GET /api/events`: a bounded ring of Server-Sent Event frames that
//! the loop appends to and each subscriber's thread reads at its own pace.
//!
//! The loop never waits for a subscriber: it holds the lock only to append one frame. A
//! subscriber that falls a whole ring behind, or whose socket stays blocked past the write
//! timeout, is dropped; it may reconnect with `Last-Event-ID` and get what the ring still holds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Frames kept for late readers and `Last-Event-ID` resumes.
pub const RING: usize = 4096;

/// One event, ready to write.
#[derive(Clone)]
struct Frame {
    id: u64,
    /// A SIP message (sent only to subscribers that asked for them).
    sip: bool,
    text: Arc<str>,
}

#[derive(Default)]
struct Ring {
    /// The id the next event gets (ids start at 1).
    next: u64,
    frames: VecDeque<Frame>,
    closed: bool,
}

/// The ring and the subscribers' wake-up.
#[derive(Default)]
pub struct Hub {
    ring: Mutex<Ring>,
    ready: Condvar,
    /// Subscribers that asked for SIP messages (`?sip=1`): the loop traces SIP only while
    /// there are any.
    sip_subscribers: AtomicUsize,
}

/// What a subscriber's next read gave.
pub enum Next {
    /// Frames to write, in order.
    Frames(Vec<Arc<str>>),
    /// Nothing new within the wait: time for a keep-alive comment.
    Idle,
    /// The subscriber missed frames that are gone from the ring: drop it.
    Lagged,
    /// The server is stopping.
    Closed,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panicking subscriber thread cannot leave the ring half-written: every change is one
        // push or pop. Take it back from a poisoned lock.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append an event named `name` with JSON `data`; its id is returned.
    pub fn publish(&self, name: &str, data: &str, sip: bool) -> u64 {
        let mut ring = self.lock();
        ring.next = ring.next.max(1);
        let id = ring.next;
        ring.next += 1;
        let text = format!("id: {id}\nevent: {name}\ndata: {data}\n\n");
        if ring.frames.len() == RING {
            ring.frames.pop_front();
        }
        ring.frames.push_back(Frame {
            id,
            sip,
            text: text.into(),
        });
        drop(ring);
        self.ready.notify_all();
        id
    }

    /// End every stream (shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn sip_subscribers(&self) -> usize {
        self.sip_subscribers.load(Ordering::Relaxed)
    }

    /// A new subscriber: from the event after `last_id` (a resume) while the ring still holds
    /// it, else from the next event.
    pub fn subscribe(self: &Arc<Hub>, last_id: Option<u64>, sip: bool) -> Subscriber {
        let ring = self.lock();
        let next = ring.next.max(1);
        let oldest = ring.frames.front().map_or(next, |f| f.id);
        let cursor = match last_id {
            Some(id) => (id + 1).clamp(oldest, next),
            None => next,
        };
        drop(ring);
        if sip {
            self.sip_subscribers.fetch_add(1, Ordering::Relaxed);
        }
        Subscriber {
            hub: Arc::clone(self),
            cursor,
            sip,
        }
    }
}

/// One reader of the stream, at its own position.
pub struct Subscriber {
    hub: Arc<Hub>,
    /// The id of the next frame it wants.
    cursor: u64,
    sip: bool,
}

impl Subscriber {
    /// Wait up to `idle` for frames after the cursor.
    pub fn next(&mut self, idle: Duration) -> Next {
        let ring = self.hub.lock();
        let (ring, _) = self
            .hub
            .ready
            .wait_timeout_while(ring, idle, |r| !r.closed && r.next <= self.cursor)
            .unwrap_or_else(|e| e.into_inner());
        if ring.closed {
            return Next::Closed;
        }
        let Some(oldest) = ring.frames.front().map(|f| f.id) else {
            return Next::Idle;
        };
        if oldest > self.cursor {
            return Next::Lagged;
        }
        let skip = (self.cursor - oldest) as usize;
        let frames: Vec<Arc<str>> = ring
            .frames
            .iter()
            .skip(skip)
            .filter(|f| self.sip || !f.sip)
            .map(|f| Arc::clone(&f.text))
            .collect();
        self.cursor = ring.next;
        if frames.is_empty() {
            Next::Idle
        } else {
            Next::Frames(frames)
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.sip {
            self.hub.sip_subscribers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(next: Next) -> Vec<String> {
        match next {
            Next::Frames(f) => f.iter().map(|t| t.to_string()).collect(),
            Next::Idle => vec!["idle".into()],
            Next::Lagged => vec!["lagged".into()],
            Next::Closed => vec!["closed".into()],
        }
    }

    #[test]
    fn subscribers_read_in_order_from_their_own_position_and_sip_only_when_asked() {
        let hub = Arc::new(Hub::default());
        hub.publish("before", "{}", false);
        let mut plain = hub.subscribe(None, false);
        let mut sip = hub.subscribe(None, true);
        assert_eq!(hub.sip_subscribers(), 1);
        hub.publish("a", "1", false);
        hub.publish("sip", "2", true);
        let t = Duration::from_millis(1);
        assert_eq!(
            texts(plain.next(t)),
            ["id: 2\nevent: a\ndata: 1\n\n"],
            "new subscribers start after what was there"
        );
        assert_eq!(texts(sip.next(t)).len(), 2);
        assert_eq!(texts(plain.next(t)), ["idle"]);
        // A resume from id 1 gets 2 and 3 (without the SIP one for a plain subscriber).
        let mut resumed = hub.subscribe(Some(1), false);
        assert_eq!(texts(resumed.next(t)), ["id: 2\nevent: a\ndata: 1\n\n"]);
        drop(sip);
        assert_eq!(hub.sip_subscribers(), 0);
        hub.close();
        assert_eq!(texts(plain.next(t)), ["closed"]);
    }

    #[test]
    fn a_subscriber_a_whole_ring_behind_is_dropped() {
        let hub = Arc::new(Hub::default());
        let mut slow = hub.subscribe(None, false);
        for i in 0..RING + 1 {
            hub.publish("e", &i.to_string(), false);
        }
        assert_eq!(texts(slow.next(Duration::from_millis(1))), ["lagged"]);
        // A resume from before the ring starts at its oldest frame.
        let mut late = hub.subscribe(Some(0), false);
        let got = texts(late.next(Duration::from_millis(1)));
        assert_eq!(got.len(), RING);
        assert!(got[0].starts_with("id: 2\n"), "{}", got[0]);
    }
}
