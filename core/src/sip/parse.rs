//! One SIP message from one datagram: start line, header lines, body (RFC 3261 §7, §18.3).
//!
//! Zero-copy: every string in a [`Message`] borrows from the datagram. The only allocation is
//! the header `Vec`, sized for a typical INVITE and bounded by [`MAX_HEADERS`], so hostile input
//! (10,000 Via lines) ends in an error after a bounded amount of work.

use std::fmt;

use super::lex::{find_ascii, is_token, is_token_byte, parse_u32, trim_lws};
use super::message::{Header, Message, Method, StartLine};
use super::names::HeaderName;
use super::uri::Uri;
use crate::scan::{find_byte, run_of};

/// Header lines accepted per message; one more is [`ErrorKind::TooManyHeaders`].
pub const MAX_HEADERS: usize = 128;

/// Bytes of header section the parser and the stream framer look at. A UDP datagram cannot
/// exceed 65,535 bytes anyway; on TCP this bounds the buffering per connection.
pub const MAX_HEAD: usize = 65_536;

/// Capacity hint for the header `Vec` when the line ends were too many to keep.
const HEADERS_HINT: usize = 24;

/// Capacity hint for the header `Vec` when the lines are read as they are found: a phone's
/// INVITE has about a dozen, and 16 `Header`s are still an allocation the allocator's
/// per-thread cache serves.
const FAST_HEADERS_HINT: usize = 16;

/// Why a datagram is not a usable SIP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Only CR/LF bytes: a keep-alive (RFC 5626 §3.5.1, RFC 3261 §7.5). Ignore silently.
    KeepAlive,
    /// Empty, or the datagram ends inside the start line or a header line.
    Truncated,
    /// The Request-Line or Status-Line does not follow RFC 3261 §7.1/§7.2.
    BadStartLine,
    /// A SIP-Version other than 2.0 (answered 505, RFC 3261 §21.5.7; RFC 4475 §3.1.2.16).
    UnsupportedVersion,
    /// The Request-URI is not a URI (`<sip:..>`, embedded spaces, bad escapes).
    BadRequestUri,
    /// A header line without a `name:` or with a name that is not a token.
    BadHeader,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// The header section is not UTF-8.
    BadEncoding,
    /// Content-Length is not a number, or two Content-Length headers disagree.
    BadContentLength,
    /// Content-Length claims more bytes than the datagram carries (RFC 3261 §18.3; RFC 4475
    /// §3.1.2.2 `clerr`: answer 400).
    BodyTooShort,
}

impl ErrorKind {
    /// A short reason phrase for the error response.
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorKind::KeepAlive => "Keep-Alive",
            ErrorKind::Truncated => "Truncated Message",
            ErrorKind::BadStartLine => "Bad Request-Line",
            ErrorKind::UnsupportedVersion => "Version Not Supported",
            ErrorKind::BadRequestUri => "Bad Request-URI",
            ErrorKind::BadHeader => "Bad Header",
            ErrorKind::TooManyHeaders => "Too Many Headers",
            ErrorKind::BadEncoding => "Bad Encoding",
            ErrorKind::BadContentLength => "Bad Content-Length",
            ErrorKind::BodyTooShort => "Bad Content-Length",
        }
    }

    /// The status code to answer with when the salvaged message is a request: 505 for a
    /// foreign version (RFC 3261 §21.5.7), 400 for the rest, `None` for keep-alives.
    pub fn status(&self) -> Option<u16> {
        match self {
            ErrorKind::KeepAlive => None,
            ErrorKind::UnsupportedVersion => Some(505),
            _ => Some(400),
        }
    }
}

/// A parse failure. `salvaged` holds the message as far as it parsed when the start line and
/// every header line were readable (the error is in the Request-URI, the version or the
/// Content-Length/body): the server can copy Via, From, To, Call-ID and CSeq from it into a 400
/// or 505 (RFC 3261 §8.2.6). When it is `None`, the datagram can only be dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError<'a> {
    pub kind: ErrorKind,
    pub salvaged: Option<Message<'a>>,
}

