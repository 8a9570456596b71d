//! What the server hands the runtime, in the order it was decided: datagrams to send (SIP and
//! RTCP), events, and commands. RTP is not queued: [`super::media::Media`] writes each packet
//! into the caller's buffer when it is due.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Command, Event, Transmit, TransmitKind, Transport};
use crate::rtp::{write_rtcp_sr, SenderInfo};

/// Where a SIP message travels: transport, our address, the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    pub transport: Transport,
    pub local: SocketAddr,
    pub dest: SocketAddr,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    datagrams: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    commands: VecDeque<Command>,
}

/// A datagram waiting to be sent.
#[derive(Debug)]
struct Outgoing {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    kind: TransmitKind,
    bytes: Payload,
}

/// The bytes of a queued datagram. A response a transaction or call keeps for retransmission
/// is shared with the queue, so neither keeping it nor resending it copies it. An RTCP report
/// is queued as what it says and written straight into the caller's buffer when sent.
#[derive(Debug)]
pub(crate) enum Payload {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// An RTCP SR with our CNAME, and BYE after it when `bye` (see [`write_rtcp_sr`]).
    Rtcp {
        info: SenderInfo,
        bye: bool,
    },
}

impl Payload {
    /// Write the datagram into `buf` (cut to its length, as a copy would be); its length.
    fn write(&self, buf: &mut [u8]) -> usize {
        let bytes: &[u8] = match self {
            Payload::Owned(v) => v,
            Payload::Shared(a) => a,
            Payload::Rtcp { info, bye } => return write_rtcp(buf, *info, *bye),
        };
        let len = bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&bytes[..len]);
        len
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::Owned(v)
    }
}

impl From<Arc<[u8]>> for Payload {
    fn from(a: Arc<[u8]>) -> Payload {
        Payload::Shared(a)
    }
}

/// Room an RTCP report with BYE takes (56 bytes), rounded up.
const RTCP_ROOM: usize = 128;

/// [`write_rtcp_sr`] with our CNAME into `buf`, or (a buffer below the documented size) into
/// one on the stack, cut to fit.
fn write_rtcp(buf: &mut [u8], info: SenderInfo, bye: bool) -> usize {
    if buf.len() >= RTCP_ROOM {
        return write_rtcp_sr(buf, info, b"onhold", bye);
    }
    let mut room = [0u8; RTCP_ROOM];
    let n = write_rtcp_sr(&mut room, info, b"onhold", bye).min(buf.len());
    buf[..n].copy_from_slice(&room[..n]);
    n
}

impl Outbox {
    /// Queue a SIP message on `path`.
    pub fn sip(&mut self, path: Path, bytes: impl Into<Payload>) {
        self.datagram(path, TransmitKind::Sip, bytes.into());
    }

    /// Queue a datagram of any kind on `path`.
    pub fn datagram(&mut self, path: Path, kind: TransmitKind, bytes: Payload) {
        self.datagrams.push_back(Outgoing {
            transport: path.transport,
            local: path.local,
            remote: path.dest,
            kind,
            bytes,
        });
    }

    pub fn event(&mut self, ev: Event) {
        self.events.push_back(ev);
    }

    pub fn command(&mut self, cmd: Command) {
        self.commands.push_back(cmd);
    }

    /// Write the oldest queued datagram into `buf`.
    pub fn pop_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        let o = self.datagrams.pop_front()?;
        Some(Transmit {
            transport: o.transport,
            local: o.local,
            remote: o.remote,
            len: o.bytes.write(buf),
            kind: o.kind,
        })
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn pop_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Is a datagram or a command waiting (work for the runtime now)?
    /// Datagrams waiting to be sent.
    pub fn queued(&self) -> usize {
        self.datagrams.len()
    }

    pub fn has_work(&self) -> bool {
        !self.datagrams.is_empty() || !self.commands.is_empty()
    }
}
