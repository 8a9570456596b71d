//! `onhold-mio`: the Music On Hold server on one thread and a raw `mio::Poll`.
//!
//! Same command line and configuration as `onhold` (both come from the `onhold` library). What
//! differs is the loop: the core's deadline is a `timerfd` with an absolute CLOCK_MONOTONIC time
//! (mio's own timeout rounds to milliseconds), signals arrive on a `signalfd`, and datagrams move
//! in batches with `recvmmsg`/`sendmmsg`. Helper threads (music reloads, host-name lookups, the
//! control API) report through channels and wake the loop with a `Waker`.

mod sys;
mod tcp;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use onhold_core::{Command, Server, Transport, MAX_DATAGRAM};
use onhold_runtime::batch::{self, Batch};
use onhold_runtime::lifecycle::{AfterSignal, Lifecycle};
use onhold_runtime::net::{self, SendQueue, SocketTable};
use onhold_runtime::resolve::Resolver;
use onhold_runtime::senders::Senders;
use onhold_runtime::signals::{spawn_helper, SIGNALS};
use onhold_runtime::startup::{self, ReloadResult, Startup};
use onhold_runtime::{control, icmp};
use tracing::{debug, error, info, warn};

use sys::{SignalFd, TimerFd};

const SIGNAL: Token = Token(0);
const TIMER: Token = Token(1);
const WAKER: Token = Token(2);
/// UDP socket `i` of the slab has token `FIRST_SOCKET + i`.
const FIRST_SOCKET: usize = 16;
/// TCP listeners and connections have tokens from here on.
const FIRST_TCP: usize = 1 << 24;

/// Datagrams per `recvmmsg`/`sendmmsg` call. Each receive slot holds `net::MAX_RECV` bytes,
/// so the receive batch reserves 2 MB; only the pages a datagram is written into become
/// resident (the zeroed allocation is mapped lazily), 4 KB a slot for the usual SIP or RTP
/// packet, 128 KB for the batch.
const BATCH: usize = 32;
/// Datagrams read from one socket per wake before the loop services the core's timers again;
/// the rest wait for the next turn (edge-triggered: the socket stays on the ready list).
const RECV_PER_WAKE: usize = 64;
/// Datagrams kept per socket while it would block.
const SEND_QUEUE: usize = 1024;

/// Hand the ICMP errors queued on the socket `fd` (bound to `local`) to the core; how many.
fn take_errors(server: &mut Server, fd: std::os::fd::RawFd, local: SocketAddr) -> usize {
    let now = Instant::now();
    icmp::take_unreachable(fd, |dest| server.unreachable(now, local, dest))
}

fn main() -> ExitCode {
    onhold_runtime::main_with("onhold-mio", serve)
}

struct Sock {
    io: UdpSocket,
    local: SocketAddr,
    /// The longest datagram taken from it (`net::MAX_RECV` for SIP, `net::MAX_RTP_RECV` for
    /// RTP/RTCP); a longer one is dropped, as onhold (smol) drops it.
    limit: usize,
    queue: SendQueue,
    /// On the ready list: may have more datagrams waiting.
    ready: bool,
    /// The kernel flagged an error: ICMP errors may wait in its queue (RTP sockets report
    /// them, `onhold_runtime::icmp`).
    errors: bool,
}

/// Sockets in a slab (token = index + FIRST_SOCKET), found by local address through the table.
#[derive(Default)]
struct Sockets {
    slab: Vec<Option<Sock>>,
    free: Vec<usize>,
    by_local: SocketTable<usize>,
}

impl Sockets {
    fn add(
        &mut self,
        poll: &Poll,
        std_socket: std::net::UdpSocket,
        limit: usize,
    ) -> io::Result<SocketAddr> {
        let local = std_socket.local_addr()?;
        let mut io = UdpSocket::from_std(std_socket);
        let idx = self.free.pop().unwrap_or(self.slab.len());
        poll.registry()
            .register(&mut io, Token(FIRST_SOCKET + idx), Interest::READABLE)?;
        let sock = Sock {
            io,
            local,
            limit,
            queue: SendQueue::new(SEND_QUEUE),
            ready: false,
            errors: false,
        };
        if idx == self.slab.len() {
            self.slab.push(Some(sock));
        } else {
            self.slab[idx] = Some(sock);
        }
        self.by_local.insert(local, idx);
        Ok(local)
    }

