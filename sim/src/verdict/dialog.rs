//! Dialog verdict: every request our core received got the right answer, on time, in the right
//! place; 2xx retransmissions follow RFC 3261 §13.3.1.4 (T1 doubling to T2 until the ACK);
//! without an ACK the core gives up after 64·T1 and sends BYE.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{fmt_time, label, sip_messages, Finding, Rules, SipAt};
use crate::engine::{Trace, Way};
use crate::sdp::Sdp;

/// Slack for timer checks: a sans-IO core woken at its own deadline is exact, but allow for a
/// core that rounds its timers to the millisecond.
const SLACK: Duration = Duration::from_millis(1);

fn finding(
    call_id: &str,
    at: Option<Duration>,
    subject: String,
    expected: impl Into<String>,
    got: impl Into<String>,
) -> Finding {
    Finding {
        verdict: "dialog",
        call_id: call_id.to_string(),
        at,
        subject,
        expected: expected.into(),
        got: got.into(),
    }
}

/// Request identity for matching responses and collapsing retransmissions and duplicates.
type ReqKey = (String, u32, String, String); // Call-ID, CSeq, method, top Via branch

fn req_key(s: &SipAt<'_>) -> ReqKey {
    let (n, _) = s.msg.cseq().unwrap_or_default();
    (
        s.call_id.to_string(),
        n,
        s.msg.method().unwrap_or("").to_string(),
        s.msg.top_via_branch().unwrap_or("").to_string(),
    )
}

fn resp_key(s: &SipAt<'_>) -> ReqKey {
    let (n, m) = s.msg.cseq().unwrap_or_default();
    (
        s.call_id.to_string(),
        n,
        m.to_string(),
        s.msg.top_via_branch().unwrap_or("").to_string(),
    )
}

