//! The server's life around the loop, the same for both runtimes: shutdown and reload on
//! signals, the core's timer, its events as log lines, and the periodic counters.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onhold_core::{Control, Event, LiveState, Server, Stats};
use tracing::{debug, error, info, warn};

use crate::control::{taps, Answer, Ask, ControlPlane};
use crate::live::{self, LiveSources};
use crate::logging;
use crate::record::Recorder;
use crate::signals::{signal_action, signal_name, SignalAction};
use crate::startup::{ReloadResult, Startup};

/// What the loop should do after a signal.
#[derive(Debug, PartialEq)]
pub enum AfterSignal {
    Continue,
    /// Run [`reload_music`](crate::startup::reload_music) off the loop thread, then call [`Lifecycle::reload_done`].
    StartReload {
        seed: u64,
    },
    Exit(ExitCode),
}

/// Shutdown and reload around the server, the same for both runtimes.
pub struct Lifecycle {
    grace: Duration,
    base_seed: u64,
    reloads: u64,
    reloading: bool,
    /// Set by the first SIGINT/SIGTERM: the latest we wait for `Event::Drained`.
    hard_deadline: Option<Instant>,
    late: LateReport,
    /// Counters as last reported, and when the next report is due.
    stats: (Stats, Option<Instant>),
    /// The control API, when it listens.
    control: Option<ControlPlane>,
    /// Call recording, when `record_dir` is set.
    recorder: Option<Recorder>,
    /// The calls whose inbound audio the core decodes for us (recorded or listened to).
    tapped: BTreeSet<onhold_core::CallHandle>,
    /// The live classes' source threads, when there are any.
    live: Option<LiveSources>,
}

/// How often the counters are logged while they change.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Late wake-ups summed into at most one warning per second: an overloaded host makes every
/// call late at once, and a line per call would only add to the load.
#[derive(Default)]
struct LateReport {
    since: Option<Instant>,
    frames: u64,
    calls: BTreeSet<u64>,
}

impl LateReport {
    const EVERY: Duration = Duration::from_secs(1);

    fn add(&mut self, now: Instant, call: u64, skipped: u32) {
        self.since.get_or_insert(now);
        self.frames += u64::from(skipped);
        self.calls.insert(call);
    }

    fn flush(&mut self, now: Instant, force: bool) {
        let Some(since) = self.since else {
            return;
        };
        if force || now.saturating_duration_since(since) >= Self::EVERY {
            warn!(
                frames = self.frames,
                calls = self.calls.len(),
                "woke late: skipped frames to stay on the pacing grid"
            );
            *self = LateReport::default();
        }
    }
}

impl Lifecycle {
    pub fn new(startup: &Startup) -> Lifecycle {
        Lifecycle {
            grace: startup.config.shutdown_grace,
            base_seed: startup.shuffle_seed,
            reloads: 0,
            reloading: false,
            hard_deadline: None,
            late: LateReport::default(),
            stats: (Stats::default(), None),
            control: None,
            recorder: match Recorder::start(&startup.config) {
                Ok(r) => r,
                Err(line) => {
                    error!("{line}: calls are not recorded");
                    None
                }
            },
            tapped: BTreeSet::new(),
            live: None,
        }
    }

    /// Start a source thread for each live class (see [`crate::live`]); `wake` makes the loop
    /// turn, and the audio is given to the server at the top of the turn.
    pub fn start_live(&mut self, startup: &Startup, wake: Arc<dyn Fn() + Send + Sync>) {
        let g722 = startup.config.server.allows(onhold_core::Codec::G722);
        self.live = live::start(&startup.config.music, g722, wake);
    }

    /// Tap exactly the calls that are recorded or listened to.
    fn update_taps(&mut self, server: &mut Server) {
        let mut wanted: BTreeSet<onhold_core::CallHandle> =
            self.recorder.iter().flat_map(Recorder::calls).collect();
        if let Some(c) = &self.control {
            wanted.extend(c.listened());
        }
        if wanted == self.tapped {
            return;
        }
        for &call in wanted.difference(&self.tapped) {
            server.set_tap(call, true);
        }
        for &call in self.tapped.difference(&wanted) {
            server.set_tap(call, false);
        }
        self.tapped = wanted;
    }

