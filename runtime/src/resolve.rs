//! Host names for the core's `Command::Resolve` (a Record-Route or Contact naming a host,
//! RFC 3263), looked up by the system resolver (getaddrinfo, so `/etc/hosts`, search domains and
//! nsswitch apply) on helper threads: a lookup may block for seconds, the event loop must not.
//!
//! The loop asks with [`Resolver::ask`], which answers at once from the cache (or for an IP
//! literal), or starts a lookup. A worker sends its result back and calls the runtime's notify
//! function (smol: a channel the loop awaits; mio: its `Waker`); the loop then takes the
//! answers with [`Resolver::poll`], which also answers "nothing found" for every lookup older
//! than the timeout, so the core never waits longer than that. [`Resolver::next_deadline`] is
//! when the loop must wake for such a timeout.
//!
//! A name without a port gets the transport's default port (5060; RFC 3263 §4.2, last step).
//! No SRV or NAPTR: getaddrinfo has neither, and the Rust DNS resolvers that do either need tokio
//! or are bare clients that would need their own reading of the system configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use onhold_core::{Server, Transport};
use tracing::debug;

use crate::signals::spawn_helper;

/// The transport's port when the URI names none (RFC 3261 §19.1.2; no TLS transport here).
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// How a name is looked up: blocking, on a worker thread.
pub type LookupFn = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system resolver (getaddrinfo).
pub fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// Bounds of the resolver.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The core gets "nothing found" for a lookup that takes longer.
    pub timeout: Duration,
    /// How long a found address is reused (getaddrinfo reports no TTL).
    pub ttl: Duration,
    /// How long "nothing found" is remembered, so a dead name is not asked for every request.
    pub negative_ttl: Duration,
    /// Names kept in the cache; the one expiring first makes room.
    pub cache_entries: usize,
    /// Lookups waiting for a worker; beyond it the answer is "nothing found" at once.
    pub queue: usize,
    /// Worker threads, started on the first lookup.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(4),
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            cache_entries: 256,
            queue: 64,
            workers: 2,
        }
    }
}

/// What the core asked for, with the host in lower case (names are case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Query {
    host: String,
    port: Option<u16>,
    transport: Transport,
}

/// An answer for `Server::resolved`: the host as the core spelled it, and the addresses found,
/// most preferred first (empty: nothing found in time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Transport,
    pub addrs: Vec<SocketAddr>,
}

struct Cached {
    addrs: Vec<SocketAddr>,
    expires: Instant,
}

/// The core's questions still waiting: when each must be answered, and the spellings asked.
struct Waiting {
    deadline: Instant,
    asked: Vec<String>,
}

type Found = (Query, io::Result<Vec<SocketAddr>>);

pub struct Resolver {
    limits: Limits,
    lookup: LookupFn,
    notify: Arc<dyn Fn() + Send + Sync>,
    /// Address families each transport has a listen socket for: found addresses of these come
    /// first (a UDP socket bound to an IPv4 address cannot send to an IPv6 one).
    families: Vec<(Transport, bool)>,
    cache: BTreeMap<Query, Cached>,
    waiting: BTreeMap<Query, Waiting>,
    /// Handed to a worker and not back yet (may outlive its `waiting` entry after a timeout).
    in_flight: BTreeSet<Query>,
    jobs: Option<mpsc::SyncSender<Query>>,
    found_tx: mpsc::Sender<Found>,
    found_rx: mpsc::Receiver<Found>,
}

