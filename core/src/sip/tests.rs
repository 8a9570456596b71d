//! Unit tests of the parser, typed accessors and writer on whole messages.

use super::*;

/// `\n` → `\r\n`, so messages can be written readably here.
fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// The DP750 INVITE with its own RTP address (shared/dp750/invite-own-address.sip).
const DP750_OWN: &str = r#"INVITE sip:123@192.168.1.100:5060 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1748296302;rport
From: "Reception" <sip:201@192.168.1.10>;tag=1195548471
To: <sip:123@192.168.1.100:5060>
Call-ID: 1380512936-5060-7@BJC.BGI.B.FA
CSeq: 21 INVITE
Contact: "Reception" <sip:201@192.168.1.50:5060>
Max-Forwards: 70
User-Agent: Grandstream DP750 1.0.3.37
Privacy: none
P-Preferred-Identity: "Reception" <sip:201@192.168.1.10>
Supported: replaces, path, timer, eventlist
Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE
Content-Type: application/sdp
Accept: application/sdp, application/dtmf-relay
Content-Length:   305

v=0
o=201 8000 8000 IN IP4 192.168.1.50
s=SIP Call
c=IN IP4 192.168.1.50
t=0 0
m=audio 5004 RTP/AVP 0 8 9 18 101
a=sendrecv
a=rtpmap:0 PCMU/8000
a=ptime:20
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"#;

/// The DP750 late-offer INVITE (no SDP).
const DP750_LATE: &str = r#"INVITE sip:123@192.168.1.100:5060 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK2093346615;rport
From: "Reception" <sip:201@192.168.1.10>;tag=1733017741
To: <sip:123@192.168.1.100:5060>
Call-ID: 522094316-5060-7@BJC.BGI.B.FA
CSeq: 21 INVITE
Contact: "Reception" <sip:201@192.168.1.50:5060>
Max-Forwards: 70
User-Agent: Grandstream DP750 1.0.3.37
Privacy: none
P-Preferred-Identity: "Reception" <sip:201@192.168.1.10>
Supported: replaces, path, timer, eventlist
Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE
Accept: application/sdp, application/dtmf-relay
Content-Length:   0

"#;

/// The DP750 INVITE naming the held party's media address (body: 304 bytes).
const DP750_HELD: &str = r#"INVITE sip:123@192.168.1.100:5060 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1603442871;rport
From: "Reception" <sip:201@192.168.1.10>;tag=402719332
To: <sip:123@192.168.1.100:5060>
Call-ID: 914337310-5060-7@BJC.BGI.B.FA
CSeq: 21 INVITE
Contact: "Reception" <sip:201@192.168.1.50:5060>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length:   304

v=0
o=201 8000 8000 IN IP4 203.0.113.7
s=SIP Call
c=IN IP4 203.0.113.7
t=0 0
m=audio 18232 RTP/AVP 0 8 9 18 101
a=recvonly
a=rtpmap:0 PCMU/8000
a=ptime:20
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"#;

