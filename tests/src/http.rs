//! A minimal HTTP/1.1 client for the control API tests: one request per connection, and an
//! event-stream reader that collects Server-Sent Events on a thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request; `extra` header lines end in CRLF. Panics on a transport error (10 s bound).
pub fn request(to: SocketAddr, method: &str, path: &str, extra: &str, body: &[u8]) -> HttpResponse {
    request_within(to, method, path, extra, body, Duration::from_secs(10))
}

/// [`request`] with a bound of its own on the wait for the answer.
pub fn request_within(
    to: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
    timeout: Duration,
) -> HttpResponse {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    // The server may answer (413) before reading a large body: a reset while writing it is
    // not the test's failure.
    let _ = s.write_all(body);
    let raw = read_response(&mut s);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response to {method} {path}: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A response's bytes: up to the end of its body when it has a Content-Length (a server may
/// keep the connection open after it, as chromedriver does), else up to EOF.
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= end + 4 + n) {
                return raw;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn get(to: SocketAddr, path: &str) -> HttpResponse {
    request(to, "GET", path, "", b"")
}

/// One Server-Sent Event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub name: String,
    pub data: serde_json::Value,
}

/// An event stream read on a thread into a shared list.
pub struct EventStream {
    events: Arc<Mutex<Vec<SseEvent>>>,
    _stream: TcpStream,
}

impl EventStream {
    /// Opens `path` (e.g. `/api/events?sip=1`) and returns once the response head is in.
    pub fn open(to: SocketAddr, path: &str) -> EventStream {
        EventStream::open_with(to, path, "")
    }

    /// [`EventStream::open`] resuming after the event with id `last` (`Last-Event-ID`): what
    /// the server's ring still holds from there comes first.
    pub fn open_after(to: SocketAddr, path: &str, last: u64) -> EventStream {
        EventStream::open_with(to, path, &format!("Last-Event-ID: {last}\r\n"))
    }

    fn open_with(to: SocketAddr, path: &str, extra: &str) -> EventStream {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        let head = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n{extra}\r\n");
        s.write_all(head.as_bytes()).expect("write");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "events: {line}");
        while {
            line.clear();
            reader.read_line(&mut line).expect("header") > 0 && line != "\r\n"
        } {}
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            let (mut id, mut name, mut line) = (None, String::new(), String::new());
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if let Some(v) = l.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = l.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = l.strip_prefix("data: ") {
                    let data = serde_json::from_str(v).expect("event data is JSON");
                    sink.lock().unwrap().push(SseEvent {
                        id: id.take(),
                        name: std::mem::take(&mut name),
                        data,
                    });
                }
            }
        });
        EventStream { events, _stream: s }
    }

    pub fn events(&self) -> Vec<SseEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for an event satisfying `f`.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&SseEvent) -> bool) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| f(e)) {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
