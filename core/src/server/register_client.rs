//! Registering our accounts at a PBX or trunk (RFC 3261 §10.2), so calls to them reach us.
//!
//! Each `[[register]]` account is one small machine driven by time and by the outcomes of its
//! REGISTER client transactions (which retransmit on timer E and give up on timer F): sent at
//! start, answered with digest credentials when challenged (RFC 7616, RFC 8760), refreshed at
//! 90 % of the granted expiry, retried with doubling back-off and jitter while the registrar is
//! down or refuses, and removed (`Expires: 0`) at shutdown. A name in the registrar URI is
//! looked up by the runtime (`Command::Resolve`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::digest::{self, Challenge};
use super::messages::{self, host_str, RegisterRequest};
use super::outbox::Path;
use super::request::Response;
use super::transactions::ClientPurpose;
use super::{
    Command, Cx, Event, Hop, Registration, RegistrationInfo, RegistrationState, ServerConfig,
    Timer, Timers, Transport,
};
use crate::sip::{self, Uri};

/// The first retry after a failure, and the longest wait between two.
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Challenges answered at once in a row (a first challenge, a stale nonce, a 423) before the
/// next one counts as a failure: a registrar that never accepts is not asked in a tight loop.
const QUICK_RETRIES: u32 = 3;

/// Where an account's REGISTERs go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dest {
    Addr(SocketAddr),
    /// Waiting for the runtime to resolve the registrar's host name.
    Lookup {
        host: String,
        port: Option<u16>,
    },
    /// The registrar URI could not be read.
    Unusable,
}

#[derive(Debug)]
struct Account {
    /// Its id in timers and client transactions: stable while the list changes by reloads.
    id: usize,
    reg: Registration,
    /// Dropped from the configuration by a reload: its binding is being removed, and the
    /// account goes once that is answered.
    retiring: bool,
    dest: Dest,
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    expires_at: Option<Instant>,
    last_error: Option<String>,
    /// The seconds we ask for: the configured expiry, raised by a 423's Min-Expires.
    asking: u32,
    challenge: Option<Challenge>,
    /// 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`): which header answers it.
    proxy_auth: bool,
    nc: u32,
    /// The REGISTER in flight, if any, whether it carried credentials and whether it is a
    /// removal.
    in_flight: bool,
    sent_auth: bool,
    sent_removal: bool,
    quick: u32,
    failures: u32,
    /// The deadline of this account's timer entry (others are stale).
    next_at: Option<Instant>,
    /// At shutdown: the removal is in flight or done; nothing more is scheduled.
    removing: bool,
    sent: u64,
}

/// Every account, in configuration order.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    accounts: Vec<Account>,
    next_id: usize,
}

impl Registrations {
    /// One account per configured registration, each with its first REGISTER due at `start`.
    pub fn new(
        config: &ServerConfig,
        rng: &mut crate::rng::Rng,
        timers: &mut Timers,
        start: Instant,
    ) -> Registrations {
        let mut r = Registrations::default();
        for reg in &config.registrations {
            r.add(reg.clone(), rng, timers, start);
        }
        r
    }

    /// A new account, its first REGISTER due at `at`.
    fn add(
        &mut self,
        r: Registration,
        rng: &mut crate::rng::Rng,
        timers: &mut Timers,
        at: Instant,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        timers.push(at, Timer::Register(id));
        self.accounts.push(Account {
            id,
            dest: dest_of(&r),
            call_id: format!("{}{}@onhold", rng.token(), rng.token()),
            from_tag: rng.token(),
            cseq: 0,
            state: RegistrationState::Pending,
            expires_at: None,
            last_error: None,
            asking: r.expires.as_secs().clamp(1, u32::MAX as u64) as u32,
            challenge: None,
            proxy_auth: false,
            nc: 0,
            in_flight: false,
            sent_auth: false,
            sent_removal: false,
            quick: 0,
            failures: 0,
            next_at: Some(at),
            removing: false,
            sent: 0,
            reg: r,
            retiring: false,
        });
    }

    /// Where the account `reg` sends: its outbound proxy's address — as configured, or as
    /// last resolved when the proxy is named by host (`None` until then).
    pub fn proxy_addr(&self, reg: &Registration) -> Option<SocketAddr> {
        match reg.outbound_proxy.as_ref()? {
            Hop::Addr(a) => Some(*a),
            Hop::Name { .. } => self
                .accounts
                .iter()
                .find(|a| !a.retiring && a.reg == *reg)
                .and_then(|a| match a.dest {
                    Dest::Addr(addr) => Some(addr),
                    _ => None,
                }),
        }
    }

