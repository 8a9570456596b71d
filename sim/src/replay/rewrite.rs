//! Building and rewriting the caller's SIP messages: in-dialog requests retargeted at our
//! core's dialog, ACKs the transaction layer makes, the answer a late offer needs.

use std::net::SocketAddr;

use onhold_probe::msg::{Message, Start};

pub(super) fn uri_of_request(m: &Message<'_>) -> String {
    match &m.start {
        Start::Request { uri, .. } => uri.to_string(),
        Start::Response { .. } => String::new(),
    }
}

pub(super) fn replace_branch(via: &str, branch: &str) -> String {
    let first = via.split(',').next().unwrap_or(via);
    first
        .split(';')
        .map(|p| {
            if p.trim().to_ascii_lowercase().starts_with("branch=") {
                format!("branch={branch}")
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A To/From value with its tag parameter set to `tag`.
pub fn with_tag(v: &str, tag: &str) -> String {
    let (addr, params) = match v.rfind('>') {
        Some(i) => (&v[..=i], &v[i + 1..]),
        None => v
            .split_once(';')
            .map(|(a, _)| (a, &v[a.len()..]))
            .unwrap_or((v, "")),
    };
    let mut out = addr.to_string();
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if !p.to_ascii_lowercase().starts_with("tag=") {
            out.push(';');
            out.push_str(p);
        }
    }
    out.push_str(";tag=");
    out.push_str(tag);
    out
}

pub(super) fn build_ack(
    invite: &Message<'_>,
    tag: &str,
    target: &str,
    routes: &[String],
    cseq: u32,
    sdp: Option<&str>,
) -> Vec<u8> {
    let mut out = format!("ACK {target} SIP/2.0\r\n");
    if let Some(via) = invite.header("via") {
        let branch = format!("{}a", invite.top_via_branch().unwrap_or("z9hG4bK"));
        out.push_str(&format!("Via: {}\r\n", replace_branch(via, &branch)));
    }
    for r in routes {
        out.push_str(&format!("Route: {r}\r\n"));
    }
    out.push_str(&format!(
        "From: {}\r\n",
        invite.header("from").unwrap_or("")
    ));
    out.push_str(&format!(
        "To: {}\r\n",
        with_tag(invite.header("to").unwrap_or(""), tag)
    ));
    out.push_str(&format!(
        "Call-ID: {}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\n",
        invite.call_id().unwrap_or_default()
    ));
    match sdp {
        Some(b) => out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out.into_bytes()
}

/// The caller's answer to our core's offer when the capture has none to give: the first offered
/// payload type, receive only, at the caller's address (RFC 3264 §6).
pub(super) fn answer_to(offer: &crate::sdp::Sdp, caller: SocketAddr) -> String {
    let pt = offer.pts.first().copied().unwrap_or(0);
    let ip = caller.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!("v=0\r\no=replay 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP {pt}\r\na=recvonly\r\n")
}

/// Rewrite a captured in-dialog request for our core's dialog: Request-URI → our Contact,
/// To-tag → ours, Route → our Record-Route (reversed), everything else byte for byte.
pub fn rewrite_in_dialog(orig: &[u8], tag: &str, target: &str, routes: &[String]) -> Vec<u8> {
    let Some(head_end) = orig.windows(4).position(|w| w == b"\r\n\r\n") else {
        return orig.to_vec();
    };
    let head = String::from_utf8_lossy(&orig[..head_end]);
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.splitn(3, ' ');
    let method = parts.next().unwrap_or("");
    let _ = parts.next();
    let version = parts.next().unwrap_or("SIP/2.0");
    let mut out = format!("{method} {target} {version}\r\n");
    let mut routes_written = false;
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "route" => continue,
            "to" | "t" => {
                let v = line.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
                out.push_str(&format!(
                    "{}: {}\r\n",
                    line.split(':').next().unwrap_or("To"),
                    with_tag(v, tag)
                ));
                continue;
            }
            "call-id" | "i" if !routes_written => {
                for r in routes {
                    out.push_str(&format!("Route: {r}\r\n"));
                }
                routes_written = true;
            }
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !routes_written {
        // No Call-ID line (cannot happen in a valid request): put Route last.
        for r in routes {
            out.push_str(&format!("Route: {r}\r\n"));
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&orig[head_end + 4..]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_replaces_target_tag_and_route_and_keeps_the_body() {
        let orig = b"BYE sip:old@10.0.0.9:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK9\r\nRoute: <sip:proxy;lr>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:moh@c>;tag=theirs;x=y\r\nCall-ID: c1\r\nCSeq: 3 BYE\r\nContent-Length: 2\r\n\r\nok";
        let out = rewrite_in_dialog(
            orig,
            "ours",
            "sip:moh@10.0.0.1:5060",
            &["<sip:10.0.0.1;lr>".into()],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("BYE sip:moh@10.0.0.1:5060 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("To: <sip:moh@c>;x=y;tag=ours\r\n"), "{text}");
        assert!(!text.contains("proxy"), "{text}");
        assert!(
            text.contains("Route: <sip:10.0.0.1;lr>\r\nCall-ID: c1"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nok"));
    }

    #[test]
    fn with_tag_adds_or_replaces() {
        assert_eq!(with_tag("<sip:a@b>", "7"), "<sip:a@b>;tag=7");
        assert_eq!(
            with_tag("\"x\" <sip:a@b>;tag=1", "7"),
            "\"x\" <sip:a@b>;tag=7"
        );
        assert_eq!(with_tag("sip:a@b;tag=1", "7"), "sip:a@b;tag=7");
    }
}