#[test]
fn dp750_own_address_invite() {
    let buf = crlf(DP750_OWN);
    let m = parse(&buf).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.request_uri(), Some("sip:123@192.168.1.100:5060"));
    assert_eq!(m.headers.len(), 15);

    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 1);
    let via = vias[0];
    assert_eq!(
        (via.transport, via.host, via.port),
        ("UDP", "192.168.1.50", Some(5060))
    );
    assert_eq!(via.branch(), Some("z9hG4bK1748296302"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.received(), None);

    let from = m.from().unwrap();
    assert_eq!(from.display, Some("Reception"));
    assert_eq!(from.uri.user, Some("201"));
    assert_eq!(from.uri.host, "192.168.1.10");
    assert_eq!(from.tag(), Some("1195548471"));
    let to = m.to().unwrap();
    assert_eq!(to.display, None);
    assert_eq!(to.tag(), None);
    assert_eq!(to.uri.port, Some(5060));

    assert_eq!(m.call_id(), Ok("1380512936-5060-7@BJC.BGI.B.FA"));
    assert_eq!(m.cseq(), Ok((21, Method::Invite)));
    assert_eq!(m.max_forwards(), Ok(Some(70)));
    let contacts: Vec<_> = m.contacts().collect();
    assert_eq!(contacts.len(), 1);
    let Ok(ContactValue::Addr(c)) = contacts[0] else {
        panic!("{contacts:?}")
    };
    assert_eq!((c.uri.host, c.uri.port), ("192.168.1.50", Some(5060)));
    assert_eq!(
        m.supported().collect::<Vec<_>>(),
        ["replaces", "path", "timer", "eventlist"]
    );
    assert!(m.allow().any(|a| a == Method::Update));
    assert_eq!(m.allow().count(), 11);
    assert!(m.content_type().unwrap().unwrap().is("application", "SDP"));
    assert_eq!(m.content_length(), Ok(Some(305)));
    assert_eq!(m.body.len(), 305);
    assert!(m.body.starts_with(b"v=0\r\n"));
    assert!(m.body.ends_with(b"a=fmtp:101 0-15\r\n"));
    assert_eq!(m.header("user-agent"), Some("Grandstream DP750 1.0.3.37"));
    assert_eq!(
        m.header("P-Preferred-Identity"),
        Some("\"Reception\" <sip:201@192.168.1.10>")
    );
    assert_eq!(m.session_expires(), Ok(None));
    assert_eq!(m.check_request(), Ok(()));
}

#[test]
fn dp750_late_offer_and_held_party() {
    let buf = crlf(DP750_LATE);
    let m = parse(&buf).unwrap();
    assert!(m.body.is_empty());
    assert_eq!(m.content_length(), Ok(Some(0)));
    assert_eq!(m.content_type(), Ok(None));
    assert_eq!(m.call_id(), Ok("522094316-5060-7@BJC.BGI.B.FA"));

    let buf = crlf(DP750_HELD);
    let m = parse(&buf).unwrap();
    assert_eq!(m.body.len(), 304);
    let body = std::str::from_utf8(m.body).unwrap();
    assert!(body.contains("c=IN IP4 203.0.113.7\r\n"));
    assert!(body.contains("a=recvonly"));
    assert_eq!(m.from().unwrap().tag(), Some("402719332"));
    assert_eq!(m.check_request(), Ok(()));
}

/// Quirks real peers send (shared/captures/README.md), each read as intended.
#[test]
fn capture_quirks() {
    // SER's forwarded ACK: branch without the magic cookie, no Content-Length, two spaces
    // after Max-Forwards' colon.
    let b = crlf("ACK sip:ekiga@192.0.2.9:5060 SIP/2.0\nVia: SIP/2.0/UDP 195.37.77.101;branch=0\nMax-Forwards:  9\nFrom: <sip:echo@iptel.org>;tag=a\nTo: <sip:x@iptel.org>;tag=b\nCall-ID: dtmf@1\nCSeq: 1 ACK\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(m.top_via().unwrap().branch(), Some("0"));
    assert_eq!(m.max_forwards(), Ok(Some(9)));
    assert_eq!(m.content_length(), Ok(None));
    assert!(m.body.is_empty());
    assert_eq!(m.check_request(), Ok(()));
    // magicJack's carrier: no space before '<', a Date header, Content-Length before
    // Content-Type, session timer headers, an SDP body without a final CRLF.
    let b = crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.168.0.10:59205;branch=z9hG4bK1;rport=59205;received=1.2.3.4\nFrom: \"unknown\"<sip:1@216.234.64.8>;tag=x\nTo: <sip:2@216.234.64.8>;tag=y\nCall-ID: mj\nCSeq: 2 INVITE\nDate: Sat, 01 Dec 2012 10:00:00 GMT\nSession-Expires: 60;refresher=uas\nMin-SE: 60\nX-NATType: 1\nContent-Length: 8\nContent-Type: application/sdp\n\nv=0\ns=x");
    let m = parse(&b).unwrap();
    assert_eq!(m.from().unwrap().display, Some("unknown"));
    let via = m.top_via().unwrap();
    assert_eq!(
        (via.rport(), via.received()),
        (Some(Some(59205)), Some("1.2.3.4"))
    );
    let se = m.session_expires().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher), (60, Some(Refresher::Uas)));
    assert_eq!(m.min_se(), Ok(Some(60)));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.body, b"v=0\r\ns=x");
    // A Grandstream-style padded Content-Length and a User-Agent with trailing spaces.
    let b = crlf("OPTIONS sip:a@b SIP/2.0\nUser-Agent: SIP IP-DECT gateway, NEC Philips Unified Solutions  \nContent-Length:   2\n\nok");
    let m = parse(&b).unwrap();
    assert_eq!(
        m.header("User-Agent"),
        Some("SIP IP-DECT gateway, NEC Philips Unified Solutions")
    );
    assert_eq!(m.body, b"ok");
    // CRLF pong and CRLFCRLF ping.
    assert_eq!(parse(b"\r\n").unwrap_err().kind, ErrorKind::KeepAlive);
    assert_eq!(parse(b"\r\n\r\n").unwrap_err().kind, ErrorKind::KeepAlive);
}

