//! The control API's endpoints, on the HTTP threads: authorisation, routing, JSON, and the
//! asks they send the loop.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onhold_core::media::{ClassId, ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::{
    CallHandle, CallInfo, LiveInfo, OriginateError, RegistrationState, Source, Transport,
    LATENESS_BOUNDS_US,
};
use serde_json::{json, Value};

use super::http::{same_secret, Reply, Request, Response};
use super::hub::Next;
use super::{direction_name, metrics, page, rfc3339, Answer, Ask, Shared};
use crate::startup;

/// How long a request waits for the loop before 503.
const LOOP_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle event stream gets a comment this often (it keeps proxies from closing it and shows
/// a dead client).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

type Failure = (u16, String);

pub(super) fn handle(shared: &Arc<Shared>, req: Request) -> Reply {
    // The status page's files hold no data: served without the token, so the page can ask.
    if req.method == "GET" {
        if let Some(r) = page::asset(&req.path) {
            return Reply::Whole(r);
        }
    }
    if let Some(token) = &shared.token {
        // The scheme name is case-insensitive (RFC 9110 §11.1), the token is not.
        let presented = req
            .header("Authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map_or("", |(_, token)| token);
        if !same_secret(presented.trim().as_bytes(), token.as_bytes()) {
            let r = Response::error(401, "missing or wrong bearer token")
                .with_header("WWW-Authenticate", "Bearer realm=\"onhold\"");
            return Reply::Whole(r);
        }
    }
    let path = req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let result = match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => health(shared),
        ("GET", ["api", "status"]) => status(shared),
        ("GET", ["metrics"]) => snapshot(shared).map(|s| Response {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            headers: Vec::new(),
            body: metrics::render(&s).into_bytes(),
        }),
        ("GET", ["api", "calls"]) => calls(shared),
        ("POST", ["api", "calls"]) => place_call(shared, &req.body),
        ("GET", ["api", "calls", id]) => call(shared, id),
        ("DELETE", ["api", "calls", id]) | ("POST", ["api", "calls", id, "hangup"]) => {
            hangup(shared, id)
        }
        ("POST", ["api", "calls", id, "source"]) => source(shared, id, &req.body),
        ("POST", ["api", "calls", id, "record"]) => record(shared, id, &req.body),
        ("POST", ["api", "reload"]) => reload(shared),
        ("GET", ["api", "music"]) => music(shared),
        ("GET", ["api", "music", class, "preview.wav"]) => preview(shared, class),
        ("GET", ["api", "events"]) => return events(shared, &req),
        ("GET", ["api", "calls", id, "listen"]) => return listen(shared, id),
        (_, path) => Err(match allowed(path) {
            Some(methods) => {
                return Reply::Whole(
                    Response::error(405, format!("{} takes {methods}", req.path))
                        .with_header("Allow", methods),
                )
            }
            None => (404, format!("no endpoint {}", req.path)),
        }),
    };
    Reply::Whole(result.unwrap_or_else(|(status, message)| Response::error(status, message)))
}

/// The methods a known path takes (for 405), `None` for an unknown path.
fn allowed(path: &[&str]) -> Option<&'static str> {
    match path {
        // The status page's files.
        []
        | ["index.html" | "status.css" | "status.js"]
        | ["health"]
        | ["metrics"]
        | ["api", "status" | "music" | "events"]
        | ["api", "music", _, "preview.wav"] => Some("GET"),
        ["api", "calls"] => Some("GET, POST"),
        ["api", "calls", _] => Some("GET, DELETE"),
        ["api", "calls", _, "listen"] => Some("GET"),
        ["api", "calls", _, "hangup" | "source" | "record"] | ["api", "reload"] => Some("POST"),
        _ => None,
    }
}

