//! The dialog layer (RFC 3261 §12–15, RFC 4028): a call's state, and the dispatch of each
//! request to what handles it — a new INVITE (`invite.rs`), requests inside a dialog
//! (`dialog.rs`), media out (`playout.rs`), timers and endings (`lifecycle.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::build::{ACCEPT, ALLOW, SUPPORTED};
use super::incoming::{self, Parsed, Request};
use super::state::Server;
use super::txn::{MergeKey, ServerState, TxnKey};
use super::{CallHandle, Event, TransmitKind, Transport};
use crate::ascii;
use crate::hash_index::{dialog_hash, HashedKey};
use crate::media::ClassId;
use crate::rtp::Playout;
use crate::sdp::{self, AnswerLayout, AnswerPrefs, Negotiated, OfferError};

use super::dialog::*;
pub(crate) use super::invite::rtp_bound;
use super::invite::*;
pub(crate) use super::lifecycle::{call_timer, client_outcome, forget, hangup};
pub(crate) use super::playout::{next_rtp, reload};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE accepted, waiting for the runtime to bind the RTP port before the 200.
    AwaitingPort,
    /// 2xx sent (initial or re-INVITE); retransmitting it until the ACK.
    Answering,
    Confirmed,
}

#[derive(Debug)]
pub(crate) struct SessionTimer {
    pub interval: Duration,
    /// We are the refresher (`refresher=uas`): we send UPDATE at half the interval.
    pub we_refresh: bool,
    pub at: Option<Instant>,
}

/// One dialog and its media.
#[derive(Debug)]
pub(crate) struct Call {
    /// `Call-ID SP our tag` (a Call-ID holds no space): the dialog's identity, and its key in
    /// `Server::dialogs` (inserted and removed as is, never rebuilt).
    pub dialog: HashedKey,
    pub call_id_len: usize,
    /// The Call-ID (again: a `str` slice of it costs nothing, where the key's text would be
    /// checked as UTF-8 on each read), the Request-URI user, their From as written (our To in
    /// requests we send), their To with our tag (our From) and the remote target (their
    /// Contact, where our requests go), one after the other: one allocation for the five,
    /// sliced by the accessors at `call_id_len`, `user_end`, `their_from_end` and
    /// `target_at`.
    pub parties: String,
    pub user_end: usize,
    pub their_from_end: usize,
    pub target_at: usize,
    pub route_set: Vec<String>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub transport: Transport,
    pub local_sip: SocketAddr,
    pub remote_sip: SocketAddr,
    /// Where our in-dialog requests (BYE, UPDATE) go.
    pub request_dest: SocketAddr,
    pub advertised: IpAddr,
    pub state: CallState,
    /// The INVITE transaction being answered and the header block of its responses, after the
    /// 2xx's status line ([`super::invite::OK_LINE`]; the 2xx is finished in this buffer).
    pub invite_txn: u64,
    pub invite_cseq: u32,
    /// Then, from `invite_extra_at`, the header lines only the 2xx carries (Contact,
    /// Record-Route, Allow, ...), CRLF-terminated: one buffer for all three.
    pub invite_head: Vec<u8>,
    pub invite_extra_at: usize,
    /// What our answer repeats of the offer of the INVITE being answered (None: there was no
    /// offer; we offer in the 2xx, answer in the ACK).
    pub offer: Option<AnswerLayout>,
    pub port: u16,
    pub port_tries: u32,
    /// Negotiated media in force, and media agreed in a 2xx that takes effect at the ACK.
    pub media: Option<Negotiated>,
    pub pending: Option<Negotiated>,
    pub sdp_session: u64,
    pub sdp_version: u64,
    pub ok_bytes: Option<Arc<[u8]>>,
    pub retransmit_at: Option<Instant>,
    pub retransmit_interval: Duration,
    pub ack_deadline: Option<Instant>,
    pub playout: Option<Playout>,
    pub class: ClassId,
    pub session: Option<SessionTimer>,
    pub max_at: Option<Instant>,
    pub rtcp_at: Option<Instant>,
    pub created: Instant,
    pub started: Option<Instant>,
}

