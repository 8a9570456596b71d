//! The one SIP serializer: every message the server sends goes through [`MessageWriter`].
//!
//! It writes canonical CRLF line endings (RFC 3261 §7), always writes Content-Length (even 0:
//! mandatory on streams, §20.14, and harmless on UDP), and never lets a CR or LF from a value
//! start a new header line: values copied from a request may be folded, and values from config
//! or the API must not be able to inject headers.

use std::fmt::{self, Write as _};

use super::message::{Message, Method, StartLine};
use super::names::HeaderName;
use crate::scan::has_cr_or_lf;

/// Writes one message into a caller-owned buffer (appending).
///
/// ```
/// use onhold_core::sip::{MessageWriter, Method};
/// let mut buf = Vec::new();
/// let mut w = MessageWriter::response(&mut buf, 200, "OK");
/// w.header("Call-ID", "abc@host").header_fmt("CSeq", format_args!("{} {}", 1, Method::Invite));
/// w.body(None, b"");
/// assert_eq!(buf, b"SIP/2.0 200 OK\r\nCall-ID: abc@host\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
/// ```
pub struct MessageWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> MessageWriter<'b> {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(out: &'b mut Vec<u8>, method: Method<'_>, uri: &str) -> Self {
        let mut w = MessageWriter { out };
        w.clean(method.as_str());
        w.out.push(b' ');
        w.clean(uri);
        w.out.extend_from_slice(b" SIP/2.0\r\n");
        w
    }

    /// Continues on `out` without a start line: for a block of header lines kept and later
    /// appended with [`MessageWriter::header_lines`].
    pub fn block(out: &'b mut Vec<u8>) -> Self {
        MessageWriter { out }
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(out: &'b mut Vec<u8>, code: u16, reason: &str) -> Self {
        let mut w = MessageWriter { out };
        if (100..1000).contains(&code) {
            // Every real status code: `SIP/2.0 ddd ` as one piece.
            let mut start = *b"SIP/2.0 000 ";
            start[8] += (code / 100) as u8;
            start[9] += (code / 10 % 10) as u8;
            start[10] += (code % 10) as u8;
            w.out.extend_from_slice(&start);
        } else {
            w.out.extend_from_slice(b"SIP/2.0 ");
            push_decimal(w.out, code as u64, 3);
            w.out.push(b' ');
        }
        w.clean(reason);
        w.out.extend_from_slice(b"\r\n");
        w
    }

    /// [`MessageWriter::response`] with the standard reason phrase ([`reason_phrase`]).
    pub(crate) fn standard_response(out: &'b mut Vec<u8>, code: u16) -> Self {
        MessageWriter::response(out, code, reason_phrase(code))
    }

    /// Starts a response to `req` with the headers RFC 3261 §8.2.6.2 copies from it: every
    /// Via line in order and as sent, From, To, Call-ID and CSeq. `to_tag` is appended to the
    /// To header (`;tag=...`) unless the request's To already carries a tag (a mid-dialog
    /// request, §12.2.2) or the To cannot be read. Headers missing from `req` are skipped:
    /// a 400 for a request without Call-ID still goes out.
    pub fn response_to(
        out: &'b mut Vec<u8>,
        req: &Message<'_>,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Self {
        let mut w = MessageWriter::response(out, code, reason);
        for value in req.headers_of(HeaderName::Via) {
            w.header("Via", value);
        }
        if let Some(from) = req.header("From") {
            w.header("From", from);
        }
        if let Some(to) = req.header("To") {
            match to_tag {
                Some(tag) if req.to().is_ok_and(|t| t.tag().is_none()) => {
                    w.header_fmt("To", format_args!("{to};tag={tag}"))
                }
                _ => w.header("To", to),
            };
        }
        for name in ["Call-ID", "CSeq"] {
            if let Some(v) = req.header(name) {
                w.header(name, v);
            }
        }
        w
    }

    /// Appends `name: value`. CR and LF in either become spaces (see module docs).
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        let (n, v) = (name.as_bytes(), value.as_bytes());
        if !has_cr_or_lf(n) && !has_cr_or_lf(v) {
            // The usual case, copied with one capacity check for the whole line.
            self.out.reserve(n.len() + v.len() + 4);
            self.out.extend_from_slice(n);
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(v);
            self.out.extend_from_slice(b"\r\n");
            return self;
        }
        self.clean(name);
        self.out.extend_from_slice(b": ");
        self.clean(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// [`MessageWriter::header`] for a name the code spells: the same line, with only the
    /// value to check (the name was checked when the [`Prefix`] was built).
    #[inline]
    pub(crate) fn line(&mut self, name: Prefix, value: &str) -> &mut Self {
        let v = value.as_bytes();
        self.out.reserve(name.0.len() + v.len() + 2);
        self.out.extend_from_slice(name.0.as_bytes());
        push_value(self.out, v);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends a block of whole header lines known when the program is built (see
    /// [`Lines`]): one copy, nothing to check.
    #[inline]
    pub(crate) fn lines(&mut self, lines: Lines) -> &mut Self {
        self.out.extend_from_slice(lines.0.as_bytes());
        self
    }

    /// Appends `name: <formatted value>` without an intermediate `String`.
    pub fn header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut Self {
        self.clean(name);
        self.out.extend_from_slice(b": ");
        let _ = Adapter(self).write_fmt(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// One header whose value `value` appends to the buffer itself (pieces, numbers, a rewritten
    /// Via) without a `format!`. The written value is cleaned of CR/LF like every other.
    pub fn header_with(&mut self, name: &str, value: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.clean(name);
        self.out.extend_from_slice(b": ");
        self.value_with(value);
        self
    }

    /// The value `value` writes, cleaned of CR/LF, and the line end.
    #[inline]
    fn value_with(&mut self, value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.out.len();
        value(self.out);
        clean_written(self.out, start);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Ends the header section: writes Content-Type (if given), Content-Length (always), the
    /// empty line and the body.
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) {
        if let Some(ct) = content_type {
            self.line(CONTENT_TYPE, ct);
        }
        if body.is_empty() {
            self.out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            return;
        }
        let mut digits = [0; 20];
        let len = crate::ascii::decimal_bytes(body.len() as u64, &mut digits);
        self.out
            .reserve(b"Content-Length: \r\n\r\n".len() + len.len() + body.len());
        self.out.extend_from_slice(b"Content-Length: ");
        self.out.extend_from_slice(len);
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
    }

    /// [`MessageWriter::body`] for a body that `write` appends in place (no buffer of its
    /// own, no copy): Content-Length is written as three digits before it and set once its
    /// length is known, the digits moved over in the rare case of another count of them.
    /// `content_type` is the whole `Content-Type` line.
    pub(crate) fn body_with(self, content_type: Lines, write: impl FnOnce(&mut Vec<u8>)) {
        self.out.extend_from_slice(content_type.0.as_bytes());
        self.out.extend_from_slice(b"Content-Length: 000\r\n\r\n");
        let start = self.out.len();
        write(self.out);
        let len = self.out.len() - start;
        let digits = start - b"000\r\n\r\n".len();
        if (100..1000).contains(&len) {
            self.out[digits..digits + 3].copy_from_slice(&[
                b'0' + (len / 100) as u8,
                b'0' + (len / 10 % 10) as u8,
                b'0' + (len % 10) as u8,
            ]);
        } else {
            set_length(self.out, digits, len);
        }
    }

    /// [`MessageWriter::body`] for an optional `(content type, bytes)` pair.
    pub fn finish(self, body: Option<(&str, &[u8])>) {
        match body {
            Some((content_type, bytes)) => self.body(Some(content_type), bytes),
            None => self.body(None, b""),
        }
    }

    /// Appends header lines this writer produced earlier (a block kept while a response waits,
    /// e.g. the headers every response on one INVITE transaction shares). They were cleaned
    /// when first written, so they are copied as they are.
    pub fn header_lines(&mut self, lines: &[u8]) -> &mut Self {
        self.out.extend_from_slice(lines);
        self
    }

    /// Ends the header section as is, without adding Content-Length: for re-serializing a
    /// parsed message whose headers already say what they say.
    pub fn finish_raw(self, body: &[u8]) {
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
    }

    fn clean(&mut self, s: &str) {
        push_value(self.out, s.as_bytes());
    }
}

/// `value` appended with every CR and LF made a space (see the module docs): for header lines
/// written straight into a buffer, outside a [`MessageWriter`].
#[inline]
pub(crate) fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(value);
    clean_written(out, start);
}

/// [`MessageWriter::body_with`]'s Content-Length of a body shorter than 100 bytes or longer
/// than 999: the three digits at `at` replaced by the length's own.
#[cold]
#[inline(never)]
fn set_length(out: &mut Vec<u8>, at: usize, len: usize) {
    let mut digits = [0; 20];
    let digits = crate::ascii::decimal_bytes(len as u64, &mut digits);
    out.splice(at..at + 3, digits.iter().copied());
}

/// Every CR and LF in `out[start..]` (a value just written there) made a space.
#[inline]
pub(crate) fn clean_written(out: &mut [u8], start: usize) {
    if has_cr_or_lf(&out[start..]) {
        clean_in_place(&mut out[start..]);
    }
}

#[cold]
#[inline(never)]
fn clean_in_place(value: &mut [u8]) {
    for b in value {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
}

/// `Name: ` of a header the code names. [`Prefix::new`] refuses CR and LF (a `const fn`: in a
/// `const`, a bad name fails the build), so writing one needs no check per message; the values
/// written after it are still checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefix(&'static str);

impl Prefix {
    pub(crate) const fn new(prefix: &'static str) -> Prefix {
        let b = prefix.as_bytes();
        assert!(
            b.len() >= 3 && b[b.len() - 2] == b':' && b[b.len() - 1] == b' ',
            "a header prefix is `Name: `"
        );
        let mut i = 0;
        while i < b.len() {
            assert!(b[i] != b'\r' && b[i] != b'\n', "CR or LF in a header name");
            i += 1;
        }
        Prefix(prefix)
    }
}

/// Whole header lines known when the program is built (`Allow: …\r\nSupported: …\r\n`).
/// [`Lines::new`] checks, in a `const` at build time, that every CR and LF is a line end and
/// that no line is empty, so the block adds header lines and nothing else.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lines(&'static str);

impl Lines {
    pub(crate) const fn new(lines: &'static str) -> Lines {
        let b = lines.as_bytes();
        assert!(
            b.len() >= 2 && b[b.len() - 2] == b'\r' && b[b.len() - 1] == b'\n',
            "header lines end with CRLF"
        );
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\r' {
                assert!(i + 1 < b.len() && b[i + 1] == b'\n', "a CR is a line end");
                assert!(i > 0 && b[i - 1] != b'\n', "no empty line");
                i += 1;
            } else {
                assert!(b[i] != b'\n', "an LF is a line end");
            }
            i += 1;
        }
        Lines(lines)
    }
}

const CONTENT_TYPE: Prefix = Prefix::new("Content-Type: ");

/// Decimal digits of `n`, zero-padded to at least `width`: status codes and lengths are written
/// on every message, without `fmt`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width.max(1) {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// `fmt::Write` into the writer, with the same CR/LF cleaning.
struct Adapter<'w, 'b>(&'w mut MessageWriter<'b>);

impl fmt::Write for Adapter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.clean(s);
        Ok(())
    }
}

/// Re-serializes a parsed message: canonical header names, CRLF endings, headers in order and
/// values as parsed (folding turned into spaces), the body as is. Content-Length is written only
/// if the message had one, so `parse → write → parse → write` is a fixed point.
pub fn write_message(msg: &Message<'_>, out: &mut Vec<u8>) {
    let mut w = match msg.start {
        StartLine::Request { method, uri } => MessageWriter::request(out, method, uri),
        StartLine::Response { code, reason } => MessageWriter::response(out, code, reason),
    };
    for h in &msg.headers {
        w.header(h.name.as_str(), h.value);
    }
    w.finish_raw(msg.body);
}

/// The standard reason phrase for a status code (RFC 3261 §21, RFC 3262, RFC 3329, RFC 4028,
/// RFC 6665); the class name for codes without one.
pub fn reason_phrase(code: u16) -> &'static str {
    specific_reason(code).unwrap_or(match code {
        100..=199 => "Provisional",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Global Failure",
    })
}

fn specific_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::MessageWriter;

    /// A body written in place gets the Content-Length `body` writes, whatever its length.
    #[test]
    fn body_with_matches_body() {
        const SDP: super::Lines = super::Lines::new("Content-Type: application/sdp\r\n");
        for len in [0, 1, 9, 10, 99, 100, 101, 250, 999, 1000, 1001, 12_345] {
            let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let (mut with, mut plain) = (b"x".to_vec(), b"x".to_vec());
            MessageWriter::block(&mut with).body_with(SDP, |out| out.extend_from_slice(&body));
            MessageWriter::block(&mut plain).body(Some("application/sdp"), &body);
            assert_eq!(String::from_utf8(with), String::from_utf8(plain), "{len}");
        }
    }
}
