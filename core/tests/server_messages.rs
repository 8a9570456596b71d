//! Every message the server writes in one call, whole: the 100 and the 200 to the first INVITE,
//! the 200 to a hold re-INVITE and the 200 to an UPDATE that resumes, over UDP and over TCP,
//! with and without a session timer. The three 200s must carry the same Contact, Allow,
//! Supported and session-timer lines (RFC 3261 §12.1.1, §13.3.1.4; RFC 4028 §9); the
//! snapshots pin every byte.

mod common;

use common::*;
use onhold_core::Transport;

/// What a 2xx carries besides the response head and the body.
const DIALOG_LINES: [&str; 5] = [
    "Contact",
    "Allow",
    "Supported",
    "Session-Expires",
    "Require",
];

struct Exchange {
    trying: Sent,
    ok_invite: Sent,
    ok_reinvite: Sent,
    ok_update: Sent,
}

fn exchange(tcp: bool, timer: bool) -> Exchange {
    let mut h = Harness::new();
    let mut c = Dp750::new(0);
    if tcp {
        h.transport = Transport::Tcp;
        c.transport = "TCP";
    }
    let session: &[&str] = if timer {
        &["Session-Expires: 1800;refresher=uac"]
    } else {
        &[]
    };
    let sdp = |dir| dp750_sdp("192.168.1.50", 5004, dir);
    h.send(PHONE, &c.request("INVITE", Some(&sdp("sendrecv")), session));
    let trying = h.response("SIP/2.0 100").clone();
    let ok_invite = h.response("SIP/2.0 200").clone();
    c.to_tag = ok_invite.to_tag();
    h.send(PHONE, &c.ack(None));

    c.cseq += 1;
    c.next_branch();
    h.send(PHONE, &c.request("INVITE", Some(&sdp("sendonly")), session));
    let ok_reinvite = h.last_sip().clone();
    h.send(PHONE, &c.ack(None));

    c.cseq += 1;
    c.next_branch();
    let update: Vec<&str> = if timer {
        vec![session[0], "Supported: timer"]
    } else {
        vec![]
    };
    h.send(PHONE, &c.request("UPDATE", Some(&sdp("sendrecv")), &update));
    let ok_update = h.last_sip().clone();
    for (what, m) in [("re-INVITE", &ok_reinvite), ("UPDATE", &ok_update)] {
        assert!(
            m.start_line().starts_with("SIP/2.0 200") && m.header("CSeq").is_some(),
            "no 200 to the {what}:\n{}",
            h.transcript()
        );
    }
    Exchange {
        trying,
        ok_invite,
        ok_reinvite,
        ok_update,
    }
}

impl Exchange {
    fn text(&self) -> String {
        [
            ("100 to the INVITE", &self.trying),
            ("200 to the INVITE", &self.ok_invite),
            ("200 to the hold re-INVITE", &self.ok_reinvite),
            ("200 to the UPDATE", &self.ok_update),
        ]
        .iter()
        .map(|(what, m)| format!("----- {what} (to {})\n{}", m.t.remote, m.text()))
        .collect()
    }

    /// The three 200s agree on every line a dialog's 2xx carries.
    fn check_dialog_lines_agree(&self, tcp: bool, timer: bool) {
        for name in DIALOG_LINES {
            let first = self.ok_invite.header(name);
            assert_eq!(self.ok_reinvite.header(name), first, "{name} (re-INVITE)");
            assert_eq!(self.ok_update.header(name), first, "{name} (UPDATE)");
        }
        let contact = self.ok_invite.header("Contact").unwrap();
        assert_eq!(contact.ends_with(";transport=tcp>"), tcp, "{contact}");
        let expires = self.ok_invite.header("Session-Expires");
        assert_eq!(expires.as_deref(), timer.then_some("1800;refresher=uac"));
        // The caller says `Supported: timer`: a 2xx with a session timer requires it.
        let require = self.ok_invite.header("Require");
        assert_eq!(require.as_deref(), timer.then_some("timer"));
        // RFC 3261 §8.2.6.2: no To tag on the 100; ours on the 200.
        assert!(self.trying.to_tag().is_none());
        assert!(self.ok_invite.to_tag().is_some());
    }
}

#[test]
fn messages_over_udp() {
    let x = exchange(false, false);
    x.check_dialog_lines_agree(false, false);
    insta::assert_snapshot!(x.text());
}

#[test]
fn messages_over_udp_with_a_session_timer() {
    let x = exchange(false, true);
    x.check_dialog_lines_agree(false, true);
    insta::assert_snapshot!(x.text());
}

#[test]
fn messages_over_tcp() {
    let x = exchange(true, false);
    x.check_dialog_lines_agree(true, false);
    insta::assert_snapshot!(x.text());
}

#[test]
fn messages_over_tcp_with_a_session_timer() {
    let x = exchange(true, true);
    x.check_dialog_lines_agree(true, true);
    insta::assert_snapshot!(x.text());
}
