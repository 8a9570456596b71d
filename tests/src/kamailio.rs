//! Debian's Kamailio as a record-routing stateful proxy in front of one server, on loopback.
//!
//! The configuration is written per proxy into a scratch directory: the proxy listens on two
//! ports of one transport. Callers send to the *front* port, and initial INVITEs are relayed
//! from it to the server with `Session-Expires: 90` added (RFC 4028 §8: a proxy may ask for a
//! session timer the caller did not) and a Record-Route that names the proxy by host name only,
//! `<sip:localhost:RR;lr>`, where RR is the second port. The server learns that port from
//! nowhere else: its in-dialog requests reach the proxy there only if it resolved `localhost`
//! (its fallback for an unresolved name is where the INVITE came from: the front socket over
//! UDP, over TCP the connection the proxy opened from it). The proxy stamps what it relays
//! within a dialog with `X-Proxy-Received: PROTO:PORT`, the port it came in on, so the far end
//! can tell.
//!
//! Kamailio runs in the foreground (`-DD -E`), in its own process group with its own pid file
//! and runtime directory; it is stopped on drop (SIGTERM to its main process, which stops its
//! workers; if it has not exited 5 s later, SIGKILL to the whole group). A test that needs it
//! and cannot find it fails, saying what to install (Debian package `kamailio`).

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{ports, TempDir, Transport};

/// How long Kamailio may take from exec to answering OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a dropped proxy gets after SIGTERM before its group is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// The Session-Expires the proxy adds: the server's Min-SE, so never refused with 422.
pub const SESSION_EXPIRES: u64 = 90;
/// The header the proxy adds to every request it relays inside a dialog.
pub const RECEIVED_HEADER: &str = "X-Proxy-Received";

/// A Kamailio process relaying to one server.
pub struct Proxy {
    pub transport: Transport,
    /// Where callers send (and where the server's initial INVITEs come from).
    pub front: SocketAddr,
    /// The port the Record-Route names as `localhost:PORT`.
    pub rr_port: u16,
    child: Child,
    dir: TempDir,
}

/// Kamailio's binary and module directory, found once: `kamailio` on PATH or in /usr/sbin
/// (Debian's place, often not on a non-root PATH), and the module path it was built with (the
/// default `-L` its `-h` prints; `/usr/lib/<multiarch>/kamailio/modules` on Debian).
fn installation() -> &'static Result<(PathBuf, PathBuf), String> {
    static FOUND: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let bin = on_path
            .into_iter()
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
            .map(|d: PathBuf| d.join("kamailio"))
            .find(|p| p.is_file())
            .ok_or("kamailio not found on PATH nor in /usr/sbin")?;
        let help = Command::new(&bin)
            .arg("-h")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&help.stdout).into_owned()
            + &String::from_utf8_lossy(&help.stderr);
        let modules = text
            .lines()
            .find(|l| l.trim_start().starts_with("-L "))
            .and_then(|l| l.split("(default: ").nth(1))
            .map(|rest| PathBuf::from(rest.trim_end().trim_end_matches(')')))
            .ok_or_else(|| format!("{} -h names no module path", bin.display()))?;
        for m in MODULES {
            if !modules.join(format!("{m}.so")).is_file() {
                return Err(format!("no {m}.so in {}", modules.display()));
            }
        }
        Ok((bin, modules))
    })
}

/// The modules the configuration loads.
const MODULES: [&str; 8] = [
    "tm", "sl", "rr", "maxfwd", "textops", "siputils", "pv", "xlog",
];

/// Fails the test, saying what to install, unless Kamailio and its modules are there.
pub fn require_kamailio() {
    if let Err(e) = installation() {
        panic!(
            "{e}: install Debian's kamailio package (apt-get install kamailio); \
             the proxy end-to-end tests need it"
        );
    }
}

impl Proxy {
    /// Starts a proxy on `transport` relaying initial requests to `server` (an address of the
    /// same transport) and waits until it answers OPTIONS. Ports taken between choosing and
    /// binding are retried with others.
    pub fn start(transport: Transport, server: SocketAddr) -> Proxy {
        require_kamailio();
        let mut last = String::new();
        for _ in 0..5 {
            match Proxy::try_start(transport, server) {
                Ok(p) => return p,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("kamailio did not start: {e}"),
            }
        }
        panic!("kamailio did not start after 5 tries: {last}");
    }