pub fn check(trace: &Trace, rules: &Rules) -> Vec<Finding> {
    let msgs = sip_messages(trace);
    let mut out = Vec::new();
    // Requests received, first copy each, with every arrival time.
    let mut requests: BTreeMap<ReqKey, Vec<&SipAt<'_>>> = BTreeMap::new();
    let mut order: Vec<ReqKey> = Vec::new();
    let mut responses: BTreeMap<ReqKey, Vec<&SipAt<'_>>> = BTreeMap::new();
    for s in &msgs {
        match (s.way, s.msg.method()) {
            (Way::In, Some(_)) => {
                let k = req_key(s);
                let e = requests.entry(k.clone()).or_default();
                if e.is_empty() {
                    order.push(k);
                }
                e.push(s);
            }
            (Way::Out, None) => responses.entry(resp_key(s)).or_default().push(s),
            _ => {}
        }
    }
    // Responses to requests we never received.
    for (k, rs) in &responses {
        if !requests.contains_key(k) {
            let r = rs[0];
            out.push(finding(
                &k.0,
                Some(r.at),
                label(&r.msg),
                "responses only to requests received",
                "a response to a request the core never received",
            ));
        }
    }
    let core_byes: Vec<&SipAt<'_>> = msgs
        .iter()
        .filter(|s| s.way == Way::Out && s.msg.method() == Some("BYE"))
        .collect();
    for k in &order {
        let copies = &requests[k];
        let req = copies[0];
        let rs: Vec<&SipAt<'_>> = responses.get(k).cloned().unwrap_or_default();
        let call_id = k.0.as_str();
        let subject = format!("{} from {}", label(&req.msg), req.pkt.remote);
        for r in &rs {
            if r.pkt.remote != req.pkt.remote {
                out.push(finding(
                    call_id,
                    Some(r.at),
                    label(&r.msg),
                    format!(
                        "sent to the request's source {} (RFC 3581 rport)",
                        req.pkt.remote
                    ),
                    format!("sent to {}", r.pkt.remote),
                ));
            }
        }
        let method = k.2.as_str();
        if method == "ACK" {
            if let Some(r) = rs.first() {
                out.push(finding(
                    call_id,
                    Some(r.at),
                    subject,
                    "no response to an ACK",
                    label(&r.msg),
                ));
            }
            continue;
        }
        let final_ = rs
            .iter()
            .find(|r| r.msg.code().is_some_and(|c| c >= 200))
            .copied();
        let Some(fin) = final_ else {
            if trace.end.saturating_sub(req.at) > rules.t1 * 64
                || method == "INVITE" && trace.end > req.at
            {
                out.push(finding(
                    call_id,
                    Some(req.at),
                    subject,
                    "a final response",
                    "none",
                ));
            }
            continue;
        };
        let code = fin.msg.code().unwrap_or(0);
        // Was this dialog already ended by a BYE (either side) before the request arrived?
        let ended_before = core_byes
            .iter()
            .any(|b| b.call_id == call_id && b.at <= req.at)
            || msgs.iter().any(|s| {
                s.way == Way::In
                    && s.msg.method() == Some("BYE")
                    && s.call_id == call_id
                    && s.at < req.at
            });
        let in_dialog = req.msg.to_tag().is_some();
        match method {
            "INVITE" => check_invite(
                &mut out,
                trace,
                rules,
                &msgs,
                req,
                copies,
                &rs,
                fin,
                in_dialog,
                ended_before,
            ),
            "CANCEL" => {
                if code != 200 && code != 481 {
                    out.push(finding(
                        call_id,
                        Some(fin.at),
                        subject,
                        "200 (or 481 when the INVITE is already answered)",
                        label(&fin.msg),
                    ));
                } else if code == 481 {
                    // 481 when the INVITE had its final response before the CANCEL arrived …
                    let invite_done = responses.iter().any(|(rk, rs)| {
                        rk.0 == *call_id
                            && rk.1 == k.1
                            && rk.2 == "INVITE"
                            && rs
                                .iter()
                                .any(|r| r.msg.code().is_some_and(|c| c >= 200) && r.at <= req.at)
                    });
                    // … or when the INVITE had not arrived yet (lost or overtaken on the link).
                    let invite_key = (k.0.clone(), k.1, "INVITE".to_string(), k.3.clone());
                    let invite_unseen =
                        requests.get(&invite_key).is_none_or(|c| c[0].idx > req.idx);
                    if !invite_done && !invite_unseen {
                        out.push(finding(
                            call_id,
                            Some(fin.at),
                            subject,
                            "200 to a CANCEL of a pending INVITE",
                            label(&fin.msg),
                        ));
                    }
                }
            }
            "BYE" | "OPTIONS" | "INFO" | "UPDATE" | "PRACK" => {
                let ok481 =
                    in_dialog && (ended_before || !dialog_confirmed(&msgs, call_id, req.at));
                if in_dialog && out_of_order(&msgs, req) {
                    if code != 500 && !(code == 481 && ok481) {
                        out.push(finding(
                            call_id,
                            Some(fin.at),
                            subject,
                            "500: a higher CSeq of this dialog arrived first (RFC 3261 §12.2.2)",
                            label(&fin.msg),
                        ));
                    }
                } else if code != 200 && !(code == 481 && ok481) {
                    out.push(finding(
                        call_id,
                        Some(fin.at),
                        subject,
                        if ok481 { "200 or 481" } else { "200" },
                        label(&fin.msg),
                    ));
                }
                if method == "UPDATE" && code == 200 {
                    check_answer(&mut out, call_id, req, fin);
                }
            }
            // The simulator runs the default `accept_register = true`: a softphone's account
            // on the server registers, with the Contact echoed and nothing stored.
            "REGISTER" => {
                if code != 200 {
                    out.push(finding(
                        call_id,
                        Some(fin.at),
                        subject,
                        "200 (accept_register)",
                        label(&fin.msg),
                    ));
                }
            }
            other => {
                let allowed: &[u16] = if other == "SUBSCRIBE" {
                    &[405, 489, 501]
                } else {
                    &[405, 501]
                };
                if !allowed.contains(&code) {
                    out.push(finding(
                        call_id,
                        Some(fin.at),
                        subject,
                        "405 Method Not Allowed (a method onhold does not implement)",
                        label(&fin.msg),
                    ));
                } else if code == 405 && fin.msg.header("allow").is_none() {
                    out.push(finding(
                        call_id,
                        Some(fin.at),
                        label(&fin.msg),
                        "an Allow header on 405 (RFC 3261 §21.4.6)",
                        "none",
                    ));
                }
            }
        }
    }
    out
}

