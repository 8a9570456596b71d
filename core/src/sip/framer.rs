//! Message boundaries on a byte stream (TCP): RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives.
//!
//! On a stream the only framing is the empty line after the headers plus Content-Length, which
//! is therefore mandatory there. The framer looks at no more than it must: it finds the end of
//! the header section, reads Content-Length, and says how many bytes make one message.

use super::lex::parse_u32;
use super::names::HeaderName;
use super::parse::{find_head_end, scan_head, split_start_line, ErrorKind, LineEnds, MAX_HEAD};

/// Largest body accepted on a stream: the server only ever receives SDP, and a bound here
/// bounds the buffer a peer can make us hold.
pub const MAX_STREAM_BODY: u32 = 65_536;

/// What the front of a stream buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `buf[..len]` is one whole message, body included: hand it to [`super::parse()`].
    Complete { len: usize },
    /// Not enough bytes yet.
    NeedMore,
    /// `buf[..len]` is CR/LF bytes: a keep-alive ping (`CRLFCRLF`) or pong (`CRLF`) or stray
    /// line endings between messages (RFC 3261 §7.5). Consume them; answer a `CRLFCRLF` ping
    /// with `CRLF` (RFC 5626 §3.5.1).
    KeepAlive { len: usize },
    /// The stream cannot be framed (no or bad Content-Length, oversized head or body, garbage
    /// header lines): close the connection.
    Invalid,
}

/// Finds the first message (or keep-alive) at the start of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Frame::KeepAlive { len: crlf };
    }
    let mut ends = LineEnds::new();
    let Some((head_end, body_start)) = find_head_end(buf, &mut ends) else {
        return if buf.len() > MAX_HEAD {
            Frame::Invalid
        } else {
            Frame::NeedMore
        };
    };
    if head_end > MAX_HEAD {
        return Frame::Invalid;
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Frame::Invalid;
    };
    // The start line is parse()'s to judge.
    let (_, headers_at) = split_start_line(head, &ends);
    let mut length: Option<u32> = None;
    let scanned = scan_head(head, headers_at, &ends, |h| {
        if h.name == HeaderName::ContentLength {
            let n = parse_u32(h.value).ok_or(ErrorKind::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ErrorKind::BadContentLength);
            }
            length = Some(n);
        }
        Ok(())
    });
    if scanned.is_err() {
        return Frame::Invalid;
    }
    match length {
        Some(n) if n <= MAX_STREAM_BODY => {
            let len = body_start + n as usize;
            if buf.len() >= len {
                Frame::Complete { len }
            } else {
                Frame::NeedMore
            }
        }
        _ => Frame::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\nVia: SIP/2.0/TCP h\r\n\r\nbody";

    #[test]
    fn whole_message_and_pipelining() {
        assert_eq!(frame(MSG), Frame::Complete { len: MSG.len() });
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame(&two), Frame::Complete { len: MSG.len() });
    }

    #[test]
    fn every_prefix_needs_more() {
        for n in 0..MSG.len() {
            assert_eq!(frame(&MSG[..n]), Frame::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn keepalives() {
        assert_eq!(frame(b"\r\n\r\n"), Frame::KeepAlive { len: 4 });
        assert_eq!(frame(b"\r\n"), Frame::KeepAlive { len: 2 });
        let mut m = b"\r\n".to_vec();
        m.extend_from_slice(MSG);
        assert_eq!(frame(&m), Frame::KeepAlive { len: 2 });
        assert_eq!(frame(&m[2..]), Frame::Complete { len: MSG.len() });
    }

    #[test]
    fn content_length_is_mandatory_and_bounded() {
        assert_eq!(
            frame(b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"),
            Frame::Invalid
        );
        assert_eq!(
            frame(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 1000000\r\n\r\n"),
            Frame::Invalid
        );
        assert_eq!(
            frame(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab"),
            Frame::Invalid
        );
        assert_eq!(
            frame(b"BYE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
            Frame::Invalid
        );
    }

    #[test]
    fn endless_header_is_invalid_not_buffered_forever() {
        let mut m = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
        while m.len() <= MAX_HEAD {
            m.extend_from_slice(b"Via: SIP/2.0/TCP host\r\n");
        }
        assert_eq!(frame(&m), Frame::Invalid);
    }

    #[test]
    fn padded_and_folded_content_length() {
        let m = b"BYE sip:a@b SIP/2.0\r\nContent-Length:   2\r\n\r\nab";
        assert_eq!(frame(m), Frame::Complete { len: m.len() });
        let m = b"BYE sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab";
        assert_eq!(frame(m), Frame::Complete { len: m.len() });
    }
}
