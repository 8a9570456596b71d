//! Media on every core: with the shared RTP port (`rtp_shared_port`) the loop thread runs the
//! core and writes each due packet, and sender threads make the system calls, which are most
//! of media's cost (the kernel's UDP send and, on loopback, the receiver's side of it). Each
//! thread owns a lane: a handle on the shared socket, and batches it sends with one `sendmmsg`
//! each. A destination always takes the same lane, so its packets leave in the order the core
//! wrote them.
//!
//! Only the shared socket is sent from threads: it lives as long as the process, while a
//! per-call socket is closed when its call ends and its descriptor number may be reused at
//! once, which a thread still holding it would then write to.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use crate::batch::Batch;

/// Datagrams per lane batch, and batches per lane: what one lane may hold unsent.
const LANE_BATCH: usize = 64;
const LANE_BATCHES: usize = 8;
/// Slot size: an RTP packet of the longest ptime and codec we send (60 ms of G.711 or G.722 is
/// 480 bytes) fits with room; a longer datagram is sent by the loop thread.
const LANE_SLOT: usize = 1500;
/// How long a lane waits for the socket to take more before it drops the rest of a batch.
const BLOCKED_FOR: Duration = Duration::from_millis(20);

/// The sender threads of the shared RTP socket.
pub struct Senders {
    /// The shared socket's local address: the runs from it go to the lanes.
    pub local: SocketAddr,
    lanes: Vec<Lane>,
    /// Datagrams a lane dropped because the socket stayed full for `BLOCKED_FOR`.
    dropped: Arc<AtomicU64>,
}

struct Lane {
    jobs: SyncSender<(Batch, usize)>,
    free: Receiver<Batch>,
    /// The batch being filled and how many of its slots are.
    filling: Option<(Batch, usize)>,
}

impl Senders {
    /// `threads` sender threads for `socket` (bound to `local`); `Ok(None)` for none.
    pub fn start(socket: &UdpSocket, threads: usize) -> io::Result<Option<Senders>> {
        if threads == 0 {
            return Ok(None);
        }
        let local = socket.local_addr()?;
        let dropped = Arc::new(AtomicU64::new(0));
        let mut lanes = Vec::with_capacity(threads);
        for k in 0..threads {
            let own = socket.try_clone()?;
            let (jobs, job_rx) = mpsc::sync_channel::<(Batch, usize)>(LANE_BATCHES);
            let (free_tx, free) = mpsc::sync_channel::<Batch>(LANE_BATCHES);
            for _ in 0..LANE_BATCHES {
                let _ = free_tx.send(Batch::new(LANE_BATCH, LANE_SLOT));
            }
            let dropped = Arc::clone(&dropped);
            std::thread::Builder::new()
                .name(format!("onhold-media-{k}"))
                .spawn(move || {
                    // Ends when the loop drops its `Senders` (the job channel closes).
                    while let Ok((mut batch, len)) = job_rx.recv() {
                        send_all(&mut batch, own.as_raw_fd(), local, 0..len, &dropped);
                        if free_tx.send(batch).is_err() {
                            return;
                        }
                    }
                })?;
            lanes.push(Lane {
                jobs,
                free,
                filling: None,
            });
        }
        Ok(Some(Senders {
            local,
            lanes,
            dropped,
        }))
    }

    /// The sender threads `config` asks for (`media_threads`; "auto": one per core, none on a
    /// single core) for the shared RTP socket `rtp`.
    pub fn for_config(
        config: &onhold_core::config::Config,
        rtp: &UdpSocket,
    ) -> io::Result<Option<Senders>> {
        Senders::start(rtp, threads(config))
    }

    /// Hand slots `run` of `batch` (all from the shared socket) to their lanes. Returns the
    /// slots from the first that no lane could take (its batches all in flight: the threads
    /// are behind, or too long a datagram) to the end of the run, which the caller sends
    /// itself; empty when the lanes took every one.
    pub fn take(&mut self, batch: &Batch, run: Range<usize>) -> Range<usize> {
        let n = self.lanes.len();
        for i in run.clone() {
            let Some(remote) = batch.peer(i) else {
                continue;
            };
            if !self.lanes[lane_of(remote, n)].push(batch, i) {
                return i..run.end;
            }
        }
        run.end..run.end
    }