    fn try_start(transport: Transport, server: SocketAddr) -> Result<Proxy, String> {
        let Ok((_, modules)) = installation() else {
            unreachable!("require_kamailio checked it")
        };
        let free = || match transport {
            Transport::Udp => ports::free_udp_port(),
            Transport::Tcp => ports::free_tcp_port(),
        };
        let (front_port, rr_port) = (free(), free());
        if front_port == rr_port {
            return Err("the same port twice (in use)".into());
        }
        let front: SocketAddr = ([127, 0, 0, 1], front_port).into();
        let text = config(transport, front, rr_port, server, modules);
        Proxy::launch(transport, front, rr_port, &text)
    }

    /// Runs Kamailio with the configuration `text` (which listens on `front` and answers
    /// OPTIONS with `200 onhold-tests proxy up`) and waits until it answers.
    fn launch(
        transport: Transport,
        front: SocketAddr,
        rr_port: u16,
        text: &str,
    ) -> Result<Proxy, String> {
        let Ok((bin, _)) = installation() else {
            unreachable!("require_kamailio checked it")
        };
        let dir = TempDir::new("kamailio");
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, text).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(["-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-f")
            .arg(&cfg)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .current_dir(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout")).map_err(|e| e.to_string())?)
            .stderr(File::create(dir.join("stderr")).map_err(|e| e.to_string())?);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut proxy = Proxy {
            transport,
            front,
            rr_port,
            child,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(st) = proxy.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "exited with {st} before answering: {}",
                    proxy.log()
                ));
            }
            let answer = match transport {
                Transport::Udp => {
                    crate::server::request(front, "OPTIONS", Duration::from_millis(200))
                }
                Transport::Tcp => crate::tcp::request(front, "OPTIONS", Duration::from_millis(500)),
            };
            match answer {
                Some(a) if a.starts_with("SIP/2.0 200 onhold-tests proxy") => return Ok(proxy),
                Some(a) => return Err(format!("OPTIONS got {:?}", a.lines().next())),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Err(format!(
            "no answer to OPTIONS within {READY_TIMEOUT:?}: {}",
            proxy.log()
        ))
    }