impl<'a> ParseError<'a> {
    /// The salvaged message if it is a request, i.e. when an error response should be sent.
    pub fn request(&self) -> Option<&Message<'a>> {
        self.salvaged.as_ref().filter(|m| m.is_request())
    }
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())
    }
}

impl std::error::Error for ParseError<'_> {}

/// Parses one SIP message from one UDP datagram.
///
/// - Only CR/LF bytes → [`ErrorKind::KeepAlive`]; CR/LF before a start line are skipped
///   (RFC 3261 §7.5).
/// - A body longer than Content-Length is cut to it (RFC 3261 §18.3); shorter is
///   [`ErrorKind::BodyTooShort`]. Without Content-Length the body is the rest of the datagram
///   (allowed on UDP only; the stream framer insists on it).
/// - Bare LF line endings are tolerated: RFC 3261 §7 says CRLF, but reading LF is harmless and
///   some test tools send it.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    message(buf, parse_with)
}

/// [`parse`] by [`parse_reference`] alone, without trying [`parse_fast`] first: for a datagram
/// read once already, parsed again only for what that read did not keep (the reason phrase of
/// a 400, from [`Message::check_request`]).
pub(crate) fn parse_again(buf: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    message(buf, parse_reference)
}

/// The [`Message`] or [`ParseError`] that `parse` makes of `buf`.
#[inline(always)]
fn message<'a>(
    buf: &'a [u8],
    parse: impl FnOnce(&'a [u8], &mut HeaderVec<'a>) -> Result<Parts<'a>, Failure<'a>>,
) -> Result<Message<'a>, ParseError<'a>> {
    let mut sink = HeaderVec(Vec::new());
    match parse(buf, &mut sink) {
        Ok(parts) => Ok(Message {
            start: parts.start,
            headers: sink.0,
            body: parts.body,
        }),
        Err(Failure { kind, start }) => Err(ParseError {
            kind,
            salvaged: start.map(|start| Message {
                start,
                headers: sink.0,
                body: &[],
            }),
        }),
    }
}

/// Receives what [`parse_with`] reads, in order: the start line, then every header line.
pub(crate) trait Sink<'a> {
    /// The start line, before any header; `lines` is about how many header lines follow.
    /// Called again when the parse starts over: the sink forgets what it was given before.
    fn start(&mut self, start: &StartLine<'a>, lines: usize);
    fn header(&mut self, h: Header<'a>);
}

/// The [`Message::headers`] of [`parse`].
struct HeaderVec<'a>(Vec<Header<'a>>);

impl<'a> Sink<'a> for HeaderVec<'a> {
    fn start(&mut self, _: &StartLine<'a>, lines: usize) {
        // Sized from the line ends already found (one per header line, folding aside, minus
        // the start line), not by a fixed hint: a fixed one large enough for most messages is
        // an allocation too large for the allocator's per-thread cache.
        self.0 = Vec::with_capacity(lines.min(MAX_HEADERS));
    }

    #[inline(always)]
    fn header(&mut self, h: Header<'a>) {
        self.0.push(h);
    }
}

/// What [`parse_with`] reads besides the header lines.
pub(crate) struct Parts<'a> {
    pub(crate) start: StartLine<'a>,
    /// What the server reads of the Request-URI, which the parser checks anyway; `None` for
    /// a response.
    pub(crate) uri: Option<UriParts<'a>>,
    pub(crate) body: &'a [u8],
}

/// The user and host of a Request-URI, as [`Uri::parse`] finds them: all the server reads of
/// it, as two slices rather than the whole `Uri`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UriParts<'a> {
    pub(crate) user: Option<&'a str>,
    pub(crate) host: &'a str,
}

