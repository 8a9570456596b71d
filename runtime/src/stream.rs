//! SIP over TCP as both runtimes run it (RFC 3261 §18): the limits every connection has,
//! accepted or opened by us, and the table that finds the connection for a message.
//!
//! A message the core sends goes on the connection from its `local` to its `remote` (a response
//! on the connection its request came in on, §18.2.2); failing that, on any open connection to
//! `remote` (one we opened earlier for a request of ours); failing that, the runtime opens one
//! (§18.1.1) and files it under the core's `local`, so the core keeps seeing one local address
//! per listener, and what arrives on it reaches the core as from any accepted connection.
//! Messages wait in the connection's queue until it connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Concurrent connections, accepted and opened together; beyond it an accepted one is closed
/// at once and none is opened (the request fails like a timeout).
pub const MAX_CONNECTIONS: usize = 4096;
/// How long opening a connection may take before the request it was for fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections by (local, remote), each holding a runtime's handle `C` (a writer, a slab index).
#[derive(Debug)]
pub struct Peers<C> {
    by_remote: BTreeMap<SocketAddr, Vec<(SocketAddr, C)>>,
    len: usize,
}

impl<C> Default for Peers<C> {
    fn default() -> Self {
        Peers {
            by_remote: BTreeMap::new(),
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

    /// Room for one more connection under [`MAX_CONNECTIONS`].
    pub fn has_room(&self) -> bool {
        self.len < MAX_CONNECTIONS
    }

    pub fn insert(&mut self, local: SocketAddr, remote: SocketAddr, conn: C) {
        let list = self.by_remote.entry(remote).or_default();
        match list.iter_mut().find(|(l, _)| *l == local) {
            Some(slot) => slot.1 = conn,
            None => {
                list.push((local, conn));
                self.len += 1;
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
        assert!(p.has_room());
    }
}
