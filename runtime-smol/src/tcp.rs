//! SIP over TCP (RFC 3261 §18): a listener task per address, a task per connection that cuts the
//! byte stream into messages with `onhold_core::sip::frame` and forwards each to the server task
//! like a datagram, and a writer per connection fed by the server task's transmits.
//!
//! A message goes on the connection `onhold_runtime::stream::Peers` picks; when there is none
//! (our in-dialog request to a proxy or a caller that has closed its connection), a task opens
//! one (§18.1.1), bounded by `CONNECT_TIMEOUT`, with the queue filled meanwhile. When opening
//! fails, or the last connection to a peer closes, the peer's address goes to the server task,
//! which tells the core (`Server::transport_error`).
//!
//! Each connection task also keeps the connection's `stream::Liveness` and closes it at its
//! deadline (no message after the accept, a message too slow, idle); see `onhold_runtime::stream`
//! for the limits. The task's buffers go with it.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use onhold_core::Transport;
use onhold_runtime::net::{cut_stream, StreamUnit};
use onhold_runtime::stream::{shrink_buffer, Liveness, Peers, CONNECT_TIMEOUT};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use smol::{Async, LocalExecutor, Task, Timer};
use tracing::debug;

use crate::{Datagram, Inbound};

/// Outgoing messages queued per connection; a peer that stops reading loses messages beyond it
/// rather than growing our memory.
const WRITE_QUEUE: usize = 256;

/// Every open connection's writer, and what a connection task needs to start another.
#[derive(Clone)]
pub struct Connections(Rc<Shared>);

struct Shared {
    ex: Rc<LocalExecutor<'static>>,
    /// Messages read from any connection, to the server task.
    inbound: Sender<Inbound>,
    /// Peers we can no longer reach, to the server task.
    unreachable: Sender<SocketAddr>,
    writers: RefCell<Peers<Sender<Vec<u8>>>>,
}

impl Connections {
    pub fn new(
        ex: Rc<LocalExecutor<'static>>,
        inbound: Sender<Inbound>,
        unreachable: Sender<SocketAddr>,
    ) -> Connections {
        Connections(Rc::new(Shared {
            ex,
            inbound,
            unreachable,
            writers: RefCell::new(Peers::default()),
        }))
    }

    /// Queue `data` for `remote` on its connection, opening one if none is open. `false` when
    /// the connection's queue is full and the message was dropped.
    pub fn send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> bool {
        if let Some(tx) = self.0.writers.borrow().get(local, remote) {
            return tx.try_send(data.to_vec()).is_ok();
        }
        if let Err(full) = self.0.writers.borrow().room_for(remote) {
            debug!(remote = %remote, "tcp: {full}; cannot open one");
            self.unreachable(remote);
            return true;
        }
        let (tx, rx) = smol::channel::bounded(WRITE_QUEUE);
        // A fresh queue always has room for the first message.
        let _ = tx.try_send(data.to_vec());
        self.0.writers.borrow_mut().insert(local, remote, tx);
        let conns = self.clone();
        self.0
            .ex
            .spawn(async move {
                let connect = async { Async::<TcpStream>::connect(remote).await };
                let timeout = async {
                    Timer::after(CONNECT_TIMEOUT).await;
                    Err(io::ErrorKind::TimedOut.into())
                };
                match connect.or(timeout).await {
                    Ok(stream) => {
                        let live = Liveness::opened(Instant::now());
                        connection(Arc::new(stream), local, remote, live, rx, conns).await
                    }
                    Err(e) => {
                        debug!(remote = %remote, "tcp connect: {e}");
                        conns.closed(local, remote);
                    }
                }
            })
            .detach();
        true
    }

    /// The connection (local, remote) is gone: tell the server task when it was the last one
    /// to that peer.
    fn closed(&self, local: SocketAddr, remote: SocketAddr) {
        let mut writers = self.0.writers.borrow_mut();
        writers.remove(local, remote);
        if !writers.reaches(remote) {
            self.unreachable(remote);
        }
    }

    fn unreachable(&self, remote: SocketAddr) {
        // Unbounded: the server task drains it every turn.
        let _ = self.0.unreachable.try_send(remote);
    }
}

