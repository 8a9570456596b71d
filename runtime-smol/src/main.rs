//! `onhold`: the Music On Hold server on smol.
//!
//! One task owns the [`Server`]. Each UDP socket (SIP listeners, and the RTP/RTCP pairs the core
//! asks for with `Command::BindRtp`) has a small reader task that forwards datagrams over one
//! bounded channel, so waking costs the same with ten sockets or ten thousand. The server task's
//! loop: core timer → commands → transmits → events → wait for the earliest of a datagram, the
//! core's deadline, a signal, a finished reload, a control API request, a finished host-name lookup,
//! a TCP peer we can no longer reach, or a blocked socket turning writable.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_signal::{Signal, Signals};
use onhold_core::{Command, Server, Transport, MAX_DATAGRAM};
use onhold_runtime::batch::{self, Batch};
use onhold_runtime::lifecycle::{AfterSignal, Lifecycle};
use onhold_runtime::net::{self, SendQueue, SocketTable};
use onhold_runtime::resolve::Resolver;
use onhold_runtime::senders::Senders;
use onhold_runtime::startup::{self, Startup};
use onhold_runtime::{control, icmp, pktinfo};
use smol::channel::Sender;
use smol::future::FutureExt as _;
use smol::stream::StreamExt as _;
use smol::{Async, LocalExecutor, Task, Timer};
use tracing::{debug, error};

/// Datagrams handled per wake before the loop services the core's timers again, so a flood of
/// SIP cannot delay RTP pacing.
const RECV_BATCH: usize = 64;
/// Datagrams per `sendmmsg`.
const BATCH: usize = 32;
/// Datagrams waiting in the channel from all readers.
const RECV_CHANNEL: usize = 4096;
/// Datagrams kept per socket while it would block.
const SEND_QUEUE: usize = 1024;

mod tcp;

fn main() -> ExitCode {
    onhold_runtime::main_with("onhold", serve)
}

struct Datagram {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

/// What the readers hand the loop.
enum Inbound {
    /// A UDP datagram or one framed TCP message.
    Datagram(Datagram),
    /// An ICMP error for a destination of our UDP socket `local` (`onhold_runtime::icmp`).
    Unreachable {
        local: SocketAddr,
        remote: SocketAddr,
    },
}

struct Sock {
    io: Arc<Async<UdpSocket>>,
    queue: SendQueue,
    /// Dropping the task cancels it: that and dropping `io` closes the socket.
    _reader: Task<()>,
}

enum Wake {
    Inbound(Inbound),
    Timer,
    Signal(i32),
    Reloaded(startup::ReloadResult),
    /// The control API asked something (served at the top of the turn).
    Control,
    Writable,
    Resolved,
    Unreachable(SocketAddr),
}

fn serve(startup: Startup) -> ExitCode {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(run(Rc::clone(&ex), startup)))
}

