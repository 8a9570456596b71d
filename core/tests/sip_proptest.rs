//! Property tests of the SIP parser and serializer.
//!
//! - Generated messages written with `MessageWriter` parse back to what was written, and
//!   `write_message` reproduces the bytes exactly (serializer → parser → serializer).
//! - Arbitrary bytes, and real messages with bytes flipped, cut or inserted, never panic the
//!   parser, the framer or any typed accessor.
//! - Hostile datagrams (64 KB of garbage, 10,000 Via lines, a 1 MB Content-Length claim) end
//!   in an error, quickly.

use onhold_core::sip::{
    frame, parse, reason_phrase, write_message, ErrorKind, HeaderName, Message, MessageWriter,
    Method, StartLine, Uri,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Generated valid messages

#[derive(Debug, Clone)]
enum Start {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone)]
struct Model {
    start: Start,
    headers: Vec<(String, String)>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
        ])
        .prop_map(str::to_owned),
        token(),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){0,2}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[2001:db8::1]".to_owned()),
    ]
}

fn uri() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["sip", "sips"]),
        prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}|%[0-9A-F]{2}[a-z]{1,4}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec(("[a-z]{1,8}", prop::option::of("[a-z0-9]{1,6}")), 0..3),
    )
        .prop_map(|(scheme, user, host, port, params)| {
            let mut s = format!("{scheme}:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

/// A header value as a writer emits it: no CR/LF, no surrounding whitespace, any other
/// printable ASCII or non-ASCII text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[!-~\u{a0}-\u{24f}]([ -~\u{a0}-\u{24f}\t]{0,40}[!-~\u{a0}-\u{24f}])?",
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        // Canonical spellings of known headers (not Content-Length/Type: body() writes those).
        prop::sample::select(vec![
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Contact",
            "Max-Forwards",
            "Subject",
            "Supported",
            "Require",
            "Allow",
            "User-Agent",
            "Session-Expires",
            "Min-SE",
            "Record-Route",
            "WWW-Authenticate",
        ])
        .prop_map(str::to_owned),
        // Extension headers: never a compact form or a known name.
        token().prop_map(|t| format!("X-{t}")),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    let start = prop_oneof![
        (method(), uri()).prop_map(|(method, uri)| Start::Request { method, uri }),
        (100u16..700, "[ -~\u{a0}-\u{4ff}]{0,30}")
            .prop_map(|(code, reason)| Start::Response { code, reason }),
    ];
    (
        start,
        prop::collection::vec((header_name(), value()), 0..24),
        prop::option::of(prop::sample::select(vec!["application/sdp", "text/plain"])),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(start, headers, content_type, body)| Model {
            start,
            headers,
            content_type,
            body,
        })
}

fn write_model(m: &Model) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = match &m.start {
        Start::Request { method, uri } => {
            MessageWriter::request(&mut out, Method::from_token(method), uri)
        }
        Start::Response { code, reason } => MessageWriter::response(&mut out, *code, reason),
    };
    for (n, v) in &m.headers {
        w.header(n, v);
    }
    w.body(m.content_type, &m.body);
    out
}

/// The parsed message says what the model said.
fn assert_matches_model(msg: &Message<'_>, m: &Model) {
    match (&m.start, msg.start) {
        (
            Start::Request { method, uri },
            StartLine::Request {
                method: pm,
                uri: pu,
            },
        ) => {
            assert_eq!(pm.as_str(), method);
            assert_eq!(pu, uri);
            assert!(Uri::parse(pu).is_ok());
        }
        (
            Start::Response { code, reason },
            StartLine::Response {
                code: pc,
                reason: pr,
            },
        ) => {
            assert_eq!(pc, *code);
            assert_eq!(pr, reason);
        }
        (s, p) => panic!("start line {s:?} parsed as {p:?}"),
    }
    let extra = usize::from(m.content_type.is_some()) + 1;
    assert_eq!(msg.headers.len(), m.headers.len() + extra);
    for (h, (n, v)) in msg.headers.iter().zip(&m.headers) {
        assert_eq!(h.name, HeaderName::parse(n));
        assert_eq!(h.name.as_str(), n);
        assert_eq!(h.value, v);
    }
    assert_eq!(msg.content_length(), Ok(Some(m.body.len() as u32)));
    assert_eq!(msg.body, &m.body[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// serializer → parser → serializer gives the same bytes, and the parser reads back the
    /// model; the TCP framer frames exactly the message.
    #[test]
    fn generated_messages_round_trip(m in model()) {
        let bytes = write_model(&m);
        let msg = parse(&bytes).unwrap_or_else(|e| panic!("{e:?}\n{}", String::from_utf8_lossy(&bytes)));
        assert_matches_model(&msg, &m);
        let mut again = Vec::new();
        write_message(&msg, &mut again);
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(frame(&bytes), onhold_core::sip::Frame::Complete { len: bytes.len() });
        exercise(&msg);
    }

    /// Arbitrary bytes: parse, frame and every accessor return without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_no_panic(&bytes);
    }

    /// Arbitrary Unicode text: valid UTF-8 reaches the string-slicing code that random bytes
    /// rarely get past the UTF-8 check to.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), prefix in prop::sample::select(vec![
        "", "SIP/2.0 ", "INVITE ", "INVITE sip:", "OPTIONS sip:a@b SIP/2.0\r\nVia: ",
        "OPTIONS sip:a@b SIP/2.0\r\nFrom: ", "OPTIONS sip:a@b SIP/2.0\r\nContact: \"",
    ])) {
        let msg = format!("{prefix}{text}\r\n\r\n");
        check_no_panic(msg.as_bytes());
        check_no_panic(text.as_bytes());
    }

    /// Arbitrary text built from SIP's structural characters reaches deeper into the header
    /// grammars than random bytes do.
    #[test]
    fn sip_shaped_text_never_panics(
        start in prop::sample::select(vec![
            "INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "BYE sips:[::1]:5061 SIP/2.0",
        ]),
        lines in prop::collection::vec(
            (header_name(), "[ -~\t]{0,3}([\"<>;,=:@%\\\\ \t/a-z0-9]{0,30}|\r\n )*"),
            0..12,
        ),
    ) {
        let mut text = format!("{start}\r\n");
        for (n, v) in &lines {
            text.push_str(&format!("{n}:{v}\r\n"));
        }
        text.push_str("\r\n");
        check_no_panic(text.as_bytes());
    }

    /// Real messages with bytes flipped, cut or inserted never panic anything.
    #[test]
    fn mutated_real_messages_never_panic(
        which in 0..REAL.len(),
        mutations in prop::collection::vec(
            (0u8..3, any::<prop::sample::Index>(), prop::sample::select(INTERESTING.to_vec())),
            1..8,
        ),
    ) {
        let mut bytes = REAL[which].to_vec();
        for (op, at, byte) in mutations {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] ^= byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        check_no_panic(&bytes);
    }
}

