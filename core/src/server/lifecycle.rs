//! Call timers and endings: 2xx retransmission, ACK timeout, session timers, maximum
//! duration, RTCP cadence; BYE and UPDATE from our side; forgetting a call.

use super::build::{self, SUPPORTED};
use super::calls::*;
use super::dialog::*;
use super::invite::*;
use super::playout::*;
use super::state::{CallTimer, Path, Server, Timer};
use super::txn::ClientPurpose;
use super::{CallHandle, Command, EndReason, Event, TransmitKind, Transport};
use std::collections::btree_map::Entry;
use std::time::Instant;

pub(crate) fn call_timer(
    s: &mut Server,
    now: Instant,
    at: Instant,
    handle: CallHandle,
    what: CallTimer,
) {
    let t2 = s.config.t2;
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    match what {
        CallTimer::Retransmit2xx => {
            if call.state != CallState::Answering || call.retransmit_at != Some(at) {
                return;
            }
            // RFC 3261 §13.3.1.4: T1, 2·T1, … capped at T2 until the ACK.
            call.retransmit_interval = (call.retransmit_interval * 2).min(t2);
            let next = now + call.retransmit_interval;
            let bytes = call.ok_bytes.clone();
            if call.ack_deadline.is_some_and(|d| next < d) {
                call.retransmit_at = Some(next);
                s.timers
                    .push(next, Timer::Call(handle, CallTimer::Retransmit2xx));
            } else {
                call.retransmit_at = None;
            }
            let (t, l, r) = (call.transport, call.local_sip, call.remote_sip);
            let dest = s.txns.get(&call.invite_txn).map_or(r, |x| x.dest);
            if let Some(b) = bytes {
                s.queue(t, l, dest, TransmitKind::Sip, b);
            }
        }
        CallTimer::AckTimeout => {
            if call.state == CallState::Answering && call.ack_deadline == Some(at) {
                hangup(s, now, handle, EndReason::AckTimeout);
            }
        }
        CallTimer::SessionExpiry => {
            if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                hangup(s, now, handle, EndReason::SessionExpired);
            }
        }
        CallTimer::SessionRefresh => {
            if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                send_in_dialog(s, now, handle, "UPDATE");
            }
        }
        CallTimer::MaxDuration => {
            if call.max_at == Some(at) {
                hangup(s, now, handle, EndReason::MaxDuration);
            }
        }
        CallTimer::Rtcp => {
            if call.rtcp_at != Some(at) {
                return;
            }
            let sending = call.sending();
            let interval = s
                .config
                .rtcp_interval
                .mul_f64(0.5 + s.rng.below(1000) as f64 / 1000.0);
            if let Some(call) = s.calls.get_mut(&handle) {
                call.rtcp_at = Some(now + interval);
            }
            s.timers
                .push_random_after(now, interval, Timer::Call(handle, CallTimer::Rtcp));
            if sending {
                send_rtcp(s, now, handle, false);
            }
        }
    }
}

/// Send BYE or UPDATE inside the dialog (RFC 3261 §12.2.1.1).
pub(crate) fn send_in_dialog(
    s: &mut Server,
    now: Instant,
    handle: CallHandle,
    method: &'static str,
) {
    let branch = format!("z9hG4bK{}", s.token());
    let ua = s.config.user_agent.clone();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.local_cseq += 1;
    let mut bytes = Vec::with_capacity(600);
    let mut w = build::request(&mut bytes, method, call.remote_target());
    let proto = if call.transport == Transport::Tcp {
        "TCP"
    } else {
        "UDP"
    };
    w.header_fmt(
        "Via",
        format_args!(
            "SIP/2.0/{proto} {}:{};branch={branch};rport",
            build::host_str(call.advertised),
            call.local_sip.port()
        ),
    );
    w.header("Max-Forwards", "70");
    w.header("From", call.our_from());
    w.header("To", call.their_from());
    w.header("Call-ID", call.call_id());
    w.header_fmt("CSeq", format_args!("{} {method}", call.local_cseq));
    for r in &call.route_set {
        w.header("Route", r);
    }
    w.header("User-Agent", &ua);
    let purpose = if method == "BYE" {
        ClientPurpose::Bye
    } else {
        if let Some(t) = &call.session {
            w.header_fmt(
                "Session-Expires",
                format_args!("{};refresher=uas", t.interval.as_secs()),
            );
            w.header("Supported", SUPPORTED);
        }
        ClientPurpose::SessionRefresh(handle)
    };
    w.finish(None);
    let path = Path {
        transport: call.transport,
        local: call.local_sip,
        dest: call.request_dest,
    };
    s.send_request(now, method, purpose, branch, bytes, path);
}

pub(crate) fn client_outcome(s: &mut Server, now: Instant, purpose: ClientPurpose, code: u16) {
    if let ClientPurpose::SessionRefresh(handle) = purpose {
        if (200..300).contains(&code) {
            if let Some(call) = s.calls.get_mut(&handle) {
                if let Some((at, what)) = arm_session_timer(call, now) {
                    s.timers.push(at, Timer::Call(handle, what));
                }
            }
        } else {
            hangup(s, now, handle, EndReason::SessionExpired);
        }
    }
}

/// End a call from our side: BYE once the dialog exists, a final error while it does not.
pub(crate) fn hangup(s: &mut Server, now: Instant, handle: CallHandle, reason: EndReason) {
    let Some(call) = s.calls.get(&handle) else {
        return;
    };
    match call.state {
        CallState::AwaitingPort => fail_unanswered(s, now, handle, 503, reason),
        CallState::Answering | CallState::Confirmed => {
            send_in_dialog(s, now, handle, "BYE");
            forget(s, now, handle, reason);
        }
    }
}

/// Remove a call: stop its media (RTCP BYE if it sent any), free its port, report it.
pub(crate) fn forget(s: &mut Server, now: Instant, handle: CallHandle, reason: EndReason) {
    let sent_any = s
        .calls
        .get(&handle)
        .and_then(|c| c.playout.as_ref())
        .is_some_and(|p| p.packets > 0);
    if sent_any {
        send_rtcp(s, now, handle, true);
    }
    let Some(call) = s.calls.remove(&handle) else {
        return;
    };
    s.dialogs.remove(&call.dialog, handle);
    // One search for the port, and its entry removed only if it is still this call's.
    let freed = match s.ports.entry(call.port) {
        Entry::Occupied(e) if call.port != 0 && *e.get() == handle => {
            e.remove();
            true
        }
        _ => false,
    };
    if freed {
        let rtcp_mux = call
            .media
            .as_ref()
            .or(call.pending.as_ref())
            .is_some_and(|m| m.rtcp_mux);
        s.commands.push_back(Command::UnbindRtp {
            port: call.port,
            rtcp_mux,
        });
    }
    s.stats.calls_active = s.calls.len();
    s.emit(Event::CallEnded {
        call: handle,
        reason,
        duration: now - call.started.unwrap_or(call.created),
        rtp_packets_sent: call.playout.as_ref().map_or(0, |p| p.packets),
    });
    s.finish_drain(now, false);
}