impl Resolver {
    /// The system resolver with the default limits. `listen` are the bound listen addresses
    /// (their families are preferred); `notify` wakes the event loop when a lookup finishes.
    pub fn new(
        listen: &[(Transport, SocketAddr)],
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Resolver {
        Resolver::with(Limits::default(), Arc::new(system_lookup), listen, notify)
    }

    pub fn with(
        limits: Limits,
        lookup: LookupFn,
        listen: &[(Transport, SocketAddr)],
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Resolver {
        let (found_tx, found_rx) = mpsc::channel();
        Resolver {
            limits,
            lookup,
            notify: Arc::new(notify),
            families: listen.iter().map(|(t, a)| (*t, a.is_ipv4())).collect(),
            cache: BTreeMap::new(),
            waiting: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            jobs: None,
            found_tx,
            found_rx,
        }
    }

    /// The core asks for `host`: `Some` is the answer now (an IP literal, a cached name, or
    /// "nothing found" when no worker can take it); `None` means it comes from [`poll`].
    ///
    /// [`poll`]: Resolver::poll
    pub fn ask(
        &mut self,
        now: Instant,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Option<Vec<SocketAddr>> {
        let port_or_default = port.unwrap_or(default_port(transport));
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Some(vec![SocketAddr::new(ip, port_or_default)]);
        }
        let query = Query {
            host: host.to_ascii_lowercase(),
            port,
            transport,
        };
        match self.cache.get(&query) {
            Some(c) if c.expires > now => return Some(c.addrs.clone()),
            Some(_) => {
                self.cache.remove(&query);
            }
            None => {}
        }
        if let Some(w) = self.waiting.get_mut(&query) {
            w.asked.push(host.to_string());
            return None;
        }
        if !self.in_flight.contains(&query) && !self.start(query.clone(), port_or_default) {
            return Some(Vec::new());
        }
        self.waiting.insert(
            query,
            Waiting {
                deadline: now + self.limits.timeout,
                asked: vec![host.to_string()],
            },
        );
        None
    }

    /// Answer the core's `Command::Resolve` now if the answer is known, else once it is (from
    /// [`deliver`](Resolver::deliver)).
    pub fn command(
        &mut self,
        server: &mut Server,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) {
        if let Some(addrs) = self.ask(Instant::now(), host, port, transport) {
            server.resolved(Instant::now(), host, port, transport, &addrs);
        }
    }

    /// Give the core every answer ready now (see [`poll`](Resolver::poll)).
    pub fn deliver(&mut self, server: &mut Server) {
        let now = Instant::now();
        for a in self.poll(now) {
            server.resolved(now, &a.host, a.port, a.transport, &a.addrs);
        }
    }

    /// Hand a lookup to the workers (starting them the first time). `false`: none can take it.
    fn start(&mut self, query: Query, port: u16) -> bool {
        if self.jobs.is_none() {
            self.jobs = self.spawn_workers();
        }
        let Some(jobs) = &self.jobs else {
            return false;
        };
        let host = query.host.clone();
        match jobs.try_send(query.clone()) {
            Ok(()) => {
                self.in_flight.insert(query);
                true
            }
            Err(e) => {
                debug!(host, port, "resolver queue: {e}");
                false
            }
        }
    }

    fn spawn_workers(&self) -> Option<mpsc::SyncSender<Query>> {
        let (tx, rx) = mpsc::sync_channel::<Query>(self.limits.queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..self.limits.workers.max(1) {
            let rx = Arc::clone(&rx);
            let found = self.found_tx.clone();
            let lookup = Arc::clone(&self.lookup);
            let notify = Arc::clone(&self.notify);
            let worker = move || loop {
                // The lock is held only while waiting for a job, never during a lookup.
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(query) = job else {
                    return; // the resolver is gone
                };
                let port = query.port.unwrap_or(default_port(query.transport));
                let result = lookup(&query.host, port);
                if found.send((query, result)).is_err() {
                    return;
                }
                notify();
            };
            match spawn_helper(&format!("onhold-resolve-{i}"), worker) {
                Ok(_) => started += 1,
                Err(e) => debug!("cannot start a resolver thread: {e}"),
            }
        }
        (started > 0).then_some(tx)
    }

    /// The answers ready at `now`: lookups that finished, and "nothing found" for those past
    /// their deadline. Results that come after their deadline still fill the cache.
    pub fn poll(&mut self, now: Instant) -> Vec<Answer> {
        let mut answers = Vec::new();
        while let Ok((query, result)) = self.found_rx.try_recv() {
            self.in_flight.remove(&query);
            let addrs = match result {
                Ok(addrs) => self.order(query.transport, addrs),
                Err(e) => {
                    debug!(host = query.host, "lookup failed: {e}");
                    Vec::new()
                }
            };
            let ttl = if addrs.is_empty() {
                self.limits.negative_ttl
            } else {
                self.limits.ttl
            };
            if let Some(w) = self.waiting.remove(&query) {
                answer(&mut answers, &query, w, &addrs);
            }
            self.remember(now, query, addrs, ttl);
        }
        let late: Vec<Query> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(q, _)| q.clone())
            .collect();
        for query in late {
            if let Some(w) = self.waiting.remove(&query) {
                debug!(host = query.host, "lookup timed out");
                answer(&mut answers, &query, w, &[]);
            }
        }
        answers
    }

    /// When the oldest unanswered question times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.deadline).min()
    }

    /// Deduplicated (getaddrinfo may list an address once per socket type), families we listen
    /// on for this transport first, otherwise in the resolver's order (RFC 6724).
    fn order(&self, transport: Transport, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !unique.contains(&a) {
                unique.push(a);
            }
        }
        let usable = |a: &SocketAddr| self.families.contains(&(transport, a.is_ipv4()));
        let (mut first, rest): (Vec<_>, Vec<_>) = unique.into_iter().partition(usable);
        first.extend(rest);
        first
    }