    /// The index of the account with `id`, if it is still there.
    fn index(&self, id: usize) -> Option<usize> {
        self.accounts.iter().position(|a| a.id == id)
    }

    /// A reload's `[[register]]` list: accounts it still names carry on as they are; a new
    /// one registers now; one it no longer names (or names changed) has its binding removed
    /// (`Expires: 0`) and then goes.
    pub fn reconfigure(&mut self, cx: &mut Cx<'_>, wanted: &[Registration]) {
        let now = cx.io.now;
        let dropped: Vec<usize> = self
            .accounts
            .iter()
            .filter(|a| !a.retiring && !wanted.contains(&a.reg))
            .map(|a| a.id)
            .collect();
        for id in dropped {
            if let Some(i) = self.index(id) {
                self.retire(cx, i);
            }
        }
        for reg in wanted {
            let have = self.accounts.iter().any(|a| !a.retiring && a.reg == *reg);
            if !have {
                self.add(reg.clone(), cx.rng, cx.io.timers, now);
            }
        }
    }

    /// Remove the binding of the account at `i` (it goes when that is answered), or drop it
    /// at once when it holds none.
    fn retire(&mut self, cx: &mut Cx<'_>, i: usize) {
        let now = cx.io.now;
        let a = &mut self.accounts[i];
        a.retiring = true;
        a.next_at = None;
        let holds = a.expires_at.is_some_and(|e| e > now);
        a.removing = true;
        if a.in_flight {
            return; // the removal follows the answer (see `on_outcome`)
        }
        if holds {
            a.quick = 0;
            self.send(cx, i, true);
        } else {
            self.accounts.remove(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// An account's timer: its next REGISTER is due.
    pub fn on_timer(&mut self, cx: &mut Cx<'_>, at: Instant, id: usize) {
        let Some(i) = self.index(id) else {
            return;
        };
        let a = &mut self.accounts[i];
        if a.next_at != Some(at) || a.removing {
            return;
        }
        a.next_at = None;
        self.send(cx, i, false);
    }

    /// The runtime's answer to our `Command::Resolve`.
    pub fn on_resolved(
        &mut self,
        cx: &mut Cx<'_>,
        host: &str,
        port: Option<u16>,
        addrs: &[SocketAddr],
    ) {
        for i in 0..self.accounts.len() {
            let a = &mut self.accounts[i];
            let waiting = matches!(&a.dest, Dest::Lookup { host: h, port: p }
                if h.eq_ignore_ascii_case(host) && *p == port);
            if !waiting || a.in_flight || a.removing {
                continue;
            }
            match addrs.first() {
                Some(addr) => {
                    let found = SocketAddr::new(addr.ip(), port.unwrap_or(addr.port()));
                    // Kept for the refreshes (and calls placed through a named proxy) until a
                    // failure makes us look the name up again.
                    a.dest = Dest::Addr(found);
                    self.send_to(cx, i, found, false);
                }
                None => self.failed(cx, i, format!("cannot resolve {host}")),
            }
        }
    }

    /// The final outcome of one of our REGISTERs (`response` is `None` for a timeout).
    pub fn on_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        id: usize,
        code: u16,
        response: Option<&Response<'_>>,
    ) {
        let Some(i) = self.index(id) else {
            return;
        };
        let a = &mut self.accounts[i];
        a.in_flight = false;
        let Some(r) = response else {
            let why = format!("no answer from the registrar ({code})");
            return self.failed(cx, i, why);
        };
        let msg = sip::parse(r.message).ok();
        let status = format!("{code} {}", sip::reason_phrase(code));
        match code {
            200..=299 => {
                let now = cx.io.now;
                if a.removing {
                    if !a.sent_removal {
                        // Shutdown came while this REGISTER was on its way: now remove it.
                        a.quick = 0;
                        return self.send(cx, i, true);
                    }
                    a.expires_at = None;
                    if a.retiring {
                        self.accounts.remove(i);
                        return;
                    }
                    return self.set_state(cx, i, RegistrationState::Unregistered, None);
                }
                let contact = contact_uri(&a.reg, cx.config);
                let granted = msg
                    .as_ref()
                    .and_then(|m| granted_expiry(m, &contact))
                    .unwrap_or(a.asking);
                // Never longer than asked: a registrar's bigger figure would only put the refresh
                // out of reach, and an absurd one out of any timer's range.
                let granted = Duration::from_secs(u64::from(granted.clamp(1, a.asking)));
                a.expires_at = Some(now + granted);
                a.failures = 0;
                a.quick = 0;
                // Refresh at 90 % of the granted time, so a lost refresh still has retries left.
                let at = now + granted.mul_f64(0.9);
                a.next_at = Some(at);
                cx.io.timers.push(at, Timer::Register(a.id));
                self.set_state(cx, i, RegistrationState::Registered, None);
            }
            401 | 407 => {
                let best = msg.as_ref().and_then(|m| digest::best_challenge(m, code));
                let Some(c) = best else {
                    return self.failed(
                        cx,
                        i,
                        format!("{status}: no digest challenge we can answer"),
                    );
                };
                let retry_now = (c.stale || !a.sent_auth) && a.quick < QUICK_RETRIES;
                let refused = !c.stale && a.sent_auth;
                a.challenge = Some(c);
                a.proxy_auth = code == 407;
                a.nc = 0;
                if retry_now {
                    a.quick += 1;
                    let removing = a.removing;
                    self.send(cx, i, removing);
                } else if refused {
                    self.failed(cx, i, format!("{status}: credentials refused"));
                } else {
                    self.failed(cx, i, status);
                }
            }
            423 => {
                let min = msg
                    .as_ref()
                    .and_then(|m| m.header("Min-Expires"))
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > a.asking && a.quick < QUICK_RETRIES => {
                        a.asking = m;
                        a.quick += 1;
                        let removing = a.removing;
                        self.send(cx, i, removing);
                    }
                    _ => self.failed(cx, i, status),
                }
            }
            _ => self.failed(cx, i, status),
        }
    }

    /// Shutdown: remove every binding we may hold (`Expires: 0`) and schedule nothing more.
    pub fn shutdown(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.accounts.len() {
            let a = &mut self.accounts[i];
            a.next_at = None;
            let holds = a.expires_at.is_some_and(|e| e > cx.io.now);
            let was = std::mem::replace(&mut a.removing, true);
            // A REGISTER in flight is followed by the removal once it is answered.
            if was || !holds || a.in_flight {
                continue;
            }
            a.quick = 0;
            self.send(cx, i, true);
        }
    }

    /// Is a removal still waiting for its answer (shutdown waits for it, within the grace)?
    pub fn removing(&self) -> bool {
        self.accounts.iter().any(|a| a.removing && a.in_flight)
    }

    /// Every account the configuration names (not those a reload dropped).
    pub fn info(&self) -> Vec<RegistrationInfo> {
        self.accounts
            .iter()
            .filter(|a| !a.retiring)
            .map(|a| RegistrationInfo {
                aor: a.reg.aor.clone(),
                registrar: a.reg.registrar.clone(),
                state: a.state,
                expires_at: a.expires_at,
                last_error: a.last_error.clone(),
                sent: a.sent,
            })
            .collect()
    }

    /// Send the account's next REGISTER (a removal when `remove`), or ask for its address.
    fn send(&mut self, cx: &mut Cx<'_>, i: usize, remove: bool) {
        let a = &mut self.accounts[i];
        match a.dest.clone() {
            Dest::Addr(addr) => self.send_to(cx, i, addr, remove),
            Dest::Lookup { host, port } => {
                if remove {
                    return;
                }
                let transport = a.reg.transport;
                cx.io.out.command(Command::Resolve {
                    host,
                    port,
                    transport,
                });
            }
            Dest::Unusable => self.failed(cx, i, "the registrar URI cannot be read".into()),
        }
    }

    fn send_to(&mut self, cx: &mut Cx<'_>, i: usize, dest: SocketAddr, remove: bool) {
        let a = &mut self.accounts[i];
        let reg = &a.reg;
        a.cseq += 1;
        a.sent += 1;
        a.in_flight = true;
        let branch = format!("z9hG4bK{}", cx.rng.token());
        let expires = if remove { 0 } else { a.asking };
        let credentials = a.challenge.as_ref().map(|c| {
            a.nc += 1;
            let cnonce = cx.rng.token();
            c.answer(
                &reg.auth_user,
                &reg.password,
                "REGISTER",
                &reg.registrar,
                a.nc,
                &cnonce,
            )
        });
        a.sent_auth = credentials.is_some();
        a.sent_removal = remove;
        let contact = contact_uri(reg, cx.config);
        let (host, port) = via_host(reg, cx.config);
        let mut bytes = Vec::with_capacity(700);
        let name = digest::credentials_header(a.proxy_auth);
        messages::write_register(
            &mut bytes,
            &RegisterRequest {
                registrar: &reg.registrar,
                transport: reg.transport,
                host,
                port,
                branch: &branch,
                aor: &reg.aor,
                from_tag: &a.from_tag,
                call_id: &a.call_id,
                cseq: a.cseq,
                contact: &contact,
                expires,
                credentials: credentials.as_deref().map(|c| (name, c)),
                user_agent: &cx.config.user_agent,
            },
        );
        let path = Path {
            transport: reg.transport,
            local: reg.local,
            dest,
        };
        cx.txns.send_request(
            &mut cx.io,
            "REGISTER",
            ClientPurpose::Register(a.id),
            branch,
            bytes,
            None,
            path,
        );
    }

    /// The attempt failed: say why, and try again after the back-off (none once removing).
    fn failed(&mut self, cx: &mut Cx<'_>, i: usize, why: String) {
        let a = &mut self.accounts[i];
        a.quick = 0;
        if a.removing {
            a.expires_at = None;
            a.last_error = Some(why);
            if a.retiring {
                self.accounts.remove(i);
            }
            return;
        }
        // 5 s doubling to 5 min, each wait shortened by up to a quarter at random so that
        // many servers restarted together do not come back in step.
        let doubled = BACKOFF_FIRST.saturating_mul(1 << a.failures.min(16));
        let wait = doubled.min(BACKOFF_MAX);
        let jitter = cx.rng.below(wait.as_millis() as u64 / 4 + 1);
        let wait = wait - Duration::from_millis(jitter);
        a.failures = a.failures.saturating_add(1);
        let at = cx.io.now + wait;
        a.next_at = Some(at);
        cx.io.timers.push(at, Timer::Register(a.id));
        // A name is looked up again for the retry: the registrar may have moved.
        if matches!(a.dest, Dest::Addr(_)) && !matches!(a.reg.outbound_proxy, Some(Hop::Addr(_))) {
            a.dest = dest_of(&a.reg);
        }
        self.set_state(cx, i, RegistrationState::Failed, Some(why));
    }

    fn set_state(
        &mut self,
        cx: &mut Cx<'_>,
        i: usize,
        state: RegistrationState,
        reason: Option<String>,
    ) {
        let a = &mut self.accounts[i];
        let changed =
            a.state != state || (state == RegistrationState::Failed && a.last_error != reason);
        a.state = state;
        a.last_error = reason.clone();
        if changed {
            cx.io.out.event(Event::Registration {
                aor: a.reg.aor.clone(),
                state,
                reason,
            });
        }
    }
}

/// Where REGISTERs for `r` go: the outbound proxy, else the registrar URI's host (an IP now,
/// a name once resolved).
fn dest_of(r: &Registration) -> Dest {
    match &r.outbound_proxy {
        Some(Hop::Addr(p)) => return Dest::Addr(*p),
        Some(Hop::Name { host, port }) => {
            return Dest::Lookup {
                host: host.to_ascii_lowercase(),
                port: *port,
            }
        }
        None => {}
    }
    let Ok(uri) = Uri::parse(&r.registrar) else {
        return Dest::Unusable;
    };
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, uri.port.unwrap_or(5060))),
        Err(_) if !host.is_empty() => Dest::Lookup {
            host: host.to_ascii_lowercase(),
            port: uri.port,
        },
        Err(_) => Dest::Unusable,
    }
}

