//! SIP messages (RFC 3261 §7, §20, §25): borrowed zero-copy parser, URIs, one serializer.
//!
//! ```text
//! datagram ──parse()──▶ Message<'_> { start, headers: [Header{name,value}], body }
//!                          │  typed, on demand: vias() top_via() from() to() call_id() cseq()
//!                          │  max_forwards() contacts() content_type() require() supported()
//!                          │  allow() session_expires() min_se() expires() check_request()
//! TCP stream ──frame()──▶ Frame::{Complete{len}, NeedMore, KeepAlive{len}, Invalid}
//! MessageWriter::{request,response,response_to}(&mut Vec<u8>, ..).header(..).body(ct, bytes)
//! ```
//!
//! # Errors, and who answers them
//!
//! Following RFC 3261 §8.2 and RFC 4475, work is split in three layers:
//!
//! 1. [`parse()`] fails on what breaks the message's framing or start line. Its [`ParseError`]
//!    carries an [`ErrorKind`] (with [`ErrorKind::reason`] for the reason phrase and
//!    [`ErrorKind::status`]: `None` for a keep-alive, 505 for a foreign SIP version, else
//!    400) and, when the start line was readable and every header line parsed, the salvaged
//!    [`Message`] ([`ParseError::request`] returns it for requests only). With it the server
//!    can copy Via, From, To, Call-ID and CSeq into its 400/505
//!    ([`MessageWriter::response_to`]). Without it the datagram is dropped.
//! 2. [`Message::check_request`] checks what a UAS must check before acting: mandatory
//!    headers present once and readable, Via/Contact values well formed, CSeq method equal to
//!    the request method. Its [`InvalidHeader::reason`] is the 400's reason phrase.
//! 3. Everything else (unknown method → 501/405, unsupported URI scheme → 416, `Require` →
//!    420, Content-Type → 415, `Accept` → 406) is the server's: the typed accessors expose it.
//!
//! Typed accessors are lenient about headers the server does not use: a broken `Subject`
//! must not cost a call, so nothing but the framing is checked up front.
//!
//! # Allocation
//!
//! A parse allocates one `Vec` of header slices (sized from the line count, at most
//! [`MAX_HEADERS`]); typed accessors allocate nothing (except `Cow::Owned` when unescaping).
//! The server's own reader (`parse_with` with a sink) allocates nothing.
//!
//! # Fast paths
//!
//! Each reader is one implementation built on the byte scans of `crate::scan`, except where a
//! one-pass reader of the usual shape earns at least 5 % of a dialog's instructions
//! (`core/benches/README.md` has the figures): the message parse (`parse_fast`), the From/To
//! tag (`name_addr_tag_fast`) and the top Via (`top_via_branch_rport_fast`). Each gives up on
//! any other shape, which its `_reference` twin then reads; proptests check on mutated input
//! that the two agree, and the `reference` feature of this crate routes every read to the
//! reference, so that the whole test suite can run on it.

mod class;
mod framer;
mod headers;
mod invalid;
mod lex;
mod message;
mod name_addr;
mod names;
mod params;
mod parse;
mod uri;
mod via;
mod write;

#[cfg(test)]
mod tests;

/// The parser's line-end search, for callers that split SIP or SDP text the same way.
pub use crate::scan::find_byte;
pub use framer::{frame, Frame, MAX_STREAM_BODY};
pub(crate) use headers::{
    call_id_value, cseq_parts, first_contact_uri, max_forwards_value, min_se_value,
    session_expires_value,
};
pub use headers::{ContactValue, ContentType, Refresher, SessionExpires};
pub use invalid::InvalidHeader;
pub(crate) use lex::SplitTop;
pub use lex::{percent_decode, unescape_quoted};
pub use message::{Header, Message, Method, StartLine};
pub(crate) use name_addr::name_addr_tag;
pub use name_addr::{InvalidNameAddr, NameAddr};
pub use names::HeaderName;
pub use params::Params;
pub use parse::{parse, ErrorKind, ParseError, MAX_HEAD, MAX_HEADERS};
pub(crate) use parse::{parse_again, parse_with, Failure, Sink, UriParts};
pub use uri::{InvalidUri, Scheme, Uri};
pub use via::Via;
pub(crate) use via::{push_response_via, top_via_branch_rport, top_via_value};
pub(crate) use write::{clean_written, push_value, Lines, Prefix};
pub use write::{reason_phrase, write_message, MessageWriter};