    fn remember(&mut self, now: Instant, query: Query, addrs: Vec<SocketAddr>, ttl: Duration) {
        if self.limits.cache_entries == 0 {
            return;
        }
        if self.cache.len() >= self.limits.cache_entries && !self.cache.contains_key(&query) {
            self.cache.retain(|_, c| c.expires > now);
        }
        while self.cache.len() >= self.limits.cache_entries && !self.cache.contains_key(&query) {
            let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, c)| c.expires)
                .map(|(q, _)| q.clone())
            else {
                break;
            };
            self.cache.remove(&oldest);
        }
        self.cache.insert(
            query,
            Cached {
                addrs,
                expires: now + ttl,
            },
        );
    }

    /// Names in the cache (for tests and diagnostics).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

fn answer(out: &mut Vec<Answer>, query: &Query, waiting: Waiting, addrs: &[SocketAddr]) {
    for host in waiting.asked {
        out.push(Answer {
            host,
            port: query.port,
            transport: query.transport,
            addrs: addrs.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn v4_listener() -> Vec<(Transport, SocketAddr)> {
        vec![(Transport::Udp, "0.0.0.0:5060".parse().unwrap())]
    }

    /// Poll until `n` answers came (bounded: 5 s).
    fn wait_answers(r: &mut Resolver, n: usize) -> Vec<Answer> {
        let start = Instant::now();
        let mut got = Vec::new();
        while got.len() < n && start.elapsed() < Duration::from_secs(5) {
            got.extend(r.poll(Instant::now()));
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn ip_literals_are_answered_at_once_with_the_default_port() {
        let mut r = Resolver::new(&v4_listener(), || {});
        let now = Instant::now();
        assert_eq!(
            r.ask(now, "192.0.2.1", None, Transport::Udp),
            Some(vec!["192.0.2.1:5060".parse().unwrap()])
        );
        assert_eq!(
            r.ask(now, "[::1]", Some(5070), Transport::Tcp),
            Some(vec!["[::1]:5070".parse().unwrap()])
        );
    }

    #[test]
    fn localhost_resolves_through_the_system_resolver_and_is_cached() {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        let mut r = Resolver::new(&v4_listener(), move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            r.ask(Instant::now(), "LocalHost", None, Transport::Udp),
            None
        );
        assert!(r.next_deadline().is_some());
        let got = wait_answers(&mut r, 1);
        assert_eq!(got.len(), 1, "one answer for one question");
        assert_eq!(got[0].host, "LocalHost", "answered as the core spelled it");
        let first = got[0].addrs[0];
        assert!(
            first.ip().is_loopback() && first.is_ipv4() && first.port() == 5060,
            "{got:?}"
        );
        assert!(woken.load(Ordering::SeqCst) >= 1, "the loop was notified");
        assert_eq!(r.next_deadline(), None);
        let again = r.ask(Instant::now(), "localhost", None, Transport::Udp);
        assert_eq!(again.as_deref(), Some(&got[0].addrs[..]), "from the cache");
    }

    #[test]
    fn a_slow_lookup_is_answered_empty_at_its_deadline_and_later_fills_the_cache() {
        let limits = Limits {
            timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let slow: LookupFn = Arc::new(move |_, port| {
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            Ok(vec![SocketAddr::from(([127, 0, 0, 9], port))])
        });
        let mut r = Resolver::with(limits, slow, &v4_listener(), || {});
        let t0 = Instant::now();
        assert_eq!(r.ask(t0, "slow.test", Some(5080), Transport::Udp), None);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_millis(50)));
        assert!(r.poll(t0).is_empty(), "not yet due");
        let late = r.poll(t0 + Duration::from_millis(50));
        assert_eq!(
            late,
            vec![Answer {
                host: "slow.test".into(),
                port: Some(5080),
                transport: Transport::Udp,
                addrs: vec![],
            }]
        );
        // Asking again while the first lookup still runs starts no second one: its deadline
        // passes too, and the one lookup's result then fills the cache.
        assert_eq!(
            r.ask(Instant::now(), "slow.test", Some(5080), Transport::Udp),
            None
        );
        let start = Instant::now();
        while r.cached() == 0 && start.elapsed() < Duration::from_secs(5) {
            r.poll(Instant::now());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            r.ask(Instant::now(), "slow.test", Some(5080), Transport::Udp),
            Some(vec!["127.0.0.9:5080".parse().unwrap()])
        );
    }

    #[test]
    fn the_cache_is_bounded_and_entries_expire() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let counting: LookupFn = Arc::new(move |_, port| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        let limits = Limits {
            cache_entries: 3,
            ttl: Duration::from_secs(60),
            ..Limits::default()
        };
        let mut r = Resolver::with(limits, counting, &v4_listener(), || {});
        for i in 0..5u16 {
            assert_eq!(
                r.ask(Instant::now(), "h.test", Some(i), Transport::Udp),
                None
            );
            wait_answers(&mut r, 1);
        }
        assert_eq!(r.cached(), 3, "bounded");
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        // The newest is still cached; the oldest made room.
        assert!(r
            .ask(Instant::now(), "h.test", Some(4), Transport::Udp)
            .is_some());
        assert_eq!(
            r.ask(Instant::now(), "h.test", Some(0), Transport::Udp),
            None
        );
        wait_answers(&mut r, 1);
        // Past the TTL the name is looked up again.
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(r.ask(later, "h.test", Some(4), Transport::Udp), None);
        assert_eq!(wait_answers(&mut r, 1).len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 7);
    }

    #[test]
    fn failures_are_remembered_briefly_and_a_full_queue_answers_at_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let failing: LookupFn = Arc::new(move |_, _| {
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            Err(io::Error::new(io::ErrorKind::NotFound, "no such name"))
        });
        let limits = Limits {
            queue: 1,
            workers: 1,
            ..Limits::default()
        };
        let mut r = Resolver::with(limits, failing, &v4_listener(), || {});
        let now = Instant::now();
        assert_eq!(r.ask(now, "a.test", None, Transport::Udp), None);
        // The worker holds a.test; b.test waits in the queue; c.test does not fit.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(r.ask(now, "b.test", None, Transport::Udp), None);
        assert_eq!(r.ask(now, "c.test", None, Transport::Udp), Some(vec![]));
        let got = wait_answers(&mut r, 2);
        assert!(got.iter().all(|a| a.addrs.is_empty()), "{got:?}");
        let n = calls.load(Ordering::SeqCst);
        assert_eq!(
            r.ask(Instant::now(), "a.test", None, Transport::Udp),
            Some(vec![])
        );
        assert_eq!(calls.load(Ordering::SeqCst), n, "the failure was cached");
        let later = Instant::now() + Duration::from_secs(6);
        assert_eq!(r.ask(later, "a.test", None, Transport::Udp), None);
    }

    #[test]
    fn addresses_of_a_family_we_listen_on_come_first_without_duplicates() {
        let v6: SocketAddr = "[::1]:5060".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let r = Resolver::new(&v4_listener(), || {});
        assert_eq!(r.order(Transport::Udp, vec![v6, v4, v6, v4]), vec![v4, v6]);
        let r6 = Resolver::new(&[(Transport::Tcp, "[::]:5060".parse().unwrap())], || {});
        assert_eq!(r6.order(Transport::Tcp, vec![v4, v6]), vec![v6, v4]);
        assert_eq!(
            r6.order(Transport::Udp, vec![v4, v6]),
            vec![v4, v6],
            "no UDP listener: the resolver's order"
        );
    }
}