/// Send `ask` to the loop and wait for its answer.
fn ask(shared: &Shared, ask: Ask) -> Result<Answer, Failure> {
    let (tx, rx) = mpsc::sync_channel(1);
    let gone = || (503, "the server is stopping".to_string());
    shared.tx.send((ask, tx)).map_err(|_| gone())?;
    (shared.wake)();
    rx.recv_timeout(LOOP_TIMEOUT).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => (503, "the server loop did not answer in time".into()),
        mpsc::RecvTimeoutError::Disconnected => gone(),
    })
}

fn unexpected() -> Failure {
    (500, "unexpected answer from the server loop".into())
}

fn done(answer: Answer) -> Result<(), Failure> {
    match answer {
        Answer::Done(r) => r,
        _ => Err(unexpected()),
    }
}

fn snapshot(shared: &Shared) -> Result<Box<super::Snapshot>, Failure> {
    match ask(shared, Ask::Snapshot)? {
        Answer::Snapshot(s) => Ok(s),
        _ => Err(unexpected()),
    }
}

fn handle_of(id: &str) -> Result<CallHandle, Failure> {
    id.parse()
        .map_err(|()| (404, format!("no call {id} (ids look like 3.1)")))
}

/// `ok`, `degraded` or `draining`, and why it is not `ok`.
fn health_of(s: &super::Snapshot) -> (&'static str, Vec<String>) {
    let mut reasons = Vec::new();
    if let Some(e) = &s.reload_error {
        reasons.push(format!(
            "the last reload failed (the previous music plays): {e}"
        ));
    }
    if s.stats.calls_active >= s.max_calls {
        reasons.push(format!("at max_calls ({}): new calls get 503", s.max_calls));
    }
    for r in &s.registrations {
        if r.state != RegistrationState::Registered {
            let why = r.last_error.as_deref().unwrap_or("no answer yet");
            reasons.push(format!(
                "{} is not registered ({}): {why}",
                r.aor,
                r.state.name()
            ));
        }
    }
    for l in &s.live {
        if !l.connected {
            let why = l.last_error.as_deref().unwrap_or("not connected yet");
            reasons.push(format!(
                "the live source of class {} ({}) is not connected: {why}; its callers hear \
                 the fallback once the buffer runs dry",
                l.class, l.url
            ));
        }
    }
    let status = if s.draining {
        "draining"
    } else if reasons.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    (status, reasons)
}

fn health(shared: &Shared) -> Result<Response, Failure> {
    let s = snapshot(shared)?;
    let (status, reasons) = health_of(&s);
    let registrations: Vec<Value> = s
        .registrations
        .iter()
        .map(|r| {
            json!({
                "aor": r.aor,
                "registrar": r.registrar,
                "state": r.state.name(),
                "expires_in_s": r.expires_at.map(|at| at.saturating_duration_since(s.now).as_secs()),
                "last_error": r.last_error,
            })
        })
        .collect();
    let lib = &s.library;
    let tracks: usize = (0..lib.class_count())
        .map(|i| lib.tracks(ClassId(i as u16)).len())
        .sum();
    let body = json!({
        "status": status,
        "reasons": reasons,
        "version": crate::VERSION,
        "uptime_s": s.uptime.as_secs(),
        "calls_active": s.stats.calls_active,
        "registrations": registrations,
        "live": s.live.iter().map(live_json).collect::<Vec<_>>(),
        "music": {
            "classes": lib.class_count(),
            "tracks": tracks,
            "seconds": (lib.audio_seconds() * 10.0).round() / 10.0,
        },
    });
    Ok(Response::json(if s.draining { 503 } else { 200 }, &body))
}