/// Bytes a mutation inserts or flips with: the separators every grammar looks at.
const INTERESTING: &[u8] = b"\r\n \t:;,=\"<>@%\\/?[]0\x00\x80\xff";

const REAL: &[&[u8]] = &[
    include_bytes!("torture/wsinv.sip"),
    include_bytes!("torture/intmeth.sip"),
    include_bytes!("torture/esc01.sip"),
    include_bytes!("torture/longreq.sip"),
    include_bytes!("torture/mpart01.sip"),
    include_bytes!("torture/unreason.sip"),
    include_bytes!("torture/badinv01.sip"),
    include_bytes!("torture/inv2543.sip"),
    DP750,
];

const DP750: &[u8] = b"INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1748296302;rport\r\n\
From: \"Reception\" <sip:201@192.168.1.10>;tag=1195548471\r\n\
To: <sip:123@192.168.1.100:5060>\r\n\
Call-ID: 1380512936-5060-7@BJC.BGI.B.FA\r\n\
CSeq: 21 INVITE\r\n\
Contact: \"Reception\" <sip:201@192.168.1.50:5060>\r\n\
Max-Forwards: 70\r\n\
Supported: replaces, path, timer, eventlist\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   20\r\n\
\r\n\
v=0\r\nc=IN IP4 1.2.3.4\r\n";

