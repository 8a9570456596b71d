//! Throughput of the sans-IO core with no IO at all: complete dialogs per second, RTP packets per
//! CPU second with 10,000 calls on virtual time, and measured bytes of state per call.
//!
//! `cargo bench -p onhold-core --bench server`
//!
//! `… -- g722 pcmu` runs `BENCH_CALLS` shared-mode calls of the built-in music for
//! `BENCH_SECONDS` of virtual time in that codec (for `g722.sh`, which counts the instructions
//! per packet under callgrind: shared-mode G.722 calls encode live from their first packet).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use onhold_core::media::{ClassSpec, Library, LibrarySpec, PlayMode};
use onhold_core::server::Limits;
use onhold_core::sip::find_byte;
use onhold_core::{Command, Server, ServerConfig, Transport, MAX_DATAGRAM};

/// Counts live heap bytes so state per call is measured, not estimated. Only while `COUNTING`
/// is set: the change in live bytes over a window is the same whether or not allocations
/// outside it were counted, and the timed parts should pay for the server's allocations, not
/// for this instrument's atomic adds.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SDP: &str = "v=0\r\no=201 8000 8000 IN IP4 192.168.1.50\r\ns=SIP Call\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 8 9 18 101\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

/// One method's request as pre-made byte pieces, so a bench iteration copies bytes and writes
/// three numbers instead of running `format!` (the bench should measure the server). The
/// request is written into the template's own buffer, over the previous one: when the
/// variable pieces (branch, dialog number, To tag) have the lengths they had last time, only
/// they are written again, in place; otherwise the request is written out whole after the
/// constant start line.
///
/// `{method} sip:123@… SIP/2.0 / Via …;branch=z9hG4bK{branch};rport / From: …;tag={n} /
/// To: <…>[;tag={to_tag}] / Call-ID: {n}-5060-7@… / CSeq: {cseq} {method} / … / body`
struct Template {
    /// The last request written; its first `head_len` bytes are the constant head.
    request: Vec<u8>,
    head_len: usize,
    after_branch: Vec<u8>,
    /// Up to the end of the To URI, and the same with `;tag=` after it.
    after_from_tag: Vec<u8>,
    after_from_tag_tagged: Vec<u8>,
    after_to: Vec<u8>,
    tail: Vec<u8>,
    /// The lengths of the variable pieces in `request`: branch, dialog number, To tag (`None`:
    /// no `;tag=`). `None` before the first request.
    lengths: Option<(usize, usize, Option<usize>)>,
}

