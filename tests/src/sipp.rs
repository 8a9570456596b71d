//! Running SIPp scenarios from `tests/sipp/` and reading back the messages they exchanged.
//!
//! SIPp is Debian's `sip-tester`. A test that needs it and cannot find it fails (never skips):
//! an end-to-end suite that silently runs nothing proves nothing.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onhold_probe::msg::Message;

use crate::{ports, workspace_root, TempDir};

/// A SIPp run to make: scenario file, target and `-set` variables.
#[derive(Clone, Debug)]
pub struct Sipp {
    scenario: String,
    target: SocketAddr,
    vars: Vec<(String, String)>,
    calls: u32,
    limit: u32,
    rate: Option<u32>,
    timeout: Duration,
    /// SIPp's `-t`: `u1` (UDP, one socket) or `t1` (TCP, one connection).
    transport: &'static str,
    port: Option<u16>,
}

/// What a finished SIPp run left behind.
#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    /// Every message sent and received, in order (`-trace_msg`).
    pub messages: Vec<SipMessage>,
    /// SIPp's own error log (`-trace_err`) and screen output.
    pub errors: String,
    pub screen: String,
}

impl SippRun {
    /// Panics with SIPp's errors and the message trace unless every call succeeded and SIPp
    /// logged no error (an unexpected or unparsable datagram, e.g. RTP sent to the SIP
    /// socket, lands in its error log even when the scenario completes).
    pub fn assert_success(&self) -> &SippRun {
        assert!(
            self.status.success() && self.errors.trim().is_empty(),
            "sipp failed ({}):\n--- errors ---\n{}\n--- messages ---\n{}\n--- screen (tail) ---\n{}",
            self.status,
            self.errors,
            self.transcript(),
            tail(&self.screen, 40)
        );
        self
    }