/// Did a request of the same dialog with a higher CSeq reach the core before this one?
fn out_of_order(msgs: &[SipAt<'_>], req: &SipAt<'_>) -> bool {
    let (n, _) = req.msg.cseq().unwrap_or_default();
    msgs.iter().any(|s| {
        s.way == Way::In
            && s.idx < req.idx
            && s.call_id == req.call_id
            && s.msg.to_tag() == req.msg.to_tag()
            && !matches!(s.msg.method(), Some("ACK" | "CANCEL") | None)
            && s.msg.cseq().unwrap_or_default().0 > n
    })
}

/// When this re-INVITE arrived, had our core sent a 2xx to an earlier INVITE of the dialog that
/// no ACK had answered yet?
fn unacked_2xx(msgs: &[SipAt<'_>], req: &SipAt<'_>) -> bool {
    let (n, _) = req.msg.cseq().unwrap_or_default();
    let before = |s: &&SipAt<'_>| s.idx < req.idx && s.call_id == req.call_id;
    msgs.iter().filter(before).any(|s| {
        let (m, method) = s.msg.cseq().unwrap_or_default();
        s.way == Way::Out
            && method == "INVITE"
            && m < n
            && s.msg.code().is_some_and(|c| (200..300).contains(&c))
            && !msgs.iter().filter(before).any(|a| {
                a.way == Way::In
                    && a.msg.method() == Some("ACK")
                    && a.msg.cseq().unwrap_or_default().0 == m
            })
    })
}

/// Has our core sent a 2xx to an INVITE of this Call-ID before `t`?
fn dialog_confirmed(msgs: &[SipAt<'_>], call_id: &str, t: Duration) -> bool {
    msgs.iter().any(|s| {
        s.way == Way::Out
            && s.at <= t
            && s.call_id == call_id
            && s.msg.cseq().unwrap_or_default().1 == "INVITE"
            && s.msg.code().is_some_and(|c| (200..300).contains(&c))
    })
}

/// The SDP answer in a 2xx: present, right direction, a codec from the offer we can send.
fn check_answer(out: &mut Vec<Finding>, call_id: &str, req: &SipAt<'_>, fin: &SipAt<'_>) {
    let Some(offer) = Sdp::of(&req.msg) else {
        return;
    };
    let Some(answer) = Sdp::of(&fin.msg) else {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            "an SDP answer to the offer",
            "no SDP",
        ));
        return;
    };
    let want = offer.dir.moh_answer();
    if answer.dir != want {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            format!("a={} in answer to a={}", want.as_str(), offer.dir.as_str()),
            format!("a={}", answer.dir.as_str()),
        ));
    }
    match answer.pts.first() {
        Some(pt) if offer.pts.contains(pt) => {}
        other => out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            format!("a payload type from the offer {:?}", offer.pts),
            format!("{other:?}"),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn check_invite(
    out: &mut Vec<Finding>,
    trace: &Trace,
    rules: &Rules,
    msgs: &[SipAt<'_>],
    req: &SipAt<'_>,
    copies: &[&SipAt<'_>],
    rs: &[&SipAt<'_>],
    fin: &SipAt<'_>,
    in_dialog: bool,
    ended_before: bool,
) {
    let call_id = req.msg.call_id().unwrap_or_default();
    let (cseq, _) = req.msg.cseq().unwrap_or_default();
    let subject = format!("{} from {}", label(&req.msg), req.pkt.remote);
    let code = fin.msg.code().unwrap_or(0);
    // 100 Trying at once before accepting a new call (DESIGN.md); otherwise (re-INVITE, an
    // immediate rejection) only when the final takes longer than 200 ms (RFC 3261 §17.2.1).
    let first = rs.first().copied();
    let accepted = fin.msg.code().is_some_and(|c| (200..300).contains(&c));
    let needs_trying = (!in_dialog && accepted) || fin.at > req.at + Duration::from_millis(200);
    match first {
        Some(r) if r.msg.code() == Some(100) => {}
        Some(r) if needs_trying => out.push(finding(
            call_id,
            Some(r.at),
            subject.clone(),
            "100 Trying first",
            label(&r.msg),
        )),
        _ => {}
    }
    let cancel_at = msgs
        .iter()
        .find(|s| {
            s.way == Way::In
                && s.msg.method() == Some("CANCEL")
                && s.call_id == call_id
                && s.msg.cseq().unwrap_or_default().0 == cseq
                && s.msg.top_via_branch() == req.msg.top_via_branch()
        })
        .map(|s| s.idx);
    let offer = Sdp::of(&req.msg);
    let se = req
        .msg
        .header("session-expires")
        .and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok());
    let expected: (&str, fn(u16) -> bool) = if cancel_at.is_some_and(|c| c > req.idx && c < fin.idx)
    {
        ("487 Request Terminated (CANCEL arrived first)", |c| {
            c == 487
        })
    } else if in_dialog && ended_before {
        ("481 (dialog already ended)", |c| c == 481)
    } else if in_dialog && out_of_order(msgs, req) {
        (
            "500: a higher CSeq of this dialog arrived first (RFC 3261 §12.2.2)",
            |c| c == 500,
        )
    } else if in_dialog && unacked_2xx(msgs, req) {
        (
            "200 OK (or 491/500 while our previous 2xx awaits its ACK, RFC 3261 §14.2)",
            |c| (200..300).contains(&c) || c == 491 || c == 500,
        )
    } else if offer.as_ref().is_some_and(|o| !o.has_moh_codec()) {
        (
            "488 Not Acceptable Here (no PCMU/PCMA/G722 on RTP/AVP offered)",
            |c| c == 488,
        )
    } else if se.is_some_and(|s| s < 90) {
        ("422 Session Interval Too Small (RFC 4028)", |c| c == 422)
    } else {
        ("200 OK", |c| (200..300).contains(&c))
    };
    if !(expected.1)(code) {
        out.push(finding(
            call_id,
            Some(fin.at),
            subject.clone(),
            expected.0,
            label(&fin.msg),
        ));
        return;
    }
    if !(200..300).contains(&code) {
        return;
    }
    let tag = fin.msg.to_tag();
    if tag.is_none() {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            "a To-tag on the 2xx (the DP750 never ACKs without one)",
            "none",
        ));
    }
    if fin.msg.contact_uri().is_none() {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            "a Contact on the 2xx (the DP750 never ACKs without one)",
            "none",
        ));
    }
    if offer.is_some() {
        check_answer(out, call_id, req, fin);
    } else if Sdp::of(&fin.msg).is_none() {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            "an SDP offer in the 2xx to an INVITE without SDP (RFC 3264 §5)",
            "no SDP",
        ));
    }
    if se.is_some_and(|s| s >= 90) && fin.msg.header("session-expires").is_none() {
        out.push(finding(
            call_id,
            Some(fin.at),
            label(&fin.msg),
            "Session-Expires on the 2xx (RFC 4028 §9: the INVITE asked for a session timer)",
            "none",
        ));
    }
    // 2xx retransmissions until the ACK (§13.3.1.4).
    let sends: Vec<Duration> = rs
        .iter()
        .filter(|r| r.msg.code() == Some(code))
        .map(|r| r.at)
        .collect();
    let ack_at = msgs
        .iter()
        .find(|s| {
            s.way == Way::In
                && s.msg.method() == Some("ACK")
                && s.call_id == call_id
                && s.msg.cseq().unwrap_or_default().0 == cseq
                && s.msg.to_tag() == tag
        })
        .map(|s| s.at);
    // A BYE (either way) ends the dialog: no more 2xx copies, no BYE of ours to expect.
    let bye_at = msgs
        .iter()
        .filter(|s| s.msg.method() == Some("BYE") && s.call_id == call_id && s.at >= fin.at)
        .filter(|s| {
            (s.way == Way::In && s.msg.to_tag() == tag)
                || (s.way == Way::Out && s.msg.from_tag() == tag)
        })
        .map(|s| s.at)
        .next();
    let give_up = sends[0] + rules.t1 * 64;
    let stop = match (ack_at, bye_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b.filter(|b| *b < give_up)),
    };
    check_2xx_schedule(
        out,
        call_id,
        &label(&fin.msg),
        &sends,
        copies,
        stop,
        trace.end,
        rules,
        &trace.stalls,
    );
    if ack_at.is_none() && bye_at.is_none_or(|b| b + SLACK >= give_up) {
        let bye = msgs.iter().find(|s| {
            s.way == Way::Out
                && s.msg.method() == Some("BYE")
                && s.call_id == call_id
                && s.msg.from_tag() == tag
        });
        match bye {
            Some(b) if b.at + SLACK >= give_up && b.at <= give_up + rules.t2 => {}
            Some(b) => out.push(finding(
                call_id,
                Some(b.at),
                label(&b.msg),
                format!("BYE at {} (64·T1 after the 2xx, no ACK)", fmt_time(give_up)),
                format!("BYE at {}", fmt_time(b.at)),
            )),
            None if trace.end >= give_up + rules.t2 => out.push(finding(
                call_id,
                Some(give_up),
                "no ACK for the 2xx".into(),
                format!("BYE at {} (64·T1 after the 2xx)", fmt_time(give_up)),
                "no BYE",
            )),
            None => {}
        }
    }
}

