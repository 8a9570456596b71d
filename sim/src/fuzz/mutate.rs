//! Mutations: on a message's structure (its lines, values, numbers, tags, SDP) and on its
//! bytes. Each is one small damage; [`mutate`] stacks a few.

use super::msg::{find, line_is, Msg};
use super::Dice;
use crate::rng::Rng;

/// The largest UDP payload over IPv4.
pub const MAX_UDP: usize = 65_507;

/// Header lines a mutation picks on purpose (the ones the server reads).
const KEY_HEADERS: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Max-Forwards",
    "Session-Expires",
    "Min-SE",
    "Require",
    "Supported",
    "Record-Route",
    "Route",
    "Allow",
    "Expires",
];

/// Media addresses an offer must not get a stream to (or only from its own scope).
const HOSTILE_MEDIA: &[&str] = &[
    "IN IP4 255.255.255.255",
    "IN IP4 224.0.0.1",
    "IN IP4 239.255.255.250",
    "IN IP4 0.0.0.0",
    "IN IP4 127.0.0.1",
    "IN IP4 127.8.8.8",
    "IN IP4 169.254.1.1",
    "IN IP4 0.1.2.3",
    "IN IP4 250.1.2.3",
    "IN IP4 192.168.1.255",
    "IN IP6 ff02::1",
    "IN IP6 ::1",
    "IN IP6 ::",
    "IN IP6 fe80::1",
    "IN IP6 ::ffff:127.0.0.1",
    "IN IP6 ::ffff:255.255.255.255",
    "IN IP4 not-an-address",
    "IN IP4 203.0.113.9",
    "IN IP4 10.1.1.1/127",
    "",
];

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "99999",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "1e3",
    "0x10",
    " 12 ",
    "",
];

const URIS: &[&str] = &[
    "tel:+14155550100",
    "sips:moh@192.168.1.100",
    "http://192.168.1.100/",
    "urn:service:sos",
    "sip:",
    "sip:@",
    "<sip:moh@192.168.1.100>",
    "sip:moh@[::1]:5060",
    "sip:moh@[fd00::100]",
    "sip:%00@192.168.1.100",
    "sip:moh@192.168.1.100;transport=tcp?subject=x&priority=urgent",
    "sip:moh@192.168.1.100:99999",
    "sip:moh@192.168.1.100:0",
    "sip:moh@host.invalid",
    "SIP:MOH@192.168.1.100",
    "sip:moh@192.168.1.100;maddr=224.0.0.1;ttl=255",
    "mailto:a@b",
    "*",
];

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "REGISTER",
    "NOTIFY",
    "invite",
    "INVITE\0",
    "I",
    "NEWMETHOD",
    "SIP/2.0",
    "-",
    "!%*_+`'~",
];

const INJECTIONS: &[&str] = &[
    "\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKinjected",
    "\r\n\r\n",
    "\r\nContent-Length: 99999",
    "\r\nTo: <sip:x@y>;tag=injected",
    "\r\n",
    "\n",
    "\r",
    "\0",
    "\0\0\0\0",
    "\u{feff}",
    "\u{7f}",
    "\x1b[31m",
];

/// `1..=3` structural mutations, then (sometimes) a raw one; at most [`MAX_UDP`] bytes.
pub fn mutate(rng: &mut Rng, mut msg: Msg, seeds: &[Msg]) -> Vec<u8> {
    let n = 1 + rng.below(3);
    for _ in 0..n {
        structural(rng, &mut msg, seeds);
    }
    let mut bytes = msg.to_bytes_within(MAX_UDP);
    if rng.one_in(4) {
        raw(rng, &mut bytes, seeds);
    }
    bytes.truncate(MAX_UDP);
    bytes
}

fn pick_header(rng: &mut Rng, msg: &Msg) -> Option<usize> {
    if msg.headers.is_empty() {
        return None;
    }
    if rng.one_in(2) {
        let name = *rng.pick(KEY_HEADERS);
        if let Some(i) = msg.find(name) {
            return Some(i);
        }
    }
    Some(rng.below(msg.headers.len() as u64) as usize)
}