    /// Close the socket bound to exactly `addr` (a fallback match could close a listener).
    fn remove(&mut self, poll: &Poll, addr: SocketAddr) {
        if let Some(idx) = self.by_local.remove(&addr) {
            if let Some(mut sock) = self.slab[idx].take() {
                let _ = poll.registry().deregister(&mut sock.io);
                self.free.push(idx);
            }
        }
    }

    fn get(&mut self, idx: usize) -> Option<&mut Sock> {
        self.slab.get_mut(idx).and_then(Option::as_mut)
    }
}

struct Loop {
    poll: Poll,
    server: Server,
    life: Lifecycle,
    sockets: Sockets,
    tcp: tcp::Tcp,
    resolver: Resolver,
    timer: TimerFd,
    signals: SignalFd,
    /// Sockets that reported readable and may still hold datagrams, in turn order.
    ready: VecDeque<usize>,
    rx: Batch,
    tx: Batch,
    /// The socket (its table key) each filled `tx` slot leaves from.
    tx_from: Vec<SocketAddr>,
    /// The shared RTP socket's sender threads, if any (`onhold_runtime::senders`).
    media: Option<Senders>,
    reload_rx: mpsc::Receiver<ReloadResult>,
    reload_tx: mpsc::Sender<ReloadResult>,
    waker: Arc<Waker>,
}

