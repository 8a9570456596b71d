//! Synthetic DP750 captures: the caller side in the message format of Grandstream firmware
//! (DESIGN.md, `shared/dp750/`), the callee side as a plausible Music On Hold server would
//! answer (replay ignores it). SIP only: a caller's RTP comes from the run's
//! [`CallerPlan`](crate::replay::CallerPlan). Same bytes on every run: identifiers come from a
//! seeded generator per scenario and times are fixed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::rng::Rng;

use crate::pcap::PcapWriter;

const PHONE: &str = "192.168.1.50:5060";
const SERVER: &str = "192.168.1.100:5060";
/// The public side of the router a phone behind a NAT sits behind.
pub const NAT: &str = "203.0.113.5:5060";
/// The phone's IP address written with letters, A=0 … J=9, as Grandstream Call-IDs carry it.
const CALL_ID_HOST: &str = "BJC.BGI.B.FA";
const USER_AGENT: &str = "Grandstream DP750 1.0.3.37";
const ALLOW: &str =
    "INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE";

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// What the phone offers: shape (a) own address or (b) held party's, with a direction.
fn dp750_sdp(addr: &str, port: u16, dir: &str, version: u32) -> String {
    format!(
        "v=0\r\no=201 8000 {version} IN IP4 {addr}\r\ns=SIP Call\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 9 18 101\r\na={dir}\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    )
}

/// What a Music On Hold server answers (or offers, for a late offer).
fn moh_sdp(dir: &str, version: u32, offer: bool) -> String {
    let pts = if offer { "0 8 9 101" } else { "0 101" };
    let mut s = format!("v=0\r\no=onhold 1 {version} IN IP4 192.168.1.100\r\ns=onhold\r\nc=IN IP4 192.168.1.100\r\nt=0 0\r\nm=audio 10000 RTP/AVP {pts}\r\na=rtpmap:0 PCMU/8000\r\n");
    if offer {
        s.push_str("a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n");
    }
    s.push_str(&format!(
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na={dir}\r\n"
    ));
    s
}

/// One call's identifiers and the capture being written.
struct Scenario {
    rng: Rng,
    /// (time, src, dst, bytes), sorted by time (stably) when the capture is written.
    packets: Vec<(Duration, SocketAddr, SocketAddr, Vec<u8>)>,
    phone: SocketAddr,
    server: SocketAddr,
}

#[derive(Clone)]
struct Dialog {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        Scenario {
            rng: Rng::new(seed),
            packets: Vec::new(),
            phone: PHONE.parse().expect("addr"),
            server: SERVER.parse().expect("addr"),
        }
    }

    fn decimal(&mut self) -> String {
        (self.rng.below(2_000_000_000) + 100_000_000).to_string()
    }

    fn dialog(&mut self) -> Dialog {
        let call_id = format!(
            "{}-5060-{}@{CALL_ID_HOST}",
            self.decimal(),
            self.rng.below(20) + 1
        );
        Dialog {
            call_id,
            from_tag: self.decimal(),
            to_tag: None,
            cseq: 21,
        }
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.decimal())
    }

    fn phone_sends(&mut self, at: Duration, msg: &str) {
        self.packets
            .push((at, self.phone, self.server, msg.as_bytes().to_vec()));
    }

    fn server_sends(&mut self, at: Duration, msg: &str) {
        self.packets
            .push((at, self.server, self.phone, msg.as_bytes().to_vec()));
    }

    /// A DP750 request, headers in the firmware's order, Content-Length padded.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &str,
        uri: &str,
        d: &Dialog,
        cseq: u32,
        branch: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &str)>,
    ) -> String {
        let to = match &d.to_tag {
            Some(t) => format!("<sip:123@{SERVER}>;tag={t}"),
            None => format!("<sip:123@{SERVER}>"),
        };
        let mut s = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch={branch};rport\r\nFrom: \"Reception\" <sip:201@192.168.1.10>;tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
            d.from_tag, d.call_id
        );
        if method != "BYE" && method != "CANCEL" {
            s.push_str(&format!("Contact: \"Reception\" <sip:201@{PHONE}>\r\n"));
        }
        s.push_str(&format!("Max-Forwards: 70\r\nUser-Agent: {USER_AGENT}\r\n"));
        if method == "INVITE" && d.to_tag.is_none() {
            s.push_str(
                "Privacy: none\r\nP-Preferred-Identity: \"Reception\" <sip:201@192.168.1.10>\r\n",
            );
        }
        if matches!(method, "INVITE" | "OPTIONS" | "UPDATE") {
            s.push_str(&format!(
                "Supported: replaces, path, timer, eventlist\r\nAllow: {ALLOW}\r\n"
            ));
        }
        for (k, v) in extra {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some((ctype, _)) = body {
            s.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        if matches!(method, "INVITE" | "OPTIONS") {
            s.push_str("Accept: application/sdp, application/dtmf-relay\r\n");
        }
        let b = body.map(|b| b.1).unwrap_or("");
        s.push_str(&format!("Content-Length:   {}\r\n\r\n{b}", b.len()));
        s
    }

    /// The server's response to a phone request.
    fn response(
        &self,
        code: u16,
        reason: &str,
        req: &str,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        sdp: Option<&str>,
    ) -> String {
        let header = |name: &str| {
            req.split("\r\n")
                .find(|l| l.starts_with(&format!("{name}:")))
                .map(|l| l[name.len() + 1..].trim().to_string())
                .unwrap_or_default()
        };
        let via = header("Via").replace(
            ";rport",
            &format!(";rport={};received={}", self.phone.port(), self.phone.ip()),
        );
        let mut to = header("To");
        if let (Some(t), false) = (to_tag, to.contains(";tag=")) {
            to.push_str(&format!(";tag={t}"));
        }
        let mut s = format!(
            "SIP/2.0 {code} {reason}\r\nVia: {via}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nServer: onhold/0.1.0\r\n",
            header("From"),
            header("Call-ID"),
            header("CSeq")
        );
        if (200..300).contains(&code) && header("CSeq").ends_with("INVITE") {
            s.push_str(&format!("Contact: <sip:123@{SERVER}>\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\nSupported: timer\r\n"));
        }
        for (k, v) in extra {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        match sdp {
            Some(b) => s.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        s
    }

    /// The phone's INVITE (a new branch) sent at `t`; returns it and its branch (a CANCEL and
    /// the ACK for a non-2xx reuse the branch).
    fn send_invite(
        &mut self,
        t: Duration,
        d: &Dialog,
        extra: &[(&str, &str)],
        offer: Option<&str>,
    ) -> (String, String) {
        let branch = self.branch();
        let invite = self.request(
            "INVITE",
            &format!("sip:123@{SERVER}"),
            d,
            d.cseq,
            &branch,
            extra,
            offer.map(|b| ("application/sdp", b)),
        );
        self.phone_sends(t, &invite);
        (invite, branch)
    }

    /// The server's 100 Trying to `invite` at `t`.
    fn trying(&mut self, t: Duration, invite: &str) {
        self.server_sends(t, &self.response(100, "Trying", invite, None, &[], None));
    }

    /// INVITE → 100 → 200 → ACK; returns the confirmed dialog. `offer` None = late offer.
    fn call(
        &mut self,
        t: Duration,
        d: &mut Dialog,
        offer: Option<String>,
        extra: &[(&str, &str)],
        ok_extra: &[(&str, &str)],
    ) {
        let (invite, _) = self.send_invite(t, d, extra, offer.as_deref());
        self.trying(t + ms(1), &invite);
        let tag = self.decimal();
        let answer = match &offer {
            Some(o) => moh_sdp(
                if o.contains("a=sendonly") || o.contains("a=inactive") {
                    "inactive"
                } else {
                    "sendonly"
                },
                1,
                false,
            ),
            None => moh_sdp("sendonly", 1, true),
        };
        self.server_sends(
            t + ms(3),
            &self.response(200, "OK", &invite, Some(&tag), ok_extra, Some(&answer)),
        );
        d.to_tag = Some(tag);
        let ack_body = if offer.is_none() {
            Some(dp750_sdp("192.168.1.50", 5004, "recvonly", 8000))
        } else {
            None
        };
        let ack_branch = self.branch();
        let ack = self.request(
            "ACK",
            &format!("sip:123@{SERVER}"),
            d,
            d.cseq,
            &ack_branch,
            &[],
            ack_body.as_deref().map(|b| ("application/sdp", b)),
        );
        self.phone_sends(t + ms(15), &ack);
    }

    /// An in-dialog request from the phone and the server's 200.
    fn in_dialog(
        &mut self,
        t: Duration,
        d: &mut Dialog,
        method: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &str)>,
        ok_extra: &[(&str, &str)],
    ) {
        d.cseq += 1;
        let branch = self.branch();
        let req = self.request(
            method,
            &format!("sip:123@{SERVER}"),
            d,
            d.cseq,
            &branch,
            extra,
            body,
        );
        self.phone_sends(t, &req);
        let answer = if method == "INVITE" {
            let hold =
                body.is_some_and(|b| b.1.contains("a=sendonly") || b.1.contains("a=inactive"));
            Some(moh_sdp(
                if hold { "inactive" } else { "sendonly" },
                d.cseq,
                false,
            ))
        } else {
            None
        };
        self.server_sends(
            t + ms(2),
            &self.response(200, "OK", &req, None, ok_extra, answer.as_deref()),
        );
        if method == "INVITE" {
            let ack_branch = self.branch();
            let ack = self.request(
                "ACK",
                &format!("sip:123@{SERVER}"),
                d,
                d.cseq,
                &ack_branch,
                &[],
                None,
            );
            self.phone_sends(t + ms(12), &ack);
        }
    }

    /// A re-INVITE from the phone offering `sdp` (hold, resume), its 200 and ACK.
    fn reinvite(&mut self, t: Duration, d: &mut Dialog, sdp: &str) {
        self.in_dialog(t, d, "INVITE", &[], Some(("application/sdp", sdp)), &[]);
    }

    fn bye(&mut self, t: Duration, d: &mut Dialog) {
        self.in_dialog(t, d, "BYE", &[], None, &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.packets.sort_by_key(|p| p.0);
        let mut pcap = PcapWriter::new();
        for (at, src, dst, bytes) in &self.packets {
            pcap.push(*at, *src, *dst, bytes);
        }
        pcap.into_bytes()
    }
}

fn own_address() -> String {
    dp750_sdp("192.168.1.50", 5004, "sendrecv", 8000)
}

/// Every synthetic capture: (file name, pcap bytes).
pub fn all() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| out.push((format!("dp750-{name}.pcap"), bytes));

    // (a) own address, sendrecv; the caller hangs up after 30 s.
    let mut s = Scenario::new(1);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    s.bye(ms(30_000), &mut d);
    add("a-own-address-bye-30s", s.finish());

    // (b) the held party's address, recvonly: RTP must go to 203.0.113.7:18232.
    let mut s = Scenario::new(2);
    let mut d = s.dialog();
    s.call(
        ms(0),
        &mut d,
        Some(dp750_sdp("203.0.113.7", 18232, "recvonly", 8000)),
        &[],
        &[],
    );
    s.bye(ms(10_000), &mut d);
    add("b-held-party", s.finish());

    // (c) no SDP: our offer in the 200, the answer in the ACK.
    let mut s = Scenario::new(3);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, None, &[], &[]);
    s.bye(ms(10_000), &mut d);
    add("c-late-offer", s.finish());

    // Hold (sendonly → inactive) and unhold (sendrecv → sendonly) by re-INVITE.
    let mut s = Scenario::new(4);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    let hold = dp750_sdp("192.168.1.50", 5004, "sendonly", 8001);
    s.reinvite(ms(5_000), &mut d, &hold);
    let unhold = dp750_sdp("192.168.1.50", 5004, "sendrecv", 8002);
    s.reinvite(ms(10_000), &mut d, &unhold);
    s.bye(ms(15_000), &mut d);
    add("hold-unhold", s.finish());

    // CANCEL before the answer: this callee rang; the phone gives up after 2 s.
    let mut s = Scenario::new(5);
    let d = s.dialog();
    let (invite, branch) = s.send_invite(ms(0), &d, &[], Some(&own_address()));
    s.trying(ms(1), &invite);
    let tag = s.decimal();
    s.server_sends(
        ms(2),
        &s.response(180, "Ringing", &invite, Some(&tag), &[], None),
    );
    let cancel = s.request(
        "CANCEL",
        &format!("sip:123@{SERVER}"),
        &d,
        d.cseq,
        &branch,
        &[],
        None,
    );
    s.phone_sends(ms(2_000), &cancel);
    s.server_sends(
        ms(2_001),
        &s.response(200, "OK", &cancel, Some(&tag), &[], None),
    );
    s.server_sends(
        ms(2_002),
        &s.response(487, "Request Terminated", &invite, Some(&tag), &[], None),
    );
    let mut acked = d.clone();
    acked.to_tag = Some(tag);
    let ack = s.request(
        "ACK",
        &format!("sip:123@{SERVER}"),
        &acked,
        d.cseq,
        &branch,
        &[],
        None,
    );
    s.phone_sends(ms(2_010), &ack);
    add("cancel-before-answer", s.finish());

    // Lost ACK: the phone never ACKs; the server re-sends its 200 and gives up with BYE at 32 s.
    let mut s = Scenario::new(6);
    let d = s.dialog();
    let (invite, _) = s.send_invite(ms(0), &d, &[], Some(&own_address()));
    s.trying(ms(1), &invite);
    let tag = s.decimal();
    let ok = s.response(
        200,
        "OK",
        &invite,
        Some(&tag),
        &[],
        Some(&moh_sdp("sendonly", 1, false)),
    );
    for at in [
        3, 503, 1_503, 3_503, 7_503, 11_503, 15_503, 19_503, 23_503, 27_503, 31_503,
    ] {
        s.server_sends(ms(at), &ok);
    }
    add("lost-ack", s.finish());

    // INVITE retransmitted: the first copy went unanswered for T1.
    let mut s = Scenario::new(7);
    let mut d = s.dialog();
    let (invite, _) = s.send_invite(ms(0), &d, &[], Some(&own_address()));
    s.phone_sends(ms(500), &invite);
    s.trying(ms(501), &invite);
    let tag = s.decimal();
    s.server_sends(
        ms(503),
        &s.response(
            200,
            "OK",
            &invite,
            Some(&tag),
            &[],
            Some(&moh_sdp("sendonly", 1, false)),
        ),
    );
    d.to_tag = Some(tag);
    let ack_branch = s.branch();
    let ack = s.request(
        "ACK",
        &format!("sip:123@{SERVER}"),
        &d,
        d.cseq,
        &ack_branch,
        &[],
        None,
    );
    s.phone_sends(ms(515), &ack);
    s.bye(ms(5_000), &mut d);
    add("invite-retransmitted", s.finish());

    // Two concurrent calls from one IP:port (two lines of the gateway).
    let mut s = Scenario::new(8);
    let mut d1 = s.dialog();
    let mut d2 = s.dialog();
    s.call(ms(0), &mut d1, Some(own_address()), &[], &[]);
    s.call(
        ms(200),
        &mut d2,
        Some(dp750_sdp("192.168.1.50", 5006, "sendrecv", 8000)),
        &[],
        &[],
    );
    s.bye(ms(6_000), &mut d1);
    s.bye(ms(8_000), &mut d2);
    add("two-calls-one-port", s.finish());

    // INFO DTMF mid-call (application/dtmf-relay).
    let mut s = Scenario::new(9);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    s.in_dialog(
        ms(3_000),
        &mut d,
        "INFO",
        &[],
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")),
        &[],
    );
    s.in_dialog(
        ms(3_500),
        &mut d,
        "INFO",
        &[],
        Some(("application/dtmf-relay", "Signal=#\r\nDuration=160\r\n")),
        &[],
    );
    s.bye(ms(6_000), &mut d);
    add("info-dtmf", s.finish());

    // OPTIONS keep-alives before and during a call.
    let mut s = Scenario::new(10);
    for at in [0u64, 20_000] {
        let k = s.dialog();
        let branch = s.branch();
        let mut opt = s.request(
            "OPTIONS",
            &format!("sip:{SERVER}"),
            &k,
            1,
            &branch,
            &[],
            None,
        );
        opt = opt.replace(
            &format!("To: <sip:123@{SERVER}>"),
            &format!("To: <sip:{SERVER}>"),
        );
        s.phone_sends(ms(at), &opt);
        s.server_sends(
            ms(at + 1),
            &s.response(
                200,
                "OK",
                &opt,
                Some("1"),
                &[
                    ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"),
                    ("Accept", "application/sdp"),
                ],
                None,
            ),
        );
    }
    let mut d = s.dialog();
    s.call(ms(1_000), &mut d, Some(own_address()), &[], &[]);
    s.bye(ms(25_000), &mut d);
    add("options-keepalive", s.finish());

    // Session timer (RFC 4028) refreshed by UPDATE, refresher = the phone.
    let mut s = Scenario::new(11);
    let mut d = s.dialog();
    s.call(
        ms(0),
        &mut d,
        Some(own_address()),
        &[("Session-Expires", "90;refresher=uac"), ("Min-SE", "90")],
        &[
            ("Session-Expires", "90;refresher=uac"),
            ("Require", "timer"),
        ],
    );
    s.in_dialog(
        ms(45_000),
        &mut d,
        "UPDATE",
        &[("Session-Expires", "90;refresher=uac")],
        None,
        &[
            ("Session-Expires", "90;refresher=uac"),
            ("Require", "timer"),
        ],
    );
    s.in_dialog(
        ms(90_000),
        &mut d,
        "UPDATE",
        &[("Session-Expires", "90;refresher=uac")],
        None,
        &[
            ("Session-Expires", "90;refresher=uac"),
            ("Require", "timer"),
        ],
    );
    s.bye(ms(100_000), &mut d);
    add("session-timer-update", s.finish());

    // Behind a NAT: the phone's SIP comes from the router's public address while its Via,
    // Contact and SDP name its private one. The caller hangs up after 10 s.
    let mut s = Scenario::new(12);
    s.phone = NAT.parse().expect("addr");
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    s.bye(ms(10_000), &mut d);
    add("behind-nat", s.finish());

    // A phone that never hangs up (it loses power, its network goes): only our core can end
    // the call.
    let mut s = Scenario::new(13);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    add("never-hangs-up", s.finish());

    // The same, but the phone put the call on hold (sendonly → inactive) after 5 s: on hold it
    // sends no RTP by design.
    let mut s = Scenario::new(14);
    let mut d = s.dialog();
    s.call(ms(0), &mut d, Some(own_address()), &[], &[]);
    let hold = dp750_sdp("192.168.1.50", 5004, "sendonly", 8001);
    s.reinvite(ms(5_000), &mut d, &hold);
    add("holds-never-hangs-up", s.finish());

    out
}

/// `calls` DP750 calls from one IP:port, 10 ms apart, each hanging up after `hold`: load for the
/// throughput bench (not written to tests/captures).
pub fn load(calls: usize, hold: Duration) -> Vec<u8> {
    let mut s = Scenario::new(42);
    let mut dialogs = Vec::with_capacity(calls);
    for i in 0..calls {
        let mut d = s.dialog();
        s.call(ms(10 * i as u64), &mut d, Some(own_address()), &[], &[]);
        dialogs.push(d);
    }
    for (i, d) in dialogs.iter_mut().enumerate() {
        s.bye(ms(10 * i as u64) + hold, d);
    }
    s.finish()
}
