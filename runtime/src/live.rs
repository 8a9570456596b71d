//! Live sources: for each class whose `music` is an `http://` URL, a thread that keeps a
//! streaming HTTP GET open to it, decodes the MP3 or Ogg stream as it arrives (symphonia, over a
//! reader that cannot seek), resamples it to 16 and 8 kHz and hands the PCM to the loop, which
//! gives it to the core (`Server::live_audio`): the core encodes it and buffers it for the
//! class's callers. Both binaries use this module alike.
//!
//! The client is HTTP/1.1 written out by hand, as much as a radio stream needs: the status line
//! (Icecast's `HTTP/1.0 200`, Shoutcast's `ICY 200 OK`), headers, a body that is chunked,
//! sized or runs until the server closes, and redirects (up to [`MAX_REDIRECTS`]). We never
//! send `Icy-MetaData: 1`, so no metadata is interleaved with the audio; a server that sends
//! `icy-metaint` anyway has its metadata blocks skipped.
//!
//! A connection that fails, ends, or stalls (no byte for [`STALL`]) is an outage: reported to
//! the core (`Server::live_source`, which counts and logs it) and retried after a back-off from
//! 1 s doubling to 30 s, with ±20 % jitter so that several servers restarting together do not
//! reconnect in step. A source that played for a minute starts the back-off afresh.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onhold_core::config::{HttpUrl, MusicConfig};
use onhold_core::media::resample::Streaming;
use onhold_core::Server;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// No byte for this long is a stalled source: drop the connection and reconnect.
pub const STALL: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A source that played this long was healthy: its next outage backs off from the start.
const HEALTHY: Duration = Duration::from_secs(60);
/// The most a response head may take (status line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// What a source thread tells the loop.
pub enum LiveMsg {
    Audio {
        class: Arc<str>,
        pcm8: Vec<i16>,
        pcm16: Vec<i16>,
    },
    Up(Arc<str>),
    Down(Arc<str>, String),
}

/// The loop's side: what the source threads sent, delivered to the server each turn.
pub struct LiveSources {
    rx: mpsc::Receiver<LiveMsg>,
}

/// One live class to play.
#[derive(Clone)]
struct Source {
    class: Arc<str>,
    url: HttpUrl,
    /// Keep the 16 kHz audio (G.722 is among the codecs).
    g722: bool,
    /// Linear gain (the configuration's `gain_db`; a stream cannot be normalised ahead).
    gain: f32,
}

/// Start a thread per live class in `music`; `wake` makes the loop turn. `None` when there are
/// no live classes.
pub fn start(
    music: &MusicConfig,
    g722: bool,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> Option<LiveSources> {
    let live: Vec<Source> = music
        .classes
        .iter()
        .filter_map(|c| {
            Some(Source {
                class: Arc::from(c.name.as_str()),
                url: c.live.clone()?,
                g722,
                gain: 10f32.powf(music.gain_db / 20.0),
            })
        })
        .collect();
    if live.is_empty() {
        return None;
    }
    // Bounded: a loop that falls behind slows the readers (TCP pushes back on the source)
    // instead of queueing audio without end. 256 blocks are several seconds.
    let (tx, rx) = mpsc::sync_channel(256);
    for source in live {
        let (tx, wake) = (tx.clone(), Arc::clone(&wake));
        let name = format!("live-{}", source.class);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(source, tx, wake));
        if let Err(e) = spawned {
            tracing::error!("cannot start a live source thread: {e}");
        }
    }
    Some(LiveSources { rx })
}

impl LiveSources {
    /// Give the server everything the sources sent since the last turn.
    pub fn deliver(&self, server: &mut Server, now: Instant) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                LiveMsg::Audio { class, pcm8, pcm16 } => {
                    server.live_audio(now, &class, &pcm8, &pcm16)
                }
                LiveMsg::Up(class) => server.live_source(&class, Ok(())),
                LiveMsg::Down(class, why) => server.live_source(&class, Err(why)),
            }
        }
    }
}