impl<'a> From<Uri<'a>> for UriParts<'a> {
    fn from(u: Uri<'a>) -> Self {
        UriParts {
            user: u.user,
            host: u.host,
        }
    }
}

/// A [`parse_with`] failure: `start` is the start line when the message is salvaged (see
/// [`ParseError`]); the sink then has every header line.
pub(crate) struct Failure<'a> {
    pub(crate) kind: ErrorKind,
    pub(crate) start: Option<StartLine<'a>>,
}

impl Failure<'_> {
    fn new(kind: ErrorKind) -> Self {
        Failure { kind, start: None }
    }
}

/// [`parse`] with the header lines handed to `sink` as they are read instead of collected:
/// the server takes the few it needs from the one pass, and allocates nothing. Every rule and
/// error of [`parse`] is here (`parse` is this with a `Vec` for sink).
///
/// Every datagram is parsed, so one of the usual shape is read by [`parse_fast`]; any other
/// (or every one, with the `reference` feature) by [`parse_reference`].
pub(crate) fn parse_with<'a>(
    buf: &'a [u8],
    sink: &mut impl Sink<'a>,
) -> Result<Parts<'a>, Failure<'a>> {
    if !cfg!(feature = "reference") {
        if let Some(parts) = parse_fast(buf, sink) {
            return Ok(parts);
        }
    }
    parse_reference(buf, sink)
}

/// [`parse_reference`] in one pass over the lines, for a datagram of the usual shape: all
/// ASCII, no leading CR/LF, no folded header line, and nothing [`parse_reference`] would call
/// an error. `None` for anything else (possibly after feeding `sink` some lines: the reference
/// parse that follows starts it again).
///
/// The reference finds every line end first, checks the header section's encoding, then reads
/// the lines it found; here each line is read where its end is found. For a datagram of this
/// shape both find the same start line, the same header lines (the section ends at the same
/// empty line, or at the end of a datagram ending in a line end) and the same body;
/// `parse_fast_matches_reference` compares them on mutated messages.
fn parse_fast<'a>(buf: &'a [u8], sink: &mut impl Sink<'a>) -> Option<Parts<'a>> {
    if matches!(buf.first(), None | Some(b'\r' | b'\n')) {
        return None;
    }
    // The whole datagram, body too, is checked to be ASCII, so every slice below is a `str`
    // (a body that is not ASCII just takes the reference parse).
    let text = Ascii::new(buf)?;
    let bytes = buf;
    let nl = find_byte(bytes, b'\n')?;
    let first = text.str(0, nl);
    let (start, None, uri) = parse_start_line(first.strip_suffix('\r').unwrap_or(first)).ok()?
    else {
        return None;
    };
    sink.start(&start, FAST_HEADERS_HINT);
    let mut length = ContentLength::default();
    let mut count = 0;
    let mut pos = nl + 1;
    let (head_end, body_start) = loop {
        // field-name = token, then HCOLON = *( SP / HTAB ) ":" SWS. A known name with its
        // colon is matched at once (its first byte is a letter: not a line end, not a fold);
        // anything else is sorted out here.
        let (name, name_end, colon) = match HeaderName::known_prefix(&bytes[pos..]) {
            Some((name, len)) => (name, pos + len, pos + len),
            None => match bytes.get(pos) {
                None => break (pos, pos), // a datagram ending in a line end, with no empty line
                Some(b'\n') => break (pos, pos + 1),
                Some(b'\r') if bytes.get(pos + 1) == Some(&b'\n') => break (pos, pos + 2),
                // A folded value (this line continues the one before) is left to the
                // reference; so is a first header line starting with SP or HTAB (an error there).
                Some(b' ' | b'\t') => return None,
                Some(_) => header_name(text, pos)?,
            },
        };
        let nl = colon + 1 + find_byte(&bytes[colon + 1..], b'\n')?;
        if count == MAX_HEADERS {
            return None;
        }
        count += 1;
        let value = value_of(text, colon + 1, nl);
        if name == HeaderName::ContentLength {
            length.add(value);
        }
        sink.header(Header {
            name,
            raw_name: text.str(pos, name_end),
            value,
        });
        pos = nl + 1;
    };
    if head_end > MAX_HEAD {
        return None;
    }
    let rest = &bytes[body_start..];
    let body = match length.0.ok()? {
        None => rest,
        Some(n) => rest.get(..n as usize)?,
    };
    Some(Parts { start, uri, body })
}