/// Our address in Via and Contact: the advertised one, else the listen socket's IP, else the
/// one the runtime found; and the listen port.
fn via_host(r: &Registration, config: &ServerConfig) -> (IpAddr, u16) {
    let ip = config
        .advertised_for(r.transport, r.local)
        .or(r.contact_ip.filter(|_| r.local.ip().is_unspecified()))
        .unwrap_or(r.local.ip());
    (ip, r.local.port())
}

/// Our Contact URI: the AOR's user at our address, so an INVITE to it is classed by that user.
fn contact_uri(r: &Registration, config: &ServerConfig) -> String {
    let (ip, port) = via_host(r, config);
    let user = Uri::parse(&r.aor)
        .ok()
        .and_then(|u| u.user)
        .unwrap_or("onhold");
    let transport = if r.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    format!("sip:{user}@{}:{port}{transport}", host_str(ip))
}

/// The expiry a 2xx grants our binding: the `expires` of the Contact naming ours, else the
/// Expires header (RFC 3261 §10.2.4).
fn granted_expiry(m: &sip::Message<'_>, contact: &str) -> Option<u32> {
    let ours = contact.to_ascii_lowercase();
    for value in m.headers("Contact") {
        for entry in value.split(',') {
            let lower = entry.to_ascii_lowercase();
            if !lower.contains(&ours) {
                continue;
            }
            let after = lower.rsplit_once('>').map_or(lower.as_str(), |(_, p)| p);
            for p in after.split(';') {
                if let Some(v) = p.trim().strip_prefix("expires=") {
                    if let Ok(n) = v.trim().parse() {
                        return Some(n);
                    }
                }
            }
        }
    }
    m.header("Expires")?.trim().parse().ok()
}