impl Call {
    pub fn call_id(&self) -> &str {
        &self.parties[..self.call_id_len]
    }

    pub fn local_tag(&self) -> &str {
        &self.dialog.text()[self.call_id_len + 1..]
    }

    pub fn user(&self) -> &str {
        &self.parties[self.call_id_len..self.user_end]
    }

    pub fn their_from(&self) -> &str {
        &self.parties[self.user_end..self.their_from_end]
    }

    pub fn our_from(&self) -> &str {
        &self.parties[self.their_from_end..self.target_at]
    }

    pub fn remote_target(&self) -> &str {
        &self.parties[self.target_at..]
    }

    /// A target refresh (RFC 3261 §12.2.2): the new target replaces the old at the end.
    pub fn set_remote_target(&mut self, target: &str) {
        self.parties.truncate(self.target_at);
        self.parties.push_str(target);
    }

    pub(crate) fn sending(&self) -> bool {
        self.playout.as_ref().is_some_and(|p| p.running)
    }

    pub(crate) fn local_rtp(&self, rtp_ip: IpAddr) -> SocketAddr {
        SocketAddr::new(rtp_ip, self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// Input

pub(crate) fn handle_sip(
    s: &mut Server,
    now: Instant,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) {
    // Matched by reference: moving the (large) `Request` out of the enum would copy it.
    match &incoming::parse(data, transport, local, remote) {
        Parsed::KeepAlive => {
            // RFC 5626 §4.4.1: answer a double-CRLF ping on a stream with a single CRLF.
            if transport == Transport::Tcp && data.starts_with(b"\r\n\r\n") {
                s.queue(
                    transport,
                    local,
                    remote,
                    TransmitKind::Sip,
                    b"\r\n".to_vec(),
                );
            }
        }
        Parsed::Response(r) => s.client_response(now, r.branch, r.cseq_method, r.code),
        Parsed::Request(req) => handle_request(s, now, req),
        Parsed::Bad {
            request: Some(req),
            reason,
            code,
        } => {
            // Enough of the request survived to answer it (RFC 3261 §8.2: 400 for malformed).
            if req.method != "ACK" {
                let key = txn_key(req);
                if let Some(id) = s.find_txn(&key) {
                    s.absorb(now, id, false);
                } else {
                    let reason_header = format!("SIP;cause=400;text=\"{reason}\"");
                    let reason_header = reason_header.replace("400", &code.to_string());
                    s.respond_final(now, req, key, *code, &[("Reason", &reason_header)]);
                }
            } else {
                s.stats.dropped += 1;
            }
        }
        Parsed::Bad {
            request: None,
            reason,
            ..
        } => {
            s.stats.dropped += 1;
            s.emit(Event::Dropped {
                remote,
                why: reason,
            });
        }
    }
}

pub(crate) fn txn_key(req: &Request<'_>) -> TxnKey {
    let method = match req.method {
        "ACK" => "INVITE",
        m => m,
    };
    let via = &req.top_via;
    if via.branch.starts_with("z9hG4bK") {
        TxnKey::new(method, via.host, via.sent_by_port, &[via.branch])
    } else {
        // RFC 2543 peers: no magic cookie, so match on the request's identity (§17.2.3).
        let cseq = ascii::decimal(req.cseq as u64, &mut [0; 20]).to_owned();
        let parts = [
            "2543|",
            req.call_id,
            "|",
            req.from_tag,
            "|",
            &cseq,
            "|",
            via.branch,
        ];
        TxnKey::new(method, via.host, via.sent_by_port, &parts)
    }
}

/// The server transaction an ACK matches, if any: looked up without writing its key out
/// (an ACK's key is never kept), unless it is an RFC 2543 peer's.
fn ack_txn(s: &Server, req: &Request<'_>) -> Option<u64> {
    let via = &req.top_via;
    if !via.branch.starts_with("z9hG4bK") {
        return s.find_txn(&txn_key(req));
    }
    let key = ("INVITE", via.host, via.sent_by_port, via.branch);
    TxnKey::find(&s.txn_index, key, |id| {
        s.txns.get(&id).map(|t| t.key.hashed())
    })
}

pub(crate) fn handle_request(s: &mut Server, now: Instant, req: &Request<'_>) {
    if req.method == "ACK" {
        if let Some(id) = ack_txn(s, req) {
            // The ACK for a non-2xx final (same branch as the INVITE), or its retransmission.
            let ack_for_2xx = s
                .txns
                .get(&id)
                .is_some_and(|t| t.state == ServerState::Accepted);
            if !ack_for_2xx {
                return s.absorb(now, id, true);
            }
        }
        return on_ack(s, now, req);
    }
    let key = txn_key(req);
    if req.method == "CANCEL" {
        return on_cancel(s, now, req, key);
    }
    if let Some(id) = s.find_txn(&key) {
        return s.absorb(now, id, false); // a retransmission
    }
    // RFC 3261 §8.2.2.2: the same request arriving by two paths is a loop, not a new call.
    // The key is built once: a new call's transaction keeps it.
    let merge = (req.method == "INVITE" && req.to_tag.is_empty())
        .then(|| MergeKey::new(req.call_id, req.from_tag, req.cseq));
    if let Some(merge) = &merge {
        let merged = s
            .merge_index
            .get(merge.hashed(), |v| super::state::merge_key_of(&s.txns, v))
            .is_some();
        if merged {
            return s.respond_final(now, req, key, 482, &[]);
        }
    }
    if req.max_forwards == Some(0) {
        return s.respond_final(now, req, key, 483, &[]);
    }
    if !req.method.eq(req.cseq_method) {
        return s.respond_final(
            now,
            req,
            key,
            400,
            &[("Reason", "SIP;cause=400;text=\"CSeq method mismatch\"")],
        );
    }
    if !req.require.is_empty() && req.method != "CANCEL" {
        if let Some(list) = unsupported(req) {
            return s.respond_final(now, req, key, 420, &[("Unsupported", &list)]);
        }
    }
    match req.method {
        "INVITE" if req.to_tag.is_empty() => on_invite(s, now, req, key, merge),
        "INVITE" | "UPDATE" => on_offer_in_dialog(s, now, req, key),
        "BYE" => on_bye(s, now, req, key),
        "INFO" => match find_dialog(s, req) {
            Some(h) => {
                if in_order(s, now, req, &key, h) {
                    s.respond_final(now, req, key, 200, &[]);
                }
            }
            None => s.respond_final(now, req, key, 481, &[]),
        },
        "OPTIONS" => {
            let code = if s.draining.is_some() { 503 } else { 200 };
            s.respond_final(
                now,
                req,
                key,
                code,
                &[
                    ("Allow", ALLOW),
                    ("Accept", ACCEPT),
                    ("Supported", SUPPORTED),
                ],
            )
        }
        _ => s.respond_final(now, req, key, 405, &[("Allow", ALLOW)]),
    }
}

/// The option tags of `req`'s Require that we do not support, listed for a 420's
/// Unsupported (`None`: we support them all). Out of line: most requests require nothing.
#[cold]
#[inline(never)]
fn unsupported(req: &Request<'_>) -> Option<String> {
    let unsupported: Vec<&str> = req
        .require
        .iter()
        .copied()
        .filter(|t| {
            !SUPPORTED
                .split(", ")
                .any(|ours| ours.eq_ignore_ascii_case(t))
        })
        .collect();
    (!unsupported.is_empty()).then(|| unsupported.join(", "))
}

pub(crate) fn find_dialog(s: &mut Server, req: &Request<'_>) -> Option<CallHandle> {
    if req.to_tag.is_empty() {
        return None;
    }
    // Looked up by its parts (see `dialog_hash`): the key is not written out.
    let hash = dialog_hash(req.to_tag.as_bytes());
    let key = [req.call_id.as_bytes(), b" ", req.to_tag.as_bytes()];
    s.dialogs
        .get_parts(hash, &key, |h| s.calls.get(&h).map(|c| &c.dialog))
}

/// The INVITE's offer (or `None` for a late offer), or the final error response to send.
pub(crate) fn read_offer<'a>(req: &Request<'a>) -> Result<Option<&'a [u8]>, (u16, String)> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let ct = req.content_type.unwrap_or("application/sdp");
    let media_type = ct.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/sdp") {
        return Err((415, String::new()));
    }
    Ok(Some(req.body))
}

