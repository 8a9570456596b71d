//! The floor: the least a sender of these streams can do. One thread, one socket, a paced loop
//! of plain `send_to` calls putting each stream's 172-byte PCMU/20 ms packet on its own grid
//! (the streams' phases spread over the 20 ms, as calls arriving one by one would be). No SIP,
//! no audio: what it costs is the kernel's share of sending, which every server pays too.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::media::Windows;
use super::rx;
use super::stats;

/// How long the streams run before the hold window opens (every stream is started by then).
const SETTLE: Duration = Duration::from_millis(500);
/// How early a packet may leave rather than sleep for it.
const EARLY: Duration = Duration::from_micros(100);

/// What the floor measured of itself.
#[derive(Debug, Clone, Default)]
pub struct FloorResult {
    pub streams: usize,
    pub hold_s: f64,
    /// CPU of the sending thread over the hold window (`/proc/thread-self/stat`).
    pub cpu_ticks_hold: Option<u64>,
    /// When the last packet had left.
    pub stopped_ns: u64,
}

/// Send `streams` streams to `ports` (stream `k` to `ports[k % len]`) for `SETTLE + hold`.
pub fn run(
    ip: Ipv4Addr,
    ports: &[u16],
    streams: usize,
    hold: Duration,
    ptime: Duration,
    windows: &Arc<Windows>,
) -> std::io::Result<FloorResult> {
    let ports = ports.to_vec();
    let windows = windows.clone();
    let handle = std::thread::Builder::new()
        .name("bench-floor".into())
        .spawn(move || send(ip, &ports, streams, hold, ptime, &windows))?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("the floor's thread panicked"))?
}

fn send(
    ip: Ipv4Addr,
    ports: &[u16],
    streams: usize,
    hold: Duration,
    ptime: Duration,
    windows: &Windows,
) -> std::io::Result<FloorResult> {
    let sock = UdpSocket::bind((ip, 0))?;
    let dests: Vec<SocketAddrV4> = (0..streams)
        .map(|k| SocketAddrV4::new(ip, ports[k % ports.len()]))
        .collect();
    let mut packet = [0xffu8; 172];
    packet[..2].copy_from_slice(&[0x80, 0]);
    let step = ptime / streams.max(1) as u32;
    let samples = (ptime.as_millis() * 8) as u32;
    let start = Instant::now();
    let hold_from = start + SETTLE;
    let end = hold_from + hold;
    let stat = "/proc/thread-self/stat";
    let mut cpu0 = None;
    let mut round: u32 = 0;
    'rounds: loop {
        let base = start + ptime * round;
        for (k, dest) in dests.iter().enumerate() {
            let due = base + step * k as u32;
            let now = Instant::now();
            // A packet due within EARLY goes now: a sleep that short costs a system call and a
            // wake-up per packet and, with the timer slack (50 µs), paces no better.
            if due > now + EARLY {
                std::thread::sleep(due - now);
            }
            if cpu0.is_none() && due >= hold_from {
                cpu0 = stats::cpu_ticks(stat);
                Windows::set(&windows.hold_from, rx::now_ns());
            }
            if due >= end {
                break 'rounds;
            }
            packet[2..4].copy_from_slice(&(round as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&round.wrapping_mul(samples).to_be_bytes());
            packet[8..12].copy_from_slice(&(k as u32).to_be_bytes());
            // A failed send shows as loss at the receiver.
            let _ = sock.send_to(&packet, dest);
        }
        round += 1;
    }
    let cpu1 = stats::cpu_ticks(stat);
    let stopped_ns = rx::now_ns();
    Windows::set(&windows.hold_until, stopped_ns);
    Windows::set(&windows.teardown_from, stopped_ns);
    Ok(FloorResult {
        streams,
        hold_s: (Instant::now() - hold_from).as_secs_f64(),
        cpu_ticks_hold: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        stopped_ns,
    })
}
