//! The top Via of a response: the request's top Via with the source address filled in
//! (RFC 3261 §18.2.1 `received`, RFC 3581 §4 `rport`), so that the response finds its way back
//! through a NAT.

/// Appends the request's top Via `raw` as the response carries it: split at every `;`, each
/// part trimmed, an `rport` parameter (with or without a value) given the source `port`, and a
/// `received` parameter given the source address `src_ip` (as text). The first part, the
/// sent-protocol and sent-by, is copied trimmed. Returns whether it wrote a `received`: the
/// caller adds one when the request had none and RFC 3261 §18.2.1 or RFC 3581 §4 asks for it.
pub(crate) fn push_response_via(out: &mut Vec<u8>, raw: &str, port: u16, src_ip: &[u8]) -> bool {
    let mut has_received = false;
    // Cut at every ';' by bytes: an ASCII byte, so every piece is a `str` slice.
    let bytes = raw.as_bytes();
    let mut start = 0;
    let mut first = true;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(bytes.len(), |p| start + p);
        let part = trim(&raw[start..end]);
        if !first {
            out.push(b';');
        }
        let name = match part.as_bytes().iter().position(|&b| b == b'=') {
            Some(eq) => trim(&part[..eq]),
            None => part,
        };
        if !first && name.eq_ignore_ascii_case("rport") {
            out.extend_from_slice(b"rport=");
            crate::ascii::push_decimal(out, port as u64);
        } else if !first && name.eq_ignore_ascii_case("received") {
            has_received = true;
            out.extend_from_slice(b"received=");
            out.extend_from_slice(src_ip);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
        if end == bytes.len() {
            return has_received;
        }
        first = false;
        start = end + 1;
    }
}

/// `str::trim`, which has nothing to cut when both ends are printable ASCII (an ASCII byte is a
/// whole char, and not white space): the usual Via parameter.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::push_response_via;

    fn rewritten(raw: &str) -> (String, bool) {
        let mut out = b"x".to_vec();
        let received = push_response_via(&mut out, raw, 5062, b"10.0.0.9");
        (String::from_utf8(out).unwrap(), received)
    }

    #[test]
    fn rport_gets_the_port_and_received_the_address() {
        for (raw, want, received) in [
            (
                "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport",
                "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport=5062",
                false,
            ),
            (
                "SIP/2.0/UDP 192.168.1.50:5060;rport;branch=z9hG4bK123",
                "SIP/2.0/UDP 192.168.1.50:5060;rport=5062;branch=z9hG4bK123",
                false,
            ),
            (
                "SIP/2.0/UDP h;RPORT=1;Received=1.2.3.4;branch=z9hG4bK1",
                "SIP/2.0/UDP h;rport=5062;received=10.0.0.9;branch=z9hG4bK1",
                true,
            ),
            (
                "SIP/2.0/UDP h;rport =1;received = x;r;rp;receivedx;rportx=1",
                "SIP/2.0/UDP h;rport=5062;received=10.0.0.9;r;rp;receivedx;rportx=1",
                true,
            ),
            (
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                false,
            ),
        ] {
            assert_eq!(rewritten(raw), (format!("x{want}"), received), "{raw:?}");
        }
    }

    /// Each part is trimmed of white space (Unicode's, as `str::trim` has it), empty parts
    /// stay, and the first part is never a parameter.
    #[test]
    fn parts_are_trimmed_and_kept_in_place() {
        for (raw, want) in [
            ("SIP/2.0/UDP h ; rport", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;;rport;;", "SIP/2.0/UDP h;;rport=5062;;"),
            (";rport", ";rport=5062"),
            ("rport;x", "rport;x"),
            ("SIP/2.0/UDP h;rport\t", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;rport=\u{a0}", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;\u{a0}x\u{85}", "SIP/2.0/UDP h;x"),
            ("", ""),
            (";", ";"),
        ] {
            assert_eq!(rewritten(raw), (format!("x{want}"), false), "{raw:?}");
        }
    }
}