/// A source's thread: connect, play until it fails, report, back off, again. It runs at nice
/// +5: below the loop, so on a busy host calls' packets get the CPU first (the jitter buffer
/// covers a decoder that waits), and above the control API's threads (+10).
fn run(source: Source, tx: mpsc::SyncSender<LiveMsg>, wake: Arc<dyn Fn() + Send + Sync>) {
    // SAFETY: gettid and setpriority take and return plain integers; on Linux, PRIO_PROCESS
    // with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5);
    }
    let mut backoff = BACKOFF_FIRST;
    let mut jitter = Jitter::new(&source.class);
    let send = |msg: LiveMsg| -> bool {
        let ok = tx.send(msg).is_ok();
        wake();
        ok
    };
    loop {
        let started = Instant::now();
        let why = match play(&source, &send) {
            Ok(()) => "the stream ended".to_string(),
            Err(e) => e,
        };
        if !send(LiveMsg::Down(Arc::clone(&source.class), why)) {
            return; // the loop is gone
        }
        if started.elapsed() >= HEALTHY {
            backoff = BACKOFF_FIRST;
        }
        std::thread::sleep(jitter.spread(backoff));
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// ±20 % around a delay, from a small generator seeded per thread (no determinism wanted here:
/// the point is that servers differ).
struct Jitter(u64);

impl Jitter {
    fn new(class: &str) -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let h = class
            .bytes()
            .fold(t ^ u64::from(std::process::id()), |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            });
        Jitter(h | 1)
    }

    fn spread(&mut self, d: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let f = 0.8 + 0.4 * (self.0 % 10_000) as f64 / 10_000.0;
        d.mul_f64(f)
    }
}

/// One connection: open it, decode until it ends. `Err` says why it ended.
fn play(source: &Source, send: &dyn Fn(LiveMsg) -> bool) -> Result<(), String> {
    let (body, content_type) = open(&source.url)?;
    let mut hint = Hint::new();
    match content_type.as_deref() {
        Some(t) if t.contains("mpeg") || t.contains("mp3") => {
            hint.with_extension("mp3");
        }
        Some(t) if t.contains("ogg") => {
            hint.with_extension("ogg");
        }
        _ => {
            if let Some(ext) = source.url.path.rsplit('.').next() {
                hint.with_extension(ext.split('?').next().unwrap_or(ext));
            }
        }
    }
    let mss = MediaSourceStream::new(Box::new(ReadOnlySource::new(body)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("not an audio stream symphonia reads (MP3, Ogg): {e}"))?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or("the stream has no audio track")?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| format!("cannot decode the stream: {e}"))?;
    let mut resampler: Option<(u32, Resampler)> = None;
    let mut up = false;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) => return Err(io_reason(&e)),
            Err(SymError::ResetRequired) => {
                // A chained Ogg stream starts a new logical stream: decode it afresh.
                decoder = symphonia::default::get_codecs()
                    .make(&params, &DecoderOptions::default())
                    .map_err(|e| format!("cannot decode the stream: {e}"))?;
                continue;
            }
            Err(e) => return Err(format!("stream unreadable: {e}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged frame (the stream joined mid-frame, a glitch): skip it.
            Err(SymError::DecodeError(_)) => continue,
            Err(SymError::IoError(e)) => return Err(io_reason(&e)),
            Err(e) => return Err(format!("cannot decode the stream: {e}")),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        let mono: Vec<f32> = buf
            .samples()
            .chunks(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32 * source.gain)
            .collect();
        let r = match &mut resampler {
            Some((rate, r)) if *rate == spec.rate => r,
            _ => {
                let r = Resampler::new(spec.rate)
                    .ok_or_else(|| format!("cannot resample from {} Hz", spec.rate))?;
                &mut resampler.insert((spec.rate, r)).1
            }
        };
        let (pcm8, pcm16) = r.push(&mono, source.g722);
        if !up {
            up = true;
            if !send(LiveMsg::Up(Arc::clone(&source.class))) {
                return Ok(());
            }
        }
        if !pcm8.is_empty() {
            let msg = LiveMsg::Audio {
                class: Arc::clone(&source.class),
                pcm8,
                pcm16,
            };
            if !send(msg) {
                return Ok(());
            }
        }
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the stream".into(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("stalled: nothing received for {} s", STALL.as_secs())
        }
        _ => format!("read failed: {e}"),
    }
}

/// The stream's audio to 16 kHz, and from that to 8 kHz (an exact 2:1 step, as files are).
struct Resampler {
    to16: Option<Streaming>,
    to8: Streaming,
    wide: Vec<f32>,
    narrow: Vec<f32>,
}

impl Resampler {
    fn new(rate: u32) -> Option<Resampler> {
        Some(Resampler {
            to16: if rate == 16000 {
                None
            } else {
                Some(Streaming::new(rate, 16000)?)
            },
            to8: Streaming::new(16000, 8000)?,
            wide: Vec::new(),
            narrow: Vec::new(),
        })
    }