/// What an INVITE or UPDATE brings: its session timer, and its offer with our answer to it
/// (what the answer repeats of the offer, and what we agreed).
pub(crate) struct OfferCheck {
    pub session: Option<SessionTimer>,
    pub offer: Option<AnswerLayout>,
    pub neg: Option<Negotiated>,
}

/// Read the session timer (RFC 4028) and the offer of an INVITE or UPDATE and answer the offer,
/// or refuse the request with the right final response (422 with Min-SE, 415 with Accept, 400,
/// 488 with Warning) and return `None`.
pub(crate) fn check_offer(
    s: &mut Server,
    now: Instant,
    req: &Request<'_>,
    key: TxnKey,
) -> Option<(TxnKey, OfferCheck)> {
    let session = match session_timer_request(s, req) {
        Ok(t) => t,
        Err(code) => {
            let min = s.config.min_se.as_secs().to_string();
            s.respond_final(now, req, key, code, &[("Min-SE", &min)]);
            return None;
        }
    };
    let offer = match read_offer(req) {
        Ok(o) => o,
        Err((415, _)) => {
            s.respond_final(now, req, key, 415, &[("Accept", ACCEPT)]);
            return None;
        }
        Err((code, why)) => {
            s.respond_final(now, req, key, code, &[("Warning", &why)]);
            return None;
        }
    };
    let (offer, neg) = match offer {
        Some(body) => match sdp::answer_body(body, &prefs(s)) {
            Ok((n, layout)) => (Some(layout), Some(n)),
            Err(OfferError::Sdp(e)) => {
                let why = format!("Bad SDP: {e}");
                s.respond_final(now, req, key, 400, &[("Warning", &why)]);
                return None;
            }
            Err(OfferError::Rejected(rej)) => {
                let warn = warning(rej);
                s.respond_final(now, req, key, rej.status_code(), &[("Warning", &warn)]);
                return None;
            }
        },
        None => (None, None),
    };
    Some((
        key,
        OfferCheck {
            session,
            offer,
            neg,
        },
    ))
}