/// `trim_lws(&text[start..end])`, the value of a header line for [`parse_fast`] (it also
/// takes the CR of a CRLF, which the reference cuts first, to the same result). The usual
/// `: value CR`, one SP before and a CR after a value that neither starts nor ends in LWS, is
/// cut without the two trimming loops (a byte above SP is never LWS).
#[inline(always)]
fn value_of(text: Ascii<'_>, start: usize, end: usize) -> &str {
    // The cut is checked against `text` once; the inside of the usual value is then known to
    // be in bounds (four bytes at least), where a second cut of `text` checked both ends again.
    let v = text.part(start, end);
    if let [b' ', first, .., last, b'\r'] = *v.0 {
        if first > b' ' && last > b' ' {
            return v.str(1, v.0.len() - 1);
        }
    }
    trim_lws(v.str(0, v.0.len()))
}

/// The header name starting at `pos` and where its colon is, for [`parse_fast`]: (name,
/// end of name, colon); `None` when the line has none (or no colon: an error).
fn header_name(text: Ascii<'_>, pos: usize) -> Option<(HeaderName<'_>, usize, usize)> {
    let bytes = text.0;
    // Every header line has a colon, and the name is what comes before it but SP and HTAB:
    // when that is a known name, it is a token and there is nothing more to check.
    let colon = pos + find_byte(&bytes[pos..], b':')?;
    let mut name_end = colon;
    while name_end > pos && matches!(bytes[name_end - 1], b' ' | b'\t') {
        name_end -= 1;
    }
    let name = match HeaderName::known_ascii(&bytes[pos..name_end]) {
        Some(name) => name,
        None => {
            // Byte by byte, as the reference reads it: a token, SP/HTAB, and this colon
            // (the first one after a token and blanks).
            let token_end = run_of(bytes, pos, is_token_byte);
            let mut at = token_end;
            while matches!(bytes.get(at), Some(b' ' | b'\t')) {
                at += 1;
            }
            if token_end == pos || at != colon {
                return None;
            }
            HeaderName::from_token(text.str(pos, token_end))
        }
    };
    Some((name, name_end, colon))
}

