//! SIP over TCP (RFC 3261 §18) on the mio loop: listeners and connections in their own slab,
//! messages cut from the byte stream with `onhold_core::sip::frame`, each message written on the
//! connection `onhold_runtime::stream::Peers` picks. When there is none (our in-dialog request
//! to a proxy or a caller that has closed its connection), one is opened with a non-blocking
//! connect (§18.1.1), its bytes held until it connects or `CONNECT_TIMEOUT` passes. A peer that
//! cannot be reached (the connect failed, or its last connection closed) is listed for the loop,
//! which tells the core (`Server::transport_error`).
//!
//! Each connection keeps its `stream::Liveness`; one sweep over the slab at the earliest
//! deadline closes those past theirs (no message after the accept, a message too slow, idle;
//! see `onhold_runtime::stream`). Closing drops the slab entry and its buffers.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use onhold_core::{Server, Transport};
use onhold_runtime::net::{cut_stream, StreamUnit};
use onhold_runtime::stream::{shrink_buffer, Liveness, Peers, CONNECT_TIMEOUT};
use tracing::debug;

/// Bytes waiting to be written per connection; a peer that stops reading past this is closed.
const WRITE_LIMIT: usize = 1 << 20;
/// Bytes read per connection per wake, so one busy peer cannot starve pacing.
const READ_PER_WAKE: usize = 64 * 1024;
/// Least time between two sweeps for deadlines: connections due within it of each other
/// close in one sweep, so a crowd of them cannot make the loop scan the table every turn.
const SWEEP_SPACING: Duration = Duration::from_millis(100);

enum Entry {
    Listener(TcpListener),
    Conn(Conn),
}

struct Conn {
    io: TcpStream,
    /// The address the core knows this connection by (for one we opened: the listener the
    /// request named, not the ephemeral port).
    local: SocketAddr,
    remote: SocketAddr,
    /// Opened by us and not connected yet: give up at this time.
    connecting: Option<Instant>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Registered for writability (only while `wbuf` has bytes the socket would not take).
    wants_write: bool,
    live: Liveness,
}

/// TCP listeners and connections; token = `first_token + slab index`.
pub struct Tcp {
    first_token: usize,
    slab: Vec<Option<Entry>>,
    free: Vec<usize>,
    peers: Peers<usize>,
    /// Connections that hit the read budget with bytes possibly left (edge-triggered: no new
    /// event will come for them).
    more: Vec<usize>,
    /// Connections we are opening, by slab index.
    connecting: Vec<usize>,
    /// Peers that can no longer be reached, for `Server::transport_error`.
    unreachable: Vec<SocketAddr>,
    /// No connection's `Liveness` deadline is before this (`None`: no connection). A deadline
    /// only ever moves later, except when one is set (accept, open, a message begun), which
    /// lowers this at once; the sweep it triggers sets it to the true earliest again.
    sweep_at: Option<Instant>,
}

impl Tcp {
    pub fn new(first_token: usize) -> Tcp {
        Tcp {
            first_token,
            slab: Vec::new(),
            free: Vec::new(),
            peers: Peers::default(),
            more: Vec::new(),
            connecting: Vec::new(),
            unreachable: Vec::new(),
            sweep_at: None,
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token
    }

    fn insert(&mut self, registry: &Registry, mut entry: Entry) -> io::Result<usize> {
        let idx = self.free.pop().unwrap_or(self.slab.len());
        let token = Token(self.first_token + idx);
        let registered = match &mut entry {
            Entry::Listener(l) => registry.register(l, token, Interest::READABLE),
            // A connect in progress reports its end as writability.
            Entry::Conn(c) if c.wants_write => {
                registry.register(&mut c.io, token, Interest::READABLE | Interest::WRITABLE)
            }
            Entry::Conn(c) => registry.register(&mut c.io, token, Interest::READABLE),
        };
        if let Err(e) = registered {
            if idx < self.slab.len() {
                self.free.push(idx);
            }
            return Err(e);
        }
        if idx == self.slab.len() {
            self.slab.push(Some(entry));
        } else {
            self.slab[idx] = Some(entry);
        }
        Ok(idx)
    }

    pub fn listen(&mut self, registry: &Registry, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        self.insert(registry, Entry::Listener(listener))?;
        Ok(local)
    }

    fn close(&mut self, registry: &Registry, idx: usize) {
        if let Some(Entry::Conn(mut c)) = self.slab[idx].take() {
            let _ = registry.deregister(&mut c.io);
            self.peers.remove(c.local, c.remote);
            self.connecting.retain(|&i| i != idx);
            self.more.retain(|&i| i != idx);
            self.free.push(idx);
            if !self.peers.reaches(c.remote) {
                self.unreachable.push(c.remote);
            }
        }
    }

    /// Whether some peer became unreachable since [`take_unreachable`](Tcp::take_unreachable).
    pub fn has_unreachable(&self) -> bool {
        !self.unreachable.is_empty()
    }

    /// Peers that can no longer be reached since the last call.
    pub fn take_unreachable(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.unreachable)
    }

