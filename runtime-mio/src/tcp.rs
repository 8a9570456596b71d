//! SIP over TCP (RFC 3261 §18) on the mio loop: listeners and connections in their own slab,
//! messages cut from the byte stream with `onhold_core::sip::frame`, responses written back on
//! the connection the request came in on, found by (local, remote). We open no connections
//! ourselves: a request for a TCP peer that has gone away is dropped and the call's timers end it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use onhold_core::{Server, Transport};
use onhold_runtime::net::{cut_stream, StreamUnit};
use tracing::debug;

/// Bytes waiting to be written per connection; a peer that stops reading past this is closed.
const WRITE_LIMIT: usize = 1 << 20;
/// Bytes read per connection per wake, so one busy peer cannot starve pacing.
const READ_PER_WAKE: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 4096;

enum Entry {
    Listener(TcpListener),
    Conn(Conn),
}

struct Conn {
    io: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Registered for writability (only while `wbuf` has bytes the socket would not take).
    wants_write: bool,
}

/// TCP listeners and connections; token = `first_token + slab index`.
pub struct Tcp {
    first_token: usize,
    slab: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_peer: BTreeMap<(SocketAddr, SocketAddr), usize>,
    /// Connections that hit the read budget with bytes possibly left (edge-triggered: no new
    /// event will come for them).
    more: Vec<usize>,
}

impl Tcp {
    pub fn new(first_token: usize) -> Tcp {
        Tcp {
            first_token,
            slab: Vec::new(),
            free: Vec::new(),
            by_peer: BTreeMap::new(),
            more: Vec::new(),
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token
    }

    fn insert(&mut self, registry: &Registry, mut entry: Entry) -> io::Result<usize> {
        let idx = self.free.pop().unwrap_or(self.slab.len());
        let token = Token(self.first_token + idx);
        match &mut entry {
            Entry::Listener(l) => registry.register(l, token, Interest::READABLE)?,
            Entry::Conn(c) => registry.register(&mut c.io, token, Interest::READABLE)?,
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
            self.by_peer.remove(&(c.local, c.remote));
            self.free.push(idx);
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
            if self.by_peer.len() >= MAX_CONNECTIONS {
                debug!(remote = %remote, "tcp: too many connections; closing");
                continue;
            }
            let Ok(local) = io.local_addr() else {
                continue;
            };
            let conn = Conn {
                io,
                local,
                remote,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wants_write: false,
            };
            match self.insert(registry, Entry::Conn(conn)) {
                Ok(c) => {
                    self.by_peer.insert((local, remote), c);
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
            let framed = cut_stream(&mut c.rbuf, |unit| match unit {
                StreamUnit::Message(m) => {
                    server.handle_datagram(Instant::now(), Transport::Tcp, local, remote, m)
                }
                StreamUnit::Ping => wbuf.extend_from_slice(b"\r\n"),
            });
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
        c.wbuf.drain(..written);
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

    /// A message from the core for the connection (local, remote).
    pub fn send(
        &mut self,
        registry: &Registry,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let Some(&idx) = self.by_peer.get(&(local, remote)) else {
            debug!(remote = %remote, "no open TCP connection; dropped");
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
        if !self.flush(registry, idx) {
            self.close(registry, idx);
        }
    }
}