fn check_no_panic(bytes: &[u8]) {
    let _ = frame(bytes);
    match parse(bytes) {
        Ok(msg) => {
            exercise(&msg);
            let mut out = Vec::new();
            write_message(&msg, &mut out);
            // What we write back always parses, to the same start line and body.
            let again = parse(&out).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(again.start, msg.start);
            assert_eq!(again.body, msg.body);
        }
        Err(e) => {
            assert!(!e.kind.reason().is_empty());
            if let Some(m) = e.salvaged.as_ref() {
                exercise(m);
            }
        }
    }
}

/// Calls every accessor; none may panic, whatever the message.
fn exercise(m: &Message<'_>) {
    for v in m.vias().flatten() {
        let _ = (v.branch(), v.rport(), v.received());
    }
    let _ = m.top_via();
    for na in [m.from(), m.to()].into_iter().flatten() {
        let _ = (na.tag(), na.display_unescaped(), na.uri.user_unescaped());
        let _ = na.uri.host_unbracketed();
    }
    let _ = (m.call_id(), m.cseq(), m.max_forwards(), m.content_type());
    let _ = (
        m.content_length(),
        m.session_expires(),
        m.min_se(),
        m.expires(),
    );
    let _ = m.contacts().count();
    let _ = (
        m.require().count(),
        m.supported().count(),
        m.allow().count(),
    );
    let _ = m.check_request();
    if let Some(u) = m.request_uri() {
        if let Ok(u) = Uri::parse(u) {
            let _ = (u.user_unescaped(), u.transport(), u.params.iter().count());
        }
    }
    let _ = m.header("Subject");
    let _ = reason_phrase(m.status().unwrap_or(0));
}

// ---------------------------------------------------------------------------------------------
// Hostile datagrams

/// Runs `f` and fails if it takes longer than `limit` (generous: debug builds, busy CI).
// Tests measure wall time on purpose; the core itself never reads a clock (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn quickly<T>(limit_ms: u128, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = f();
    let ms = start.elapsed().as_millis();
    assert!(ms <= limit_ms, "took {ms} ms");
    out
}

#[test]
fn garbage_64k_datagram_is_an_error_quickly() {
    // Deterministic pseudo-random garbage (xorshift), no line ends: nothing to frame.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut garbage: Vec<u8> = (0..65_535)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    garbage[0] = b'G'; // not a keep-alive
    let e = quickly(100, || parse(&garbage).map(|_| ()).unwrap_err());
    assert_ne!(e.kind, ErrorKind::KeepAlive);
    // The same garbage with line ends everywhere still ends in an error.
    let lined: Vec<u8> = garbage
        .iter()
        .map(|&b| if b % 16 == 0 { b'\n' } else { b })
        .collect();
    assert!(quickly(100, || parse(&lined).is_err()));
    // On a stream, 64 KB without a header section end is still worth waiting for; one byte
    // more than MAX_HEAD is not.
    assert_eq!(frame(&garbage), onhold_core::sip::Frame::NeedMore);
    garbage.resize(onhold_core::sip::MAX_HEAD + 1, b'x');
    assert_eq!(
        quickly(100, || frame(&garbage)),
        onhold_core::sip::Frame::Invalid
    );
}