    /// Everything Kamailio logged so far (a line per request it saw, and its warnings).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Where the configuration is (kept when a test fails).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The value of [`RECEIVED_HEADER`] on a request that came in on the Record-Route's port.
    pub fn received_on_rr(&self) -> String {
        format!("{}:{}", self.transport.name(), self.rr_port)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops Kamailio and starts it again on the same address with the same configuration
    /// (a registrar forgets its bindings: usrloc is in memory). The log is the new process's.
    pub fn restart(&mut self) {
        let text = std::fs::read_to_string(self.dir.join("kamailio.cfg")).expect("config");
        self.stop();
        let mut tries = 0;
        let new = loop {
            // Its UDP port is free once it exited; a TCP one may linger a moment.
            match Proxy::launch(self.transport, self.front, self.rr_port, &text) {
                Ok(p) => break p,
                Err(e) if tries < 10 && e.contains("in use") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("kamailio did not start again: {e}"),
            }
        };
        *self = new;
    }

    /// SIGTERM, and SIGKILL to its process group after a grace.
    fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, not yet reaped (we hold it).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // Its main process stops its workers and waits for them before it exits.
        let stopped = crate::wait_for(TERM_GRACE, || self.child.try_wait().ok().flatten());
        if stopped.is_none() {
            // SAFETY: kill(2) on the process group our child leads (process_group(0));
            // the child is not reaped yet, so the group id is still its own.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- kamailio ({}) log ---\n{}--- end ---",
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// The proxy's kamailio.cfg.
fn config(
    transport: Transport,
    front: SocketAddr,
    rr_port: u16,
    server: SocketAddr,
    modules: &Path,
) -> String {
    let proto = transport.name();
    let rr_params = match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    let loads: String = MODULES
        .iter()
        .map(|m| format!("loadmodule \"{m}.so\"\n"))
        .collect();
    format!(
        r#"#!KAMAILIO
# Written by onhold-tests (tests/src/kamailio.rs): a record-routing stateful proxy in front of
# one onhold server at {server}.
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
listen={proto}:{front}
listen={proto}:127.0.0.1:{rr_port} advertise localhost:{rr_port}
alias="localhost:{rr_port}"

mpath="{modules}"
{loads}
request_route {{
    xlog("L_INFO", "$rm $ru from $si:$sp on $pr:$Rp\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && !has_totag()) {{
        sl_send_reply("200", "onhold-tests proxy up");
        exit;
    }}
    if (has_totag()) {{
        # Inside a dialog: the Route names us (localhost:{rr_port}); on to the Request-URI.
        if (loose_route()) {{
            append_hf("{RECEIVED_HEADER}: $pr:$Rp\r\n");
            if (!t_relay()) {{
                sl_reply_error();
            }}
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route_preset("localhost:{rr_port}{rr_params}");
        if (!is_present_hf("Session-Expires")) {{
            append_hf("Session-Expires: {SESSION_EXPIRES}\r\n");
        }}
    }}
    $du = "sip:{server};transport={proto}";
    force_send_socket({proto}:{front});
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"#,
        modules = modules.display(),
    )
}

/// The modules the registrar's configuration loads besides those in [`MODULES`].
const REGISTRAR_MODULES: [&str; 3] = ["auth", "usrloc", "registrar"];

/// The line the registrar logs before it relays an INVITE to a registered Contact: `INVITE to
/// <Contact URI>`.
pub const TO_CONTACT: &str = "INVITE to";

/// The line the registrar logs for each REGISTER it saves: `REGISTERED <To URI> contact
/// <Contact> expires <Expires>`.
pub const REGISTERED: &str = "REGISTERED";

impl Proxy {
    /// Starts Kamailio as a registrar on UDP (usrloc in memory) for one account, `user` with
    /// `password`, in the realm of the To domain: digest `algorithm` (`MD5` or `SHA-256`) with
    /// `qop=auth`. Every REGISTER it saves is logged as [`REGISTERED`]; an INVITE to the account
    /// goes to the Contact it registered ([`TO_CONTACT`]), the rest of the call straight on.
    pub fn registrar(user: &str, password: &str, algorithm: &str) -> Proxy {
        Proxy::registrar_over(Transport::Udp, user, password, algorithm)
    }

    /// [`Proxy::registrar`] granting at most `max_expires` seconds to a binding.
    pub fn registrar_capped(
        user: &str,
        password: &str,
        algorithm: &str,
        max_expires: u32,
    ) -> Proxy {
        Proxy::start_registrar(Transport::Udp, user, password, algorithm, max_expires)
    }

    /// [`Proxy::registrar`] taking SIP over `transport`.
    pub fn registrar_over(
        transport: Transport,
        user: &str,
        password: &str,
        algorithm: &str,
    ) -> Proxy {
        Proxy::start_registrar(transport, user, password, algorithm, 3600)
    }

    fn start_registrar(
        transport: Transport,
        user: &str,
        password: &str,
        algorithm: &str,
        max_expires: u32,
    ) -> Proxy {
        require_kamailio();
        let Ok((_, modules)) = installation() else {
            unreachable!("require_kamailio checked it")
        };
        for m in REGISTRAR_MODULES {
            assert!(
                modules.join(format!("{m}.so")).is_file(),
                "no {m}.so in {}: install Debian's kamailio package",
                modules.display()
            );
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = match transport {
                Transport::Udp => ports::free_udp_port(),
                Transport::Tcp => ports::free_tcp_port(),
            };
            let front: SocketAddr = ([127, 0, 0, 1], port).into();
            let text = registrar_config(
                transport,
                front,
                user,
                password,
                algorithm,
                max_expires,
                modules,
            );
            match Proxy::launch(transport, front, 0, &text) {
                Ok(p) => return p,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("kamailio did not start: {e}"),
            }
        }
        panic!("kamailio did not start after 5 tries: {last}");
    }
}

/// The registrar's kamailio.cfg.
fn registrar_config(
    transport: Transport,
    front: SocketAddr,
    user: &str,
    password: &str,
    algorithm: &str,
    max_expires: u32,
    modules: &Path,
) -> String {
    format!(
        r#"#!KAMAILIO
# Written by onhold-tests (tests/src/kamailio.rs): a registrar for one account, {user},
# granting at most {max_expires} s to a binding.
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
listen={proto}:{front}

mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("auth", "algorithm", "{algorithm}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 1)
modparam("registrar", "max_expires", {max_expires})

request_route {{
    xlog("L_INFO", "$rm $ru from $si:$sp\n");
    if (is_method("OPTIONS")) {{
        sl_send_reply("200", "onhold-tests proxy up");
        exit;
    }}
    if (has_totag()) {{
        # ACK and BYE of a call: on to its Request-URI, the Contact of the 200.
        t_relay();
        exit;
    }}
    if (is_method("INVITE")) {{
        # A call to the account goes to the Contact it registered.
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Registered");
            exit;
        }}
        xlog("L_INFO", "{TO_CONTACT} $ru\n");
        t_relay();
        exit;
    }}
    if (!is_method("REGISTER")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($au != "{user}" || !pv_www_authenticate("$td", "{password}", "0")) {{
        www_challenge("$td", "1");
        exit;
    }}
    if (!save("location")) {{
        sl_reply_error();
        exit;
    }}
    xlog("L_INFO", "{REGISTERED} $tu contact $ct expires $hdr(Expires) over $pr\n");
}}
"#,
        modules = modules.display(),
        proto = match transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        },
    )
}