#[test]
fn keepalives_and_leading_crlf() {
    for ka in [&b"\r\n"[..], b"\r\n\r\n", b"\n"] {
        assert_eq!(parse(ka).unwrap_err().kind, ErrorKind::KeepAlive);
    }
    assert_eq!(parse(b"").unwrap_err().kind, ErrorKind::Truncated);
    assert_eq!(ErrorKind::KeepAlive.status(), None);
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend(crlf(DP750_LATE));
    assert_eq!(parse(&buf).unwrap().method(), Some(Method::Invite));
}

const SMALL: &str = "OPTIONS sip:moh@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=1
To: <sip:moh@example.com>
Call-ID: c1
CSeq: 1 OPTIONS
";

fn with(extra: &str, body: &str) -> Vec<u8> {
    let mut s = crlf(SMALL);
    s.extend(crlf(extra));
    s.extend(b"\r\n");
    s.extend(body.as_bytes());
    s
}

#[test]
fn content_length_rules() {
    // Longer body than Content-Length: cut (RFC 3261 §18.3).
    let b = with("Content-Length: 3\n", "abcdef");
    assert_eq!(parse(&b).unwrap().body, b"abc");
    // Padded with spaces, compact form.
    let b = with("l:    6\n", "abcdef");
    assert_eq!(parse(&b).unwrap().body, b"abcdef");
    // Missing: the rest of the datagram.
    let b = with("", "xyz");
    assert_eq!(parse(&b).unwrap().body, b"xyz");
    // Shorter: 400 with the request salvaged.
    let b = with("Content-Length: 10\n", "abc");
    let e = parse(&b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BodyTooShort);
    assert_eq!(e.kind.status(), Some(400));
    assert_eq!(e.kind.reason(), "Bad Content-Length");
    let req = e.request().unwrap();
    assert_eq!(req.call_id(), Ok("c1"));
    assert_eq!(req.top_via().unwrap().branch(), Some("z9hG4bK-1"));
    // A huge claim: an error, nothing allocated for it.
    let b = with("Content-Length: 1000000\n", "abc");
    assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BodyTooShort);
    // Not a number, negative, too big for 32 bits, two that disagree.
    for cl in ["-1", "abc", "99999999999", "1 2", ""] {
        let b = with(&format!("Content-Length: {cl}\n"), "abc");
        let e = parse(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadContentLength, "{cl:?}");
        assert!(e.request().is_some());
    }
    let b = with("Content-Length: 3\nl: 2\n", "abc");
    assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BadContentLength);
    // Two that agree are fine.
    let b = with("Content-Length: 3\nl: 3\n", "abc");
    assert_eq!(parse(&b).unwrap().body, b"abc");
}

