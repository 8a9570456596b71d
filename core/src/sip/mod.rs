//! SIP messages (RFC 3261 §7, §20, §25): borrowed zero-copy parser, URIs, one serializer.
//!
//! ```text
//! datagram ──parse()──▶ Message<'_> { start, headers: [Header{name,value}], body }
//!                          │  typed, on demand: vias() top_via() from() to() call_id() cseq()
//!                          │  max_forwards() contacts() content_type() require() supported()
//!                          │  allow() session_expires() min_se() check_request()
//! TCP stream ──frame()──▶ Frame::{Complete{len}, NeedMore, KeepAlive{len}, Invalid}
//! MessageWriter::{request,response}(&mut Vec<u8>, ..).header(..).body(ct, bytes) ──▶ wire
//! ```
//!
//! Error handling follows RFC 3261 §8.2 and RFC 4475: [`parse`] fails on what breaks the
//! message's framing or its start line, and hands back the salvaged message when a 400/505 can
//! still be addressed (see [`ParseError`]). Header-level problems are found by the typed
//! accessors and [`Message::check_request`], so the server decides per header whether it
//! matters (a broken `Subject` must not cost a call).

mod framer;
mod headers;
mod lex;
mod names;
mod params;
mod parse;
mod uri;
mod write;

#[cfg(test)]
mod tests;

pub use framer::{frame, Frame, MAX_STREAM_BODY};
pub use headers::{
    ContactValue, ContentType, InvalidHeader, InvalidNameAddr, NameAddr, Refresher, SessionExpires,
    Via,
};
pub use lex::{percent_decode, unescape_quoted};
pub use names::HeaderName;
pub use params::Params;
pub use parse::{
    parse, ErrorKind, Header, Message, Method, ParseError, StartLine, MAX_HEAD, MAX_HEADERS,
};
pub use uri::{InvalidUri, Scheme, Uri};
pub use write::{reason_phrase, write_message, MessageWriter};