    /// The exchange as readable lines: `→ INVITE (21 INVITE)` / `← 200 OK (21 INVITE)`.
    pub fn transcript(&self) -> String {
        self.messages
            .iter()
            .map(|m| m.summary())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first sent request of `method` (`"BYE"`), to time things against.
    pub fn sent(&self, method: &str) -> Option<&SipMessage> {
        self.messages
            .iter()
            .find(|m| m.sent && m.method() == Some(method))
    }

    /// The first final (2xx–6xx) response received to `cseq` (`"22 INVITE"`).
    pub fn response_to(&self, cseq: &str) -> Option<&SipMessage> {
        self.messages
            .iter()
            .find(|m| !m.sent && m.status() >= Some(200) && m.header("CSeq") == Some(cseq))
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A SIPp process running in the background.
pub struct SippChild {
    child: Child,
    dir: TempDir,
    timeout: Duration,
}

impl Sipp {
    /// `scenario` is a file name in `tests/sipp/`.
    pub fn new(scenario: &str, target: SocketAddr) -> Sipp {
        Sipp {
            scenario: scenario.to_owned(),
            target,
            vars: Vec::new(),
            calls: 1,
            limit: 1,
            rate: None,
            timeout: Duration::from_secs(30),
            transport: "u1",
            port: None,
        }
    }

    /// `-p`: the local port (a callee the server calls must be found there); else a free one.
    pub fn port(mut self, port: u16) -> Sipp {
        self.port = Some(port);
        self
    }

    /// A `-set NAME VALUE` variable, `[$NAME]` in the scenario.
    pub fn set(mut self, name: &str, value: impl ToString) -> Sipp {
        self.vars.push((name.to_owned(), value.to_string()));
        self
    }

    /// `-m calls -l limit`: total calls and how many at once.
    pub fn calls(mut self, calls: u32, limit: u32) -> Sipp {
        self.calls = calls;
        self.limit = limit;
        self
    }

    /// `-r`: new calls per second.
    pub fn rate(mut self, per_second: u32) -> Sipp {
        self.rate = Some(per_second);
        self
    }

    /// SIP over one TCP connection instead of UDP.
    pub fn tcp(mut self) -> Sipp {
        self.transport = "t1";
        self
    }

    /// SIPp's global `-timeout` (a run that exceeds it fails).
    pub fn timeout(mut self, t: Duration) -> Sipp {
        self.timeout = t;
        self
    }

    pub fn scenario_path(&self) -> PathBuf {
        workspace_root().join("tests/sipp").join(&self.scenario)
    }

    /// Starts SIPp in the background.
    pub fn spawn(&self) -> SippChild {
        require_sipp();
        let dir = TempDir::new("sipp");
        let scenario = self.scenario_path();
        assert!(scenario.is_file(), "no scenario {}", scenario.display());
        let mut cmd = Command::new("sipp");
        cmd.arg(self.target.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-m", &self.calls.to_string(), "-l", &self.limit.to_string()])
            .args(["-t", self.transport])
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &self.port.unwrap_or_else(ports::free_udp_port).to_string(),
            ])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .args(["-timeout_error", "-nostdin", "-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(dir.join("messages.log"))
            .arg("-error_file")
            .arg(dir.join("errors.log"));
        if let Some(r) = self.rate {
            cmd.args(["-r", &r.to_string()]);
        }
        for (k, v) in &self.vars {
            cmd.args(["-set", k, v]);
        }
        // SIPp writes local times in its logs; UTC makes them comparable with SystemTime.
        cmd.env("TZ", "UTC")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("screen")).expect("screen file"))
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("spawn sipp");
        SippChild {
            child,
            dir,
            timeout: self.timeout,
        }
    }

    /// Runs SIPp to completion (bounded by its `-timeout` plus a margin).
    pub fn run(&self) -> SippRun {
        self.spawn().wait()
    }
}

impl SippChild {
    /// Waits for SIPp to finish (bounded: its own timeout plus 10 s, then it is killed).
    pub fn wait(mut self) -> SippRun {
        let bound = self.timeout + Duration::from_secs(10);
        let status = match crate::wait_for(bound, || self.child.try_wait().ok().flatten()) {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("sipp still running {bound:?} after start; killed");
            }
        };
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        SippRun {
            status,
            messages: parse_message_log(&read("messages.log")),
            errors: read("errors.log"),
            screen: read("screen"),
        }
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fails the test, saying what to install, when `sipp` is not on PATH.
pub fn require_sipp() {
    match Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "sipp not found on PATH: install Debian's sip-tester package \
             (apt-get install sip-tester); these end-to-end tests need it"
        ),
        Err(e) => panic!("cannot run sipp: {e}"),
    }
}

/// One SIP message from SIPp's `-trace_msg` log.
#[derive(Clone, Debug)]
pub struct SipMessage {
    /// Sent by SIPp (else received from the server).
    pub sent: bool,
    pub wall: SystemTime,
    pub text: String,
    /// `text` read as SIP.
    pub msg: Message<'static>,
}

impl SipMessage {
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    pub fn method(&self) -> Option<&str> {
        self.msg.method()
    }

    pub fn status(&self) -> Option<u16> {
        self.msg.code()
    }

    /// The first header of that name (case-insensitive, compact forms understood), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.msg.header(name)
    }

    /// Header names in order (`Via, From, To, …`): the shape of a message without its values.
    pub fn header_names(&self) -> Vec<&str> {
        self.msg.header_names()
    }

    pub fn body(&self) -> &str {
        std::str::from_utf8(&self.msg.body).unwrap_or("")
    }

    /// The SDP direction attribute, if the body has one.
    pub fn sdp_direction(&self) -> Option<&str> {
        self.body().lines().map(str::trim).find_map(|l| {
            let a = l.strip_prefix("a=")?;
            ["sendrecv", "sendonly", "recvonly", "inactive"]
                .contains(&a)
                .then_some(a)
        })
    }