/// Everything the status page's header and chart show, in one answer: `/health`'s facts, the
/// listeners and settings, the music, and the counters the chart needs (the lateness histogram
/// as the core counts it, per bucket, not cumulative: the page takes differences between two
/// reads to chart the recent p99, not the p99 since start).
fn status(shared: &Shared) -> Result<Response, Failure> {
    let s = snapshot(shared)?;
    let (status, reasons) = health_of(&s);
    let l = &s.stats.lateness;
    let within: u64 = l.buckets.iter().sum();
    let mut buckets = l.buckets.to_vec();
    buckets.push(l.count - within);
    let body = json!({
        "version": crate::VERSION,
        "runtime": shared.runtime,
        "started_at": rfc3339(s.started_wall),
        "uptime_s": s.uptime.as_secs(),
        "health": { "status": status, "reasons": reasons },
        "calls_active": s.stats.calls_active,
        "listeners": shared.sip_listeners,
        "settings": s.settings,
        "music": {
            "classes": classes_json(&s.library),
            "codecs": CODECS,
            "seconds": (s.library.audio_seconds() * 10.0).round() / 10.0,
        },
        "rtp_sent_packets": s.stats.rtp_out,
        "lateness": {
            "bounds_us": LATENESS_BOUNDS_US,
            "buckets": buckets,
            "count": l.count,
        },
    });
    Ok(Response::json(200, &body))
}

fn call_json(shared: &Shared, c: &CallInfo, now: Instant) -> Value {
    let wall =
        |at: Instant| rfc3339(shared.epoch_wall + at.saturating_duration_since(shared.epoch));
    let since = c.started.unwrap_or(c.created);
    let m = c.media.as_ref();
    json!({
        "id": c.call.to_string(),
        "call_id": c.call_id,
        "from": c.from,
        "to": c.to,
        "user": c.user,
        "class": m.map(|m| m.source.as_str()),
        "transport": c.transport.name(),
        "remote_sip": c.remote_sip.to_string(),
        "local_sip": c.local_sip.to_string(),
        "remote_rtp": m.map(|m| m.remote_rtp.to_string()),
        "local_rtp": m.map(|m| m.local_rtp.to_string()),
        "codec": m.map(|m| m.codec.encoding_name()),
        "payload_type": m.map(|m| m.payload_type),
        "ptime_ms": m.map(|m| m.ptime_ms),
        "direction": m.map_or("answering", |m| direction_name(m.direction)),
        "created_at": wall(c.created),
        "started_at": c.started.map(wall),
        "duration_s": (now.saturating_duration_since(since).as_secs_f64() * 1000.0).round() / 1000.0,
        "packets_sent": m.map_or(0, |m| m.packets),
        "bytes_sent": m.map_or(0, |m| m.octets),
        "latched": m.is_some_and(|m| m.latched),
        "outbound": c.outbound,
    })
}

fn calls(shared: &Shared) -> Result<Response, Failure> {
    let Answer::Calls(calls) = ask(shared, Ask::Calls)? else {
        return Err(unexpected());
    };
    let now = Instant::now();
    let list: Vec<Value> = calls.iter().map(|c| call_json(shared, c, now)).collect();
    Ok(Response::json(200, &json!({ "calls": list })))
}

fn call(shared: &Shared, id: &str) -> Result<Response, Failure> {
    let h = handle_of(id)?;
    match ask(shared, Ask::Call(h))? {
        Answer::Call(Some(c)) => Ok(Response::json(200, &call_json(shared, &c, Instant::now()))),
        Answer::Call(None) => Err((404, format!("no call {id}"))),
        _ => Err(unexpected()),
    }
}

fn hangup(shared: &Shared, id: &str) -> Result<Response, Failure> {
    let h = handle_of(id)?;
    done(ask(shared, Ask::Hangup(h))?)?;
    Ok(Response::json(
        202,
        &json!({ "id": id, "result": "hanging up (BYE sent)" }),
    ))
}

fn source(shared: &Shared, id: &str, body: &[u8]) -> Result<Response, Failure> {
    let h = handle_of(id)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| (400, format!("bad JSON: {e}")))?;
    let class = v.get("class").and_then(Value::as_str);
    let file = v.get("file").and_then(Value::as_str);
    let (source, what) = match (class, file) {
        (Some(c), None) => (Source::Class(c.to_string()), json!({ "class": c })),
        (None, Some(f)) => (file_source(shared, f)?, json!({ "file": f })),
        _ => {
            return Err((
                400,
                "give exactly one of {\"class\": NAME} or {\"file\": PATH}".into(),
            ))
        }
    };
    done(ask(shared, Ask::Source(h, source))?)?;
    Ok(Response::json(200, &json!({ "id": id, "playing": what })))
}