impl Template {
    fn new(method: &str, cseq: u32, body: &str) -> Template {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let head = format!("{method} sip:123@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK").into_bytes();
        let mut request = Vec::with_capacity(2048);
        request.extend_from_slice(&head);
        Template {
            request,
            head_len: head.len(),
            after_branch: b";rport\r\nFrom: \"Reception\" <sip:201@192.168.1.10>;tag=".to_vec(),
            after_from_tag: b"\r\nTo: <sip:123@192.168.1.100:5060>".to_vec(),
            after_from_tag_tagged: b"\r\nTo: <sip:123@192.168.1.100:5060>;tag=".to_vec(),
            after_to: b"\r\nCall-ID: ".to_vec(),
            tail: format!(
                "-5060-7@BJC.BGI.B.FA\r\nCSeq: {cseq} {method}\r\nContact: \"Reception\" <sip:201@192.168.1.50:5060>\r\nMax-Forwards: 70\r\nUser-Agent: Grandstream DP750 1.0.3.37\r\n{ct}Content-Length:   {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            lengths: None,
        }
    }

    /// Writes the request into `self.request`; `n` is the dialog number in decimal.
    fn write(&mut self, n: &[u8], branch: u64, to_tag: &[u8]) {
        let mut digits = [0; 20];
        let branch = decimal_text(branch, &mut digits);
        let tag_len = (!to_tag.is_empty()).then_some(to_tag.len());
        if self.lengths != Some((branch.len(), n.len(), tag_len)) {
            self.write_whole(n, branch, to_tag);
            self.lengths = Some((branch.len(), n.len(), tag_len));
            return;
        }
        let mut at = self.head_len;
        let mut put =
            |piece: &[u8], at: usize| self.request[at..at + piece.len()].copy_from_slice(piece);
        put(branch, at);
        at += branch.len() + self.after_branch.len();
        put(n, at);
        at += n.len();
        if to_tag.is_empty() {
            at += self.after_from_tag.len();
        } else {
            at += self.after_from_tag_tagged.len();
            put(to_tag, at);
            at += to_tag.len();
        }
        at += self.after_to.len();
        put(n, at);
    }

    /// The whole request after the head, piece by piece.
    fn write_whole(&mut self, n: &[u8], branch: &[u8], to_tag: &[u8]) {
        let out = &mut self.request;
        out.truncate(self.head_len);
        out.extend_from_slice(branch);
        out.extend_from_slice(&self.after_branch);
        out.extend_from_slice(n);
        if to_tag.is_empty() {
            out.extend_from_slice(&self.after_from_tag);
        } else {
            out.extend_from_slice(&self.after_from_tag_tagged);
            out.extend_from_slice(to_tag);
        }
        out.extend_from_slice(&self.after_to);
        out.extend_from_slice(n);
        out.extend_from_slice(&self.tail);
    }
}

/// `v` in decimal, two digits per division, written into the end of `buf`.
fn decimal_text(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = buf.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    &buf[i..]
}

/// `v` in decimal, appended.
fn decimal(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(decimal_text(v, &mut [0; 20]));
}

/// The To tag of a response, if it has one (the ACK and BYE need the tag of the 200): what
/// follows the first `;tag=` of the first line starting `To: `.
fn to_tag(msg: &[u8]) -> Option<&[u8]> {
    let mut rest = msg;
    let line = loop {
        let end = find_byte(rest, b'\n');
        let line = &rest[..end.unwrap_or(rest.len())];
        if line.starts_with(b"To: ") {
            break line;
        }
        rest = &rest[end? + 1..];
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut at = 0;
    loop {
        at += find_byte(&line[at..], b';')?;
        if line[at + 1..].starts_with(b"tag=") {
            return Some(&line[at + 5..]);
        }
        at += 1;
    }
}

/// The plain way to read the tag, which [`to_tag`] must agree with (checked once at start by
/// [`check_helpers`], outside every measured part).
fn to_tag_plain(msg: &[u8]) -> Option<&[u8]> {
    let line = msg
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"To: "))?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let i = line.windows(5).position(|w| w == b";tag=")?;
    Some(&line[i + 5..])
}

/// The bench's own fast helpers agree with the plain ways (a bench that read the wrong tag
/// would send ACKs and BYEs the server does not match, and its asserts would fail, but say why
/// here instead).
fn check_helpers() {
    let mut samples = vec![u64::MAX, 100_000_000, 99_999_999, 159_999, 65_535];
    samples.extend(0..10_000);
    samples.extend((1..=19).map(|p| 10u64.pow(p)));
    samples.extend((1..=19).map(|p| 10u64.pow(p) - 1));
    for v in samples {
        let mut out = b"x".to_vec();
        decimal(&mut out, v);
        assert_eq!(out, format!("x{v}").into_bytes());
    }
    // Requests written in place over the last one are the requests written whole.
    let tags: [&[u8]; 4] = [b"", b"0123456789abcdef", b"fedcba9876543210", b"x"];
    let mut t = Template::new("BYE", 22, "");
    let mut fresh = Template::new("BYE", 22, "");
    for (i, branch) in [0u64, 7, 9, 10, 11, 99, 100, 999, 1000, 1001, 65_536]
        .iter()
        .enumerate()
    {
        for n in [*branch, branch / 4, 5] {
            for tag in tags.iter().cycle().skip(i).take(3) {
                let n = n.to_string();
                t.write(n.as_bytes(), *branch, tag);
                let whole = decimal_text(*branch, &mut [0; 20]).to_vec();
                fresh.write_whole(n.as_bytes(), &whole, tag);
                assert_eq!(t.request, fresh.request);
            }
        }
    }
    for msg in [
        &b"SIP/2.0 200 OK\r\nVia: a;b\r\nTo: <sip:x>;tag=abc\r\nCall-ID: 1\r\n\r\n"[..],
        b"SIP/2.0 200 OK\r\nTo: <sip:x>;tag=abc",
        b"SIP/2.0 200 OK\r\nFrom: <sip:y>;tag=1\r\nTo: <sip:x;tag=u>;x;tag=;tag=2\r\n",
        b"SIP/2.0 200 OK\r\nTo: <sip:x>\r\nTo: <sip:x>;tag=late\r\n",
        b"SIP/2.0 200 OK\r\nTo:<sip:x>;tag=1\r\n",
        b"To: ;tag=first\nTo: ;tag=second",
        b"SIP/2.0 200 OK\r\nTo: <sip:x>;tag",
        b"SIP/2.0 200 OK\r\nTo: <sip:x>;;;tag=\r\r\n",
        b"",
        b"\n\n\nTo: ;tag=0123456789abcdef",
    ] {
        assert_eq!(
            to_tag(msg),
            to_tag_plain(msg),
            "{:?}",
            String::from_utf8_lossy(msg)
        );
    }
}