#[test]
fn header_count_is_bounded() {
    let mut ok = crlf(SMALL);
    for _ in 0..(MAX_HEADERS - 5) {
        ok.extend_from_slice(b"X-A: 1\r\n");
    }
    ok.extend_from_slice(b"\r\n");
    assert_eq!(parse(&ok).unwrap().headers.len(), MAX_HEADERS);

    let mut bad = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
    for i in 0..10_000 {
        bad.extend_from_slice(format!("Via: SIP/2.0/UDP h{i};branch=z9hG4bK{i}\r\n").as_bytes());
    }
    bad.extend_from_slice(b"\r\n");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooManyHeaders);
    assert!(e.salvaged.is_none());
}

#[test]
fn compact_forms() {
    let b = crlf(
        "NOTIFY sip:a@b SIP/2.0
v: SIP/2.0/UDP h;branch=z9hG4bK1
f: <sip:x@y>;tag=9
t: sip:a@b
i: cid
CSeq: 2 NOTIFY
m: <sip:x@10.0.0.1>
k: timer
s: hello
e: gzip
o: dialog
u: presence
c: text/plain
l: 2

hi",
    );
    let m = parse(&b).unwrap();
    assert_eq!(m.top_via().unwrap().host, "h");
    assert_eq!(m.from().unwrap().tag(), Some("9"));
    assert_eq!(m.to().unwrap().uri.user, Some("a"));
    assert_eq!(m.call_id(), Ok("cid"));
    assert_eq!(m.contacts().count(), 1);
    assert_eq!(m.supported().collect::<Vec<_>>(), ["timer"]);
    assert_eq!(m.header("Subject"), Some("hello"));
    assert_eq!(m.header("Content-Encoding"), Some("gzip"));
    assert_eq!(m.header("event"), Some("dialog"));
    assert_eq!(m.header("Allow-Events"), Some("presence"));
    assert!(m.content_type().unwrap().unwrap().is("text", "plain"));
    assert_eq!(m.body, b"hi");
    assert_eq!(m.headers[0].raw_name, "v");
    assert_eq!(m.check_request(), Ok(()));
}