/// RFC 3261 §20.43 Warning for a refused offer: the 3xx warn-code says which part failed.
pub(crate) fn warning(rej: sdp::Rejection) -> String {
    format!("{} onhold \"{}\"", rej.warning_code(), rej.warning_text())
}

pub(crate) fn prefs(s: &Server) -> AnswerPrefs {
    AnswerPrefs {
        codecs: s.config.codecs.clone(),
        default_ptime_ms: s.config.ptime_ms,
    }
}

pub(crate) fn session_timer_request(
    s: &Server,
    req: &Request<'_>,
) -> Result<Option<SessionTimer>, u16> {
    let Some((secs, refresher)) = req.session_expires else {
        return Ok(None);
    };
    if (secs as u64) < s.config.min_se.as_secs() {
        return Err(422);
    }
    let uac_supports = req
        .supported
        .iter()
        .any(|t| t.eq_ignore_ascii_case("timer"));
    // RFC 4028 §9: keep the refresher the UAC chose; if it chose none, let it refresh when it can.
    let we_refresh = match refresher {
        Some(r) => r.eq_ignore_ascii_case("uas"),
        None => !uac_supports,
    };
    Ok(Some(SessionTimer {
        interval: Duration::from_secs(secs as u64),
        we_refresh,
        at: None,
    }))
}

/// RFC 3261 §12.2.2: a request with a CSeq lower than the last one in the dialog is out of
/// order and gets 500. Returns false when it was rejected.
pub(crate) fn in_order(
    s: &mut Server,
    now: Instant,
    req: &Request<'_>,
    key: &TxnKey,
    handle: CallHandle,
) -> bool {
    let last = s.calls.get(&handle).map_or(0, |c| c.remote_cseq);
    if req.cseq <= last {
        s.respond_final(now, req, key.clone(), 500, &[]);
        return false;
    }
    if let Some(c) = s.calls.get_mut(&handle) {
        c.remote_cseq = req.cseq;
    }
    true
}
