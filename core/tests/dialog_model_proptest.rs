//! Random sequences of requests, retransmissions and time steps against a small reference model
//! of dialog states: every response code, every BYE we send and every RTP packet must be what
//! the model predicts.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::TransmitKind;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Invite(usize),
    Ack(usize),
    Bye(usize),
    Cancel(usize),
    Hold(usize, bool),
    Options,
    Retransmit(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Invite),
        (0..3usize).prop_map(Op::Ack),
        (0..3usize).prop_map(Op::Bye),
        (0..3usize).prop_map(Op::Cancel),
        (0..3usize, any::<bool>()).prop_map(|(i, h)| Op::Hold(i, h)),
        Just(Op::Options),
        (0..3usize).prop_map(Op::Retransmit),
        (1u64..12_000).prop_map(Op::Advance),
    ]
}

/// The model's view of one call slot.
#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Idle,
    /// 2xx sent at `since`, waiting for the ACK; `held` is the direction the 2xx agreed;
    /// `new`: the 2xx to the INVITE that made the call (it waits `ack_wait`, not 64·T1).
    Answering {
        since: Duration,
        held: bool,
        new: bool,
    },
    Confirmed {
        held: bool,
    },
}

struct Slot {
    st: St,
    id: Dp750,
    /// The last request sent and the status line it got (None: no response expected).
    last: Option<(String, Option<String>)>,
    /// When `last` was first sent: a peer retransmits only within 64·T1 (timer B/F), after
    /// which our transaction is gone too.
    last_at: Duration,
    generation: u32,
    /// CSeq of the INVITE our last 2xx answered: the ACK carries it (RFC 3261 §13.2.2.4).
    invite_cseq: u32,
    /// Is RTP flowing? Starts at the ACK; a hold offer stops it at the 2xx, an unhold offer
    /// resumes it at the ACK, and an offer that keeps sending does not interrupt it.
    sending: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn server_follows_the_dialog_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        let mut slots: Vec<Slot> = (0..3)
            .map(|i| Slot { st: St::Idle, id: Dp750::new(i * 100), last: None, last_at: Duration::ZERO, generation: 0, invite_cseq: 0, sending: false })
            .collect();
        let sdp = |i: usize, held: bool| dp750_sdp("192.168.1.50", 6000 + 2 * i as u16, if held { "sendonly" } else { "sendrecv" });
        for op in ops {
            let before = h.sent.len();
            // (expected status line prefixes, in order) for this op
            let mut expect: Vec<&str> = Vec::new();
            match op {
                Op::Invite(i) => {
                    let s = &mut slots[i];
                    if s.st != St::Idle {
                        continue;
                    }
                    s.generation += 1;
                    s.id = Dp750::new(i as u32 * 100 + s.generation);
                    let m = s.id.request("INVITE", Some(&sdp(i, false)), &[]);
                    h.send(PHONE, &m);
                    expect = vec!["SIP/2.0 100", "SIP/2.0 200"];
                    s.id.to_tag = h.response("SIP/2.0 200").to_tag();
                    s.st = St::Answering { since: h.elapsed(), held: false, new: true };
                    s.invite_cseq = s.id.cseq;
                    s.last = Some((m, Some("SIP/2.0 200".into())));
                }
                Op::Ack(i) => {
                    let s = &mut slots[i];
                    if let St::Answering { held, .. } = s.st {
                        let cseq = std::mem::replace(&mut s.id.cseq, s.invite_cseq);
                        let m = s.id.ack(None);
                        s.id.cseq = cseq;
                        h.send(PHONE, &m);
                        s.st = St::Confirmed { held };
                        s.sending = !held;
                        s.last = Some((m, None));
                    } else {
                        continue;
                    }
                }
                Op::Bye(i) => {
                    let s = &mut slots[i];
                    if s.st == St::Idle {
                        continue;
                    }
                    s.id.cseq += 1;
                    s.id.next_branch();
                    let m = s.id.request("BYE", None, &[]);
                    h.send(PHONE, &m);
                    expect = vec!["SIP/2.0 200"];
                    s.st = St::Idle;
                    s.sending = false;
                    s.last = Some((m, Some("SIP/2.0 200".into())));
                }
                Op::Cancel(i) => {
                    // our server answers at once, so a CANCEL always finds the INVITE finalised
                    // (200 to the CANCEL, nothing else) or no transaction at all (481)
                    let s = &mut slots[i];
                    if s.generation == 0 {
                        continue;
                    }
                    let mut invite_id = Dp750::new(i as u32 * 100 + s.generation);
                    invite_id.cseq = 21;
                    let m = invite_id.request("CANCEL", None, &[]);
                    h.send(PHONE, &m);
                    let got = h.sent[before..].iter().filter(|x| x.t.kind == TransmitKind::Sip).map(|x| x.start_line()).collect::<Vec<_>>();
                    prop_assert!(got.len() == 1 && (got[0].starts_with("SIP/2.0 200") || got[0].starts_with("SIP/2.0 481")), "CANCEL got {:?}", got);
                    continue;
                }
                Op::Hold(i, held) => {
                    let s = &mut slots[i];
                    match s.st {
                        St::Confirmed { .. } => {
                            s.id.cseq += 1;
                            s.id.next_branch();
                            let m = s.id.request("INVITE", Some(&sdp(i, held)), &[]);
                            h.send(PHONE, &m);
                            expect = vec!["SIP/2.0 200"];
                            let answer = h.response("SIP/2.0 200").body();
                            let want = if held { "a=inactive" } else { "a=sendonly" };
                            prop_assert!(answer.contains(want), "answer lacks {}: {}", want, answer);
                            s.st = St::Answering { since: h.elapsed(), held, new: false };
                            s.invite_cseq = s.id.cseq;
                            if held {
                                s.sending = false;
                            }
                            s.last = Some((m, Some("SIP/2.0 200".into())));
                        }
                        St::Answering { .. } if s.id.to_tag.is_some() => {
                            // an INVITE while ours is unacknowledged: 500 with Retry-After
                            s.id.cseq += 1;
                            s.id.next_branch();
                            let m = s.id.request("INVITE", Some(&sdp(i, held)), &[]);
                            h.send(PHONE, &m);
                            expect = vec!["SIP/2.0 500"];
                            s.last = Some((m, Some("SIP/2.0 500".into())));
                        }
                        _ => continue,
                    }
                }
                Op::Options => {
                    h.send(PHONE, &Dp750::new(999).request("OPTIONS", None, &[]));
                    expect = vec!["SIP/2.0 200"];
                }
                Op::Retransmit(i) => {
                    let s = &slots[i];
                    let Some((m, resp)) = s.last.clone() else { continue };
                    if h.elapsed() - s.last_at >= Duration::from_secs(30) {
                        continue;
                    }
                    h.send(PHONE, &m);
                    let got: Vec<String> = h.sent[before..].iter().filter(|x| x.t.kind == TransmitKind::Sip).map(|x| x.start_line()).collect();
                    match resp {
                        None => prop_assert!(got.is_empty(), "a retransmitted ACK is absorbed silently, got {:?}", got),
                        Some(r) => prop_assert!(got.len() <= 1 && got.iter().all(|g| g.starts_with(&r) || g.starts_with("SIP/2.0 481") || g.starts_with("SIP/2.0 500")), "retransmission answered {:?}, expected {}", got, r),
                    }
                    continue;
                }
                Op::Advance(ms) => {
                    let from = h.elapsed();
                    h.advance(Duration::from_millis(ms));
                    let to = h.elapsed();
                    // RTP in the window only to confirmed calls that are not held (or that were
                    // confirmed and sending when the window opened)
                    for p in h.sent[before..].iter().filter(|x| x.t.kind == TransmitKind::Rtp) {
                        let i = ((p.t.remote.port() - 6000) / 2) as usize;
                        prop_assert!(slots[i].sending, "RTP to slot {} in state {:?}", i, slots[i].st);
                    }
                    // calls left unacknowledged get our BYE: after 64·T1, or a new call after
                    // `ack_wait` (ServerConfig's default: 8 s)
                    for (i, s) in slots.iter_mut().enumerate() {
                        if let St::Answering { since, new, .. } = s.st {
                            let wait = if new { 8 } else { 32 };
                            let deadline = since + Duration::from_secs(wait);
                            let bye = h.sent[before..].iter().any(|x| x.start_line().starts_with("BYE ") && x.header("Call-ID").as_deref() == Some(&s.id.call_id));
                            if deadline <= to && deadline > from {
                                prop_assert!(bye, "slot {} not ACKed for {} s: expected our BYE", i, wait);
                                s.st = St::Idle;
                                s.sending = false;
                            } else {
                                prop_assert!(!bye, "slot {} got a BYE before {} s", i, wait);
                            }
                        }
                    }
                    continue;
                }
            }
            if let Op::Invite(i) | Op::Ack(i) | Op::Bye(i) | Op::Hold(i, _) = op {
                slots[i].last_at = h.elapsed();
            }
            let got: Vec<String> = h.sent[before..]
                .iter()
                .filter(|x| x.t.kind == TransmitKind::Sip && x.start_line().starts_with("SIP/2.0"))
                .map(|x| x.start_line())
                .collect();
            prop_assert_eq!(got.len(), expect.len(), "op {:?}: got {:?}, expected {:?}", op, got, expect);
            for (g, e) in got.iter().zip(&expect) {
                prop_assert!(g.starts_with(e), "op {:?}: got {:?}, expected {:?}", op, got, expect);
            }
        }
        prop_assert_eq!(h.server.stats().calls_active, slots.iter().filter(|s| s.st != St::Idle).count());
    }
}