/// [`parse_with`] for any datagram.
fn parse_reference<'a>(buf: &'a [u8], sink: &mut impl Sink<'a>) -> Result<Parts<'a>, Failure<'a>> {
    let skip = match buf.iter().position(|&b| b != b'\r' && b != b'\n') {
        Some(i) => i,
        None if buf.is_empty() => return Err(Failure::new(ErrorKind::Truncated)),
        None => return Err(Failure::new(ErrorKind::KeepAlive)),
    };
    let buf = &buf[skip..];
    // A datagram that ends right after a header line's CRLF, without the empty line, is read
    // as a message without body: the datagram boundary frames it (RFC 3261 §18.3), and such
    // messages occur (RFC 4475's own archive has one, `baddn`). A stream needs the empty line.
    let mut ends = LineEnds::new();
    let (head_end, body_start) = match find_head_end(buf, &mut ends) {
        Some(ends) => ends,
        None if buf.ends_with(b"\n") => (buf.len(), buf.len()),
        None => return Err(Failure::new(ErrorKind::Truncated)),
    };
    if head_end > MAX_HEAD {
        return Err(Failure::new(ErrorKind::TooManyHeaders));
    }
    // One UTF-8 check for the whole header section; every slice below is cut at ASCII bytes.
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| Failure::new(ErrorKind::BadEncoding))?;
    let (first, headers_at) = split_start_line(head, &ends);
    let (start, deferred, uri) = parse_start_line(first).map_err(Failure::new)?;

    let line_count = if ends.is_complete() {
        ends.known().len().saturating_sub(1)
    } else {
        HEADERS_HINT
    };
    sink.start(&start, line_count);
    // Content-Length is read as the lines go by rather than by a second walk over them.
    let mut length = ContentLength::default();
    let mut count = 0;
    scan_head(head, headers_at, &ends, |h| {
        if count == MAX_HEADERS {
            return Err(ErrorKind::TooManyHeaders);
        }
        count += 1;
        if h.name == HeaderName::ContentLength {
            length.add(h.value);
        }
        sink.header(h);
        Ok(())
    })
    .map_err(Failure::new)?;
    let rest = &buf[body_start..];
    let salvaged = |kind| Failure {
        kind,
        start: Some(start),
    };
    if let Some(kind) = deferred {
        return Err(salvaged(kind));
    }
    let body = match length.0 {
        Err(kind) => return Err(salvaged(kind)),
        Ok(None) => rest,
        Ok(Some(n)) if n as usize <= rest.len() => &rest[..n as usize],
        Ok(Some(_)) => return Err(salvaged(ErrorKind::BodyTooShort)),
    };
    Ok(Parts { start, uri, body })
}

/// Bytes checked to be all ASCII. Any range of them is a `str`, so [`Ascii::str`] checks only
/// the bounds, not that both ends are char boundaries as slicing a `str` does.
#[derive(Clone, Copy)]
struct Ascii<'a>(&'a [u8]);

impl<'a> Ascii<'a> {
    fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.iter().fold(0u8, |acc, &b| acc | b) < 0x80).then_some(Ascii(bytes))
    }

    /// `bytes[start..end]` as text (panics out of bounds, like a slice).
    #[inline(always)]
    fn str(self, start: usize, end: usize) -> &'a str {
        let part = &self.0[start..end];
        // SAFETY: every byte of `self.0` is below 0x80 (`new` checks it, and `part` keeps a
        // range of bytes so checked), and a sequence of ASCII bytes is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(part) }
    }

    /// `bytes[start..end]`, still known to be ASCII (panics out of bounds, like a slice).
    #[inline(always)]
    fn part(self, start: usize, end: usize) -> Ascii<'a> {
        Ascii(&self.0[start..end])
    }
}

/// Splits a header section (ending in a line end) into the start line, without its line
/// end, and the offset where the header lines start.
pub(crate) fn split_start_line<'a>(head: &'a str, ends: &LineEnds) -> (&'a str, usize) {
    let nl = match ends.known().first() {
        Some(&nl) => Some(nl as usize),
        None => find_byte(head.as_bytes(), b'\n'),
    };
    let (line, rest) = match nl {
        Some(nl) => (&head[..nl], nl + 1),
        None => (head, head.len()),
    };
    (line.strip_suffix('\r').unwrap_or(line), rest)
}

/// Line-end positions found while looking for the end of the header section, kept so the
/// header scan does not search for them again. Holds the first [`LineEnds::CAP`]; a longer
/// header section falls back to searching.
pub(crate) struct LineEnds {
    /// `u16`: a kept position is below [`MAX_HEAD`] (64 KiB) in any header section the parser
    /// goes on to read, and the half-size array is cheaper to zero on every message.
    at: [u16; LineEnds::CAP],
    len: usize,
}

impl LineEnds {
    const CAP: usize = 64;