struct Bench {
    server: Server,
    now: Instant,
    buf: Vec<u8>,
    local: SocketAddr,
    remote: SocketAddr,
    invite: Template,
    ack: Template,
    bye: Template,
    /// Set while delivering an INVITE: only its 200 carries the tag we need.
    want_tag: bool,
    last_tag: Vec<u8>,
    /// The dialog number `n` in decimal, written once per dialog for its three requests.
    n: Option<u64>,
    n_text: Vec<u8>,
    rtp: u64,
}

impl Bench {
    #[allow(clippy::disallowed_methods)]
    fn new(rtp_ports: (u16, u16)) -> Bench {
        Bench::with(rtp_ports, Library::silence(), SDP)
    }

    #[allow(clippy::disallowed_methods)]
    fn with(rtp_ports: (u16, u16), library: Library, sdp: &str) -> Bench {
        let now = Instant::now();
        let config = ServerConfig {
            rtp_ports,
            max_calls: 1_000_000,
            limits: Limits::unlimited(),
            ..ServerConfig::default()
        };
        Bench {
            server: Server::new(config, Arc::new(library), 1, now, SystemTime::UNIX_EPOCH),
            now,
            buf: vec![0u8; MAX_DATAGRAM],
            local: "192.168.1.100:5060".parse().unwrap(),
            remote: "192.168.1.50:5060".parse().unwrap(),
            invite: Template::new("INVITE", 21, sdp),
            ack: Template::new("ACK", 21, ""),
            bye: Template::new("BYE", 22, ""),
            want_tag: false,
            last_tag: Vec::new(),
            n: None,
            n_text: Vec::with_capacity(20),
            rtp: 0,
        }
    }

    /// Deliver the request last written into `which`.
    fn deliver(&mut self, which: Which) {
        let request = match which {
            Which::Invite => &self.invite.request,
            Which::Ack => &self.ack.request,
            Which::Bye => &self.bye.request,
        };
        self.server
            .handle_datagram(self.now, Transport::Udp, self.local, self.remote, request);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(cmd) = self.server.poll_command() {
            if let Command::BindRtp { port, .. } = cmd {
                self.server.rtp_bind_result(self.now, port, true);
            }
        }
        while let Some(t) = self.server.poll_transmit(self.now, &mut self.buf) {
            if self.want_tag
                && t.kind == onhold_core::TransmitKind::Sip
                && self.buf.starts_with(b"SIP/2.0 200")
            {
                if let Some(tag) = to_tag(&self.buf[..t.len]) {
                    self.last_tag.clear();
                    self.last_tag.extend_from_slice(tag);
                }
            }
            if t.kind == onhold_core::TransmitKind::Rtp {
                self.rtp += 1;
            }
        }
        while let Some(ev) = self.server.poll_event() {
            black_box(ev);
        }
    }

    /// `n` in decimal in `self.n_text`.
    fn set_n(&mut self, n: u64) {
        if self.n != Some(n) {
            self.n = Some(n);
            self.n_text.clear();
            decimal(&mut self.n_text, n);
        }
    }

    /// INVITE, 200 (with the tag in `last_tag`), ACK.
    fn establish(&mut self, n: u64) {
        self.set_n(n);
        self.invite.write(&self.n_text, n * 4, b"");
        self.want_tag = true;
        self.deliver(Which::Invite);
        self.want_tag = false;
        self.ack.write(&self.n_text, n * 4 + 1, &self.last_tag);
        self.deliver(Which::Ack);
    }

    fn bye(&mut self, n: u64) {
        self.set_n(n);
        self.bye.write(&self.n_text, n * 4 + 2, &self.last_tag);
        self.deliver(Which::Bye);
    }
}

/// Which template's request [`Bench::deliver`] sends.
#[derive(Clone, Copy)]
enum Which {
    Invite,
    Ack,
    Bye,
}

