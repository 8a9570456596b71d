//! The parts of a request or response the server acts on, read once from the parsed message.

use std::net::SocketAddr;

use crate::server::Transport;

/// One request, with the fields the transaction and dialog layers use, borrowed from the datagram.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// Request-URI user part (`123` in `sip:123@host`), empty when there is none.
    pub uri_user: &'a str,
    /// Request-URI host as written (IP literal or name, IPv6 without brackets).
    pub uri_host: &'a str,
    /// Every Via value, top first, as written.
    pub vias: Vec<&'a str>,
    pub top_via: TopVia<'a>,
    pub from: &'a str,
    pub from_tag: &'a str,
    pub to: &'a str,
    pub to_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub cseq_method: &'a str,
    pub max_forwards: Option<u32>,
    /// First Contact URI (without `<>`), if any.
    pub contact: Option<&'a str>,
    /// Record-Route values in order, as written.
    pub record_route: Vec<&'a str>,
    pub require: Vec<&'a str>,
    pub supported: Vec<&'a str>,
    pub content_type: Option<&'a str>,
    pub session_expires: Option<(u32, Option<&'a str>)>,
    pub min_se: Option<u32>,
    pub body: &'a [u8],
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

#[derive(Debug, Clone)]
pub(crate) struct TopVia<'a> {
    pub branch: &'a str,
    /// `host[:port]` as written: part of the transaction key (RFC 3261 §17.2.3).
    pub sent_by: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    /// `;rport` present (RFC 3581): answer to the source port.
    pub rport: bool,
}

/// One response to a request we sent (BYE, OPTIONS, UPDATE).
#[derive(Debug)]
pub(crate) struct Response<'a> {
    pub code: u16,
    pub branch: &'a str,
    pub cseq_method: &'a str,
}