    pub(crate) fn new() -> Self {
        LineEnds {
            at: [0; Self::CAP],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, nl: usize) {
        if self.len < Self::CAP {
            // Larger positions are not kept (such a header section is rejected anyway).
            if let Ok(nl) = u16::try_from(nl) {
                self.at[self.len] = nl;
                self.len += 1;
            }
        }
    }

    /// True when every line end was kept (fewer than [`LineEnds::CAP`] lines).
    fn is_complete(&self) -> bool {
        self.len < Self::CAP
    }

    fn known(&self) -> &[u16] {
        &self.at[..self.len]
    }
}

/// Finds the empty line ending the header section: returns (end of the last header line
/// including its line ending, start of the body). Records line ends in `ends`.
pub(crate) fn find_head_end(buf: &[u8], ends: &mut LineEnds) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        let nl = i + find_byte(&buf[i..], b'\n')?;
        ends.push(nl);
        match buf.get(nl + 1) {
            Some(b'\n') => return Some((nl + 1, nl + 2)),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some((nl + 1, nl + 3)),
            _ => i = nl + 1,
        }
    }
    None
}

fn is_sip_2_0(v: &str) -> bool {
    // SIP-Version is case-insensitive (RFC 3261 §7.1).
    v.eq_ignore_ascii_case("SIP/2.0")
}

/// `SIP/<digits>.<digits>`: a version, just not ours (→ 505 rather than 400).
fn is_other_version(v: &str) -> bool {
    let Some(rest) = v.get(..4).filter(|p| p.eq_ignore_ascii_case("SIP/")) else {
        return false;
    };
    let rest = &v[rest.len()..];
    match rest.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Parses the start line. Errors that still allow a 400/505 (bad Request-URI, foreign
/// version) are returned as the second element, to be reported with the salvaged message;
/// the third is the parsed Request-URI when there is no such error.
fn parse_start_line(line: &str) -> StartLineResult<'_> {
    // Compared as bytes: `line[..4]` would panic when byte 4 is inside a UTF-8 character.
    if line
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = line.split_once(' ').ok_or(ErrorKind::BadStartLine)?;
        if !is_sip_2_0(version) {
            return Err(ErrorKind::UnsupportedVersion);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ErrorKind::BadStartLine);
        }
        let code: u16 = code.parse().map_err(|_| ErrorKind::BadStartLine)?;
        // Reason-Phrase excludes CR and LF (RFC 3261 §25.1): a bare CR means a damaged line
        // end, and echoing it would let a peer's text end our own lines.
        if !(100..=699).contains(&code) || find_ascii(reason, b'\r').is_some() {
            return Err(ErrorKind::BadStartLine);
        }
        return Ok((StartLine::Response { code, reason }, None, None));
    }
    request_line(line)
}

/// The Request-Line.
fn request_line(line: &str) -> StartLineResult<'_> {
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF: single spaces, and the URI
    // cannot contain one (RFC 3261 §7.1, §25.1). When the method and version are readable but
    // the middle is not (extra or trailing spaces, RFC 4475 §3.1.2.8-10 `lwsruri`,
    // `lwsstart`, `trws`), the message is still salvaged so the server can answer 400.
    let sp1 = find_ascii(line, b' ').ok_or(ErrorKind::BadStartLine)?;
    let method = &line[..sp1];
    let trimmed = line.trim_end_matches(' ');
    let sp2 = match trimmed.bytes().rposition(|b| b == b' ') {
        Some(i) if i > sp1 => i,
        _ => return Err(ErrorKind::BadStartLine),
    };
    let (raw_uri, version) = (&trimmed[sp1 + 1..sp2], &trimmed[sp2 + 1..]);
    let uri = raw_uri.trim_matches(' ');
    let version_ok = is_sip_2_0(version);
    if !is_token(method) || uri.is_empty() || !(version_ok || is_other_version(version)) {
        return Err(ErrorKind::BadStartLine);
    }
    let deferred = if !version_ok {
        ErrorKind::UnsupportedVersion
    } else if trimmed.len() != line.len() || uri.len() != raw_uri.len() {
        ErrorKind::BadStartLine
    } else {
        return Ok(request_uri(Method::from_token(method), uri));
    };
    let start = StartLine::Request {
        method: Method::from_token(method),
        uri,
    };
    Ok((start, Some(deferred), None))
}