/// A bench knob from the environment (e.g. a short run under callgrind).
fn knob(name: &str, default: u64) -> u64 {
    #[allow(clippy::disallowed_methods)]
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `BENCH_ROUNDS` rounds of `BENCH_DIALOGS` dialogs, each on a new server: (best, median)
/// dialogs per second. The best round is the one the machine disturbed least.
fn dialogs_per_second() -> (f64, f64) {
    let n = knob("BENCH_DIALOGS", 40_000);
    let mut rates: Vec<f64> = (0..knob("BENCH_ROUNDS", 7).max(1))
        .map(|_| dialogs_round(n))
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() - 1], rates[rates.len() / 2])
}

fn dialogs_round(n: u64) -> f64 {
    let mut b = Bench::new((10000, 60000));
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    for i in 0..n {
        b.establish(i);
        b.bye(i);
        if i % 1000 == 999 {
            // let transaction timers (J, L) run so state stays bounded, as in a real server
            b.now += Duration::from_secs(40);
            b.server.handle_timeout(b.now);
            b.drain();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        b.server.stats().calls_total,
        n,
        "every INVITE became a call"
    );
    assert_eq!(b.server.stats().calls_active, 0, "every BYE ended one");
    assert_eq!(
        b.server.stats().rtp_out,
        n,
        "every call was ACKed and sent its first packet"
    );
    n as f64 / secs
}

fn rtp_packets_per_cpu_second() -> (f64, f64) {
    let calls = 10_000u64;
    let mut b = Bench::new((10000, 40000));
    COUNTING.store(true, Ordering::Relaxed);
    let live_before = LIVE.load(Ordering::Relaxed);
    for i in 0..calls {
        b.establish(i);
    }
    // let the INVITE transactions end (timer L) so only dialog + media state remains
    b.now += Duration::from_millis(40_000);
    b.server.handle_timeout(b.now);
    b.drain();
    let live_after = LIVE.load(Ordering::Relaxed);
    COUNTING.store(false, Ordering::Relaxed);
    let per_call = (live_after - live_before) as f64 / calls as f64;
    let rtp_before = b.rtp;
    let virtual_secs = 10u64;
    let end = b.now + Duration::from_secs(virtual_secs);
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    // wake once per millisecond of virtual time, as a runtime with a 1 ms timer would
    while b.now < end {
        b.now += Duration::from_millis(1);
        b.server.handle_timeout(b.now);
        b.drain();
    }
    let secs = start.elapsed().as_secs_f64();
    let packets = b.rtp - rtp_before;
    assert!(
        packets >= calls * virtual_secs * 50 - calls,
        "10 s of 20 ms packets for every call: {packets}"
    );
    (packets as f64 / secs, per_call)
}

/// `BENCH_CALLS` shared-mode calls of the built-in music answered in `codec` ("g722" or
/// "pcmu"), run for `BENCH_SECONDS` of virtual time: the packets sent.
fn shared_calls(codec: &str) -> u64 {
    let spec = LibrarySpec {
        classes: vec![ClassSpec::builtin(PlayMode::Shared)],
        normalize: false,
        gain_db: 0.0,
        g722: true,
    };
    let library = Library::build(&spec, 1).unwrap().0;
    let first = if codec == "g722" { "9 0 8" } else { "0 8 9" };
    let sdp = SDP.replace("RTP/AVP 0 8 9", &format!("RTP/AVP {first}"));
    let mut b = Bench::with((10000, 40000), library, &sdp);
    for i in 0..knob("BENCH_CALLS", 100) {
        b.establish(i);
    }
    let end = b.now + Duration::from_secs(knob("BENCH_SECONDS", 10));
    while b.now < end {
        b.now += Duration::from_millis(1);
        b.server.handle_timeout(b.now);
        b.drain();
    }
    b.rtp
}

fn main() {
    // `cargo bench … -- dialogs` or `-- rtp` runs one part (for profiling).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    for codec in ["g722", "pcmu"] {
        if only.iter().any(|o| o == codec) {
            println!("{codec}: {} RTP packets", shared_calls(codec));
            return;
        }
    }
    check_helpers();
    if run("dialogs") {
        let (best, median) = dialogs_per_second();
        println!(
            "dialogs INVITE→200→ACK→BYE through Server, no IO: {best:>12.0} /s best, {median:.0} /s median   (budget ≥ 150,000)"
        );
    }
    if !run("rtp") {
        return;
    }
    let (pps, per_call) = rtp_packets_per_cpu_second();
    println!(
        "RTP packets produced, 10,000 calls, virtual time: {pps:>12.0} /CPU s (goal ≥ 5,000,000)"
    );
    println!(
        "heap bytes of state per established call:         {per_call:>12.0} B   (goal ≤ 2,048)"
    );
}
