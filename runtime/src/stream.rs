//! SIP over TCP as both runtimes run it (RFC 3261 §18): the limits every connection has,
//! accepted or opened by us, and the table that finds the connection for a message.
//!
//! A message the core sends goes on the connection from its `local` to its `remote` (a response
//! on the connection its request came in on, §18.2.2); failing that, on any open connection to
//! `remote` (one we opened earlier for a request of ours); failing that, the runtime opens one
//! (§18.1.1) and files it under the core's `local`, so the core keeps seeing one local address
//! per listener, and what arrives on it reaches the core as from any accepted connection.
//! Messages wait in the connection's queue until it connects.
//!
//! # What one peer can make us hold
//! A connection costs a descriptor, a slot under [`MAX_CONNECTIONS`] and its buffers, so none
//! is kept open for nothing:
//! - An accepted connection must deliver a whole message within [`FIRST_MESSAGE_TIMEOUT`] of
//!   its accept: one that sends nothing, or only keep-alives, or dribbles, is closed then.
//! - Every message must be whole within [`MESSAGE_TIMEOUT`] of its first byte (slowloris: a
//!   header section sent a byte at a time would otherwise hold its buffer forever).
//! - A connection that has carried a message is closed only after [`IDLE_TIMEOUT`] with no
//!   byte read or written. It may carry a call whose SIP is silent while the music goes over
//!   UDP, so this is long; see the constant for why 30 minutes.
//! - One source ([`source_of`]: an IPv4 address, an IPv6 /64) holds at most
//!   [`MAX_PER_SOURCE`] connections, so one client cannot take the whole table.
//! - A buffer grown for a large message is shrunk back once that message is cut or written
//!   ([`shrink_buffer`]); closing a connection drops both its buffers.
//!
//! [`Liveness`] keeps one connection's times and says when it is due to close; each runtime
//! checks it (smol: a timer in the connection's task; mio: one sweep over the table at the
//! earliest deadline).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Concurrent connections, accepted and opened together; beyond it an accepted one is closed
/// at once and none is opened (the request fails like a timeout).
pub const MAX_CONNECTIONS: usize = 4096;
/// Concurrent connections per source ([`source_of`]), counted like [`MAX_CONNECTIONS`]; beyond
/// it an accepted one is closed at once and none is opened. A source is one host, or one NAT
/// with the hosts behind it: 64 leaves room for a PBX or proxy's few connections, or a site's
/// phones each with its own, while 64 such sources are needed to fill the table.
pub const MAX_PER_SOURCE: usize = 64;
/// How long opening a connection may take before the request it was for fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An accepted connection is closed unless a whole message has arrived on it this long after
/// the accept. A client opens a connection to send a request and writes it at once, so 30 s
/// is room for the slowest link and a busy client; keep-alives before the first message do
/// not count (they keep a flow alive, and there is none yet).
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A message (its header section and its body) must be whole this long after its first byte,
/// else the connection is closed. 10 s is enough for the largest message we take (64 KiB of
/// head, 64 KiB of body) at 13 KB/s; a client writes a message at once, so only a stalled or
/// hostile sender is slower.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has carried a message is closed after this long with no byte read or
/// written. It may carry a call: the music goes over UDP, and SIP on the connection is silent
/// until someone refreshes or hangs up. 30 min is RFC 4028's recommended session interval
/// (1800 s), so a call under session timers refreshes (at half the interval, RFC 4028 §10)
/// well within it, and RFC 5626 keep-alives (every 95–120 s on TCP, §4.4.1) keep any flow
/// open. What it closes is a connection whose peer vanished without a FIN (a NAT that dropped
/// its mapping, a host that lost power) and a call with no timers silent for half an hour;
/// that call goes on, and a request of ours then opens a new connection (§18.1.1), as a
/// caller opens one for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A connection's read or write buffer that grew past this for one large message (or a burst
/// the peer was slow to take) is shrunk back once that is gone, so an idle connection holds
/// at most this much (a usual message is 1–4 KB; the largest we take is 128 KiB).
pub const BUFFER_KEEP: usize = 16 * 1024;