    /// Send every lane's batch in progress: called once the loop has written what is due.
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            lane.flush();
        }
    }

    /// Datagrams dropped so far because the socket stayed full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Lane {
    fn push(&mut self, from: &Batch, i: usize) -> bool {
        if from.data(i).len() > LANE_SLOT {
            return false;
        }
        if self.filling.is_none() {
            match self.free.try_recv() {
                Ok(b) => self.filling = Some((b, 0)),
                Err(_) => return false,
            }
        }
        let Some((batch, len)) = &mut self.filling else {
            return false;
        };
        batch.copy_slot(*len, from, i);
        *len += 1;
        if *len == batch.capacity() {
            self.flush();
        }
        true
    }

    fn flush(&mut self) {
        if let Some((batch, len)) = self.filling.take() {
            if len > 0 {
                // The channel holds every batch there is, so this never blocks; it fails only
                // if the thread is gone.
                if self.jobs.send((batch, len)).is_err() {
                    warn!("a media sender thread has stopped");
                }
            } else {
                self.filling = Some((batch, 0));
            }
        }
    }
}

/// How many sender threads `config` asks for: `media_threads`, or with "auto" one per core
/// (none on a single core, where a thread would only add hand-overs); none without a shared
/// port.
pub fn threads(config: &onhold_core::config::Config) -> usize {
    if config.server.rtp_shared_port.is_none() {
        return 0;
    }
    config.media_threads.unwrap_or_else(|| {
        match std::thread::available_parallelism().map_or(1, |n| n.get()) {
            1 => 0,
            n => n,
        }
    })
}

/// The lane of a destination: the same one for as long as the lanes last.
fn lane_of(remote: SocketAddr, lanes: usize) -> usize {
    let ip = match remote.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let b = u128::from(v6);
            (b as u64) ^ ((b >> 64) as u64)
        }
    };
    let h = (ip << 16 | u64::from(remote.port())).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % lanes as u64) as usize
}

/// Send slots `range` from `fd`, waiting (up to `BLOCKED_FOR` each time) while the socket is
/// full; what it still will not take is dropped and counted.
fn send_all(
    batch: &mut Batch,
    fd: RawFd,
    local: SocketAddr,
    range: Range<usize>,
    dropped: &AtomicU64,
) {
    let mut next = range.start;
    while next < range.end {
        match batch.send(fd, next..range.end) {
            Ok(n) => next += n.clamp(1, range.end - next),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !writable(fd, BLOCKED_FOR) {
                    let lost = (range.end - next) as u64;
                    let total = dropped.fetch_add(lost, Ordering::Relaxed) + lost;
                    warn!(local = %local, dropped = total, "the shared RTP socket stays full: dropping");
                    return;
                }
            }
            Err(e) => {
                debug!(local = %local, "send: {e}");
                next += 1;
            }
        }
    }
}

/// Wait until `fd` can take a datagram, at most `within`.
fn writable(fd: RawFd, within: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, within.as_millis() as libc::c_int) };
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Datagrams handed to the lanes all arrive, from the shared socket, each destination's
    /// in the order written.
    #[test]
    fn lanes_deliver_every_datagram_in_order_per_destination() {
        let shared = UdpSocket::bind("127.0.0.1:0").unwrap();
        shared.set_nonblocking(true).unwrap();
        let mut senders = Senders::start(&shared, 2).unwrap().expect("two lanes");
        let sinks: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut batch = Batch::new(3, 64);
        for round in 0..10u8 {
            for (k, sink) in sinks.iter().enumerate() {
                batch.slot_mut(k)[0] = round;
                batch.set_outgoing(k, sink.local_addr().unwrap(), 1, None);
            }
            let left = senders.take(&batch, 0..3);
            assert!(left.is_empty(), "every lane had room: {left:?}");
            if round % 4 == 3 {
                senders.flush();
            }
        }
        senders.flush();
        for sink in &sinks {
            sink.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + Duration::from_secs(2);
            while got.len() < 10 && Instant::now() < deadline {
                if let Ok((n, from)) = sink.recv_from(&mut buf) {
                    assert_eq!((n, from), (1, shared.local_addr().unwrap()));
                    got.push(buf[0]);
                }
            }
            assert_eq!(got, (0..10).collect::<Vec<u8>>());
        }
        assert_eq!(senders.dropped(), 0);
    }

    #[test]
    fn a_destination_keeps_its_lane() {
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:4002".parse().unwrap();
        assert_eq!(lane_of(a, 4), lane_of(a, 4));
        assert!(lane_of(b, 4) < 4);
        let spread: std::collections::BTreeSet<usize> = (0..64)
            .map(|p| lane_of(SocketAddr::from(([10, 0, 0, 1], 4000 + 2 * p)), 4))
            .collect();
        assert_eq!(spread.len(), 4, "ports spread over every lane");
    }
}