/// Place a call: `{"uri": "sip:200@pbx", "class": NAME | "file": PATH, "max_duration": SECS,
/// "from": USER_OR_URI}`. The name in the URI is looked up and the file decoded here, on the
/// HTTP thread; the loop only starts the INVITE. 201 with the call's id: its progress shows in
/// the events and `GET /api/calls/{id}`, and a refusal by the callee ends it with reason
/// `rejected` and the status code.
fn place_call(shared: &Shared, body: &[u8]) -> Result<Response, Failure> {
    let v: Value = serde_json::from_slice(body).map_err(|e| (400, format!("bad JSON: {e}")))?;
    let text = |k: &str| match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err((400, format!("\"{k}\" must be a string"))),
    };
    let uri = text("uri")?.ok_or((
        400,
        "\"uri\" is required (e.g. sip:200@pbx.example.com)".into(),
    ))?;
    let source = match (text("class")?, text("file")?) {
        (Some(c), None) => Some(Source::Class(c)),
        (None, Some(f)) => Some(file_source(shared, &f)?),
        (None, None) => None,
        (Some(_), Some(_)) => return Err((400, "give \"class\" or \"file\", not both".into())),
    };
    let max_duration = match v.get("max_duration") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
            _ => {
                return Err((
                    400,
                    "\"max_duration\" is seconds, above 0 and at most 86400".into(),
                ))
            }
        },
        Some(Value::String(s)) => Some(
            onhold_core::config::parse_duration(s.trim())
                .filter(|d| !d.is_zero() && d.as_secs() <= 86_400)
                .ok_or((
                    400,
                    format!(
                        "\"max_duration\": {s:?} is not a duration like 30s or 5m (at most 1d)"
                    ),
                ))?,
        ),
        Some(_) => {
            return Err((
                400,
                "\"max_duration\" is seconds or a duration like \"5m\"".into(),
            ))
        }
    };
    let parsed =
        onhold_core::sip::Uri::parse(&uri).map_err(|_| (400, format!("{uri}: not a SIP URI")))?;
    let transport = match parsed.transport() {
        None => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) => {
            return Err((
                400,
                format!("{uri}: transport {t} is not supported (udp, tcp)"),
            ))
        }
    };
    let host = parsed.host_unbracketed().to_string();
    let port = parsed
        .port
        .unwrap_or(crate::resolve::default_port(transport));
    let dest = crate::resolve::system_lookup(&host, port)
        .map_err(|e| (502, format!("{host}: cannot resolve: {e}")))?
        .into_iter()
        .next()
        .ok_or((502, format!("{host}: no address")))?;
    let local = shared
        .sip_bound
        .iter()
        .find(|(t, a)| *t == transport && a.is_ipv4() == dest.is_ipv4())
        .map(|(_, a)| *a)
        .ok_or((
            400,
            format!(
                "no {} listener of {dest}'s address family to call from",
                transport.name()
            ),
        ))?;
    let contact_ip = if local.ip().is_unspecified() {
        crate::startup::local_ip_toward(dest).ok()
    } else {
        None
    };
    let o = onhold_core::Originate {
        uri: uri.clone(),
        dest,
        transport,
        local,
        contact_ip,
        from: text("from")?,
        source,
        max_duration,
    };
    match ask(shared, Ask::Originate(Box::new(o)))? {
        Answer::Placed(Ok(h)) => Ok(Response::json(
            201,
            &json!({ "id": h.to_string(), "uri": uri, "result": "calling" }),
        )),
        Answer::Placed(Err(e)) => {
            let status = match e {
                OriginateError::BadUri => 400,
                _ => 503,
            };
            Err((status, format!("{uri}: {e}")))
        }
        _ => Err(unexpected()),
    }
}