/// After bytes were taken off the front of `buf` (messages cut, or written): give back the
/// room a large message needed once it is gone, not while one is still there (shrinking a
/// buffer that is about to grow again would copy it at every read).
pub fn shrink_buffer(buf: &mut Vec<u8>) {
    if buf.capacity() > BUFFER_KEEP && buf.len() <= BUFFER_KEEP / 2 {
        buf.shrink_to(BUFFER_KEEP / 2);
    }
}

/// The source a connection counts against for [`MAX_PER_SOURCE`]: the IPv4 address, or the
/// /64 of an IPv6 one (a host is given a whole /64 and can pick any address in it); an
/// IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why there is no room for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_CONNECTIONS`] are open.
    Table,
    /// Its source has [`MAX_PER_SOURCE`] open.
    Source,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Full::Table => "too many connections",
            Full::Source => "too many connections from this source",
        })
    }
}

/// Why a connection is due to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No whole message within [`FIRST_MESSAGE_TIMEOUT`] of the accept.
    NoMessage,
    /// A message not whole within [`MESSAGE_TIMEOUT`] of its first byte.
    SlowMessage,
    /// Nothing read or written for [`IDLE_TIMEOUT`].
    Idle,
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expired::NoMessage => "no whole message since the accept",
            Expired::SlowMessage => "a message still incomplete at its deadline",
            Expired::Idle => "idle",
        })
    }
}

/// One connection's times, against the deadlines above.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    /// Accepted, with no whole message yet: when.
    accepted: Option<Instant>,
    /// The buffer holds the start of a message: since when.
    message: Option<Instant>,
    /// The last byte read or written.
    active: Instant,
}

impl Liveness {
    /// A connection accepted at `now`: it owes us a message.
    pub fn accepted(now: Instant) -> Liveness {
        Liveness {
            accepted: Some(now),
            message: None,
            active: now,
        }
    }

    /// A connection we opened at `now`, for a message of ours.
    pub fn opened(now: Instant) -> Liveness {
        Liveness {
            accepted: None,
            message: None,
            active: now,
        }
    }

    /// Bytes were read at `now` and cut: `messages` whole ones came off the buffer, and
    /// `partial` says whether the start of another is left in it.
    pub fn read(&mut self, now: Instant, messages: usize, partial: bool) {
        self.active = now;
        if messages > 0 {
            self.accepted = None;
            self.message = None;
        }
        if !partial {
            self.message = None;
        } else if self.message.is_none() {
            self.message = Some(now);
        }
    }

    /// Bytes were written at `now`.
    pub fn wrote(&mut self, now: Instant) {
        self.active = now;
    }

    /// When the connection is due to close, unless more happens before.
    pub fn deadline(&self) -> Instant {
        let mut at = self.active + IDLE_TIMEOUT;
        if let Some(t) = self.accepted {
            at = at.min(t + FIRST_MESSAGE_TIMEOUT);
        }
        if let Some(t) = self.message {
            at = at.min(t + MESSAGE_TIMEOUT);
        }
        at
    }

    /// Whether the connection is due to close at `now`, and why.
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        if self.message.is_some_and(|t| t + MESSAGE_TIMEOUT <= now) {
            Some(Expired::SlowMessage)
        } else if self
            .accepted
            .is_some_and(|t| t + FIRST_MESSAGE_TIMEOUT <= now)
        {
            Some(Expired::NoMessage)
        } else if self.active + IDLE_TIMEOUT <= now {
            Some(Expired::Idle)
        } else {
            None
        }
    }
}

/// Connections by (local, remote), each holding a runtime's handle `C` (a writer, a slab index).
#[derive(Debug)]
pub struct Peers<C> {
    by_remote: BTreeMap<SocketAddr, Vec<(SocketAddr, C)>>,
    /// Connections per [`source_of`] the remote address (entries are never zero).
    per_source: BTreeMap<IpAddr, usize>,
    len: usize,
}

