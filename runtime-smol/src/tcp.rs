//! SIP over TCP (RFC 3261 §18): a listener task per address, a task per connection that cuts the
//! byte stream into messages with `onhold_core::sip::frame` and forwards each to the server task
//! like a datagram, and a writer per connection fed by the server task's transmits.
//!
//! Responses go back on the connection the request came in on, found by (local, remote). We do
//! not open connections ourselves: a request the core sends to a TCP peer that has gone away
//! (an in-dialog BYE) is dropped, and the call's timers end it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;

use onhold_core::Transport;
use onhold_runtime::net::{cut_stream, StreamUnit};
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use smol::{Async, LocalExecutor, Task};
use tracing::debug;

use crate::Datagram;

/// Outgoing messages queued per connection; a peer that stops reading loses messages beyond it
/// rather than growing our memory.
const WRITE_QUEUE: usize = 256;
/// Concurrent connections; more are refused (closed at once).
const MAX_CONNECTIONS: usize = 4096;

/// The writer of every open connection, by (local, remote).
#[derive(Clone, Default)]
pub struct Connections(Rc<RefCell<BTreeMap<Peer, Sender<Vec<u8>>>>>);

/// A connection's (local, remote) addresses.
type Peer = (SocketAddr, SocketAddr);

impl Connections {
    /// Queue `data` on the connection from `local` to `remote`; `false` if there is none or its
    /// queue is full.
    pub fn send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> bool {
        let map = self.0.borrow();
        match map.get(&(local, remote)) {
            Some(tx) => tx.try_send(data.to_vec()).is_ok(),
            None => false,
        }
    }
}

/// Bind a TCP listener and start accepting. Dropping the task stops it.
pub fn listen(
    ex: &Rc<LocalExecutor<'static>>,
    addr: SocketAddr,
    inbound: Sender<Datagram>,
    conns: Connections,
) -> io::Result<(SocketAddr, Task<()>)> {
    let listener = Async::<TcpListener>::bind(addr)?;
    let local = listener.get_ref().local_addr()?;
    let task = ex.spawn(accept_loop(Rc::clone(ex), listener, inbound, conns));
    Ok((local, task))
}

async fn accept_loop(
    ex: Rc<LocalExecutor<'static>>,
    listener: Async<TcpListener>,
    inbound: Sender<Datagram>,
    conns: Connections,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("tcp accept: {e}");
                smol::Timer::after(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if conns.0.borrow().len() >= MAX_CONNECTIONS {
            debug!(remote = %remote, "tcp: too many connections; closing");
            continue;
        }
        let Ok(local) = stream.get_ref().local_addr() else {
            continue;
        };
        let (tx, rx) = smol::channel::bounded(WRITE_QUEUE);
        conns.0.borrow_mut().insert((local, remote), tx);
        // Detached: the task ends when the peer closes; its writer entry goes with it.
        ex.spawn(connection(
            Arc::new(stream),
            local,
            remote,
            inbound.clone(),
            rx,
            conns.clone(),
        ))
        .detach();
    }
}

/// Read messages until the peer closes or breaks framing; write what the server sends.
async fn connection(
    stream: Arc<Async<TcpStream>>,
    local: SocketAddr,
    remote: SocketAddr,
    inbound: Sender<Datagram>,
    outbound: Receiver<Vec<u8>>,
    conns: Connections,
) {
    let writer = {
        let stream = Arc::clone(&stream);
        async move {
            while let Ok(data) = outbound.recv().await {
                if (&*stream).write_all(&data).await.is_err() {
                    break;
                }
            }
        }
    };
    let reader = async {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match (&*stream).read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut messages = Vec::new();
            let mut pings = 0;
            let framed = cut_stream(&mut buf, |unit| match unit {
                StreamUnit::Message(m) => messages.push(m.to_vec()),
                StreamUnit::Ping => pings += 1,
            });
            for data in messages {
                let d = Datagram {
                    transport: Transport::Tcp,
                    local,
                    remote,
                    data,
                };
                if inbound.send(d).await.is_err() {
                    return;
                }
            }
            for _ in 0..pings {
                if (&*stream).write_all(b"\r\n").await.is_err() {
                    return;
                }
            }
            if !framed {
                debug!(remote = %remote, "tcp: unframeable stream; closing");
                return;
            }
        }
    };
    smol::future::or(reader, writer).await;
    conns.0.borrow_mut().remove(&(local, remote));
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
}