/// Read and decode a music file for one call (here, on the HTTP thread: decoding takes a
/// while and must not stall the loop), with the configured normalisation and gain.
fn file_source(shared: &Shared, path: &str) -> Result<Source, Failure> {
    let bytes = std::fs::read(path).map_err(|e| (400, format!("{path}: cannot read: {e}")))?;
    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: path.to_string(),
                bytes,
            }],
            from_directory: false,
            order: Order::Sorted,
            mode: PlayMode::PerCall,
            announcement: None,
            live: None,
        }],
        normalize: shared.music.normalize,
        gain_db: shared.music.gain_db,
        g722: shared.g722,
    };
    let (library, _) = crate::music::build_library(&spec, 0).map_err(|line| (400, line))?;
    Ok(Source::Music {
        name: path.to_string(),
        library: Arc::new(library),
    })
}

/// Start (`{"on": true}`, also an empty body) or stop recording a call.
fn record(shared: &Shared, id: &str, body: &[u8]) -> Result<Response, Failure> {
    let h = handle_of(id)?;
    let on = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        let v: Value = serde_json::from_slice(body).map_err(|e| (400, format!("bad JSON: {e}")))?;
        v.get("on")
            .and_then(Value::as_bool)
            .ok_or((400, "give {\"on\": true} or {\"on\": false}".to_string()))?
    };
    match ask(shared, Ask::Record(h, on))? {
        Answer::Recording(Ok(path)) => Ok(Response::json(
            200,
            &json!({ "id": id, "recording": on, "file": path }),
        )),
        Answer::Recording(Err(e)) => Err(e),
        _ => Err(unexpected()),
    }
}

fn reload(shared: &Shared) -> Result<Response, Failure> {
    let seed = match ask(shared, Ask::BeginReload)? {
        Answer::ReloadSeed(Ok(seed)) => seed,
        Answer::ReloadSeed(Err(e)) => return Err((409, e)),
        _ => return Err(unexpected()),
    };
    // The same work as SIGHUP's, on this thread.
    let result = startup::reload_music(&shared.args, seed);
    match ask(shared, Ask::EndReload(result))? {
        Answer::Reloaded(Ok(summary)) => Ok(Response::json(
            200,
            &json!({ "reloaded": true, "music": summary }),
        )),
        Answer::Reloaded(Err(e)) => Err((400, format!("reload failed, the old music plays: {e}"))),
        _ => Err(unexpected()),
    }
}

/// The codecs every class is encoded in.
const CODECS: [&str; 3] = ["PCMU", "PCMA", "G722"];

/// A live class's source and buffer, for `/health` and `/api/music`.
fn live_json(l: &LiveInfo) -> Value {
    json!({
        "class": l.class,
        "url": l.url,
        "connected": l.connected,
        "playing": l.playing,
        "outages": l.outages,
        "underruns": l.underruns,
        "buffered_ms": l.buffered.as_millis() as u64,
        "buffer_ms": l.target.as_millis() as u64,
        "received_s": (l.received.as_secs_f64() * 10.0).round() / 10.0,
        "last_error": l.last_error,
    })
}

fn classes_json(lib: &Library) -> Vec<Value> {
    (0..lib.class_count())
        .map(|i| {
            let id = ClassId(i as u16);
            let tracks: Vec<Value> = lib
                .tracks(id)
                .iter()
                .map(|t| json!({ "name": t.name, "seconds": t.len as f64 / 8000.0 }))
                .collect();
            json!({
                "name": lib.class_name(id),
                "default": id == lib.default_class(),
                "mode": match lib.mode(id) {
                    PlayMode::PerCall => "per-call",
                    PlayMode::Shared => "shared",
                },
                "tracks": tracks,
                "seconds": lib.program_len(id) as f64 / 8000.0,
            })
        })
        .collect()
}

fn library(shared: &Shared) -> Result<(Arc<Library>, Vec<LiveInfo>), Failure> {
    match ask(shared, Ask::Music)? {
        Answer::Music(lib, live) => Ok((lib, live)),
        _ => Err(unexpected()),
    }
}