async fn run(ex: Rc<LocalExecutor<'static>>, startup: Startup) -> ExitCode {
    let (dgram_tx, dgram_rx) = smol::channel::bounded::<Inbound>(RECV_CHANNEL);
    let mut sockets: SocketTable<Sock> = SocketTable::default();
    let (unreachable_tx, unreachable_rx) = smol::channel::unbounded::<SocketAddr>();
    let tcp = tcp::Connections::new(Rc::clone(&ex), dgram_tx.clone(), unreachable_tx);
    let mut _tcp_listeners = Vec::new();
    let mut bound = Vec::new();
    for l in &startup.config.listen {
        let opened = match l.transport {
            Transport::Udp => listen_udp(&ex, l.addr, &dgram_tx).map(|(local, sock)| {
                sockets.insert(local, sock);
                local
            }),
            Transport::Tcp => tcp::listen(l.addr, tcp.clone()).map(|(local, task)| {
                _tcp_listeners.push(task);
                local
            }),
        };
        match opened {
            Ok(local) => bound.push((l.transport, local)),
            Err(e) => {
                error!("listen {l}: {e}");
                eprintln!("onhold: cannot listen on {l}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let signals = match Signals::new([Signal::Int, Signal::Term, Signal::Hup]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("onhold: cannot catch signals: {e}");
            return ExitCode::from(1);
        }
    };
    let mut media = None;
    if let Some(port) = startup.config.server.rtp_shared_port {
        let opened = net::bind_shared_rtp(startup.config.server.rtp_ip, port).and_then(|pair| {
            media = Senders::for_config(&startup.config, &pair[0])?;
            pair.into_iter()
                .map(|s| watch(&ex, s, &dgram_tx, true))
                .collect::<std::io::Result<Vec<_>>>()
        });
        match opened {
            Ok(opened) => {
                for (local, sock) in opened {
                    sockets.insert(local, sock);
                }
            }
            Err(e) => {
                error!("{e}");
                eprintln!("onhold: {e}");
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!("{}", startup.summary("smol", &bound));

    let mut server = startup.new_server();
    // A finished lookup wakes the loop through this channel; one pending wake is enough.
    let (resolved_tx, resolved_rx) = smol::channel::bounded::<()>(1);
    let mut resolver = Resolver::new(&bound, move || {
        let _ = resolved_tx.try_send(());
    });
    let mut life = Lifecycle::new(&startup);
    // A control request wakes the loop through this channel; one pending wake is enough (the
    // lifecycle serves every waiting request at the top of the turn).
    let (control_tx, control_rx) = smol::channel::bounded::<()>(1);
    // Live sources' audio wakes the loop the same way (see `Lifecycle::start_live`).
    let live_wake = control_tx.clone();
    life.start_live(
        &startup,
        std::sync::Arc::new(move || {
            let _ = live_wake.try_send(());
        }),
    );
    match control::start(&startup, "smol", &bound, move || {
        let _ = control_tx.try_send(());
    }) {
        Ok(plane) => {
            if let Some(p) = &plane {
                tracing::info!("control API on http://{}", p.local);
            }
            life.set_control(plane);
        }
        Err(line) => {
            error!("{line}");
            eprintln!("onhold: {line}");
            return ExitCode::from(1);
        }
    }
    let (reload_tx, reload_rx) = smol::channel::bounded(1);
    let mut signals = signals;
    let mut out = Outgoing {
        batch: Batch::new(BATCH, MAX_DATAGRAM),
        from: Vec::with_capacity(BATCH),
        media,
    };
    // Sockets holding datagrams that would block, waiting for writability.
    let mut blocked: BTreeSet<SocketAddr> = BTreeSet::new();

    loop {
        // Let the socket readers run: when media is behind, every wait below is ready at once
        // and this task would never give the executor back, so SIP would stay in its socket.
        smol::future::yield_now().await;
        let now = Instant::now();
        if let Some(code) = life.service(&mut server, now) {
            return code;
        }
        resolver.deliver(&mut server);
        // Until none are left: a refused bind makes the core ask for another port at once, and
        // the 200 waits for it.
        let mut closing = Vec::new();
        loop {
            let (opening, more) = net::take_commands(&mut server);
            closing.extend(more);
            if opening.is_empty() {
                break;
            }
            for cmd in opening {
                command(
                    &ex,
                    &mut server,
                    &mut sockets,
                    &mut resolver,
                    &startup,
                    &dgram_tx,
                    cmd,
                );
            }
        }
        transmit(&mut server, &mut sockets, &tcp, &mut blocked, &mut out);
        for cmd in closing {
            command(
                &ex,
                &mut server,
                &mut sockets,
                &mut resolver,
                &startup,
                &dgram_tx,
                cmd,
            );
        }
        if let Some(code) = life.check(&mut server, Instant::now()) {
            return code;
        }

        let wake_at = match (life.next_wake(&server), resolver.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timer = match wake_at {
            Some(at) => Timer::at(at),
            None => Timer::never(),
        };
        // `or` polls in order and takes the first ready: the rare events go first so that a
        // flood of datagrams can never hide a signal (the core's timers are serviced at the top
        // of every turn regardless).
        let wake = async {
            match signals.next().await {
                Some(Ok(s)) => Wake::Signal(s as i32),
                _ => std::future::pending().await,
            }
        }
        .or(async {
            match reload_rx.recv().await {
                Ok(r) => Wake::Reloaded(r),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match control_rx.recv().await {
                Ok(()) => Wake::Control,
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match unreachable_rx.recv().await {
                Ok(remote) => Wake::Unreachable(remote),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match resolved_rx.recv().await {
                Ok(()) => Wake::Resolved,
                Err(_) => std::future::pending().await,
            }
        })
        .or(writable(&sockets, &blocked))
        // What arrived before the timer: when media is behind, the timer is always due, and
        // SIP must not wait for media to catch up (the timer is serviced at the top of every
        // turn anyway).
        .or(async { dgram_rx.recv().await.map_or(Wake::Timer, Wake::Inbound) })
        .or(async {
            timer.await;
            Wake::Timer
        })
        .await;

        match wake {
            Wake::Inbound(first) => {
                let mut next = Some(first);
                let mut n = 0;
                while let Some(inbound) = next.take() {
                    match inbound {
                        Inbound::Datagram(d) => server.handle_datagram(
                            Instant::now(),
                            d.transport,
                            d.local,
                            d.remote,
                            &d.data,
                        ),
                        Inbound::Unreachable { local, remote } => {
                            server.unreachable(Instant::now(), local, remote)
                        }
                    }
                    n += 1;
                    if n < RECV_BATCH {
                        next = dgram_rx.try_recv().ok();
                    }
                }
            }
            Wake::Timer | Wake::Writable | Wake::Resolved | Wake::Control => {}
            Wake::Unreachable(first) => {
                let mut next = Some(first);
                while let Some(remote) = next.take() {
                    server.transport_error(Instant::now(), Transport::Tcp, remote);
                    next = unreachable_rx.try_recv().ok();
                }
            }
            Wake::Signal(signo) => match life.on_signal(&mut server, Instant::now(), signo) {
                AfterSignal::Continue => {}
                AfterSignal::Exit(code) => return code,
                AfterSignal::StartReload { seed } => {
                    let args = startup.args.clone();
                    let tx = reload_tx.clone();
                    ex.spawn(async move {
                        let result =
                            smol::unblock(move || startup::reload_music(&args, seed)).await;
                        let _ = tx.send(result).await;
                    })
                    .detach();
                }
            },
            Wake::Reloaded(result) => life.reload_done(&mut server, Instant::now(), result),
        }
    }
}

/// Bind the SIP socket `addr`, register it with the reactor and start its reader.
fn listen_udp(
    ex: &LocalExecutor<'_>,
    addr: SocketAddr,
    tx: &Sender<Inbound>,
) -> std::io::Result<(SocketAddr, Sock)> {
    watch(ex, net::bind_sip_udp(addr)?, tx, false)
}

/// Forward each datagram of at most `limit` bytes (`net::MAX_RECV` on a SIP socket,
/// `net::MAX_RTP_RECV` on an RTP/RTCP one). The buffer is one byte longer: a datagram that
/// fills it was longer than `limit` and cut short, and is dropped, as onhold-mio drops it.
/// An RTP/RTCP socket (`media`) also forwards the ICMP errors queued for its destinations.
async fn read_loop(io: Arc<Async<UdpSocket>>, local: SocketAddr, tx: Sender<Inbound>, media: bool) {
    let limit = if media {
        net::MAX_RTP_RECV
    } else {
        net::MAX_RECV
    };
    let mut buf = vec![0u8; limit + 1];
    let mut unreachable = Vec::new();
    loop {
        let got = io
            .read_with(|s| {
                let r = pktinfo::recv(s.as_raw_fd(), &mut buf);
                if media && r.is_err() {
                    // A queued ICMP error (IP_RECVERR, RTP sockets) fails the read, or flags
                    // the socket readable with nothing to read: take the queue either way, or
                    // the reactor would wake us for it again and again.
                    icmp::take_unreachable(s.as_raw_fd(), |dest| unreachable.push(dest));
                }
                r
            })
            .await;
        for remote in unreachable.drain(..) {
            if tx
                .send(Inbound::Unreachable { local, remote })
                .await
                .is_err()
            {
                return;
            }
        }
        match got {
            // Empty (nothing in it for the core) or longer than `limit`: dropped, as onhold-mio
            // drops them.
            Ok(r) if r.len == 0 || r.len > limit || r.truncated => {
                debug!(local = %local, remote = %r.from, "dropped an empty or oversized datagram");
            }
            Ok(r) => {
                // On a wildcard socket, the address the datagram was sent to (IP_PKTINFO).
                let to = r.dest.map_or(local, |ip| SocketAddr::new(ip, local.port()));
                let d = Datagram {
                    transport: Transport::Udp,
                    local: to,
                    remote: r.from,
                    data: buf[..r.len].to_vec(),
                };
                if tx.send(Inbound::Datagram(d)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // ICMP errors surface here on some systems; they are not fatal for UDP.
                debug!(local = %local, "recv: {e}");
                Timer::after(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

/// Register a UDP socket (SIP, or RTP/RTCP when `media`) with the reactor and start its
/// reader.
fn watch(
    ex: &LocalExecutor<'_>,
    socket: UdpSocket,
    tx: &Sender<Inbound>,
    media: bool,
) -> std::io::Result<(SocketAddr, Sock)> {
    let local = socket.local_addr()?;
    let io = Arc::new(Async::new(socket)?);
    let reader = ex.spawn(read_loop(Arc::clone(&io), local, tx.clone(), media));
    let sock = Sock {
        io,
        queue: SendQueue::new(SEND_QUEUE),
        _reader: reader,
    };
    Ok((local, sock))
}

fn command(
    ex: &LocalExecutor<'_>,
    server: &mut Server,
    sockets: &mut SocketTable<Sock>,
    resolver: &mut Resolver,
    startup: &Startup,
    tx: &Sender<Inbound>,
    cmd: Command,
) {
    let ip = startup.config.server.rtp_ip;
    match cmd {
        Command::BindRtp { port, rtcp_mux } => {
            let result = net::bind_rtp(ip, port, rtcp_mux).and_then(|pair| {
                pair.into_iter()
                    .map(|s| watch(ex, s, tx, true))
                    .collect::<std::io::Result<Vec<_>>>()
            });
            let ok = match result {
                Ok(opened) => {
                    for (local, sock) in opened {
                        sockets.insert(local, sock);
                    }
                    true
                }
                Err(e) => {
                    debug!(port, "bind rtp: {e}");
                    false
                }
            };
            server.rtp_bind_result(Instant::now(), port, ok);
        }
        Command::UnbindRtp { port, rtcp_mux } => {
            for addr in net::rtp_addrs(ip, port, rtcp_mux) {
                // Exact addresses only: a fallback match could close a listener.
                sockets.remove(&addr);
            }
        }
        Command::Resolve {
            host,
            port,
            transport,
        } => resolver.command(server, &host, port, transport),
    }
}

/// Send what the core has due now, each run of datagrams leaving the same socket in one
/// `sendmmsg`, at most `BATCHES_PER_TURN` full batches before the loop reads what arrived. A
/// socket that would block keeps the rest of its datagrams in its bounded queue until it is
/// writable again.
fn transmit(
    server: &mut Server,
    sockets: &mut SocketTable<Sock>,
    tcp: &tcp::Connections,
    blocked: &mut BTreeSet<SocketAddr>,
    out: &mut Outgoing,
) {
    for _ in 0..batch::BATCHES_PER_TURN {
        let full = batch::fill(server, &mut out.batch, sockets, &mut out.from, |t, data| {
            if !tcp.send(t.local, t.remote, data) {
                debug!(remote = %t.remote, "tcp: the connection's queue is full; dropped");
            }
        });
        for (key, mut run) in batch::runs(&out.from) {
            if let Some(media) = out.media.as_mut().filter(|m| m.local == key) {
                run = media.take(&out.batch, run);
                if run.is_empty() {
                    continue;
                }
            }
            let Some(sock) = sockets.get_mut(&key) else {
                continue;
            };
            let fd = sock.io.as_raw_fd();
            if batch::send_run(&mut out.batch, fd, key, run, &mut sock.queue) {
                blocked.insert(key);
            }
        }
        if !full {
            break;
        }
    }
    if let Some(media) = &mut out.media {
        media.flush();
    }
    // Only the sockets that would block are retried: no scan over every RTP socket.
    blocked.retain(|key| {
        let Some(sock) = sockets.get_mut(key) else {
            return false;
        };
        let io = &sock.io;
        !sock
            .queue
            .flush(|remote, d| io.get_ref().send_to(d, remote))
    });
}

/// The transmit batch, the socket each slot leaves from, and the shared RTP socket's sender
/// threads, if any (`onhold_runtime::senders`).
struct Outgoing {
    batch: Batch,
    from: Vec<SocketAddr>,
    media: Option<Senders>,
}

/// Resolves when any socket with queued datagrams can take more (pending if none has any).
fn writable<'a>(
    sockets: &'a SocketTable<Sock>,
    blocked: &BTreeSet<SocketAddr>,
) -> impl Future<Output = Wake> + 'a {
    let blocked: Vec<&Arc<Async<UdpSocket>>> = blocked
        .iter()
        .filter_map(|key| sockets.get(key))
        .map(|s| &s.io)
        .collect();
    std::future::poll_fn(move |cx| {
        for io in &blocked {
            if io.poll_writable(cx).is_ready() {
                return Poll::Ready(Wake::Writable);
            }
        }
        Poll::Pending
    })
}