#[test]
fn folding_is_whitespace() {
    let b = crlf(
        "INVITE sip:a@b SIP/2.0
Via  : SIP  /   2.0
  /UDP
    192.0.2.2;branch=390skdjuw
Subject: one
\ttwo
From: \"A\"
 <sip:a@b>
   ;tag=1
To: sip:a@b
Call-ID: x
CSeq:
 8
   INVITE
Content-Length: 0

",
    );
    let m = parse(&b).unwrap();
    let via = m.top_via().unwrap();
    assert_eq!(
        (via.transport, via.host, via.branch()),
        ("UDP", "192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(m.header("subject"), Some("one\r\n\ttwo"));
    assert_eq!(m.from().unwrap().tag(), Some("1"));
    assert_eq!(m.cseq(), Ok((8, Method::Invite)));
    assert_eq!(m.check_request(), Ok(()));
}

#[test]
fn via_lists_and_params() {
    let b = crlf(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP first.example.com:4000;branch=z9hG4bKa;received=192.0.2.1;rport=5062, SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKb
Via: SIP/2.0/TLS third;branch=\"quoted,comma\";maddr=1.2.3.4
From: <sip:a@b>;tag=1
To: <sip:c@d>;tag=2
Call-ID: x
CSeq: 1 INVITE
Content-Length: 0

",
    );
    let m = parse(&b).unwrap();
    assert_eq!(m.status(), Some(200));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].rport(), Some(Some(5062)));
    assert_eq!(vias[0].received(), Some("192.0.2.1"));
    assert_eq!(vias[0].port, Some(4000));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, "[2001:db8::9]");
    assert_eq!(vias[1].host_unbracketed(), "2001:db8::9");
    assert_eq!(vias[0].host_unbracketed(), "first.example.com");
    assert_eq!(vias[1].port, Some(5061));
    assert_eq!(vias[2].branch(), Some("\"quoted,comma\""));
    assert_eq!(vias[2].params.value("maddr"), Some("1.2.3.4"));
    assert_eq!(vias[2].rport(), None);
    for bad in [
        "SIP/2.0/UDP",
        "SIP/2.0 UDP h",
        "SIP/2.0/UDPh",
        "SIP/2.0/UDP h:x",
        "/2.0/UDP h",
        "SIP/2.0/UDP h junk",
        "SIP/2.0/UDP h;;",
    ] {
        assert!(Via::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn methods_are_case_sensitive() {
    let b = crlf("invite sip:a@b SIP/2.0\nContent-Length: 0\n\n");
    assert_eq!(parse(&b).unwrap().method(), Some(Method::Other("invite")));
    let b = crlf("NEWMETHOD sip:a@b sip/2.0\nl: 0\n\n");
    assert_eq!(
        parse(&b).unwrap().method(),
        Some(Method::Other("NEWMETHOD"))
    );
    assert_eq!(Method::from_token("PRACK"), Method::Prack);
    assert_eq!(Method::Publish.as_str(), "PUBLISH");
}

#[test]
fn start_line_errors() {
    let cases: [(&str, ErrorKind, bool); 12] = [
        ("INVITE sip:a@b; lr SIP/2.0", ErrorKind::BadRequestUri, true),
        (
            "INVITE sip:a@b?Route=x SIP/2.0",
            ErrorKind::BadRequestUri,
            true,
        ),
        ("INVITE sip:a@b FOO/2.0", ErrorKind::BadStartLine, false),
        ("INVITE  sip:a@b SIP/2.0", ErrorKind::BadStartLine, true),
        ("INVITE sip:a@b SIP/2.0 ", ErrorKind::BadStartLine, true),
        ("INVITE sip:a@b", ErrorKind::BadStartLine, false),
        ("INV<ITE sip:a@b SIP/2.0", ErrorKind::BadStartLine, false),
        (
            "INVITE sip:a@b SIP/7.0",
            ErrorKind::UnsupportedVersion,
            true,
        ),
        ("INVITE <sip:a@b> SIP/2.0", ErrorKind::BadRequestUri, true),
        ("SIP/2.0 20 OK", ErrorKind::BadStartLine, false),
        ("SIP/2.0 1000 OK", ErrorKind::BadStartLine, false),
        ("SIP/3.0 200 OK", ErrorKind::UnsupportedVersion, false),
    ];
    for (line, kind, salvaged) in cases {
        let b = crlf(&format!("{line}\nCall-ID: x\nContent-Length: 0\n\n"));
        let e = parse(&b).unwrap_err();
        assert_eq!(e.kind, kind, "{line}");
        assert_eq!(e.request().is_some(), salvaged, "{line}");
    }
    let b = crlf("INVITE sip:a@b SIP/7.0\nl: 0\n\n");
    assert_eq!(parse(&b).unwrap_err().kind.status(), Some(505));
}

#[test]
fn non_ascii_where_ascii_is_expected_is_an_error_not_a_panic() {
    // Found by review: slicing the start line at byte 4 split a UTF-8 character.
    for line in [
        "SIé 200 OK",
        "SIPé 200 OK",
        "é",
        "INVITE sip:é@b SIP/2.0",
        "SIP/2.0 2é0 OK",
    ] {
        let b = crlf(&format!("{line}\nl: 0\n\n"));
        assert!(parse(&b).is_err(), "{line}");
    }
    let n = NameAddr::parse("\"a\\é\" <sip:x@y>").unwrap();
    assert_eq!(n.display_unescaped().unwrap(), "aé");
    assert!(NameAddr::parse("\"a\\é").is_err());
    assert!(Uri::parse("sip:x@é").is_err());
    assert!(Via::parse("SIP/2.0/UDP é").is_err());
}

#[test]
fn responses() {
    let b = crlf("SIP/2.0 100 trying -- your call is important to us\nl: 0\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 100,
            reason: "trying -- your call is important to us"
        }
    );
    assert!(!m.is_request());
    assert_eq!(m.method(), None);
    let b = crlf("SIP/2.0 200\nl: 0\n\n");
    assert_eq!(parse(&b).unwrap().status(), Some(200));
    // A bare CR inside the status line (found by the mutation proptest).
    let e = parse(b"SIP/2.0 200 OK\r5Via: x\r\nl: 0\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadStartLine);
}

#[test]
fn header_line_errors() {
    let kind = |s: &str| parse(&crlf(s)).unwrap_err().kind;
    assert_eq!(
        kind("OPTIONS sip:a@b SIP/2.0\nNoColonHere\n\n"),
        ErrorKind::BadHeader
    );
    assert_eq!(
        kind("OPTIONS sip:a@b SIP/2.0\n folded-first: x\n\n"),
        ErrorKind::BadHeader
    );
    assert_eq!(
        kind("OPTIONS sip:a@b SIP/2.0\nBad Name: x\n\n"),
        ErrorKind::BadHeader
    );
    let e = parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\xfe\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadEncoding);
    let e = parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: 1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Truncated);
    let e = parse(b"OPTIONS sip:a@b SIP").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Truncated);
    // Ending after a header line's CRLF: no body, like RFC 4475's archived `baddn`.
    let m = parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: 1\r\n").unwrap();
    assert_eq!((m.header("x"), m.body), (Some("1"), &b""[..]));
    // Space before the colon is allowed (HCOLON), an empty value too.
    let b = crlf("OPTIONS sip:a@b SIP/2.0\nSubject  :\nl: 0\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(m.header("Subject"), Some(""));
}