/// Bind a TCP listener and start accepting. Dropping the task stops it.
pub fn listen(addr: SocketAddr, conns: Connections) -> io::Result<(SocketAddr, Task<()>)> {
    let listener = Async::<TcpListener>::bind(addr)?;
    let local = listener.get_ref().local_addr()?;
    let task = conns.0.ex.spawn(accept_loop(listener, conns.clone()));
    Ok((local, task))
}

async fn accept_loop(listener: Async<TcpListener>, conns: Connections) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("tcp accept: {e}");
                Timer::after(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(full) = conns.0.writers.borrow().room_for(remote) {
            debug!(remote = %remote, "tcp: {full}; closing");
            continue;
        }
        let Ok(local) = stream.get_ref().local_addr() else {
            continue;
        };
        let (tx, rx) = smol::channel::bounded(WRITE_QUEUE);
        conns.0.writers.borrow_mut().insert(local, remote, tx);
        // Detached: the task ends when the peer closes or a deadline passes; its writer entry
        // goes with it.
        let live = Liveness::accepted(Instant::now());
        let task = connection(Arc::new(stream), local, remote, live, rx, conns.clone());
        conns.0.ex.spawn(task).detach();
    }
}

/// Read messages until the peer closes, breaks framing or misses a deadline of `live`; write
/// what the server sends. `local` is the address the core knows this connection by.
async fn connection(
    stream: Arc<Async<TcpStream>>,
    local: SocketAddr,
    remote: SocketAddr,
    live: Liveness,
    outbound: Receiver<Vec<u8>>,
    conns: Connections,
) {
    // Shared by the reader and the writer, which run in this one task.
    let live = Cell::new(live);
    let wrote = |live: &Cell<Liveness>| {
        let mut l = live.get();
        l.wrote(Instant::now());
        live.set(l);
    };
    let writer = async {
        while let Ok(data) = outbound.recv().await {
            if (&*stream).write_all(&data).await.is_err() {
                break;
            }
            wrote(&live);
        }
    };
    let inbound = conns.0.inbound.clone();
    let reader = async {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        // Armed for `armed`, which is never after the deadline: a deadline moved later (by
        // activity) is found when the timer fires, so a busy connection does not re-arm it at
        // every read.
        let mut armed = live.get().deadline();
        let mut timer = Timer::at(armed);
        loop {
            let read = async { Some((&*stream).read(&mut chunk).await) };
            // Reading is cancel-safe: bytes not read stay in the socket.
            let due = async {
                (&mut timer).await;
                None
            };
            let n = match read.or(due).await {
                Some(Ok(0) | Err(_)) => return,
                Some(Ok(n)) => n,
                None => {
                    let l = live.get();
                    if let Some(why) = l.expired(Instant::now()) {
                        debug!(remote = %remote, "tcp: {why}; closing");
                        return;
                    }
                    armed = l.deadline();
                    timer.set_at(armed);
                    continue;
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut messages = Vec::new();
            let mut pings = 0;
            let framed = cut_stream(&mut buf, |unit| match unit {
                StreamUnit::Message(m) => messages.push(m.to_vec()),
                StreamUnit::Ping => pings += 1,
            });
            shrink_buffer(&mut buf);
            let mut l = live.get();
            l.read(Instant::now(), messages.len(), !buf.is_empty());
            live.set(l);
            if l.deadline() < armed {
                armed = l.deadline();
                timer.set_at(armed);
            }
            for data in messages {
                let d = Datagram {
                    transport: Transport::Tcp,
                    local,
                    remote,
                    data,
                };
                if inbound.send(Inbound::Datagram(d)).await.is_err() {
                    return;
                }
            }
            for _ in 0..pings {
                if (&*stream).write_all(b"\r\n").await.is_err() {
                    return;
                }
                wrote(&live);
            }
            if !framed {
                debug!(remote = %remote, "tcp: unframeable stream; closing");
                return;
            }
        }
    };
    smol::future::or(reader, writer).await;
    conns.closed(local, remote);
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
}