    /// 8 kHz and (when `g722`) 16 kHz samples for what has come out so far, aligned: 8 kHz
    /// sample `k` is 16 kHz samples `2k` and `2k + 1`, so each 16 kHz block is twice the 8 kHz
    /// one (the 2:1 step lags by its chunk; the 16 kHz samples wait for it in `wide`).
    fn push(&mut self, mono: &[f32], g722: bool) -> (Vec<i16>, Vec<i16>) {
        let start = self.wide.len();
        match &mut self.to16 {
            Some(r) => r.push(mono, &mut self.wide),
            None => self.wide.extend_from_slice(mono),
        }
        self.to8.push(&self.wide[start..], &mut self.narrow);
        let pcm8: Vec<i16> = self.narrow.drain(..).map(to_i16).collect();
        let take = (2 * pcm8.len()).min(self.wide.len());
        let pcm16 = if g722 {
            self.wide[..take].iter().copied().map(to_i16).collect()
        } else {
            Vec::new()
        };
        self.wide.drain(..take);
        (pcm8, pcm16)
    }
}

fn to_i16(s: f32) -> i16 {
    let v = s * 32767.0;
    (v + 0.5f32.copysign(v)) as i16
}

/// GET the URL, following redirects: the body as a reader, and the Content-Type.
fn open(url: &HttpUrl) -> Result<(Box<dyn Read + Send + Sync>, Option<String>), String> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let stream = connect(&url)?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader)?;
        match head.status {
            200 => {
                let body: Box<dyn Read + Send + Sync> = if head.chunked {
                    Box::new(Chunked::new(reader))
                } else if let Some(len) = head.length {
                    Box::new(reader.take(len))
                } else {
                    Box::new(reader)
                };
                let body = match head.metaint {
                    Some(n) if n > 0 => Box::new(IcyStrip::new(body, n)),
                    _ => body,
                };
                return Ok((body, head.content_type));
            }
            301 | 302 | 303 | 307 | 308 => {
                let location = head
                    .location
                    .ok_or_else(|| format!("HTTP {} without a Location", head.status))?;
                url = url
                    .join(&location)
                    .map_err(|e| format!("redirect to {location}: {e}"))?;
            }
            code => return Err(format!("HTTP {code} {}", head.reason)),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

fn connect(url: &HttpUrl) -> Result<TcpStream, String> {
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(STALL));
                let _ = s.set_write_timeout(Some(CONNECT_TIMEOUT));
                let _ = s.set_nodelay(true);
                let req = format!(
                    "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: onhold/{}\r\nAccept: */*\r\n\
                     Connection: close\r\n\r\n",
                    url.path,
                    url.host_header(),
                    env!("CARGO_PKG_VERSION"),
                );
                s.write_all(req.as_bytes())
                    .map_err(|e| format!("cannot send the request to {addr}: {e}"))?;
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// What the response head says that matters here.
#[derive(Debug, Default, PartialEq)]
struct Head {
    status: u16,
    reason: String,
    chunked: bool,
    length: Option<u64>,
    location: Option<String>,
    content_type: Option<String>,
    metaint: Option<usize>,
}

/// Read the status line and headers (`HTTP/1.x NNN reason` or Shoutcast's `ICY NNN reason`).
fn read_head(r: &mut impl BufRead) -> Result<Head, String> {
    let mut total = 0;
    let mut line = String::new();
    let mut next = |line: &mut String| -> Result<(), String> {
        line.clear();
        let n = r.read_line(line).map_err(|e| io_reason(&e))?;
        total += n;
        if n == 0 {
            return Err("the server closed the connection before answering".into());
        }
        if total > MAX_HEAD {
            return Err("response head over 16 KiB".into());
        }
        Ok(())
    };
    next(&mut line)?;
    let status_line = line.trim_end().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or("");
    if !(proto.starts_with("HTTP/1.") || proto == "ICY") {
        return Err(format!("not an HTTP response: {:.60}", status_line));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {:.60}", status_line))?;
    let mut head = Head {
        status,
        reason: parts.next().unwrap_or("").to_string(),
        ..Head::default()
    };
    loop {
        next(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => head.chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-length" => head.length = value.parse().ok(),
            "location" => head.location = Some(value.to_string()),
            "content-type" => head.content_type = Some(value.to_ascii_lowercase()),
            "icy-metaint" => head.metaint = value.parse().ok(),
            _ => {}
        }
    }
}

/// A chunked body (RFC 9112 §7.1) as the bytes it carries.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Chunked<R> {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_size(&mut self) -> io::Result<u64> {
        let mut line = String::new();
        if self.inner.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let hex = line.trim().split(';').next().unwrap_or("").trim();
        u64::from_str_radix(hex, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let size = self.next_size()?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        if self.left == 0 {
            // The CRLF after the chunk's data.
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// A Shoutcast/Icecast body with metadata every `metaint` bytes of audio (one length byte ×16,
/// then that much text): the audio only.
struct IcyStrip<R> {
    inner: R,
    metaint: usize,
    until_meta: usize,
}

impl<R: Read> IcyStrip<R> {
    fn new(inner: R, metaint: usize) -> IcyStrip<R> {
        IcyStrip {
            inner,
            metaint,
            until_meta: metaint,
        }
    }
}

impl<R: Read> Read for IcyStrip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.until_meta == 0 {
            let mut len = [0u8; 1];
            self.inner.read_exact(&mut len)?;
            let mut skip = vec![0u8; len[0] as usize * 16];
            self.inner.read_exact(&mut skip)?;
            self.until_meta = self.metaint;
        }
        let want = buf.len().min(self.until_meta);
        let n = self.inner.read(&mut buf[..want])?;
        self.until_meta -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_http_and_icy_heads() {
        let text = "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-metaint: 16000\r\n\r\nBODY";
        let mut r = BufReader::new(text.as_bytes());
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_type.as_deref(), Some("audio/mpeg"));
        assert_eq!(h.metaint, Some(16000));
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "BODY");
        let mut r = BufReader::new("ICY 200 OK\r\nicy-name: x\r\n\r\n".as_bytes());
        assert_eq!(read_head(&mut r).unwrap().status, 200);
        let text = "HTTP/1.1 302 Found\r\nLocation: /other\r\nTransfer-Encoding: chunked\r\n\r\n";
        let h = read_head(&mut BufReader::new(text.as_bytes())).unwrap();
        assert_eq!(
            (h.status, h.location.as_deref(), h.chunked),
            (302, Some("/other"), true)
        );
        let e = read_head(&mut BufReader::new("SSH-2.0-OpenSSH\r\n".as_bytes())).unwrap_err();
        assert!(e.starts_with("not an HTTP response"), "{e}");
        let e = read_head(&mut BufReader::new("HTTP/1.1 200 OK\r\n".as_bytes())).unwrap_err();
        assert!(e.contains("closed"), "{e}");
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert!(read_head(&mut BufReader::new(big.as_bytes())).is_err());
    }

    #[test]
    fn chunked_bodies_are_unwrapped() {
        let text = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked::new(BufReader::new(text.as_bytes()))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello, world");
        let mut out = Vec::new();
        let cut = Chunked::new(BufReader::new("5\r\nhel".as_bytes())).read_to_end(&mut out);
        assert!(cut.is_err(), "a body cut short is an error, not the end");
    }

    #[test]
    fn icy_metadata_is_skipped() {
        let mut data = b"abcd".to_vec();
        data.push(1);
        data.extend_from_slice(b"StreamTitle='x';");
        data.extend_from_slice(b"efgh");
        data.push(0);
        data.extend_from_slice(b"ij");
        let mut out = Vec::new();
        IcyStrip::new(data.as_slice(), 4)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcdefghij");
    }

    #[test]
    fn open_follows_a_redirect_and_unwraps_a_chunked_body() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for reply in [
                "HTTP/1.1 302 Found\r\nLocation: /stream.ogg\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Type: application/ogg\r\n\
                 Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    s.read_exact(&mut byte).unwrap();
                    head.push(byte[0]);
                }
                asked.push(String::from_utf8(head).unwrap());
                s.write_all(reply.as_bytes()).unwrap();
            }
            asked
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/live")).unwrap();
        let (mut body, content_type) = open(&url).unwrap();
        let mut got = String::new();
        body.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abcde");
        assert_eq!(content_type.as_deref(), Some("application/ogg"));
        let asked = server.join().unwrap();
        assert!(
            asked[0].starts_with("GET /live HTTP/1.1\r\n"),
            "{}",
            asked[0]
        );
        assert!(
            asked[1].starts_with("GET /stream.ogg HTTP/1.1\r\n"),
            "{}",
            asked[1]
        );
        assert!(asked[1].contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")));
        assert!(
            !asked[0].to_ascii_lowercase().contains("icy-metadata"),
            "no metadata asked for"
        );
    }

    #[test]
    fn a_refusal_is_one_line() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/live")).unwrap();
        let e = open(&url).err().unwrap();
        assert!(e.starts_with("cannot connect to 127.0.0.1:"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn resampled_blocks_keep_the_two_rates_in_step() {
        let mut r = Resampler::new(44100).unwrap();
        let (mut n8, mut n16) = (0, 0);
        for _ in 0..100 {
            let (a, b) = r.push(&[0.25; 1152], true);
            assert_eq!(b.len(), 2 * a.len());
            n8 += a.len();
            n16 += b.len();
        }
        // All of it, less what waits in the two resamplers' chunks (23 ms at 44.1 kHz, 64 ms at
        // 16 kHz): under 100 ms.
        let expected = 115_200 * 8000 / 44100;
        assert!(n8 > expected - 800 && n8 <= expected, "{n8}");
        assert_eq!(n16, 2 * n8);
    }
}