impl<C> Default for Peers<C> {
    fn default() -> Self {
        Peers {
            by_remote: BTreeMap::new(),
            per_source: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<C> Peers<C> {
    /// Connections open or being opened.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for one more connection with `remote`, under [`MAX_CONNECTIONS`] and its source's
    /// [`MAX_PER_SOURCE`].
    pub fn room_for(&self, remote: SocketAddr) -> Result<(), Full> {
        if self.len >= MAX_CONNECTIONS {
            return Err(Full::Table);
        }
        let source = source_of(remote.ip());
        if self.per_source.get(&source).copied().unwrap_or(0) >= MAX_PER_SOURCE {
            return Err(Full::Source);
        }
        Ok(())
    }

    pub fn insert(&mut self, local: SocketAddr, remote: SocketAddr, conn: C) {
        let list = self.by_remote.entry(remote).or_default();
        match list.iter_mut().find(|(l, _)| *l == local) {
            Some(slot) => slot.1 = conn,
            None => {
                list.push((local, conn));
                self.len += 1;
                *self.per_source.entry(source_of(remote.ip())).or_default() += 1;
            }
        }
    }

    pub fn remove(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<C> {
        let list = self.by_remote.get_mut(&remote)?;
        let at = list.iter().position(|(l, _)| *l == local)?;
        let (_, conn) = list.swap_remove(at);
        if list.is_empty() {
            self.by_remote.remove(&remote);
        }
        self.len -= 1;
        let source = source_of(remote.ip());
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        Some(conn)
    }

    /// The connection for a message from `local` to `remote`: that exact one, else any to
    /// `remote`.
    pub fn get(&self, local: SocketAddr, remote: SocketAddr) -> Option<&C> {
        let list = self.by_remote.get(&remote)?;
        list.iter()
            .find(|(l, _)| *l == local)
            .or_else(|| list.first())
            .map(|(_, c)| c)
    }

    /// Is any connection to `remote` still open? When the last one closes, requests we sent
    /// there can get no answer (the runtime tells the core: `Server::transport_error`).
    pub fn reaches(&self, remote: SocketAddr) -> bool {
        self.by_remote.contains_key(&remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_takes_its_own_connection_else_any_to_the_same_peer() {
        let l1: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let l2: SocketAddr = "127.0.0.2:5060".parse().unwrap();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let mut p = Peers::default();
        p.insert(l1, a, "accepted from a");
        p.insert(l2, a, "opened to a");
        p.insert(l1, b, "accepted from b");
        p.insert(l1, b, "accepted from b again");
        assert_eq!(p.len(), 3, "one connection per (local, remote)");
        assert_eq!(p.get(l1, a), Some(&"accepted from a"));
        assert_eq!(p.get(l2, a), Some(&"opened to a"));
        assert_eq!(p.get(l2, b), Some(&"accepted from b again"), "any to b");
        assert_eq!(p.get(l1, "127.0.0.1:9".parse().unwrap()), None);
        assert_eq!(p.remove(l1, a), Some("accepted from a"));
        assert!(p.reaches(a), "one connection to a is left");
        assert_eq!(p.get(l1, a), Some(&"opened to a"));
        assert_eq!(p.remove(l2, a), Some("opened to a"));
        assert!(!p.reaches(a));
        assert_eq!(p.remove(l2, a), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.room_for(a), Ok(()));
    }

    #[test]
    fn one_source_is_capped_and_others_are_not() {
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut p = Peers::default();
        for port in 0..MAX_PER_SOURCE as u16 {
            let remote = SocketAddr::from(([192, 0, 2, 1], 40000 + port));
            assert_eq!(p.room_for(remote), Ok(()));
            p.insert(local, remote, port);
        }
        let next = SocketAddr::from(([192, 0, 2, 1], 50000));
        assert_eq!(p.room_for(next), Err(Full::Source));
        assert_eq!(p.room_for(SocketAddr::from(([192, 0, 2, 2], 5060))), Ok(()));
        p.insert(local, SocketAddr::from(([192, 0, 2, 1], 40000)), 99);
        assert_eq!(
            p.len(),
            MAX_PER_SOURCE,
            "a replaced entry is not counted twice"
        );
        p.remove(local, SocketAddr::from(([192, 0, 2, 1], 40001)));
        assert_eq!(
            p.room_for(next),
            Ok(()),
            "a closed connection frees its source's slot"
        );
        for port in 0..MAX_PER_SOURCE as u16 {
            p.remove(local, SocketAddr::from(([192, 0, 2, 1], 40000 + port)));
        }
        assert!(p.is_empty());
        assert!(
            p.per_source.is_empty(),
            "no counts left for sources with no connection"
        );
    }

    #[test]
    fn an_ipv6_source_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            source_of(ip("2001:db8:1:2:aaaa::1")),
            source_of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_of(ip("2001:db8:1:2::1")),
            source_of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(source_of(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn an_accepted_connection_owes_a_message_and_each_message_has_a_deadline() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Liveness::accepted(t0);
        assert_eq!(l.deadline(), t0 + FIRST_MESSAGE_TIMEOUT);
        // Keep-alives (nothing left in the buffer) do not move the first deadline.
        l.read(t0 + s(20), 0, false);
        assert_eq!(
            l.expired(t0 + FIRST_MESSAGE_TIMEOUT),
            Some(Expired::NoMessage)
        );
        // A message begun late is still due at the first deadline.
        l.read(t0 + s(25), 0, true);
        assert_eq!(l.deadline(), t0 + FIRST_MESSAGE_TIMEOUT);
        // Whole: now only idleness closes it.
        l.read(t0 + s(28), 1, false);
        assert_eq!(l.deadline(), t0 + s(28) + IDLE_TIMEOUT);
        assert_eq!(l.expired(t0 + s(28) + IDLE_TIMEOUT - s(1)), None);
        // A slowloris: its first byte starts the clock, later bytes do not move it.
        l.read(t0 + s(100), 0, true);
        l.read(t0 + s(105), 0, true);
        assert_eq!(l.deadline(), t0 + s(100) + MESSAGE_TIMEOUT);
        assert_eq!(l.expired(t0 + s(109)), None);
        assert_eq!(l.expired(t0 + s(110)), Some(Expired::SlowMessage));
        // A read that ends one message and begins the next starts the next one's clock.
        l.read(t0 + s(108), 1, true);
        assert_eq!(l.deadline(), t0 + s(108) + MESSAGE_TIMEOUT);
        l.read(t0 + s(109), 1, false);
        l.wrote(t0 + s(200));
        assert_eq!(l.deadline(), t0 + s(200) + IDLE_TIMEOUT);
        assert_eq!(l.expired(t0 + s(200) + IDLE_TIMEOUT), Some(Expired::Idle));
        let opened = Liveness::opened(t0);
        assert_eq!(
            opened.deadline(),
            t0 + IDLE_TIMEOUT,
            "we opened it: it owes us nothing"
        );
    }

    #[test]
    fn a_read_buffer_grown_for_a_large_message_is_shrunk_once_it_is_cut() {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&[b'x'; 100]);
        shrink_buffer(&mut buf);
        assert_eq!(buf.capacity(), 4096, "a small buffer is kept as it is");
        buf.resize(100_000, b'x');
        shrink_buffer(&mut buf);
        assert!(
            buf.capacity() >= 100_000,
            "not while the large message is still there"
        );
        buf.drain(..99_900);
        shrink_buffer(&mut buf);
        assert!(buf.capacity() <= BUFFER_KEEP, "{}", buf.capacity());
        assert_eq!(buf, [b'x'; 100]);
    }
}
