//! A small, bounded HTTP/1.1 server for the control API: blocking sockets on helper threads
//! (one per connection, at most [`MAX_CONNECTIONS`]), requests read with `httparse`, one
//! request per connection (`Connection: close`). No async runtime: the server loop is never
//! involved until a request is whole and authorised.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::signals::spawn_helper;

/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 128;
/// The request line and headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body (JSON).
pub const MAX_BODY: usize = 64 * 1024;
/// A client must send its whole request within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that blocks this long (a client that stopped reading) ends the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request.
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value (`?sip=1`); no percent-decoding (the API's are plain words).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// A whole response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a handler does with a connection.
pub enum Reply {
    Whole(Response),
    /// A streamed response: the handler writes the head and the body itself.
    Stream(Box<dyn FnOnce(TcpStream) + Send>),
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

pub fn write_response(stream: &mut TcpStream, r: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)?;
    stream.flush()
}

/// Accept connections on `listener` for ever (on a helper thread), each served on a thread of
/// its own by `handle`.
pub fn serve<H>(listener: TcpListener, handle: H) -> io::Result<()>
where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    let open = Arc::new(AtomicUsize::new(0));
    spawn_helper("onhold-control", move || {
        lower_priority();
        accept_loop(listener, handle, open)
    })?;
    Ok(())
}

/// Below the loop's priority (nice +10, inherited by the connection threads): on a busy host,
/// API clients wait for the CPU before calls' packets do.
fn lower_priority() {
    // SAFETY: gettid and setpriority take and return plain integers; on Linux, PRIO_PROCESS
    // with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

fn accept_loop<H>(listener: TcpListener, handle: Arc<H>, open: Arc<AtomicUsize>)
where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off rather than spin.
                warn!("control: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            refuse(stream);
            continue;
        }
        let handle = Arc::clone(&handle);
        let open_here = Arc::clone(&open);
        let spawned = spawn_helper("onhold-control-conn", move || {
            connection(stream, peer, &*handle);
            open_here.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            open.fetch_sub(1, Ordering::AcqRel);
            warn!("control: cannot start a connection thread: {e}");
        }
    }
}

/// Too many connections: one 503, written without waiting.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let r = Response::error(503, "too many control connections").with_header("Retry-After", "1");
    let _ = write_response(&mut stream, &r);
}

fn connection(mut stream: TcpStream, peer: SocketAddr, handle: &dyn Fn(Request) -> Reply) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let request = match read_request(&mut stream, peer) {
        Ok(r) => r,
        Err(Some(r)) => {
            let _ = write_response(&mut stream, &r);
            return;
        }
        Err(None) => return,
    };
    debug!(peer = %peer, method = %request.method, path = %request.path, "control request");
    match handle(request) {
        Reply::Whole(r) => {
            let _ = write_response(&mut stream, &r);
        }
        Reply::Stream(write) => {
            let _ = stream.set_read_timeout(None);
            write(stream);
        }
    }
}

/// Read one request within [`REQUEST_TIMEOUT`]. `Err(Some(response))`: answer that and close;
/// `Err(None)`: the client went away.
fn read_request(stream: &mut TcpStream, peer: SocketAddr) -> Result<Request, Option<Response>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let (head_len, mut request) = loop {
        let got = read_some(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..got]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let target = parsed.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let request = Request {
                    method: parsed.method.unwrap_or("").to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value).into_owned();
                            (h.name.to_string(), value)
                        })
                        .collect(),
                    body: Vec::new(),
                    peer,
                };
                break (len, request);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(Some(Response::error(431, "request head too large")));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Some(Response::error(431, "too many headers")));
            }
            Err(e) => return Err(Some(Response::error(400, format!("bad request: {e}")))),
        }
    };
    if request.header("Transfer-Encoding").is_some() {
        return Err(Some(Response::error(
            400,
            "chunked request bodies are not taken: send Content-Length",
        )));
    }
    let length = match request.header("Content-Length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| Some(Response::error(400, "bad Content-Length")))?,
    };
    if length > MAX_BODY {
        return Err(Some(Response::error(
            413,
            format!("request body over {MAX_BODY} bytes"),
        )));
    }
    let mut body = buf.split_off(head_len);
    while body.len() < length {
        let got = read_some(stream, &mut chunk, deadline)?;
        body.extend_from_slice(&chunk[..got]);
    }
    body.truncate(length);
    request.body = body;
    Ok(request)
}

/// One read, bounded by the request's deadline; the peer closing is `Err(None)`.
fn read_some(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    deadline: Instant,
) -> Result<usize, Option<Response>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Some(Response::error(408, "request not received in time")));
    }
    let _ = stream.set_read_timeout(Some(left));
    match stream.read(chunk) {
        Ok(0) => Err(None),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(Some(Response::error(408, "request not received in time")))
        }
        Err(_) => Err(None),
    }
}

/// Compare a presented secret with the expected one in time that depends only on their
/// lengths, not on where they differ.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = presented.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= usize::from(p ^ e);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }
}