fn filler(rng: &mut Rng, len: usize) -> Vec<u8> {
    let alphabet: &[u8] = match rng.below(4) {
        0 => b"a",
        1 => b"abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~",
        2 => b";=,:<>@\"\\ \t",
        _ => b"9",
    };
    // A random run of 256, repeated: variety enough, and cheap for 64 KB.
    let n = alphabet.len() as u64;
    let mut run = Vec::with_capacity(256);
    while run.len() < 256 {
        // Eight picks from one draw.
        let mut r = rng.next_u64();
        for _ in 0..8 {
            run.push(alphabet[(((r & 0xff) * n) >> 8) as usize]);
            r >>= 8;
        }
    }
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        out.extend_from_slice(&run);
    }
    out.truncate(len);
    out
}

/// `len` random bytes.
pub fn noise(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// How many copies of a line fit in a datagram, at most `want`.
fn fitting(line: &[u8], want: usize) -> usize {
    want.min(MAX_UDP / (line.len() + 2) + 1)
}

/// A size for a "huge" value: mostly around a datagram's worth.
fn huge(rng: &mut Rng) -> usize {
    match rng.below(8) {
        0 => 64 * 1024,
        1 => rng.below(MAX_UDP as u64) as usize,
        2 | 3 => 8 * 1024 + rng.below(64) as usize - 32,
        _ => 1000 + rng.below(7_000) as usize,
    }
}

/// One damage to the message's structure.
pub fn structural(rng: &mut Rng, msg: &mut Msg, seeds: &[Msg]) {
    let h = msg.headers.len();
    match rng.below(24) {
        // Swap two lines.
        0 if h >= 2 => {
            let a = rng.below(h as u64) as usize;
            let b = rng.below(h as u64) as usize;
            msg.headers.swap(a, b);
        }
        // Duplicate a line, a few times or thousands (Via).
        1 => {
            let Some(i) = pick_header(rng, msg) else {
                return;
            };
            let copies = match rng.below(5) {
                0 => 100 + rng.below(5000) as usize,
                1 => 127 + rng.below(4) as usize,
                _ => 1 + rng.below(3) as usize,
            };
            let line = msg.headers[i].clone();
            let at = if rng.one_in(2) { i } else { h };
            let copies = std::iter::repeat_n(line, fitting(&msg.headers[i], copies));
            msg.headers.splice(at..at, copies);
        }
        2 => {
            let name = *rng.pick(&["Via", "Via", "Via", "Route", "Record-Route"]);
            let i = match msg.find(name) {
                Some(i) => i,
                None => return,
            };
            let n = if rng.one_in(2) {
                500 + rng.below(5000) as usize
            } else {
                20 + rng.below(200) as usize
            };
            // Thousands of Via values on one line, or as many lines.
            if rng.one_in(2) {
                let r = msg.value_range(i);
                let v = msg.headers[i][r].to_vec();
                let mut joined = v.clone();
                for _ in 0..n.min(MAX_UDP / v.len().max(1)) {
                    joined.push(b',');
                    joined.extend_from_slice(&v);
                }
                msg.set_value(i, &joined);
            } else {
                let line = msg.headers[i].clone();
                let n = fitting(&line, n);
                msg.headers.splice(i..i, std::iter::repeat_n(line, n));
            }
        }
        // Delete a line.
        3 => {
            if let Some(i) = pick_header(rng, msg) {
                msg.headers.remove(i);
            }
        }
        // A huge value, or a huge new header.
        4 => {
            let len = huge(rng);
            let v = filler(rng, len);
            match pick_header(rng, msg) {
                Some(i) if rng.one_in(2) => msg.set_value(i, &v),
                _ => {
                    let mut line = b"X-Huge: ".to_vec();
                    line.extend_from_slice(&v);
                    msg.headers.push(line);
                }
            }
        }
        // Numbers out of range: CSeq, Content-Length, Max-Forwards, ports, timers.
        5 => {
            let number: Vec<u8> = if rng.one_in(3) {
                let mut n = vec![b'1'];
                n.extend(std::iter::repeat_n(b'9', 10_000));
                n
            } else {
                rng.pick(NUMBERS).as_bytes().to_vec()
            };
            match rng.below(7) {
                0 => set_or_add(msg, "CSeq", &[&number[..], b" INVITE"].concat()),
                1 => {
                    msg.auto_length = false;
                    set_or_add(msg, "Content-Length", &number);
                }
                2 => set_or_add(msg, "Max-Forwards", &number),
                3 => set_or_add(msg, "Session-Expires", &number),
                4 => set_or_add(msg, "Min-SE", &number),
                5 => {
                    // The Via's port.
                    if let Some(i) = msg.find("Via") {
                        let v = [
                            b"SIP/2.0/UDP 192.168.1.50:",
                            &number[..],
                            b";branch=z9hG4bKnum;rport",
                        ]
                        .concat();
                        msg.set_value(i, &v);
                    }
                }
                _ => replace_in_body(msg, b"m=audio ", |_| {
                    [b"m=audio ", &number[..], b" RTP/AVP 0"].concat()
                }),
            }
        }
        // CRLF, LF, CR, NUL and other control injection into a value or the start line.
        6 => {
            let inj = rng.pick(INJECTIONS).as_bytes().to_vec();
            match pick_header(rng, msg) {
                Some(i) if !rng.one_in(4) => {
                    let l = &mut msg.headers[i];
                    let at = rng.below(l.len() as u64 + 1) as usize;
                    l.splice(at..at, inj);
                }
                _ => {
                    let at = rng.below(msg.start.len() as u64 + 1) as usize;
                    msg.start.splice(at..at, inj);
                }
            }
        }
        // Bare LF line ends.
        7 => msg.eol = b"\n",
        // Fold a line (RFC 3261 §7.3.1 LWS), or start the head with folding.
        8 => {
            if let Some(i) = pick_header(rng, msg) {
                let l = &mut msg.headers[i];
                let colon = l.iter().position(|&b| b == b':').unwrap_or(0);
                let at = colon + 1 + rng.below((l.len() - colon) as u64) as usize;
                let fold: &[u8] = if rng.one_in(2) { b"\r\n " } else { b"\r\n\t\t" };
                l.splice(at.min(l.len())..at.min(l.len()), fold.iter().copied());
            } else {
                msg.headers.insert(0, b" folded: nothing".to_vec());
            }
        }
        // A wrong Content-Length: off by a little, missing, two that disagree.
        9 => {
            msg.auto_length = false;
            let len = msg.body.len() as i64;
            let wrong = match rng.below(5) {
                0 => len + 1,
                1 => (len - 1).max(0),
                2 => 0,
                3 => len + 1 + rng.below(100_000) as i64,
                _ => {
                    for i in msg.find_all("Content-Length").into_iter().rev() {
                        msg.headers.remove(i);
                    }
                    return;
                }
            };
            set_or_add(msg, "Content-Length", wrong.to_string().as_bytes());
            if rng.one_in(3) {
                msg.push("l", &len.to_string());
            }
        }
        // Garbage body, or an SDP body grown or cut.
        10 => match rng.below(4) {
            0 => {
                let n = rng.below(3000) as usize;
                msg.body = noise(rng, n);
            }
            1 => {
                let n = huge(rng);
                msg.body.extend(filler(rng, n));
            }
            2 => {
                let cut = rng.below(msg.body.len() as u64 + 1) as usize;
                msg.body.truncate(cut);
            }
            _ => {
                let sdp = b"v=0\r\no=- 1 1 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\nm=audio 30002 RTP/AVP 8\r\nm=video 30004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
                msg.body = sdp.to_vec();
                msg.set("Content-Type", "application/sdp");
            }
        },
        // Another method.
        11 => {
            let m = *rng.pick(METHODS);
            let sp = msg.start.iter().position(|&b| b == b' ').unwrap_or(0);
            msg.start.splice(..sp, m.bytes());
            if rng.one_in(2) {
                if let Some(i) = msg.find("CSeq") {
                    msg.set_value(i, format!("7 {m}").as_bytes());
                }
            }
        }
        // Another Request-URI (scheme, host, port, parameters).
        12 => {
            let text = String::from_utf8_lossy(&msg.start).into_owned();
            let mut parts: Vec<&str> = text.splitn(3, ' ').collect();
            if parts.len() == 3 && !text.starts_with("SIP/") {
                parts[1] = *rng.pick(URIS);
                msg.start = parts.join(" ").into_bytes();
            }
        }
        // The SDP's media address: broadcast, multicast, unspecified, loopback, link-local.
        13 | 14 => {
            let media = rng.pick(HOSTILE_MEDIA).as_bytes().to_vec();
            if find(&msg.body, b"c=").is_none() {
                msg.body = b"v=0\r\no=- 1 1 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8\r\n".to_vec();
                msg.set("Content-Type", "application/sdp");
            }
            // RTCP elsewhere (RFC 3605 `a=rtcp:port [IN IP4 address]`), or muxed.
            if rng.one_in(3) {
                let line = match rng.below(4) {
                    0 => "a=rtcp-mux\r\n".to_string(),
                    1 => format!("a=rtcp:{}\r\n", rng.pick(&["0", "9", "65535", "30001"])),
                    _ => format!(
                        "a=rtcp:{} {}\r\n",
                        rng.between(1, 65_536),
                        rng.pick(HOSTILE_MEDIA)
                    ),
                };
                msg.body.extend_from_slice(line.as_bytes());
                if rng.one_in(2) {
                    return;
                }
            }
            let every = rng.one_in(2);
            replace_lines(msg, b"c=", every, |_| [b"c=", &media[..]].concat());
            if rng.one_in(3) {
                let port = rng
                    .pick(&["0", "1", "65535", "30001", "9"])
                    .as_bytes()
                    .to_vec();
                replace_in_body(msg, b"m=audio ", |line| {
                    let rest = line
                        .iter()
                        .skip(8)
                        .position(|&b| b == b' ')
                        .map_or(&line[line.len()..], |p| &line[8 + p..]);
                    [b"m=audio ", &port[..], rest].concat()
                });
            }
        }
        // Tags: gone, empty, doubled, another.
        15 => {
            let name = *rng.pick(&["To", "From"]);
            if let Some(i) = msg.find(name) {
                let r = msg.value_range(i);
                let v = String::from_utf8_lossy(&msg.headers[i][r]).into_owned();
                let base = v.split(";tag=").next().unwrap_or("").to_string();
                let new = match rng.below(5) {
                    0 => base,
                    1 => format!("{base};tag="),
                    2 => format!("{v};tag=second"),
                    3 => format!("{base};tag=fz{:x}", rng.next_u64()),
                    _ => format!("{base};TAG={}", "x".repeat(1 + rng.below(300) as usize)),
                };
                msg.set_value(i, new.as_bytes());
            }
        }
        // Header names in other spellings: compact, upper, lower, space before the colon.
        16 => {
            if let Some(i) = pick_header(rng, msg) {
                let l = &mut msg.headers[i];
                let colon = l.iter().position(|&b| b == b':').unwrap_or(0);
                match rng.below(4) {
                    0 => l[..colon].make_ascii_uppercase(),
                    1 => l[..colon].make_ascii_lowercase(),
                    2 => {
                        l.splice(colon..colon, *b" \t");
                    }
                    _ => {
                        let compact = [
                            ("Call-ID", "i"),
                            ("From", "f"),
                            ("To", "t"),
                            ("Via", "v"),
                            ("Contact", "m"),
                            ("Content-Length", "l"),
                            ("Content-Type", "c"),
                        ];
                        if let Some((_, c)) = compact.iter().find(|(n, _)| line_is(l, n)) {
                            l.splice(..colon, c.bytes());
                        }
                    }
                }
            }
        }
        // A line from another message.
        17 if !seeds.is_empty() => {
            let other = rng.pick(seeds);
            if other.headers.is_empty() {
                return;
            }
            let line = rng.pick(&other.headers).clone();
            match pick_header(rng, msg) {
                Some(i) if rng.one_in(2) => msg.headers[i] = line,
                _ => {
                    let at = rng.below(h as u64 + 1) as usize;
                    msg.headers.insert(at, line);
                }
            }
        }
        // Another SIP version, or a broken start line.
        18 => {
            let text = String::from_utf8_lossy(&msg.start).into_owned();
            let new = match rng.below(5) {
                0 => text.replace("SIP/2.0", "SIP/3.0"),
                1 => text.replace("SIP/2.0", "SIP/2.00"),
                2 => text.replace(' ', "  "),
                3 => text.replace("SIP/2.0", ""),
                _ => text.to_ascii_lowercase(),
            };
            msg.start = new.into_bytes();
        }
        // Via parameters: no branch, an RFC 2543 branch, rport and received values, hosts.
        19 => {
            if let Some(i) = msg.find("Via") {
                let v = match rng.below(7) {
                    0 => "SIP/2.0/UDP 192.168.1.50:5060".to_string(),
                    1 => "SIP/2.0/UDP 192.168.1.50:5060;branch=1234".to_string(),
                    2 => "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK;rport=99999".to_string(),
                    3 => "SIP/2.0/UDP 192.168.1.50;received=255.255.255.255;branch=z9hG4bKr"
                        .to_string(),
                    4 => "SIP/2.0/UDP [fe80::1%25eth0]:5060;branch=z9hG4bKv6".to_string(),
                    5 => "SIP/2.0/SCTP pbx.lan;branch=z9hG4bKs;maddr=224.0.0.1".to_string(),
                    _ => format!(
                        "SIP/2.0/TLS 10.0.0.1:{};branch=z9hG4bKfz{:x}",
                        rng.below(70_000),
                        rng.next_u64()
                    ),
                };
                msg.set_value(i, v.as_bytes());
            }
        }
        // Contact: wildcard, names, lists, no brackets.
        20 => {
            let v = *rng.pick(&[
                "*",
                "<sip:201@pbx.lan>",
                "sip:201@192.168.1.50:5060;expires=0",
                "<sip:201@[fd00::50]:5060>, <sip:202@192.168.1.51>",
                "<sips:201@192.168.1.50;transport=tls>",
                "<sip:201@127.0.0.1:5060>",
                "<sip:201@255.255.255.255:5060>",
                "<tel:+1234>",
                "<sip:201@192.168.1.50:0>",
                "\"unterminated <sip:201@192.168.1.50>",
            ]);
            set_or_add(msg, "Contact", v.as_bytes());
        }
        // A route set: names to resolve, scoped addresses, many.
        21 => {
            let v = *rng.pick(&[
                "<sip:proxy.lan;lr>",
                "<sip:192.168.1.1;lr>",
                "<sip:127.0.0.1;lr>",
                "<sip:224.0.0.1;lr>",
                "<sip:edge.lan:5080;transport=tcp;lr>",
                "<sip:10.0.0.1>",
                "<sip:a;lr>, <sip:b;lr>, <sip:c;lr>",
            ]);
            let name = *rng.pick(&["Record-Route", "Route"]);
            msg.push(name, v);
        }
        // Extensions and session timers.
        22 => {
            let (name, v) = *rng.pick(&[
                ("Require", "timer"),
                ("Require", "100rel"),
                ("Require", "foo, bar"),
                ("Proxy-Require", "x"),
                ("Session-Expires", "10"),
                ("Session-Expires", "90;refresher=uas"),
                ("Session-Expires", "4294967295;refresher=uac"),
                ("Min-SE", "3600"),
                ("Max-Forwards", "0"),
                ("Content-Type", "multipart/mixed;boundary=x"),
                ("Content-Type", "application/sdp;charset=utf-16"),
                ("Content-Encoding", "gzip"),
                ("Accept", "text/plain"),
                ("Expires", "0"),
            ]);
            set_or_add(msg, name, v.as_bytes());
        }
        // Everything but the start line is gone, or everything but the head.
        _ => match rng.below(3) {
            0 => msg.headers.truncate(rng.below(h as u64 + 1) as usize),
            1 => msg.body.clear(),
            _ => {
                let name = *rng.pick(KEY_HEADERS);
                msg.headers.retain(|l| !line_is(l, name));
            }
        },
    }
}

fn set_or_add(msg: &mut Msg, name: &str, value: &[u8]) {
    match msg.find(name) {
        Some(i) => msg.set_value(i, value),
        None => {
            let mut line = name.as_bytes().to_vec();
            line.extend_from_slice(b": ");
            line.extend_from_slice(value);
            msg.headers.push(line);
        }
    }
}

/// Replace each body line starting with `prefix` (or only the first, unless `every`).
fn replace_lines(msg: &mut Msg, prefix: &[u8], every: bool, f: impl Fn(&[u8]) -> Vec<u8>) {
    let mut out = Vec::with_capacity(msg.body.len() + 32);
    let mut done = false;
    for line in msg.body.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.starts_with(prefix) && (every || !done) {
            done = true;
            out.extend_from_slice(&f(content));
            out.extend_from_slice(&line[content.len()..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    msg.body = out;
}

fn replace_in_body(msg: &mut Msg, prefix: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) {
    replace_lines(msg, prefix, false, f)
}

/// One damage to the bytes.
pub fn raw(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Msg]) {
    let len = bytes.len() as u64;
    match rng.below(9) {
        // Truncate anywhere.
        0 => bytes.truncate(rng.below(len + 1) as usize),
        // Flip a few bytes, or a few bits.
        1 => {
            for _ in 0..1 + rng.below(8) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len() as u64) as usize;
                if rng.one_in(2) {
                    bytes[i] ^= 1 << rng.below(8);
                } else {
                    bytes[i] = rng.next_u64() as u8;
                }
            }
        }
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1) as usize;
            let n = 1 + rng.below(64) as usize;
            let junk = noise(rng, n);
            bytes.splice(at..at, junk);
        }
        // Cut a range out.
        3 => {
            let a = rng.below(len + 1) as usize;
            let b = (a + rng.below(200) as usize).min(bytes.len());
            bytes.drain(a..b);
        }
        // Two messages in one datagram, or a part of this one again.
        4 => {
            let other = if !seeds.is_empty() && rng.one_in(2) {
                rng.pick(seeds).to_bytes()
            } else {
                bytes.clone()
            };
            bytes.extend_from_slice(&other);
        }
        // Padded to the largest datagram.
        5 => {
            let target = MAX_UDP - rng.below(8) as usize;
            let pad = if rng.one_in(2) { b' ' } else { b'\0' };
            bytes.resize(target.max(bytes.len()), pad);
        }
        // Every line end changed.
        6 => {
            let to = *rng.pick::<&[u8]>(&[b"\n", b"\r", b"\r\r\n", b"\n\r"]);
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"\r\n") {
                    out.extend_from_slice(to);
                    i += 2;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            *bytes = out;
        }
        // Bytes that are not UTF-8 in the head.
        7 => {
            let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
            let at = rng.below(head_end as u64 + 1) as usize;
            let bad = *rng.pick::<&[u8]>(&[b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xe2\x80\xa8"]);
            bytes.splice(at..at, bad.iter().copied());
        }
        // Leading line ends or spaces.
        _ => {
            let lead = *rng.pick::<&[u8]>(&[b"\r\n", b"\r\n\r\n", b" ", b"\t", b"\0"]);
            bytes.splice(0..0, lead.iter().copied());
        }
    }
}