    /// The message with everything a run chooses afresh removed: start line (Request-URI
    /// host/port dropped), CSeq, and the SDP's media line (port dropped), rtpmaps and direction.
    /// Tags, branches, Call-IDs, ports and times differ between runs; this must not.
    pub fn summary(&self) -> String {
        let arrow = if self.sent { "→" } else { "←" };
        let head = match self.method() {
            Some(m) => m.to_owned(),
            None => self.start_line().trim_start_matches("SIP/2.0 ").to_owned(),
        };
        let mut s = format!("{arrow} {head} ({})", self.header("CSeq").unwrap_or("?"));
        let mut sdp = Vec::new();
        for l in self.body().lines().map(str::trim) {
            if let Some(m) = l.strip_prefix("m=") {
                let mut f = m.split(' ');
                let media = f.next().unwrap_or("");
                let _port = f.next();
                let rest: Vec<&str> = f.collect();
                sdp.push(format!("m={media} {}", rest.join(" ")));
            } else if l.starts_with("a=rtpmap")
                || l.starts_with("a=ptime")
                || self.sdp_direction().is_some_and(|d| l == format!("a={d}"))
            {
                sdp.push(l.to_owned());
            }
        }
        if !sdp.is_empty() {
            s.push_str(" sdp[");
            s.push_str(&sdp.join(", "));
            s.push(']');
        }
        s
    }
}

/// Splits SIPp's message log: each message follows a line of dashes and a UTC time, then
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, then a blank line.
pub fn parse_message_log(log: &str) -> Vec<SipMessage> {
    let mut out = Vec::new();
    let mut blocks = log.split("-----------------------------------------------");
    blocks.next(); // before the first separator
    for block in blocks {
        let mut lines = block.lines();
        let Some(wall) = lines.next().and_then(parse_utc) else {
            continue;
        };
        let Some(kind) = lines.next() else { continue };
        let sent = kind.contains("message sent");
        if !sent && !kind.contains("message received") {
            continue;
        }
        let text: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let text = text.join("\r\n").trim_end().to_owned() + "\r\n";
        let Some(msg) = Message::parse(text.as_bytes()).map(Message::into_owned) else {
            continue;
        };
        out.push(SipMessage {
            sent,
            wall,
            text,
            msg,
        });
    }
    out
}

/// `" 2026-11-23 10:53:02.529990"` (UTC) as a `SystemTime`.
fn parse_utc(s: &str) -> Option<SystemTime> {
    let mut f = s.split_whitespace();
    let date: Vec<i64> = f
        .next()?
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = f.next()?.split_once('.')?;
    let hms: Vec<u64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if date.len() != 3 || hms.len() != 3 {
        return None;
    }
    let days = days_from_civil(date[0], date[1], date[2]);
    let secs = u64::try_from(days).ok()? * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let micros: u64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic: 400-year cycles
/// of 146 097 days, years starting in March so the leap day is last).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_parse() {
        let t = parse_utc(" 1970-01-02 00:00:01.5").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
        let t = parse_utc(" 2026-11-23 10:53:02.529990").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        // 2026-11-23 is day 20 780 since the epoch (SIPp itself logs 1795431182 for that second).
        assert_eq!(secs, 20_780 * 86_400 + 10 * 3600 + 53 * 60 + 2);
    }

    #[test]
    fn message_log_splits_and_summarises() {
        let log = "----------------------------------------------- 2026-11-23 10:53:02.529990\n\
UDP message sent (10 bytes):\n\nINVITE sip:123@127.0.0.1:5 SIP/2.0\nCSeq: 21 INVITE\nContent-Length: 43\n\nv=0\nm=audio 4000 RTP/AVP 0 8\na=sendrecv\n\n\
----------------------------------------------- 2026-11-23 10:53:02.532051\n\
UDP message received [5] bytes :\n\nSIP/2.0 100 Trying\nCSeq: 21 INVITE\nContent-Length: 0\n\n\n";
        let m = parse_message_log(log);
        assert_eq!(m.len(), 2);
        assert!(m[0].sent && !m[1].sent);
        assert_eq!(
            m[0].summary(),
            "→ INVITE (21 INVITE) sdp[m=audio RTP/AVP 0 8, a=sendrecv]"
        );
        assert_eq!(m[1].summary(), "← 100 Trying (21 INVITE)");
        assert_eq!(m[1].status(), Some(100));
        assert_eq!(m[0].sdp_direction(), Some("sendrecv"));
    }
}
