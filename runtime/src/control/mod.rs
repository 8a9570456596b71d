//! The control API: an HTTP listener (health, Prometheus metrics, calls, hangup, source switch,
//! reload, music, Server-Sent Events with the SIP message hook), the same for both binaries.
//!
//! The HTTP side runs on helper threads (`http.rs`, `api.rs`) and never touches the server: it
//! sends each request that needs the server to the loop as an [`Ask`] with a reply channel and
//! wakes the loop; the loop answers between two turns ([`ControlPlane::take`], served by the
//! `Lifecycle`). Events go the other way through the [`hub`]: the loop appends, subscribers read
//! at their own pace, and nothing a client does can make the loop wait.

mod api;
pub mod http;
pub mod hub;
mod metrics;
mod page;
pub mod taps;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use onhold_core::config::MusicConfig;
use onhold_core::media::Library;
use onhold_core::{
    CallHandle, CallInfo, Direction, Event, LiveInfo, Occupancy, RegistrationInfo, Server,
    ServerConfig, Source, Stats, Transport,
};
use serde_json::json;

use crate::startup::{ReloadResult, Startup};

pub use hub::Hub;

/// A request the HTTP side needs the loop for.
pub enum Ask {
    /// Counters, occupancy and state for `/health` and `/metrics`.
    Snapshot,
    Calls,
    Call(CallHandle),
    Hangup(CallHandle),
    Source(CallHandle, Source),
    /// Place a call (`POST /api/calls`).
    Originate(Box<onhold_core::Originate>),
    Music,
    /// Turn SIP tracing on now (a `?sip=1` subscriber is about to be served).
    Trace,
    /// Start (true) or stop recording a call (answered by the lifecycle, which records).
    Record(CallHandle, bool),
    /// May a reload start? The answer is the shuffle seed to use.
    BeginReload,
    /// A reload's result, to apply.
    EndReload(ReloadResult),
}

/// The loop's answer.
pub enum Answer {
    Snapshot(Box<Snapshot>),
    Calls(Vec<CallInfo>),
    Call(Option<Box<CallInfo>>),
    /// The library in use and its live classes as they stand.
    Music(Arc<Library>, Vec<LiveInfo>),
    /// Done, or refused: `(HTTP status, message)`.
    Done(Result<(), (u16, String)>),
    ReloadSeed(Result<u64, String>),
    /// What was loaded, or why not.
    Reloaded(Result<String, String>),
    /// The recording's file, or why not.
    Recording(Result<std::path::PathBuf, (u16, String)>),
    /// The call placed, or why none was.
    Placed(Result<CallHandle, onhold_core::OriginateError>),
}

/// What `/health` and `/metrics` read, taken in one turn of the loop.
pub struct Snapshot {
    pub stats: Stats,
    pub occupancy: Occupancy,
    pub draining: bool,
    pub max_calls: usize,
    pub counters: Counters,
    pub library: Arc<Library>,
    pub reload_error: Option<String>,
    pub started_wall: SystemTime,
    pub uptime: Duration,
    /// The `[[register]]` accounts (no passwords in these).
    pub registrations: Vec<RegistrationInfo>,
    /// The live classes' sources and buffers.
    pub live: Vec<LiveInfo>,
    /// The loop's time when the snapshot was taken (for the registrations' `expires_at`).
    pub now: Instant,
    /// The settings for new calls as last loaded (`page::settings_json`).
    pub settings: serde_json::Value,
}

/// Counts the control plane keeps from the core's events.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub answered: u64,
    /// Calls that ended before media started.
    pub unanswered: u64,
    /// INVITEs refused with a final error.
    pub rejected: u64,
    pub ended: BTreeMap<&'static str, u64>,
    pub reloads: u64,
    pub reload_failures: u64,
}

type Pending = (Ask, mpsc::SyncSender<Answer>);

/// What the HTTP side shares.
struct Shared {
    token: Option<String>,
    /// For reloads: the command line they re-read the configuration with.
    args: onhold_core::config::RunArgs,
    tx: mpsc::Sender<Pending>,
    wake: Box<dyn Fn() + Send + Sync>,
    hub: Arc<Hub>,
    listeners: Arc<taps::Listeners>,
    music: MusicConfig,
    /// Calls may use G.722: a file played to one call keeps its 16 kHz audio too.
    g722: bool,
    epoch: Instant,
    epoch_wall: SystemTime,
    /// `smol` or `mio`.
    runtime: &'static str,
    /// The SIP listeners as bound (`page::listeners_json`): a reload does not move them.
    sip_listeners: serde_json::Value,
    /// The same, for choosing the socket a call we place goes out from.
    sip_bound: Vec<(Transport, SocketAddr)>,
}