/// A Request-Line whose method, spacing and version are right: what is left to judge is the
/// Request-URI.
fn request_uri<'a>(
    method: Method<'a>,
    uri: &'a str,
) -> (StartLine<'a>, Option<ErrorKind>, Option<UriParts<'a>>) {
    let (deferred, parsed) = match Uri::parse(uri) {
        // Headers in a Request-URI are not allowed (RFC 3261 §19.1.5; RFC 4475 §3.1.2.11
        // `escruri`).
        Ok(u) if u.headers.is_none() => (None, Some(u.into())),
        _ => (Some(ErrorKind::BadRequestUri), None),
    };
    let start = StartLine::Request { method, uri };
    (start, deferred, parsed)
}

/// The start line, the error deferred until the headers are read, the parsed Request-URI.
type StartLineResult<'a> =
    Result<(StartLine<'a>, Option<ErrorKind>, Option<UriParts<'a>>), ErrorKind>;

/// Reads the header lines of a header section (`head[start..]`, the text after the start line,
/// up to the empty line), calling `f` with each complete header in order: `name HCOLON value`;
/// a line starting with SP/HT continues the previous value (RFC 3261 §7.3.1). Line ends
/// already found by [`find_head_end`] are taken from `ends`.
pub(crate) fn scan_head<'a>(
    head: &'a str,
    start: usize,
    ends: &LineEnds,
    mut f: impl FnMut(Header<'a>) -> Result<(), ErrorKind>,
) -> Result<(), ErrorKind> {
    let bytes = head.as_bytes();
    // (name, raw name, value start, value end) of the header being read.
    let mut current: Option<(HeaderName<'a>, &'a str, usize, usize)> = None;
    let mut pos = start;
    let mut known = ends
        .known()
        .iter()
        .map(|&nl| nl as usize)
        .skip_while(|&nl| nl < start);
    while pos < bytes.len() {
        let nl = match known.next() {
            Some(nl) if nl >= pos && nl < bytes.len() => nl,
            _ => find_byte(&bytes[pos..], b'\n').map_or(bytes.len(), |n| pos + n),
        };
        let mut line_end = nl;
        if line_end > pos && bytes[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        let line = &bytes[pos..line_end];
        let Some(&first) = line.first() else {
            break; // the empty line ending the section
        };
        if first == b' ' || first == b'\t' {
            match current.as_mut() {
                Some(cur) => cur.3 = line_end,
                None => return Err(ErrorKind::BadHeader),
            }
            pos = nl + 1;
            continue;
        }
        if let Some((name, raw_name, vs, ve)) = current.take() {
            f(Header {
                name,
                raw_name,
                value: trim_lws(&head[vs..ve]),
            })?;
        }
        // field-name = token, then HCOLON = *( SP / HTAB ) ":" SWS. One loop over the name
        // both validates it and finds the colon.
        let name_len = line.iter().take_while(|&&b| is_token_byte(b)).count();
        let mut colon = name_len;
        while matches!(line.get(colon), Some(b' ' | b'\t')) {
            colon += 1;
        }
        if name_len == 0 || line.get(colon) != Some(&b':') {
            return Err(ErrorKind::BadHeader);
        }
        let raw_name = &head[pos..pos + name_len];
        current = Some((
            HeaderName::from_token(raw_name),
            raw_name,
            pos + colon + 1,
            line_end,
        ));
        pos = nl + 1;
    }
    if let Some((name, raw_name, vs, ve)) = current {
        f(Header {
            name,
            raw_name,
            value: trim_lws(&head[vs..ve]),
        })?;
    }
    Ok(())
}

/// The Content-Length, if any, fed one Content-Length value at a time. Several must agree
/// (RFC 4475 §3.3.9 `mcl01` is answered 400); values are `1*DIGIT` that fit 32 bits
/// (§3.1.2.4 `scalar02`). The first bad value decides the error.
struct ContentLength(Result<Option<u32>, ErrorKind>);

impl Default for ContentLength {
    fn default() -> Self {
        ContentLength(Ok(None))
    }
}

impl ContentLength {
    fn add(&mut self, value: &str) {
        let Ok(found) = self.0 else {
            return;
        };
        self.0 = match parse_u32(value) {
            None => Err(ErrorKind::BadContentLength),
            Some(n) if found.is_some_and(|f| f != n) => Err(ErrorKind::BadContentLength),
            Some(n) => Ok(Some(n)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_fast, parse_reference, HeaderVec};
    use crate::testing::byte_edits;
    use proptest::prelude::*;

    /// Messages of the usual shape and near it: CRLF or LF, compact names, no empty line,
    /// Content-Length right, wrong, twice or absent, a folded line, a response.
    const MESSAGES: &[&str] = &[
        "INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1;rport\r\nFrom: \"Reception\" <sip:201@192.168.1.10>;tag=1\r\nTo: <sip:123@192.168.1.100:5060>\r\nCall-ID: 1-5060-7@BJC.BGI.B.FA\r\nCSeq: 1 INVITE\r\nContact: <sip:201@192.168.1.50:5060>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length:   10\r\n\r\nv=0\r\no=x\r\n",
        "ACK sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK2\r\nf: <sip:a@b>;tag=2\r\nt: <sip:c@d>;tag=3\r\ni: x@y\r\nCSeq: 1 ACK\r\nl: 0\r\n\r\n",
        "BYE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nCall-ID: z\nCSeq: 2 BYE\nContent-Length: 0\nContent-Length: 0\n\n",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nSubject: a\r\n b\r\nCall-ID: z\r\n",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nCSeq: 2 BYE\r\nContent-Length: 3\r\n\r\nabcdef",
        "MESSAGE sip:a@b SIP/2.0\r\nX-Y : 1\r\nEmpty:\r\nl: 5\r\n\r\nab",
    ];

    /// `MESSAGES` with zero to three bytes inserted, removed or replaced.
    fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
        let message = prop::sample::select(MESSAGES).prop_map(|m| m.as_bytes().to_vec());
        byte_edits(message, b"\r\n \t:;,<>\"a0\x80\xc3lL", 3)
    }

    /// When the fast parse reads a datagram, the reference reads the same from it; whether
    /// the fast parse read it.
    fn fast_matches_reference(buf: &[u8]) -> Result<bool, TestCaseError> {
        let mut fast = HeaderVec(Vec::new());
        let Some(q) = parse_fast(buf, &mut fast) else {
            return Ok(false);
        };
        let mut reference = HeaderVec(Vec::new());
        let Ok(f) = parse_reference(buf, &mut reference) else {
            return Err(TestCaseError::fail(format!("reference fails: {buf:?}")));
        };
        prop_assert_eq!(q.start, f.start);
        prop_assert_eq!(q.uri, f.uri);
        prop_assert_eq!(q.body, f.body);
        prop_assert_eq!(fast.0, reference.0);
        Ok(true)
    }

    #[test]
    fn parse_fast_takes_the_usual_messages() {
        for (i, m) in MESSAGES.iter().enumerate() {
            // The folded Subject and the short body are left to the reference.
            assert_eq!(
                fast_matches_reference(m.as_bytes()).unwrap(),
                i != 3 && i != 5,
                "{m:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn parse_fast_matches_reference(buf in mutated_message()) {
            fast_matches_reference(&buf)?;
        }
    }

    #[test]
    fn mutations_reach_the_fast_parse() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let fast = (0..2000)
            .filter(|_| {
                let buf = mutated_message().new_tree(&mut runner).unwrap().current();
                fast_matches_reference(&buf).unwrap()
            })
            .count();
        assert!(fast > 500, "{fast}");
    }
}