    /// Start or stop recording `call` for the control API.
    fn record(&mut self, server: &Server, call: onhold_core::CallHandle, on: bool) -> Answer {
        let Some(recorder) = self.recorder.as_mut() else {
            return Answer::Recording(Err((409, "recording is off: set record_dir".into())));
        };
        let Some(info) = server.call_info(call) else {
            return Answer::Recording(Err((404, format!("no call {call}"))));
        };
        let path = if on {
            recorder.begin(&info)
        } else {
            recorder.end(call)
        };
        Answer::Recording(path.ok_or_else(|| {
            let why = if on {
                "has no media yet"
            } else {
                "is not being recorded"
            };
            (409, format!("call {call} {why}"))
        }))
    }

    /// Close every recording (the process is about to exit).
    fn finish_recordings(&mut self) {
        if let Some(r) = self.recorder.as_mut() {
            r.finish(Duration::from_secs(2));
        }
    }

    /// Serve the control API from this loop (see [`crate::control`]).
    pub fn set_control(&mut self, control: Option<ControlPlane>) {
        self.control = control;
    }

    /// Answer what the control API asked since the last turn.
    fn serve_control(&mut self, server: &mut Server, now: Instant) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        for (ask, reply) in control.take(server) {
            let answer = match ask {
                Ask::BeginReload if self.reloading => {
                    Answer::ReloadSeed(Err("a reload is already running".into()))
                }
                Ask::BeginReload => {
                    info!("control API: reloading configuration and music");
                    self.reloading = true;
                    self.reloads += 1;
                    Answer::ReloadSeed(Ok(self.base_seed.wrapping_add(self.reloads)))
                }
                Ask::Record(call, on) => self.record(server, call, on),
                Ask::EndReload(result) => {
                    let summary = result
                        .as_ref()
                        .map(|r| r.summary.clone())
                        .map_err(Clone::clone);
                    self.reload_done(server, now, result);
                    Answer::Reloaded(summary)
                }
                ask => match self.control.as_mut() {
                    Some(c) => c.answer(server, now, ask),
                    None => continue,
                },
            };
            // The asker may have timed out and gone: nothing to do then.
            let _ = reply.send(answer);
        }
    }

    pub fn on_signal(&mut self, server: &mut Server, now: Instant, signo: i32) -> AfterSignal {
        let name = signal_name(signo);
        match signal_action(signo) {
            Some(SignalAction::Shutdown) if self.hard_deadline.is_some() => {
                warn!("{name} again: exiting without waiting for the calls to end");
                self.finish_recordings();
                AfterSignal::Exit(ExitCode::from(1))
            }
            Some(SignalAction::Shutdown) => {
                info!(grace = ?self.grace, "{name}: refusing new calls, hanging up every call");
                // The core bounds its own wait by `grace`; ours adds a margin for the BYEs'
                // answers so a core that never reports Drained cannot keep us alive.
                self.hard_deadline = Some(now + self.grace + Duration::from_secs(1));
                server.control(now, Control::Shutdown { grace: self.grace });
                AfterSignal::Continue
            }
            Some(SignalAction::Reload) if self.reloading => {
                info!("{name}: a reload is already running");
                AfterSignal::Continue
            }
            Some(SignalAction::Reload) => {
                info!("{name}: reloading configuration and music");
                self.reloading = true;
                self.reloads += 1;
                AfterSignal::StartReload {
                    seed: self.base_seed.wrapping_add(self.reloads),
                }
            }
            None => AfterSignal::Continue,
        }
    }

    pub fn reload_done(&mut self, server: &mut Server, now: Instant, result: ReloadResult) {
        self.reloading = false;
        if let Some(c) = self.control.as_mut() {
            c.reloaded(
                &result
                    .as_ref()
                    .map(|r| r.summary.clone())
                    .map_err(Clone::clone),
            );
        }
        match result {
            Ok(r) => {
                logging::set_level(&r.log_level);
                info!(
                    "reload: music: {}; settings apply to new calls (listen addresses and the \
                     shared RTP port need a restart)",
                    r.summary
                );
                if let Some(c) = self.control.as_mut() {
                    c.reconfigured(&r.server);
                }
                server.control(now, Control::Reconfigure(r.server));
                server.control(now, Control::Reload(r.library));
            }
            Err(line) => error!("reload failed, keeping the old music: {line}"),
        }
    }

    /// The next time the loop must wake: the core's deadline, or the shutdown bound.
    pub fn next_wake(&self, server: &Server) -> Option<Instant> {
        match (server.poll_timeout(), self.hard_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Call the core's timer if due, and log its events. `Some` when the process should exit.
    pub fn service(&mut self, server: &mut Server, now: Instant) -> Option<ExitCode> {
        if let Some(live) = &self.live {
            live.deliver(server, now);
        }
        self.serve_control(server, now);
        self.update_taps(server);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        self.check(server, now)
    }

    /// Log the core's events; `Some` when the process should exit.
    pub fn check(&mut self, server: &mut Server, now: Instant) -> Option<ExitCode> {
        let mut drained = false;
        while let Some(ev) = server.poll_event() {
            if let Some(c) = self.control.as_mut() {
                c.publish(server, now, &ev);
            }
            self.record_event(server, &ev);
            match ev {
                Event::Late { call, skipped } => self.late.add(now, call.0, skipped),
                Event::Drained => {
                    drained = true;
                    log_event(&ev);
                }
                ev => log_event(&ev),
            }
        }
        self.late.flush(now, drained);
        self.report_stats(server, now);
        if drained && self.hard_deadline.is_some() {
            info!("every call has ended: exiting");
            self.finish_recordings();
            return Some(ExitCode::SUCCESS);
        }
        if self.hard_deadline.is_some_and(|d| now >= d) {
            warn!(
                calls = server.stats().calls_active,
                "shutdown grace elapsed: exiting with calls still up"
            );
            self.finish_recordings();
            return Some(ExitCode::SUCCESS);
        }
        None
    }

    /// What recording does with an event: start a call of a recorded class, write what its
    /// caller sends (also to listeners), close the file when the call ends.
    fn record_event(&mut self, server: &Server, ev: &Event) {
        match ev {
            Event::CallStarted { call, .. } => {
                if let (Some(r), Some(info)) = (self.recorder.as_mut(), server.call_info(*call)) {
                    r.call_started(&info);
                }
            }
            Event::Heard { call, pcm, .. } => {
                let data: Arc<[u8]> = taps::le_bytes(pcm);
                if let Some(r) = &self.recorder {
                    r.audio(*call, &data);
                }
                if let Some(c) = &self.control {
                    c.heard(*call, &data);
                }
            }
            Event::CallEnded { call, .. } => {
                if let Some(r) = self.recorder.as_mut() {
                    r.end(*call);
                }
                self.tapped.remove(call);
            }
            _ => {}
        }
    }
}

impl Lifecycle {
    /// One line of counters a minute, only while something changes (an idle server stays quiet).
    fn report_stats(&mut self, server: &Server, now: Instant) {
        let due = *self.stats.1.get_or_insert(now + STATS_EVERY);
        if now < due {
            return;
        }
        self.stats.1 = Some(now + STATS_EVERY);
        let s = server.stats();
        if *s == self.stats.0 {
            return;
        }
        info!(
            calls_active = s.calls_active,
            calls_total = s.calls_total,
            sip_in = s.sip_in,
            sip_out = s.sip_out,
            rtp_out = s.rtp_out,
            rtcp_out = s.rtcp_out,
            rtp_in = s.rtp_in,
            dropped = s.dropped,
            late_skipped_frames = s.late_skipped_frames,
            denied = s.denied,
            foreign_in_dialog = s.foreign_in_dialog,
            media_refused = s.media_refused,
            media_moved = s.media_moved,
            refused_full = s.refused_full,
            refused_rate = s.refused_rate,
            refused_source_calls = s.refused_source_calls,
            refused_transactions = s.refused_transactions,
            oversized = s.oversized,
            unreachable = s.unreachable,
            "stats"
        );
        self.stats.0 = s.clone();
    }
}

/// One log line per event: calls at info, refusals and drops at debug (a scanner can send
/// thousands), late wake-ups at warn (the loops sum those up per second instead).
pub fn log_event(ev: &Event) {
    match ev {
        Event::CallStarted {
            call,
            call_id,
            user,
            remote_sip,
            remote_rtp,
            local_rtp,
            codec,
            payload_type,
            ptime_ms,
            direction,
        } => info!(
            call = %call,
            call_id = %call_id,
            user = %user,
            remote_sip = %remote_sip,
            remote_rtp = %remote_rtp,
            local_rtp = %local_rtp,
            codec = %codec,
            pt = payload_type,
            ptime_ms,
            direction = ?direction,
            "call started"
        ),
        Event::MediaChanged {
            call,
            remote_rtp,
            direction,
        } => {
            info!(call = %call, remote_rtp = %remote_rtp, direction = ?direction, "media changed")
        }
        Event::Latched {
            call,
            sdp_rtp,
            remote_rtp,
        } => info!(
            call = %call,
            sdp_rtp = %sdp_rtp,
            remote_rtp = %remote_rtp,
            "latched: RTP follows the caller's source (NAT)"
        ),
        Event::CallEnded {
            call,
            reason,
            duration,
            rtp_packets_sent,
        } => info!(
            call = %call,
            reason = ?reason,
            duration = ?duration,
            rtp_packets_sent,
            "call ended"
        ),
        Event::Rejected {
            remote,
            method,
            code,
            reason,
        } => debug!(remote = %remote, method = %method, code, reason = %reason, "rejected"),
        Event::Dropped { remote, why } => debug!(remote = %remote, why, "dropped datagram"),
        Event::Late { call, skipped } => {
            warn!(call = %call, skipped, "woke late: skipped frames")
        }
        Event::Drained => info!("drained"),
        Event::Registration { aor, state, reason } => match reason {
            Some(reason) => {
                warn!(aor = %aor, state = state.name(), reason = %reason, "registration")
            }
            None => info!(aor = %aor, state = state.name(), "registration"),
        },
        Event::Invited { call } => debug!(call = %call, "invited"),
        Event::Live {
            class,
            state,
            reason,
        } => match (state, reason) {
            (LiveState::Down, reason) => warn!(
                class = %class,
                reason = reason.as_deref().unwrap_or(""),
                "live source down: reconnecting with back-off"
            ),
            (LiveState::Fallback, _) => {
                warn!(class = %class, "live buffer ran dry: playing the fallback")
            }
            (LiveState::Connected, _) => info!(class = %class, "live source connected"),
            (LiveState::Playing, _) => info!(class = %class, "live source playing"),
        },
        Event::Heard { .. } => {}
        Event::LimitHit { remote, limit } => {
            debug!(remote = %remote, limit = limit.name(), "limit hit: 503")
        }
        Event::Sip(t) => tracing::trace!(
            inbound = t.inbound,
            remote = %t.remote,
            "sip: {}",
            t.text.lines().next().unwrap_or("")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_wakeups_are_summed_per_second() {
        let t0 = Instant::now();
        let mut r = LateReport::default();
        r.add(t0, 1, 2);
        r.add(t0 + Duration::from_millis(10), 2, 3);
        r.add(t0 + Duration::from_millis(20), 1, 1);
        r.flush(t0 + Duration::from_millis(500), false);
        assert_eq!(
            (r.frames, r.calls.len()),
            (6, 2),
            "kept until a second has passed"
        );
        r.flush(t0 + Duration::from_secs(1), false);
        assert_eq!(
            (r.frames, r.calls.len(), r.since),
            (0, 0, None),
            "reported and reset"
        );
        r.add(t0, 3, 1);
        r.flush(t0, true);
        assert_eq!(r.frames, 0, "forced at shutdown");
    }
}
