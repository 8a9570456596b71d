//! Where a call's SIP goes: its own socket, or one socket shared by every call of the run, as a
//! phone with several lines uses its one SIP port (DESIGN: "several dialogs may arrive from
//! one IP:port at once"). The shared socket is read by one thread that routes each message to
//! its call by Call-ID.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::media;
use super::msg::Message;

/// The shared SIP socket and its routing table.
#[derive(Debug)]
pub struct Mux {
    sock: UdpSocket,
    pub local: SocketAddr,
    routes: Mutex<HashMap<String, Sender<Vec<u8>>>>,
    /// RTP that arrived at the shared SIP socket (no call to blame it on).
    pub misdirected: AtomicU64,
}

impl Mux {
    pub fn bind(ip: std::net::IpAddr) -> std::io::Result<Arc<Mux>> {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        Ok(Arc::new(Mux {
            local: sock.local_addr()?,
            sock,
            routes: Mutex::new(HashMap::new()),
            misdirected: AtomicU64::new(0),
        }))
    }

    /// Route datagrams until `done`. Messages for unknown Call-IDs are dropped.
    pub fn run(&self, done: &AtomicBool) {
        let mut buf = vec![0u8; 65536];
        while !done.load(Ordering::Relaxed) {
            let Ok((n, _from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let data = &buf[..n];
            if media::looks_like_rtp(data) {
                self.misdirected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(call_id) =
                Message::parse(data).and_then(|m| m.header("Call-ID").map(str::to_owned))
            else {
                continue;
            };
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = routes.get(&call_id) {
                let _ = tx.send(data.to_vec());
            }
        }
    }

    /// Receive this Call-ID's messages until the returned socket is dropped.
    pub fn register(self: &Arc<Self>, call_id: &str) -> SipSocket {
        let (tx, rx) = mpsc::channel();
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call_id.to_owned(), tx);
        SipSocket::Shared {
            mux: self.clone(),
            inbox: rx,
            call_id: call_id.to_owned(),
        }
    }
}

/// One call's view of SIP transport.
pub enum SipSocket {
    Own(UdpSocket),
    Shared {
        mux: Arc<Mux>,
        inbox: Receiver<Vec<u8>>,
        call_id: String,
    },
}

impl SipSocket {
    pub fn send_to(&self, data: &[u8], to: SocketAddr) {
        // A lost datagram is what retransmission is for; an unreachable server shows as timeout.
        let _ = match self {
            SipSocket::Own(s) => s.send_to(data, to),
            SipSocket::Shared { mux, .. } => mux.sock.send_to(data, to),
        };
    }

    /// The next datagram within `wait` (never zero), or `None`.
    pub fn recv(&self, wait: Duration, buf: &mut [u8]) -> Option<Vec<u8>> {
        let wait = wait.max(Duration::from_millis(1));
        match self {
            SipSocket::Own(s) => {
                let _ = s.set_read_timeout(Some(wait));
                let (n, _) = s.recv_from(buf).ok()?;
                Some(buf[..n].to_vec())
            }
            // Disconnected cannot happen while we hold the route; treat it as silence anyway.
            SipSocket::Shared { inbox, .. } => inbox.recv_timeout(wait).ok(),
        }
    }
}

impl Drop for SipSocket {
    fn drop(&mut self) {
        if let SipSocket::Shared { mux, call_id, .. } = self {
            mux.routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(call_id);
        }
    }
}