fn serve(startup: Startup) -> ExitCode {
    match run(startup) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            eprintln!("onhold-mio: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(startup: Startup) -> io::Result<ExitCode> {
    // Before any thread exists, so reload threads inherit the blocked mask.
    let signals = SignalFd::new(&SIGNALS)?;
    let poll = Poll::new()?;
    let timer = TimerFd::new()?;
    poll.registry()
        .register(&mut SourceFd(&signals.raw()), SIGNAL, Interest::READABLE)?;
    poll.registry()
        .register(&mut SourceFd(&timer.raw()), TIMER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);

    let mut sockets = Sockets::default();
    let mut tcp = tcp::Tcp::new(FIRST_TCP);
    let mut bound = Vec::new();
    for l in &startup.config.listen {
        let local = match l.transport {
            Transport::Udp => {
                net::bind_sip_udp(l.addr).and_then(|s| sockets.add(&poll, s, net::MAX_RECV))
            }
            Transport::Tcp => tcp.listen(poll.registry(), l.addr),
        }
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {l}: {e}")))?;
        bound.push((l.transport, local));
    }
    let mut media = None;
    if let Some(port) = startup.config.server.rtp_shared_port {
        let shared = net::bind_shared_rtp(startup.config.server.rtp_ip, port)?;
        media = Senders::for_config(&startup.config, &shared[0])?;
        for s in shared {
            sockets.add(&poll, s, net::MAX_RTP_RECV)?;
        }
    }
    info!("{}", startup.summary("mio", &bound));

    let (reload_tx, reload_rx) = mpsc::channel();
    let resolver = {
        let waker = Arc::clone(&waker);
        Resolver::new(&bound, move || {
            let _ = waker.wake();
        })
    };
    let mut life = Lifecycle::new(&startup);
    let plane = {
        let waker = Arc::clone(&waker);
        control::start(&startup, "mio", &bound, move || {
            let _ = waker.wake();
        })
        .map_err(io::Error::other)?
    };
    if let Some(p) = &plane {
        info!("control API on http://{}", p.local);
    }
    life.set_control(plane);
    // Live sources' audio wakes the loop too; the lifecycle hands it over at the top of a turn.
    let live_waker = Arc::clone(&waker);
    life.start_live(
        &startup,
        Arc::new(move || {
            let _ = live_waker.wake();
        }),
    );
    let mut lp = Loop {
        poll,
        server: startup.new_server(),
        life,
        sockets,
        tcp,
        resolver,
        timer,
        signals,
        ready: VecDeque::new(),
        rx: Batch::new(BATCH, net::MAX_RECV),
        tx: Batch::new(BATCH, MAX_DATAGRAM),
        tx_from: Vec::with_capacity(BATCH),
        media,
        reload_rx,
        reload_tx,
        waker,
    };
    lp.run(&startup)
}

impl Loop {
    fn run(&mut self, startup: &Startup) -> io::Result<ExitCode> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(code) = self.life.service(&mut self.server, Instant::now()) {
                return Ok(code);
            }
            self.resolver.deliver(&mut self.server);
            self.tcp.expire(self.poll.registry(), Instant::now());
            for remote in self.tcp.take_unreachable() {
                self.server
                    .transport_error(Instant::now(), Transport::Tcp, remote);
            }
            // Until none are left: a refused bind makes the core ask for another port at once,
            // and the 200 waits for it.
            let mut closing = Vec::new();
            loop {
                let (opening, more) = net::take_commands(&mut self.server);
                closing.extend(more);
                if opening.is_empty() {
                    break;
                }
                for cmd in opening {
                    self.command(startup, cmd);
                }
            }
            self.transmit();
            for cmd in closing {
                self.command(startup, cmd);
            }
            if let Some(code) = self.life.check(&mut self.server, Instant::now()) {
                return Ok(code);
            }

            // Wait: not at all if datagrams are still queued in a socket or a deadline passed;
            // otherwise until the timerfd, a datagram or a signal.
            let wake = [
                self.life.next_wake(&self.server),
                self.resolver.next_deadline(),
                self.tcp.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let busy = !self.ready.is_empty() || self.tcp.has_more() || self.tcp.has_unreachable();
            let timeout = if busy || wake.is_some_and(|t| t <= Instant::now()) {
                Some(Duration::ZERO)
            } else {
                self.timer.arm(wake)?;
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => {
                        while let Some(signo) = self.signals.next() {
                            if let Some(code) = self.signal(startup, signo) {
                                return Ok(code);
                            }
                        }
                    }
                    TIMER => self.timer.clear(),
                    // A reload or a lookup finished, or the control API asked something (lookups
                    // and control requests are answered at the top of the turn).
                    WAKER => {
                        while let Ok(result) = self.reload_rx.try_recv() {
                            self.life
                                .reload_done(&mut self.server, Instant::now(), result);
                        }
                    }
                    token if self.tcp.owns(token) => self.tcp.ready(
                        self.poll.registry(),
                        &mut self.server,
                        token,
                        ev.is_readable() || ev.is_read_closed(),
                        ev.is_writable(),
                    ),
                    Token(t) => {
                        let Some(idx) = t.checked_sub(FIRST_SOCKET) else {
                            continue;
                        };
                        let Some(sock) = self.sockets.get(idx) else {
                            continue;
                        };
                        sock.errors |= ev.is_error();
                        if (ev.is_readable() || ev.is_error()) && !sock.ready {
                            sock.ready = true;
                            self.ready.push_back(idx);
                        }
                        if ev.is_writable() {
                            self.flush_queue(idx);
                        }
                    }
                }
            }
            self.receive();
            self.tcp.read_more(self.poll.registry(), &mut self.server);
        }
    }

    fn signal(&mut self, startup: &Startup, signo: i32) -> Option<ExitCode> {
        match self.life.on_signal(&mut self.server, Instant::now(), signo) {
            AfterSignal::Continue => None,
            AfterSignal::Exit(code) => Some(code),
            AfterSignal::StartReload { seed } => {
                let args = startup.args.clone();
                let tx = self.reload_tx.clone();
                let waker = Arc::clone(&self.waker);
                let spawned = spawn_helper("onhold-reload", move || {
                    let _ = tx.send(startup::reload_music(&args, seed));
                    let _ = waker.wake();
                });
                if let Err(e) = spawned {
                    self.life.reload_done(
                        &mut self.server,
                        Instant::now(),
                        Err(format!("cannot start the reload thread: {e}")),
                    );
                }
                None
            }
        }
    }

    /// One turn for each ready socket: up to RECV_PER_WAKE datagrams, then the next socket.
    fn receive(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(idx) = self.ready.pop_front() else {
                break;
            };
            let Some(sock) = self.sockets.slab.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let (fd, local, limit) = (sock.io.as_raw_fd(), sock.local, sock.limit);
            if std::mem::take(&mut sock.errors) {
                take_errors(&mut self.server, fd, local);
            }
            let mut taken = 0;
            let drained = loop {
                let n = match self.rx.recv(fd) {
                    Ok(n) => n,
                    // A queued ICMP error (an RTP socket's) fails the read: take the queue and
                    // read on.
                    Err(_) if take_errors(&mut self.server, fd, local) > 0 => continue,
                    Err(e) => {
                        debug!(local = %local, "recv: {e}");
                        break false;
                    }
                };
                let now = Instant::now();
                for i in 0..n {
                    // On a wildcard socket, the address the datagram was sent to (IP_PKTINFO).
                    let to = self
                        .rx
                        .dest(i)
                        .map_or(local, |ip| SocketAddr::new(ip, local.port()));
                    let data = self.rx.data(i);
                    match self.rx.peer(i) {
                        // Empty: an empty datagram, or one the kernel cut short (longer than a
                        // slot).
                        Some(remote) if !data.is_empty() && data.len() <= limit => self
                            .server
                            .handle_datagram(now, Transport::Udp, to, remote, data),
                        _ => debug!(local = %local, "dropped an oversized or unaddressed datagram"),
                    }
                }
                taken += n;
                if n < BATCH {
                    break true;
                }
                if taken >= RECV_PER_WAKE {
                    break false;
                }
            };
            if drained {
                sock.ready = false;
            } else {
                self.ready.push_back(idx);
            }
        }
    }

    fn command(&mut self, startup: &Startup, cmd: Command) {
        let ip = startup.config.server.rtp_ip;
        match cmd {
            Command::BindRtp { port, rtcp_mux } => {
                let ok = match net::bind_rtp(ip, port, rtcp_mux) {
                    Ok(pair) => {
                        let mut added = Vec::new();
                        let mut ok = true;
                        for s in pair {
                            match self.sockets.add(&self.poll, s, net::MAX_RTP_RECV) {
                                Ok(local) => added.push(local),
                                Err(e) => {
                                    debug!(port, "register rtp: {e}");
                                    ok = false;
                                }
                            }
                        }
                        if !ok {
                            for a in added {
                                self.sockets.remove(&self.poll, a);
                            }
                        }
                        ok
                    }
                    Err(e) => {
                        debug!(port, "bind rtp: {e}");
                        false
                    }
                };
                self.server.rtp_bind_result(Instant::now(), port, ok);
            }
            Command::UnbindRtp { port, rtcp_mux } => {
                for addr in net::rtp_addrs(ip, port, rtcp_mux) {
                    self.sockets.remove(&self.poll, addr);
                }
            }
            Command::Resolve {
                host,
                port,
                transport,
            } => self
                .resolver
                .command(&mut self.server, &host, port, transport),
        }
    }

    /// Pull what is due from the core, BATCH at a time, and send each run of datagrams from the
    /// same socket with one `sendmmsg` (the shared RTP socket's through its sender threads, when
    /// it has them); after `BATCHES_PER_TURN` full batches the rest waits until what arrived
    /// meanwhile has been read (the deadline is past, so the wait is none).
    fn transmit(&mut self) {
        for _ in 0..batch::BATCHES_PER_TURN {
            let (tcp, registry) = (&mut self.tcp, self.poll.registry());
            let full = batch::fill(
                &mut self.server,
                &mut self.tx,
                &self.sockets.by_local,
                &mut self.tx_from,
                |t, data| tcp.send(registry, t.local, t.remote, data),
            );
            // Moved out while its runs are sent (`send_run` takes `self`), then put back.
            let from = std::mem::take(&mut self.tx_from);
            for (key, run) in batch::runs(&from) {
                self.send_run(key, run);
            }
            self.tx_from = from;
            if !full {
                break;
            }
        }
        if let Some(media) = &mut self.media {
            media.flush();
        }
    }

    /// Send slots `run` of `tx` from the socket `key`: through the sender threads for the
    /// shared RTP socket, else (and for what its lanes cannot take) from this thread.
    fn send_run(&mut self, key: SocketAddr, mut run: std::ops::Range<usize>) {
        if let Some(media) = self.media.as_mut().filter(|m| m.local == key) {
            run = media.take(&self.tx, run);
            if run.is_empty() {
                return;
            }
        }
        let Some(&idx) = self.sockets.by_local.get(&key) else {
            return;
        };
        let Some(sock) = self.sockets.slab.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let fd = sock.io.as_raw_fd();
        if batch::send_run(&mut self.tx, fd, sock.local, run, &mut sock.queue) {
            let token = Token(FIRST_SOCKET + idx);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut sock.io, token, interest)
            {
                warn!(local = %sock.local, "cannot wait for writability: {e}");
            }
        }
    }

    /// The socket can take more: send its queue, and stop asking for writability once empty.
    fn flush_queue(&mut self, idx: usize) {
        let Some(sock) = self.sockets.slab.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let io = &sock.io;
        if sock.queue.flush(|remote, d| io.send_to(d, remote)) {
            let token = Token(FIRST_SOCKET + idx);
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut sock.io, token, Interest::READABLE)
            {
                warn!(local = %sock.local, "cannot stop waiting for writability: {e}");
            }
        }
    }
}