fn music(shared: &Shared) -> Result<Response, Failure> {
    let (lib, live) = library(shared)?;
    let mut classes = classes_json(&lib);
    // A live class shows its source beside its fallback's tracks.
    for c in &mut classes {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        if let Some(l) = live.iter().find(|l| l.class == name) {
            c["live"] = live_json(l);
        }
    }
    Ok(Response::json(
        200,
        &json!({ "classes": classes, "codecs": CODECS }),
    ))
}

/// The first seconds of a class's music as callers on PCMU hear it, as WAV (built here, on the
/// HTTP thread, from the library the loop shares).
fn preview(shared: &Shared, class: &str) -> Result<Response, Failure> {
    let name = page::percent_decode(class).ok_or_else(|| (404, format!("no class {class}")))?;
    let (lib, _) = library(shared)?;
    let id = lib
        .class_named(&name)
        .ok_or_else(|| (404, format!("no music class named {name:?}")))?;
    Ok(Response {
        status: 200,
        content_type: "audio/wav",
        headers: Vec::new(),
        body: page::preview_wav(&lib, id, page::PREVIEW_SECONDS),
    })
}

fn events(shared: &Arc<Shared>, req: &Request) -> Reply {
    let sip = matches!(req.param("sip"), Some("1" | "true"));
    let last_id = req
        .header("Last-Event-ID")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut sub = shared.hub.subscribe(last_id, sip);
    if sip {
        // Tracing is on before the stream's head goes out: a client that has read it sees
        // every SIP message from then on.
        if let Err((status, message)) = ask(shared, Ask::Trace).and_then(done) {
            return Reply::Whole(Response::error(status, message));
        }
    }
    Reply::Stream(Box::new(move |mut stream: TcpStream| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                    Connection: close\r\n\r\nretry: 2000\n\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        loop {
            let written = match sub.next(KEEPALIVE_EVERY) {
                Next::Frames(frames) => frames
                    .iter()
                    .try_for_each(|f| stream.write_all(f.as_bytes())),
                Next::Idle => stream.write_all(b": keep-alive\n\n"),
                Next::Lagged | Next::Closed => return,
            };
            // A write that times out (a client that stopped reading) drops the subscriber.
            if written.and_then(|()| stream.flush()).is_err() {
                return;
            }
        }
    }))
}

/// What the caller of call `id` sends, live, as a WAV of unknown length (chunked), until the
/// call ends or this listener falls behind.
fn listen(shared: &Arc<Shared>, id: &str) -> Reply {
    let call = match handle_of(id).and_then(|h| match ask(shared, Ask::Call(h))? {
        Answer::Call(Some(c)) => Ok((h, c)),
        Answer::Call(None) => Err((404, format!("no call {id}"))),
        _ => Err(unexpected()),
    }) {
        Ok(c) => c,
        Err((status, message)) => return Reply::Whole(Response::error(status, message)),
    };
    let (h, info) = call;
    let Some(media) = &info.media else {
        return Reply::Whole(Response::error(409, format!("call {id} has no media yet")));
    };
    let rate = media.codec.sample_rate();
    let chunks = shared.listeners.add(h);
    // The loop taps the call on its next turn.
    (shared.wake)();
    Reply::Stream(Box::new(move |mut stream: TcpStream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\
                    Cache-Control: no-store\r\nConnection: close\r\n\r\n";
        let header = super::taps::wav_header(rate, u32::MAX - 36);
        if stream.write_all(head.as_bytes()).is_err() || chunk(&mut stream, &header).is_err() {
            return;
        }
        // Until the call ends (the channel closes) or we fell behind and were dropped.
        while let Ok(data) = chunks.recv() {
            if chunk(&mut stream, &data).is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    }))
}

/// One chunk of a chunked body (RFC 9112 §7.1).
fn chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    stream.write_all(data)?;
    stream.write_all(b"\r\n")
}
