//! A parsed SIP message (RFC 3261 §7): its start line, header lines and body, all borrowed
//! from the datagram, with the accessors of the start line and of the header lines by name.
//! `parse.rs` makes one; the typed accessors (`headers.rs`) and the writer (`write.rs`) use one
//! without the parser.

use std::fmt;

use super::names::HeaderName;

/// SIP request method. Method names are case-sensitive (RFC 3261 §7.1): `invite` is an
/// extension method, not INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other `token` (RFC 3261 §25.1 `extension-method`).
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token (no validation: see [`parse`](super::parse()) for that).
    pub fn from_token(token: &'a str) -> Method<'a> {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request-Line or Status-Line (RFC 3261 §7.1, §7.2). The SIP-Version is always SIP/2.0 in a
/// parsed message (anything else is an error), so it is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `uri` has been checked with [`Uri::parse`](super::Uri::parse); parse it again to read
    /// its parts.
    Request {
        method: Method<'a>,
        uri: &'a str,
    },
    Response {
        code: u16,
        reason: &'a str,
    },
}

/// One header line. `value` is trimmed of surrounding whitespace but otherwise as sent: a
/// folded value still contains `CRLF SP` (RFC 3261 §7.3.1), which the typed accessors treat as
/// whitespace. A multi-valued line (`Via: a, b`) is one `Header`; accessors split it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName<'a>,
    /// The name as sent (`v`, `via`, `VIA`).
    pub raw_name: &'a str,
    pub value: &'a str,
}

/// A parsed SIP message borrowing from its datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    /// Header lines in the order received.
    pub headers: Vec<Header<'a>>,
    /// Exactly Content-Length bytes, or the rest of the datagram when Content-Length is absent.
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as sent, `None` for a response.
    pub fn request_uri(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of header `name` (any spelling or compact form), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        let name = HeaderName::parse(name);
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    }

    /// Every line of header `name` (any spelling or compact form), in order, not split at
    /// commas.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        let name = HeaderName::parse(name);
        self.headers_of(name)
    }

    /// Every line of a known header, in order.
    pub fn headers_of<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| h.value)
    }
}