    /// When the oldest connect in progress times out, or a connection may be past its
    /// deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.connecting
            .iter()
            .filter_map(|&idx| match &self.slab[idx] {
                Some(Entry::Conn(c)) => c.connecting,
                _ => None,
            })
            .chain(self.sweep_at)
            .min()
    }

    /// A connection's deadline is `at` or later: sweep no later than that.
    fn sweep_by(&mut self, at: Instant) {
        self.sweep_at = Some(self.sweep_at.map_or(at, |s| s.min(at)));
    }

    /// Close the connects in progress that are past their time, and (once `sweep_at` has
    /// come) the connections past their deadline.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        self.expire_connects(registry, now);
        if self.sweep_at.is_none_or(|t| t > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        for (idx, entry) in self.slab.iter().enumerate() {
            let Some(Entry::Conn(c)) = entry else {
                continue;
            };
            match c.live.expired(now) {
                Some(why) => due.push((idx, why)),
                None => {
                    let at = c.live.deadline();
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        self.sweep_at = next.map(|t| t.max(now + SWEEP_SPACING));
        for (idx, why) in due {
            if let Some(Entry::Conn(c)) = &self.slab[idx] {
                debug!(remote = %c.remote, "tcp: {why}; closing");
            }
            self.close(registry, idx);
        }
    }

    fn expire_connects(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .connecting
            .iter()
            .copied()
            .filter(|&idx| {
                matches!(&self.slab[idx], Some(Entry::Conn(c)) if c.connecting.is_some_and(|t| t <= now))
            })
            .collect();
        for idx in late {
            debug!("tcp connect: timed out");
            self.close(registry, idx);
        }
    }

    /// Open a connection to `remote` for messages the core sends from `local`; the first
    /// message waits in `wbuf` until it connects. `None` when it cannot even start.
    fn connect(
        &mut self,
        registry: &Registry,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<usize> {
        if let Err(full) = self.peers.room_for(remote) {
            debug!(remote = %remote, "tcp: {full}; cannot open one");
            return None;
        }
        let io = match TcpStream::connect(remote) {
            Ok(io) => io,
            Err(e) => {
                debug!(remote = %remote, "tcp connect: {e}");
                return None;
            }
        };
        let now = Instant::now();
        let live = Liveness::opened(now);
        let conn = Conn {
            io,
            local,
            remote,
            connecting: Some(now + CONNECT_TIMEOUT),
            rbuf: Vec::new(),
            wbuf: data.to_vec(),
            wants_write: true,
            live,
        };
        match self.insert(registry, Entry::Conn(conn)) {
            Ok(idx) => {
                self.peers.insert(local, remote, idx);
                self.connecting.push(idx);
                self.sweep_by(live.deadline());
                Some(idx)
            }
            Err(e) => {
                debug!(remote = %remote, "tcp register: {e}");
                None
            }
        }
    }

    /// A connect in progress reported an event: `Some(true)` connected, `Some(false)` not yet,
    /// `None` failed (mio's TcpStream::connect: check `take_error`, then `peer_addr`).
    fn finish_connect(&mut self, idx: usize) -> Option<bool> {
        let Some(Some(Entry::Conn(c))) = self.slab.get_mut(idx) else {
            return None;
        };
        match c.io.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                debug!(remote = %c.remote, "tcp connect: {e}");
                return None;
            }
        }
        match c.io.peer_addr() {
            Ok(_) => {
                c.connecting = None;
                self.connecting.retain(|&i| i != idx);
                Some(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Some(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Some(false),
            Err(e) => {
                debug!(remote = %c.remote, "tcp connect: {e}");
                None
            }
        }
    }

    /// A readiness event for one of our tokens.
    pub fn ready(
        &mut self,
        registry: &Registry,
        server: &mut Server,
        token: Token,
        readable: bool,
        writable: bool,
    ) {
        let idx = token.0 - self.first_token;
        match self.slab.get_mut(idx) {
            Some(Some(Entry::Listener(_))) => self.accept(registry, idx),
            Some(Some(Entry::Conn(_))) => self.service(registry, server, idx, readable, writable),
            _ => {}
        }
    }

    fn service(
        &mut self,
        registry: &Registry,
        server: &mut Server,
        idx: usize,
        readable: bool,
        writable: bool,
    ) {
        if matches!(&self.slab[idx], Some(Entry::Conn(c)) if c.connecting.is_some()) {
            match self.finish_connect(idx) {
                Some(true) => {}
                Some(false) => return,
                None => return self.close(registry, idx),
            }
        }
        let mut keep = true;
        if readable {
            match self.read(server, idx) {
                Some(true) if !self.more.contains(&idx) => self.more.push(idx),
                Some(_) => {}
                None => keep = false,
            }
        }
        let has_output = matches!(&self.slab[idx], Some(Entry::Conn(c)) if !c.wbuf.is_empty());
        if keep && (writable || has_output) {
            keep = self.flush(registry, idx);
        }
        if !keep {
            self.close(registry, idx);
        }
    }

    /// Whether some connection still has unread bytes after its budget (poll without waiting).
    pub fn has_more(&self) -> bool {
        !self.more.is_empty()
    }

    /// Another read turn for the connections that hit their budget.
    pub fn read_more(&mut self, registry: &Registry, server: &mut Server) {
        for idx in std::mem::take(&mut self.more) {
            self.service(registry, server, idx, true, false);
        }
    }

    fn accept(&mut self, registry: &Registry, idx: usize) {
        loop {
            let Some(Some(Entry::Listener(l))) = self.slab.get(idx) else {
                return;
            };
            let (io, remote) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("tcp accept: {e}");
                    return;
                }
            };
            if let Err(full) = self.peers.room_for(remote) {
                debug!(remote = %remote, "tcp: {full}; closing");
                continue;
            }
            let Ok(local) = io.local_addr() else {
                continue;
            };
            let live = Liveness::accepted(Instant::now());
            let conn = Conn {
                io,
                local,
                remote,
                connecting: None,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wants_write: false,
                live,
            };
            match self.insert(registry, Entry::Conn(conn)) {
                Ok(c) => {
                    self.peers.insert(local, remote, c);
                    self.sweep_by(live.deadline());
                }
                Err(e) => debug!("tcp register: {e}"),
            }
        }
    }

    /// Read what is there (bounded), hand each whole message to the core. `None`: close;
    /// `Some(true)`: the budget ran out before the socket was drained.
    fn read(&mut self, server: &mut Server, idx: usize) -> Option<bool> {
        let Some(Some(Entry::Conn(c))) = self.slab.get_mut(idx) else {
            return None;
        };
        let result = Self::read_conn(c, server);
        let deadline = c.live.deadline();
        self.sweep_by(deadline);
        result
    }

    fn read_conn(c: &mut Conn, server: &mut Server) -> Option<bool> {
        let mut chunk = [0u8; 4096];
        let mut taken = 0;
        while taken < READ_PER_WAKE {
            match c.io.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    c.rbuf.extend_from_slice(&chunk[..n]);
                    taken += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
            let (local, remote, wbuf) = (c.local, c.remote, &mut c.wbuf);
            let mut messages = 0;
            let framed = cut_stream(&mut c.rbuf, |unit| match unit {
                StreamUnit::Message(m) => {
                    messages += 1;
                    server.handle_datagram(Instant::now(), Transport::Tcp, local, remote, m)
                }
                StreamUnit::Ping => wbuf.extend_from_slice(b"\r\n"),
            });
            shrink_buffer(&mut c.rbuf);
            c.live.read(Instant::now(), messages, !c.rbuf.is_empty());
            if !framed {
                debug!(remote = %remote, "tcp: unframeable stream; closing");
                return None;
            }
        }
        Some(true)
    }

    /// Write the pending bytes; ask for writability while some remain. `false`: close.
    fn flush(&mut self, registry: &Registry, idx: usize) -> bool {
        let token = Token(self.first_token + idx);
        let Some(Some(Entry::Conn(c))) = self.slab.get_mut(idx) else {
            return false;
        };
        let mut written = 0;
        while written < c.wbuf.len() {
            match c.io.write(&c.wbuf[written..]) {
                Ok(0) => return false,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if written > 0 {
            c.wbuf.drain(..written);
            shrink_buffer(&mut c.wbuf);
            c.live.wrote(Instant::now());
        }
        let wants_write = !c.wbuf.is_empty();
        if wants_write == c.wants_write {
            return true;
        }
        c.wants_write = wants_write;
        let interest = if wants_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.reregister(&mut c.io, token, interest).is_ok()
    }

    /// A message from the core for `remote`: on its connection, or on one we open.
    pub fn send(
        &mut self,
        registry: &Registry,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let Some(&idx) = self.peers.get(local, remote) else {
            if self.connect(registry, local, remote, data).is_none() {
                self.unreachable.push(remote);
            }
            return;
        };
        let Some(Some(Entry::Conn(c))) = self.slab.get_mut(idx) else {
            return;
        };
        if c.wbuf.len() + data.len() > WRITE_LIMIT {
            debug!(remote = %remote, "tcp: peer is not reading; closing");
            self.close(registry, idx);
            return;
        }
        c.wbuf.extend_from_slice(data);
        if c.connecting.is_some() {
            return; // written once connected
        }
        if !self.flush(registry, idx) {
            self.close(registry, idx);
        }
    }
}