#[test]
fn bare_lf_is_tolerated() {
    let m = parse(b"OPTIONS sip:a@b SIP/2.0\nCall-ID: lf\nContent-Length: 2\n\nok").unwrap();
    assert_eq!(m.call_id(), Ok("lf"));
    assert_eq!(m.body, b"ok");
}

#[test]
fn name_addr_forms() {
    let n = NameAddr::parse(r#""a \"b\" \\c" <sip:x@y>;tag=t1"#).unwrap();
    assert_eq!(n.display, Some(r#"a \"b\" \\c"#));
    assert_eq!(n.display_unescaped().unwrap(), r#"a "b" \c"#);
    assert_eq!(n.tag(), Some("t1"));
    let n = NameAddr::parse("\"unknown\"<sip:1@h>").unwrap();
    assert_eq!(n.display, Some("unknown"));
    let n = NameAddr::parse("Jörg Müller <sip:1@h>").unwrap();
    assert_eq!(n.display, Some("Jörg Müller"));
    let n = NameAddr::parse("Bob Smith <sips:bob@h;transport=tls>;expires=60").unwrap();
    assert_eq!(n.display, Some("Bob Smith"));
    assert_eq!(n.uri.transport(), Some("tls"));
    assert_eq!(n.params.value("expires"), Some("60"));
    // addr-spec: params after the URI are header params (RFC 3261 §20.10).
    let n = NameAddr::parse("sip:a@h;tag=xyz;lr").unwrap();
    assert_eq!(n.uri.raw, "sip:a@h");
    assert!(n.uri.params.is_empty());
    assert_eq!(n.tag(), Some("xyz"));
    assert!(n.params.has("lr"));
    // A comma inside a quoted display name does not split a Contact list.
    let b = crlf("REGISTER sip:h SIP/2.0\nContact: \"x, y\" <sip:a@h>;q=0.5, <sip:b@h>\nm: sip:c@h;expires=10\nl: 0\n\n");
    let m = parse(&b).unwrap();
    let c: Vec<_> = m.contacts().map(Result::unwrap).collect();
    assert_eq!(c.len(), 3);
    let ContactValue::Addr(first) = c[0] else {
        panic!()
    };
    assert_eq!(first.display, Some("x, y"));
    assert_eq!(first.params.value("q"), Some("0.5"));
    let b = crlf("REGISTER sip:h SIP/2.0\nContact: *\nExpires: 0\nl: 0\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(m.contacts().next(), Some(Ok(ContactValue::Wildcard)));
    assert_eq!(m.expires(), Ok(Some(0)));
    for bad in [
        "<sip:a@h",
        "\"open <sip:a@h>",
        "sip a@h",
        "<sip:a@h> junk",
        "a\"b <sip:a@h>",
        "<>",
    ] {
        assert!(NameAddr::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn session_timer_headers() {
    let b = crlf("UPDATE sip:a@b SIP/2.0\nx: 1800;refresher=uac\nMin-SE: 90\nRequire: timer, 100rel\nRequire: foo\nl: 0\n\n");
    let m = parse(&b).unwrap();
    let se = m.session_expires().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher), (1800, Some(Refresher::Uac)));
    assert_eq!(m.min_se(), Ok(Some(90)));
    assert_eq!(m.require().collect::<Vec<_>>(), ["timer", "100rel", "foo"]);
    let b =
        crlf("UPDATE sip:a@b SIP/2.0\nSession-Expires: 60;refresher=bogus\nMin-SE: x\nl: 0\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(
        m.session_expires().unwrap_err().reason,
        "Bad Session-Expires"
    );
    assert!(m.min_se().is_err());
    let b = crlf("UPDATE sip:a@b SIP/2.0\nSession-Expires: 90\nl: 0\n\n");
    let se = parse(&b).unwrap().session_expires().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher), (90, None));
}

#[test]
fn header_lookup_by_canonical_name() {
    let b = crlf("OPTIONS sip:a@b SIP/2.0\nX-Thing: 1\nx-thing: 2\nVia: SIP/2.0/UDP a\nv: SIP/2.0/UDP b\nl: 0\n\n");
    let m = parse(&b).unwrap();
    assert_eq!(m.header("X-THING"), Some("1"));
    assert_eq!(m.headers("x-thing").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(m.headers("v").count(), 2);
    assert_eq!(m.header("Content-Length"), Some("0"));
    assert_eq!(m.header("Nope"), None);
}

#[test]
fn check_request_finds_semantic_errors() {
    let b = with("Content-Length: 0\n", "");
    assert_eq!(parse(&b).unwrap().check_request(), Ok(()));
    let b = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@b>\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n");
    assert_eq!(
        parse(&b).unwrap().check_request().unwrap_err().reason,
        "CSeq Method Mismatch"
    );
    let b = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@b>\nTo: <sip:a@b>\nCSeq: 1 INVITE\nl: 0\n\n");
    let e = parse(&b).unwrap().check_request().unwrap_err();
    assert_eq!((e.reason, e.missing), ("Missing Call-ID", true));
    let b = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@b>\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 4294967296 INVITE\nl: 0\n\n");
    assert_eq!(
        parse(&b).unwrap().check_request().unwrap_err().reason,
        "Bad CSeq"
    );
    let b = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@b>\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\nMax-Forwards: 256\nl: 0\n\n");
    assert_eq!(
        parse(&b).unwrap().check_request().unwrap_err().reason,
        "Bad Max-Forwards"
    );
}

#[test]
fn writer_builds_exact_bytes() {
    let mut buf = Vec::new();
    let mut w = MessageWriter::response(&mut buf, 180, reason_phrase(180));
    w.header("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
        .header_fmt("CSeq", format_args!("{} {}", 7, Method::Invite))
        .header("Subject", "evil\r\nInjected: yes");
    w.body(Some("application/sdp"), b"v=0\r\n");
    assert_eq!(
        std::str::from_utf8(&buf).unwrap(),
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 7 INVITE\r\n\
         Subject: evil  Injected: yes\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    );
    let m = parse(&buf).unwrap();
    assert_eq!(m.headers.len(), 5);
    assert_eq!(m.body, b"v=0\r\n");

    let mut buf = Vec::new();
    MessageWriter::request(&mut buf, Method::Bye, "sip:201@192.168.1.50:5060").body(None, b"");
    assert_eq!(
        buf,
        b"BYE sip:201@192.168.1.50:5060 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn response_to_copies_the_dialog_headers() {
    let buf = crlf(DP750_OWN);
    let req = parse(&buf).unwrap();
    let mut out = Vec::new();
    MessageWriter::response_to(&mut out, &req, 100, reason_phrase(100), None).body(None, b"");
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "SIP/2.0 100 Trying\r\n\
         Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1748296302;rport\r\n\
         From: \"Reception\" <sip:201@192.168.1.10>;tag=1195548471\r\n\
         To: <sip:123@192.168.1.100:5060>\r\n\
         Call-ID: 1380512936-5060-7@BJC.BGI.B.FA\r\n\
         CSeq: 21 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let mut out = Vec::new();
    let mut w = MessageWriter::response_to(&mut out, &req, 200, "OK", Some("abc123"));
    w.header("Contact", "<sip:moh@192.168.1.100:5060>");
    w.body(Some("application/sdp"), b"v=0\r\n");
    let resp = parse(&out).unwrap();
    assert_eq!(resp.to().unwrap().tag(), Some("abc123"));
    assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bK1748296302"));
    assert_eq!(resp.cseq(), Ok((21, Method::Invite)));
    assert_eq!(resp.body, b"v=0\r\n");

    // A To that already has a tag keeps it; several Via lines are all copied, in order.
    let b = crlf("BYE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP p1;branch=z9hG4bK1\nv: SIP/2.0/UDP p2;branch=z9hG4bK2, SIP/2.0/UDP p3\nTo: <sip:a@b>;tag=old\nCall-ID: c\nl: 0\n\n");
    let req = parse(&b).unwrap();
    let mut out = Vec::new();
    MessageWriter::response_to(&mut out, &req, 200, "OK", Some("new")).body(None, b"");
    let resp = parse(&out).unwrap();
    assert_eq!(resp.to().unwrap().tag(), Some("old"));
    let hosts: Vec<_> = resp.vias().map(|v| v.unwrap().host).collect();
    assert_eq!(hosts, ["p1", "p2", "p3"]);
    assert_eq!(resp.header("From"), None);
}

#[test]
fn write_message_round_trips() {
    for src in [DP750_OWN, DP750_LATE, DP750_HELD] {
        let buf = crlf(src);
        let m = parse(&buf).unwrap();
        let mut out = Vec::new();
        write_message(&m, &mut out);
        let m2 = parse(&out).unwrap();
        assert_eq!(m2.start, m.start);
        assert_eq!(m2.body, m.body);
        assert_eq!(m2.call_id(), m.call_id());
        assert_eq!(m2.headers.len(), m.headers.len());
        let mut out2 = Vec::new();
        write_message(&m2, &mut out2);
        assert_eq!(out, out2);
    }
    // Compact and folded input comes out canonical and unfolded.
    let b = crlf("OPTIONS sip:a@b SIP/2.0\ni: x\nSubject: a\n b\nl: 0\n\n");
    let mut out = Vec::new();
    write_message(&parse(&b).unwrap(), &mut out);
    assert_eq!(
        out,
        b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nSubject: a   b\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn reason_phrases() {
    assert_eq!(reason_phrase(100), "Trying");
    assert_eq!(reason_phrase(200), "OK");
    assert_eq!(reason_phrase(400), "Bad Request");
    assert_eq!(reason_phrase(481), "Call/Transaction Does Not Exist");
    assert_eq!(reason_phrase(488), "Not Acceptable Here");
    assert_eq!(reason_phrase(505), "Version Not Supported");
    assert_eq!(reason_phrase(499), "Client Error");
    assert_eq!(reason_phrase(699), "Global Failure");
}

#[test]
fn via_sent_protocol_spacing() {
    // The `SIP/2.0/` shortcut must read what the token-by-token path reads (RFC 4475 `wsinv`).
    for (v, transport) in [
        ("SIP/2.0/UDP h", "UDP"),
        ("SIP/2.0/ UDP h", "UDP"),
        ("SIP/2.0/\r\n TCP h:5", "TCP"),
        ("SIP / 2.0 / TLS h", "TLS"),
        ("sip/2.0/udp h", "udp"),
    ] {
        assert_eq!(Via::parse(v).unwrap().transport, transport, "{v:?}");
    }
    for bad in [
        "SIP/2.0/",
        "SIP/2.0/ ",
        "SIP/2.0/UDP",
        "SIP/2.0/UDPh;x",
        "SIP/2.0/;h",
    ] {
        assert!(Via::parse(bad).is_err(), "{bad:?}");
    }
}