#[test]
fn ten_thousand_vias_are_an_error_quickly() {
    let mut m = b"INVITE sip:moh@example.com SIP/2.0\r\n".to_vec();
    for i in 0..10_000 {
        m.extend_from_slice(
            format!("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let e = quickly(100, || parse(&m).unwrap_err());
    assert_eq!(e.kind, ErrorKind::TooManyHeaders);
    // And as one comma-separated line (as many as fit a datagram): the header count is fine,
    // the accessor just iterates, bounded by the datagram.
    let mut one = b"INVITE sip:moh@example.com SIP/2.0\r\nVia: ".to_vec();
    for i in 0..1_500 {
        if i > 0 {
            one.extend_from_slice(b", ");
        }
        one.extend_from_slice(format!("SIP/2.0/UDP h;branch=z9hG4bK{i}").as_bytes());
    }
    one.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let msg = parse(&one).unwrap();
    assert!(one.len() < 65_535);
    assert_eq!(quickly(1000, || msg.vias().count()), 1_500);
}

#[test]
fn huge_content_length_is_an_error_quickly() {
    let m = b"INVITE sip:moh@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Call-ID: big\r\nContent-Length: 1000000\r\n\r\nv=0\r\n";
    let e = quickly(10, || parse(m).unwrap_err());
    assert_eq!(e.kind, ErrorKind::BodyTooShort);
    assert_eq!(e.request().unwrap().call_id(), Ok("big"));
    assert_eq!(frame(m), onhold_core::sip::Frame::Invalid);
}

// ---------------------------------------------------------------------------------------------
// An independent parser as oracle: rsip (dev-dependency only, never in the shipped code path).

const ORACLE_HOST: &str =
    "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){0,2}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}";

/// A request with the mandatory headers filled in plausibly and extension headers around them.
fn valid_request() -> impl Strategy<Value = Model> {
    (
        // rsip knows these methods only.
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
        ]),
        // rsip 0.4 cannot read an IPv6 reference in a URI ("invalid digit") nor a `;` in a
        // user part (RFC 3261 user-unreserved): plain users, host names and IPv4 here. Our own
        // round-trip property covers the rest.
        ("[a-z0-9]{1,8}", ORACLE_HOST, prop::option::of(1u16..)).prop_map(|(user, host, port)| {
            match port {
                Some(p) => format!("sip:{user}@{host}:{p}"),
                None => format!("sip:{user}@{host}"),
            }
        }),
        ORACLE_HOST,
        "[a-zA-Z0-9]{1,12}",
        "[a-zA-Z0-9.+-]{1,20}(@[a-z0-9.]{1,12})?",
        0u32..=u32::MAX,
        prop::collection::vec(
            (token(), "[a-zA-Z0-9]([a-zA-Z0-9 ./=-]{0,20}[a-zA-Z0-9])?"),
            0..8,
        ),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(method, uri, via_host, tag, call_id, seq, extra, body)| {
            let mut headers = vec![
                (
                    "Via".to_owned(),
                    format!("SIP/2.0/UDP {via_host}:5060;branch=z9hG4bK{tag}"),
                ),
                ("Max-Forwards".to_owned(), "70".to_owned()),
                (
                    "From".to_owned(),
                    format!("\"Caller\" <sip:a@{via_host}>;tag={tag}"),
                ),
                ("To".to_owned(), format!("<{uri}>")),
                ("Call-ID".to_owned(), call_id),
                ("CSeq".to_owned(), format!("{seq} {method}")),
            ];
            headers.extend(extra.into_iter().map(|(n, v)| (format!("X-{n}"), v)));
            Model {
                start: Start::Request {
                    method: method.to_owned(),
                    uri,
                },
                headers,
                content_type: Some("application/octet-stream"),
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rsip_agrees_on_method_call_id_cseq_and_header_count(m in valid_request()) {
        use rsip::prelude::*;
        let bytes = write_model(&m);
        let ours = parse(&bytes).unwrap();
        let theirs = rsip::Request::try_from(&bytes[..])
            .unwrap_or_else(|e| panic!("rsip: {e:?}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(theirs.method().to_string(), ours.method().unwrap().as_str());
        prop_assert_eq!(theirs.call_id_header().unwrap().value(), ours.call_id().unwrap());
        let cseq = theirs.cseq_header().unwrap().typed().unwrap();
        let (seq, method) = ours.cseq().unwrap();
        prop_assert_eq!((cseq.seq, cseq.method.to_string()), (seq, method.as_str().to_owned()));
        prop_assert_eq!(theirs.headers().iter().count(), ours.headers.len());
        prop_assert_eq!(&theirs.body()[..], ours.body);
        ours.check_request().unwrap();
    }
}