/// RFC 3261 §13.3.1.4: the 2xx is re-sent at T1, 2·T1, 4·T1 … capped at T2 after the first
/// send, until the ACK arrives or 64·T1 passed. A copy sent when an INVITE retransmission
/// arrived is allowed on top.
#[allow(clippy::too_many_arguments)]
pub fn check_2xx_schedule(
    out: &mut Vec<Finding>,
    call_id: &str,
    what: &str,
    sends: &[Duration],
    invite_copies: &[&SipAt<'_>],
    ack_at: Option<Duration>,
    end: Duration,
    rules: &Rules,
    stalls: &[(Duration, Duration)],
) {
    let Some(&first) = sends.first() else { return };
    let stop = ack_at
        .unwrap_or(first + rules.t1 * 64)
        .min(first + rules.t1 * 64);
    let echo = |s: Duration| {
        invite_copies
            .iter()
            .skip(1)
            .any(|c| c.at <= s && s <= c.at + SLACK)
    };
    // A copy due at `due` may go out at `s`: on time, or late after a runtime stall that
    // covered its deadline (the runtime woke at the stall's end).
    let fits = |s: Duration, due: Duration| {
        s.abs_diff(due) <= SLACK
            || (s > due
                && stalls
                    .iter()
                    .any(|&(a, b)| a <= due && due <= b && s <= b + SLACK))
    };
    let mut used = vec![false; sends.len()];
    used[0] = true;
    // The next copy is due one interval after the previous one, counted from when it was due
    // or from when it went out (a late wake-up may shift the rest of the schedule).
    let (mut prev_due, mut prev_sent, mut interval) = (first, first, rules.t1);
    let mut n = 0;
    loop {
        let candidates = [prev_due + interval, prev_sent + interval];
        let earliest = candidates[0].min(candidates[1]);
        if earliest >= stop || earliest > end {
            break;
        }
        n += 1;
        let found = sends.iter().enumerate().find_map(|(i, s)| {
            (!used[i]).then_some(())?;
            candidates
                .iter()
                .find(|&&due| fits(*s, due))
                .map(|&due| (i, *s, due))
        });
        match found {
            Some((i, sent, due)) => {
                used[i] = true;
                prev_due = due;
                prev_sent = sent;
            }
            // The copy fell due in a runtime stall that outlasted the ACK: never needed.
            None if stalls
                .iter()
                .any(|&(a, b)| a <= earliest && earliest <= b && b >= stop) =>
            {
                break;
            }
            None => {
                out.push(finding(
                    call_id,
                    Some(candidates[0]),
                    format!("{what} retransmission #{n}"),
                    format!(
                        "a copy at {} (T1 doubling to T2 until the ACK)",
                        fmt_time(candidates[0])
                    ),
                    "none",
                ));
                return;
            }
        }
        interval = (interval * 2).min(rules.t2);
    }
    for (i, s) in sends.iter().enumerate() {
        if !used[i] && !echo(*s) {
            let why = if ack_at.is_some_and(|a| *s > a) {
                "after the ACK arrived"
            } else {
                "off the T1/T2 schedule"
            };
            out.push(finding(
                call_id,
                Some(*s),
                format!("{what} copy"),
                "no 2xx copy here",
                format!("a copy {why}"),
            ));
            return;
        }
    }
}
