//! `onhold ctl`: a small client for the control API, so nobody needs `curl`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

/// Talk to a running server's control API.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The control API's address. [env: ONHOLD_CONTROL_URL]
    #[arg(
        long,
        env = "ONHOLD_CONTROL_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The bearer token, when the server has one. Prefer the environment variable: a flag
    /// shows in `ps`. [env: ONHOLD_CONTROL_TOKEN]
    #[arg(long, env = "ONHOLD_CONTROL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Health: ok, degraded (with reasons) or draining.
    Health,
    /// The Prometheus metrics text.
    Metrics,
    /// The calls up now, one line each.
    Calls,
    /// One call in full (JSON).
    Show { id: String },
    /// Place a call that plays music (a class or a file) to URI; prints the new call's id.
    Call {
        /// The callee, e.g. sip:200@pbx.example.com (;transport=tcp for TCP).
        uri: String,
        #[arg(long, conflicts_with = "file")]
        class: Option<String>,
        #[arg(long)]
        file: Option<String>,
        /// Hang up this long after the answer (e.g. 30s, 5m).
        #[arg(long)]
        max_duration: Option<String>,
        /// Our From: a user at our address, or a whole sip: URI.
        #[arg(long)]
        from: Option<String>,
    },
    /// Hang up a call (the caller gets BYE).
    Hangup { id: String },
    /// Play a music class or a file to one call, from now on.
    Source {
        id: String,
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        class: Option<String>,
        #[arg(long)]
        file: Option<String>,
    },
    /// Re-read the configuration and the music (as SIGHUP does), and say what was loaded.
    Reload,
    /// The music classes, tracks and lengths.
    Music,
    /// Follow the live events (call started, answered, held, resumed, ended, reloads, limits).
    Events {
        /// Also every SIP message in and out.
        #[arg(long)]
        sip: bool,
    },
}

pub fn run(args: CtlArgs) -> ExitCode {
    match execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onhold ctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn execute(args: &CtlArgs) -> Result<ExitCode, String> {
    let (method, path, body) = match &args.command {
        CtlCommand::Health => ("GET", "/health".to_string(), None),
        CtlCommand::Metrics => ("GET", "/metrics".into(), None),
        CtlCommand::Calls => ("GET", "/api/calls".into(), None),
        CtlCommand::Show { id } => ("GET", format!("/api/calls/{id}"), None),
        CtlCommand::Call {
            uri,
            class,
            file,
            max_duration,
            from,
        } => {
            let mut body = serde_json::json!({ "uri": uri });
            if let Some(c) = class {
                body["class"] = c.as_str().into();
            }
            if let Some(f) = file {
                body["file"] = absolute(f)?.into();
            }
            if let Some(d) = max_duration {
                body["max_duration"] = d.as_str().into();
            }
            if let Some(f) = from {
                body["from"] = f.as_str().into();
            }
            ("POST", "/api/calls".into(), Some(body.to_string()))
        }
        CtlCommand::Hangup { id } => ("DELETE", format!("/api/calls/{id}"), None),
        CtlCommand::Source { id, class, file } => {
            let body = match (class, file) {
                (Some(c), _) => serde_json::json!({ "class": c }),
                (None, Some(f)) => serde_json::json!({ "file": absolute(f)? }),
                (None, None) => return Err("give --class or --file".into()),
            };
            (
                "POST",
                format!("/api/calls/{id}/source"),
                Some(body.to_string()),
            )
        }
        CtlCommand::Reload => ("POST", "/api/reload".into(), None),
        CtlCommand::Music => ("GET", "/api/music".into(), None),
        CtlCommand::Events { sip } => {
            let path = if *sip {
                "/api/events?sip=1"
            } else {
                "/api/events"
            };
            ("GET", path.into(), None)
        }
    };
    let streaming = matches!(args.command, CtlCommand::Events { .. });
    let mut stream = connect(&args.url, streaming)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: onhold\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(t) = &args.token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("{}: {e}", args.url))?;
    let mut reader = BufReader::new(stream);
    let status = read_head(&mut reader).map_err(|e| format!("{}: {e}", args.url))?;
    if streaming && status == 200 {
        return follow(reader);
    }
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", args.url))?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        return Err(format!("HTTP {status}: {message}"));
    }
    let out = match &args.command {
        CtlCommand::Calls => calls_table(&text),
        _ => text,
    };
    let _ = io::stdout().lock().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The server reads a file named in a request: give it a path that means the same there.
fn absolute(f: &str) -> Result<String, String> {
    let abs = std::path::absolute(f).map_err(|e| format!("{f}: {e}"))?;
    Ok(abs.to_string_lossy().into_owned())
}

/// `http://HOST:PORT` → a connected socket.
fn connect(url: &str, streaming: bool) -> Result<TcpStream, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url}: only http:// URLs (the control API has no TLS; put a proxy in front)")
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addrs = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?;
    let mut last = format!("{url}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => {
                if !streaming {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                }
                return Ok(s);
            }
            Err(e) => last = format!("{url}: {e} (is the server running with control_listen?)"),
        }
    }
    Err(last)
}

/// Read the status line and headers; the status code.
fn read_head(r: &mut impl BufRead) -> io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {line:?}")))?;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(status);
        }
    }
}

/// Print each event as it arrives, one line: `event name  {json}`.
fn follow(mut r: impl BufRead) -> Result<ExitCode, String> {
    let mut name = String::new();
    let mut line = String::new();
    let mut out = io::stdout();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Ok(ExitCode::SUCCESS),
            Ok(_) => {}
            Err(e) => return Err(format!("event stream: {e}")),
        }
        let l = line.trim_end();
        if let Some(n) = l.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(data) = l.strip_prefix("data: ") {
            if writeln!(out, "{name:14} {data}").is_err() {
                return Ok(ExitCode::SUCCESS); // stdout closed (`| head`)
            }
            let _ = out.flush();
        }
    }
}

/// The call list as a table.
fn calls_table(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return json.to_string();
    };
    let calls = v
        .get("calls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if calls.is_empty() {
        return "no calls\n".into();
    }
    let s = |c: &Value, k: &str| match c.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    let mut out = format!(
        "{:<8} {:<10} {:<6} {:<9} {:<22} {:>9} {:>8}  {}\n",
        "ID", "CLASS", "CODEC", "STATE", "REMOTE RTP", "DURATION", "PACKETS", "FROM"
    );
    for c in &calls {
        let duration = c.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0);
        out.push_str(&format!(
            "{:<8} {:<10} {:<6} {:<9} {:<22} {:>8.0}s {:>8}  {}\n",
            s(c, "id"),
            s(c, "class"),
            s(c, "codec"),
            s(c, "direction"),
            s(c, "remote_rtp"),
            duration,
            s(c, "packets_sent"),
            s(c, "from"),
        ));
    }
    out
}