/// A call as the events have shown it, for the events that follow.
struct Seen {
    call_id: String,
    answered: bool,
    sending: bool,
    remote_rtp: Option<SocketAddr>,
}

/// Limit hits published at most once a second per limit: a flood would fill the ring.
const LIMIT_EVENT_EVERY: Duration = Duration::from_secs(1);

/// The loop's side of the control API.
pub struct ControlPlane {
    rx: mpsc::Receiver<Pending>,
    hub: Arc<Hub>,
    listeners: Arc<taps::Listeners>,
    /// Where the listener is bound.
    pub local: SocketAddr,
    counters: Counters,
    seen: BTreeMap<CallHandle, Seen>,
    /// Per limit: when its last event went out, and the hits since.
    limits: BTreeMap<&'static str, (Instant, u64)>,
    reload_error: Option<String>,
    epoch: Instant,
    epoch_wall: SystemTime,
    max_calls: usize,
    settings: serde_json::Value,
}

/// Bind the control listener (unless it is off) and start serving it. `runtime` names the
/// binary's IO loop and `bound` is where its SIP listeners are, for the status page. `wake` makes
/// the loop turn (it then serves what arrived). `Err` is one line for the log and stderr.
pub fn start(
    startup: &Startup,
    runtime: &'static str,
    bound: &[(Transport, SocketAddr)],
    wake: impl Fn() + Send + Sync + 'static,
) -> Result<Option<ControlPlane>, String> {
    let Some(addr) = startup.config.control_listen else {
        return Ok(None);
    };
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on control {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("control {addr}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let hub = Arc::new(Hub::default());
    let listeners = Arc::new(taps::Listeners::default());
    let shared = Arc::new(Shared {
        listeners: Arc::clone(&listeners),
        token: startup.config.control_token.clone(),
        args: startup.args.clone(),
        tx,
        wake: Box::new(wake),
        hub: Arc::clone(&hub),
        music: startup.config.music.clone(),
        g722: startup.config.server.allows(onhold_core::Codec::G722),
        epoch: startup.epoch,
        epoch_wall: startup.epoch_wall,
        runtime,
        sip_listeners: page::listeners_json(bound, &startup.config.listen),
        sip_bound: bound.to_vec(),
    });
    http::serve(listener, move |req| api::handle(&shared, req))
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(Some(ControlPlane {
        rx,
        hub,
        listeners,
        local,
        counters: Counters::default(),
        seen: BTreeMap::new(),
        limits: BTreeMap::new(),
        reload_error: None,
        epoch: startup.epoch,
        epoch_wall: startup.epoch_wall,
        max_calls: startup.config.server.max_calls,
        settings: page::settings_json(&startup.config.server),
    }))
}

impl ControlPlane {
    /// The requests waiting, with their reply channels; SIP tracing follows the subscribers.
    pub fn take(&mut self, server: &mut Server) -> Vec<Pending> {
        server.set_sip_trace(self.hub.sip_subscribers() > 0);
        self.rx.try_iter().collect()
    }

    /// The calls someone listens to (the lifecycle taps them).
    pub fn listened(&self) -> Vec<CallHandle> {
        self.listeners.calls()
    }

    /// What the caller of `call` sent, as 16-bit PCM bytes, for its listeners.
    pub fn heard(&self, call: CallHandle, data: &Arc<[u8]>) {
        self.listeners.send(call, data);
    }

    /// Answer everything but reloads (the `Lifecycle` answers those).
    pub fn answer(&mut self, server: &mut Server, now: Instant, ask: Ask) -> Answer {
        match ask {
            Ask::Snapshot => Answer::Snapshot(Box::new(Snapshot {
                stats: server.stats().clone(),
                occupancy: server.occupancy(),
                draining: server.is_draining(),
                max_calls: self.max_calls,
                counters: self.counters.clone(),
                library: Arc::clone(server.library()),
                reload_error: self.reload_error.clone(),
                started_wall: self.epoch_wall,
                uptime: now.saturating_duration_since(self.epoch),
                registrations: server.registrations(),
                live: server.live_info(now),
                now,
                settings: self.settings.clone(),
            })),
            Ask::Calls => Answer::Calls(server.calls()),
            Ask::Call(h) => Answer::Call(server.call_info(h).map(Box::new)),
            Ask::Music => Answer::Music(Arc::clone(server.library()), server.live_info(now)),
            Ask::Hangup(h) => Answer::Done(match server.call_info(h) {
                Some(_) => {
                    server.control(now, onhold_core::Control::Hangup(h));
                    Ok(())
                }
                None => Err((404, format!("no call {h}"))),
            }),
            Ask::Source(h, source) => Answer::Done(self.source(server, now, h, source)),
            Ask::Originate(o) => Answer::Placed(server.originate(now, *o)),
            Ask::Trace => {
                server.set_sip_trace(true);
                Answer::Done(Ok(()))
            }
            Ask::BeginReload | Ask::EndReload(_) | Ask::Record(..) => {
                Answer::Done(Err((500, "answered by the lifecycle".into())))
            }
        }
    }

    fn source(
        &mut self,
        server: &mut Server,
        now: Instant,
        h: CallHandle,
        source: Source,
    ) -> Result<(), (u16, String)> {
        let Some(info) = server.call_info(h) else {
            return Err((404, format!("no call {h}")));
        };
        if info.media.is_none() {
            return Err((409, format!("call {h} has no media yet (not answered)")));
        }
        if let Source::Class(name) = &source {
            if server.library().class_named(name).is_none() {
                return Err((400, format!("no music class named {name:?}")));
            }
        }
        server.control(now, onhold_core::Control::Source { call: h, source });
        Ok(())
    }

    /// A reload finished: count it, remember a failure for `/health`, and tell subscribers.
    pub fn reloaded(&mut self, result: &Result<String, String>) {
        match result {
            Ok(summary) => {
                self.counters.reloads += 1;
                self.reload_error = None;
                let data = json!({ "ok": true, "music": summary });
                self.hub.publish("reload", &data.to_string(), false);
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                self.reload_error = Some(e.clone());
                let data = json!({ "ok": false, "error": e });
                self.hub.publish("reload", &data.to_string(), false);
            }
        }
    }

    /// A reload's settings now apply to new calls: show them, and judge `max_calls` by them.
    pub fn reconfigured(&mut self, config: &ServerConfig) {
        self.max_calls = config.max_calls;
        self.settings = page::settings_json(config);
    }

    /// The server is stopping: end every event stream.
    pub fn close(&self) {
        self.hub.close();
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.epoch_wall + at.saturating_duration_since(self.epoch)
    }

    /// Count an event and pass it on to the subscribers.
    pub fn publish(&mut self, server: &Server, now: Instant, ev: &Event) {
        let hub = &self.hub;
        match ev {
            Event::Invited { call } => {
                let Some(info) = server.call_info(*call) else {
                    return;
                };
                self.seen.insert(
                    *call,
                    Seen {
                        call_id: info.call_id.clone(),
                        answered: false,
                        sending: false,
                        remote_rtp: None,
                    },
                );
                let data = json!({
                    "call": call.to_string(),
                    "call_id": info.call_id,
                    "from": info.from,
                    "to": info.to,
                    "user": info.user,
                    "transport": info.transport.name(),
                    "remote_sip": info.remote_sip.to_string(),
                    "local_sip": info.local_sip.to_string(),
                    "outbound": info.outbound,
                    "at": rfc3339(self.wall(info.created)),
                });
                hub.publish("call.started", &data.to_string(), false);
            }
            Event::CallStarted {
                call,
                call_id,
                user,
                remote_rtp,
                local_rtp,
                codec,
                payload_type,
                ptime_ms,
                direction,
                ..
            } => {
                self.counters.answered += 1;
                let sending = direction.sends();
                let seen = self.seen.entry(*call).or_insert_with(|| Seen {
                    call_id: call_id.clone(),
                    answered: false,
                    sending,
                    remote_rtp: None,
                });
                seen.answered = true;
                seen.sending = sending;
                seen.remote_rtp = Some(*remote_rtp);
                let class = server
                    .call_info(*call)
                    .and_then(|i| i.media)
                    .map(|m| m.source)
                    .unwrap_or_default();
                let data = json!({
                    "call": call.to_string(),
                    "call_id": call_id,
                    "user": user,
                    "class": class,
                    "codec": codec.encoding_name(),
                    "payload_type": payload_type,
                    "ptime_ms": ptime_ms,
                    "remote_rtp": remote_rtp.to_string(),
                    "local_rtp": local_rtp.to_string(),
                    "direction": direction_name(*direction),
                    "at": rfc3339(self.wall(now)),
                });
                hub.publish("call.answered", &data.to_string(), false);
            }
            Event::MediaChanged {
                call,
                remote_rtp,
                direction,
            } => {
                let Some(seen) = self.seen.get_mut(call) else {
                    return;
                };
                let sending = direction.sends();
                if sending != seen.sending {
                    seen.sending = sending;
                    let name = if sending { "call.resumed" } else { "call.held" };
                    let data = json!({
                        "call": call.to_string(),
                        "call_id": seen.call_id,
                        "direction": direction_name(*direction),
                    });
                    hub.publish(name, &data.to_string(), false);
                }
                if seen.remote_rtp != Some(*remote_rtp) {
                    seen.remote_rtp = Some(*remote_rtp);
                    let data = json!({
                        "call": call.to_string(),
                        "call_id": seen.call_id,
                        "remote_rtp": remote_rtp.to_string(),
                        "latched": false,
                    });
                    hub.publish("call.media", &data.to_string(), false);
                }
            }
            Event::Latched {
                call,
                sdp_rtp,
                remote_rtp,
            } => {
                let Some(seen) = self.seen.get_mut(call) else {
                    return;
                };
                seen.remote_rtp = Some(*remote_rtp);
                let data = json!({
                    "call": call.to_string(),
                    "call_id": seen.call_id,
                    "remote_rtp": remote_rtp.to_string(),
                    "sdp_rtp": sdp_rtp.to_string(),
                    "latched": true,
                });
                hub.publish("call.media", &data.to_string(), false);
            }
            Event::CallEnded {
                call,
                reason,
                duration,
                rtp_packets_sent,
            } => {
                *self.counters.ended.entry(reason.name()).or_default() += 1;
                self.listeners.end(*call);
                let seen = self.seen.remove(call);
                if !seen.as_ref().is_some_and(|s| s.answered) {
                    self.counters.unanswered += 1;
                }
                let status = match reason {
                    onhold_core::EndReason::Rejected(code) => Some(*code),
                    _ => None,
                };
                let data = json!({
                    "call": call.to_string(),
                    "call_id": seen.map(|s| s.call_id),
                    "reason": reason.name(),
                    "status": status,
                    "duration_s": duration.as_secs_f64(),
                    "rtp_packets_sent": rtp_packets_sent,
                });
                hub.publish("call.ended", &data.to_string(), false);
            }
            Event::Rejected { method, .. } => {
                if method == "INVITE" {
                    self.counters.rejected += 1;
                }
            }
            Event::LimitHit { remote, limit } => {
                let name = limit.name();
                let entry = self.limits.entry(name).or_insert((now, 0));
                entry.1 += 1;
                let due =
                    entry.1 == 1 || now.saturating_duration_since(entry.0) >= LIMIT_EVENT_EVERY;
                if due {
                    let data =
                        json!({ "limit": name, "remote": remote.to_string(), "hits": entry.1 });
                    *entry = (now, 0);
                    hub.publish("limit", &data.to_string(), false);
                }
            }
            Event::Sip(t) => {
                let first_line = t.text.lines().next().unwrap_or("");
                let data = json!({
                    "direction": if t.inbound { "in" } else { "out" },
                    "transport": t.transport.name(),
                    "local": t.local.to_string(),
                    "remote": t.remote.to_string(),
                    "first_line": first_line,
                    "text": t.text,
                });
                hub.publish("sip", &data.to_string(), true);
            }
            Event::Registration { aor, state, reason } => {
                let info = server.registrations();
                let expires_at = info
                    .iter()
                    .find(|r| &r.aor == aor)
                    .and_then(|r| r.expires_at)
                    .map(|at| rfc3339(self.wall(at)));
                let data = json!({
                    "aor": aor,
                    "state": state.name(),
                    "reason": reason,
                    "expires_at": expires_at,
                });
                hub.publish("registration", &data.to_string(), false);
            }
            Event::Live {
                class,
                state,
                reason,
            } => {
                let data = json!({ "class": class, "state": state.name(), "reason": reason });
                hub.publish("live", &data.to_string(), false);
            }
            // Audio goes to listeners through `heard`, decoded once for them and the recorder.
            Event::Heard { .. } | Event::Dropped { .. } | Event::Late { .. } | Event::Drained => {}
        }
    }
}

pub(crate) fn direction_name(d: Direction) -> &'static str {
    if d.sends() {
        "sending"
    } else {
        "held"
    }
}

/// `2026-12-06T17:41:45.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_are_written_as_rfc3339_utc() {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_796_579_305_123);
        assert_eq!(rfc3339(at), "2026-12-06T17:48:25.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
