//! Validation of single values: every key's parser, from TOML values or plain text (flags and
//! environment), each failing with the one-line [`ConfigError`] that names key, value and what is
//! allowed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    is_url, ClassConfig, ClassSdp, ConfigError, HttpUrl, ListenAddr, MusicOrder, Origin, CLASS_KEYS,
};
use crate::codec::Codec;
use crate::media::PlayMode;
use crate::server::Transport;

/// A value before validation: TOML from the file, plain text from the environment and flags.
#[derive(Clone, Debug)]
pub(super) enum Raw {
    Toml(toml::Value),
    Text(String),
}

#[derive(Clone, Debug)]
pub(super) struct Setting {
    pub(super) raw: Raw,
    pub(super) origin: Origin,
}

pub(super) fn err(key: &str, s: &Setting, allowed: &str) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        value: render(&s.raw),
        allowed: allowed.to_string(),
        origin: Some(s.origin.clone()),
    }
}

/// A value as the user wrote it: TOML syntax for file values, verbatim for text.
pub(super) fn render(raw: &Raw) -> String {
    fn toml_value(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => quote(s),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(a) => format!(
                "[{}]",
                a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
            ),
            toml::Value::Table(_) => "{…}".to_string(),
        }
    }
    match raw {
        Raw::Toml(v) => toml_value(v),
        Raw::Text(t) => t.clone(),
    }
}

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

pub(super) fn text(s: &Setting, key: &str, allowed: &str) -> Result<String, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => Ok(t.trim().to_string()),
        _ => Err(err(key, s, allowed)),
    }
}

pub(super) fn int(s: &Setting, key: &str, allowed: &str) -> Result<i64, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) => Ok(*i),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            t.trim().parse().map_err(|_| err(key, s, allowed))
        }
        _ => Err(err(key, s, allowed)),
    }
}

pub(super) fn float(s: &Setting, key: &str, allowed: &str) -> Result<f64, ConfigError> {
    let v = match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) => *i as f64,
        Raw::Toml(toml::Value::Float(f)) => *f,
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            t.trim().parse().map_err(|_| err(key, s, allowed))?
        }
        _ => return Err(err(key, s, allowed)),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(err(key, s, allowed))
    }
}

/// One of a fixed set of words (`choices`: word and value); the error lists them.
pub(super) fn choice<T: Copy>(
    s: &Setting,
    key: &str,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let words: Vec<String> = choices.iter().map(|(w, _)| quote(w)).collect();
    let allowed = format!("must be {}", words.join(" or "));
    let t = text(s, key, &allowed)?.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(w, _)| *w == t)
        .map(|(_, v)| *v)
        .ok_or_else(|| err(key, s, &allowed))
}

/// The word `choices` gives `value`.
pub(super) fn word_of<T: PartialEq>(choices: &[(&'static str, T)], value: &T) -> &'static str {
    choices
        .iter()
        .find(|(_, v)| v == value)
        .map_or("", |(w, _)| w)
}

pub(super) fn boolean(s: &Setting, key: &str) -> Result<bool, ConfigError> {
    let allowed = "must be true or false";
    match &s.raw {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            match t.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(err(key, s, allowed)),
            }
        }
        _ => Err(err(key, s, allowed)),
    }
}

/// `"90s"`, `"1h30m"`, `"500ms"`, `"2m"`, or a whole number of seconds (TOML integer or text).
pub(super) fn duration(s: &Setting, key: &str, allowed: &str) -> Result<Duration, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            parse_duration(t.trim()).ok_or_else(|| err(key, s, allowed))
        }
        _ => Err(err(key, s, allowed)),
    }
}

/// Parse `1h30m`, `90s`, `250ms`, `2d`; a bare number is seconds.
/// A duration of at least `min`, or `"off"` (also `"none"`, `"0"`): `None`.
pub(super) fn duration_or_off(
    s: &Setting,
    key: &str,
    min: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let allowed = format!(
        "must be a duration of at least {} (e.g. 90s, 1h, 1h30m) or \"off\"",
        format_duration(min)
    );
    match &s.raw {
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t)
            if matches!(t.as_str(), "off" | "none" | "0") =>
        {
            Ok(None)
        }
        _ => {
            let d = duration(s, key, &allowed)?;
            if d < min {
                return Err(err(key, s, &allowed));
            }
            Ok(Some(d))
        }
    }
}

pub fn parse_duration(t: &str) -> Option<Duration> {
    if t.is_empty() {
        return None;
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.checked_add(n.checked_mul(ms_per)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

/// The shortest exact spelling: `1h`, `90s`, `1h30m`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        // Whole seconds are written as seconds below a minute's remainder: "90s", not "1m30s".
        if unit == "m" && ms % 60_000 != 0 && ms < 3_600_000 && out.is_empty() {
            continue;
        }
        if ms >= per {
            out.push_str(&format!("{}{unit}", ms / per));
            ms %= per;
        }
    }
    out
}

pub(super) fn parse_listen(s: &Setting) -> Result<Vec<ListenAddr>, ConfigError> {
    let allowed = "must be a list of [udp:|tcp:]IP:PORT[@ADVERTISED_IP], e.g. \
                   [\"0.0.0.0:5060\", \"tcp:[::]:5060\", \"udp:10.0.0.2:5060@203.0.113.5\"]";
    let items = list(s, "listen", allowed)?;
    if items.is_empty() {
        return Err(err("listen", s, allowed));
    }
    let mut out: Vec<ListenAddr> = Vec::new();
    for item in items {
        let bad = |allowed: &str| ConfigError {
            value: quote(&item),
            ..err("listen", s, allowed)
        };
        let (socket, advertised) = match item.split_once('@') {
            Some((socket, ip)) => {
                let ip: IpAddr = ip.trim().parse().map_err(|_| {
                    bad(
                        "the address after @ must be an IP address (e.g. 203.0.113.5), \
                         advertised in Contact and SDP for calls arriving on this listener",
                    )
                })?;
                if ip.is_unspecified() {
                    return Err(bad(
                        "the address after @ must be one a caller can reach, not 0.0.0.0 or ::",
                    ));
                }
                (socket.trim(), Some(ip))
            }
            None => (item.as_str(), None),
        };
        let (transport, addr) = if let Some(a) = socket.strip_prefix("udp:") {
            (Transport::Udp, a)
        } else if let Some(a) = socket.strip_prefix("tcp:") {
            (Transport::Tcp, a)
        } else {
            (Transport::Udp, socket)
        };
        let addr: SocketAddr = addr.parse().map_err(|_| bad(allowed))?;
        if out
            .iter()
            .any(|l| l.transport == transport && l.addr == addr)
        {
            return Err(bad("each address may be listed once"));
        }
        out.push(ListenAddr {
            transport,
            addr,
            advertised,
        });
    }
    Ok(out)
}

pub(super) fn list(s: &Setting, key: &str, allowed: &str) -> Result<Vec<String>, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                toml::Value::String(t) => Ok(t.trim().to_string()),
                _ => Err(err(key, s, allowed)),
            })
            .collect(),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => Ok(t
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()),
        _ => Err(err(key, s, allowed)),
    }
}

pub(super) fn parse_port_range(s: &Setting) -> Result<(u16, u16), ConfigError> {
    let allowed = "must be \"LOW-HIGH\" with 1024 ≤ LOW < HIGH ≤ 65535";
    let t = text(s, "rtp_ports", allowed)?;
    let (lo, hi) = t
        .split_once('-')
        .ok_or_else(|| err("rtp_ports", s, allowed))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| err("rtp_ports", s, allowed))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| err("rtp_ports", s, allowed))?;
    if lo < 1024 || hi <= lo {
        return Err(err("rtp_ports", s, allowed));
    }
    // One call needs an even RTP port and the odd RTCP port above it, both inside the range.
    let first_even = lo + lo % 2;
    if first_even >= hi {
        return Err(err(
            "rtp_ports",
            s,
            "must hold an even port and the odd one above it",
        ));
    }
    Ok((lo, hi))
}

pub(super) fn parse_codecs(s: &Setting) -> Result<Vec<Codec>, ConfigError> {
    parse_codecs_at(s, "codecs")
}

fn parse_codecs_at(s: &Setting, key: &str) -> Result<Vec<Codec>, ConfigError> {
    let allowed = "must be a list of PCMU, PCMA, G722 (each at most once; empty: all)";
    let names = list(s, key, allowed)?;
    let mut out: Vec<Codec> = Vec::new();
    for name in names {
        match Codec::from_name(&name) {
            Some(c) if !out.contains(&c) => out.push(c),
            _ => {
                return Err(ConfigError {
                    value: quote(&name),
                    ..err(key, s, allowed)
                })
            }
        }
    }
    Ok(out)
}

/// `ptime`: 10–60 ms in steps of 10.
pub(super) fn parse_ptime(s: &Setting, key: &str) -> Result<u32, ConfigError> {
    let allowed = "must be 10–60 ms in steps of 10";
    let v = int(s, key, allowed)?;
    if !(10..=60).contains(&v) || v % 10 != 0 {
        return Err(err(key, s, allowed));
    }
    Ok(v as u32)
}

/// The offer/answer lines that stay ours: a class may not add them.
const OWN_ATTRIBUTES: [&str; 10] = [
    "rtpmap", "fmtp", "ptime", "maxptime", "sendrecv", "sendonly", "recvonly", "inactive",
    "rtcp-mux", "rtcp",
];

/// `sdp_session_attributes` / `sdp_media_attributes`: `name` or `name:value` (an `a=` in front
/// is dropped), printable, not one of the attributes offer/answer is made of.
fn sdp_attributes(s: &Setting, key: &str) -> Result<Vec<String>, ConfigError> {
    let allowed = "must be a list of SDP attributes like \"tool:onhold\" (printable, one line \
                   each; not rtpmap, fmtp, ptime, maxptime, a direction or rtcp-mux, which onhold writes)";
    let mut out = Vec::new();
    for a in list(s, key, allowed)? {
        let a = a.strip_prefix("a=").unwrap_or(&a).to_string();
        let name = a.split(':').next().unwrap_or("");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b));
        let printable = a.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        let ours = OWN_ATTRIBUTES.iter().any(|o| o.eq_ignore_ascii_case(name));
        if !token || !printable || ours {
            return Err(ConfigError {
                value: quote(&a),
                ..err(key, s, allowed)
            });
        }
        out.push(a);
    }
    Ok(out)
}

/// Read one of a class's SDP keys into `sdp`; false if `k` is not one of them.
pub(super) fn class_sdp_key(
    sdp: &mut ClassSdp,
    k: &str,
    s: &Setting,
    full: &str,
) -> Result<bool, ConfigError> {
    let positive = |max: i64, allowed: &str| -> Result<u32, ConfigError> {
        let v = int(s, full, allowed)?;
        if !(1..=max).contains(&v) {
            return Err(err(full, s, allowed));
        }
        Ok(v as u32)
    };
    match k {
        "codecs" => sdp.codecs = parse_codecs_at(s, full)?,
        "ptime" => sdp.ptime_ms = Some(parse_ptime(s, full)?),
        "sdp_bandwidth_as" => {
            let allowed = "must be kbit/s from 1 to 100000 (b=AS)";
            sdp.extras.bandwidth_as = Some(positive(100_000, allowed)?);
        }
        "sdp_bandwidth_tias" => {
            let allowed = "must be bit/s from 1 to 100000000 (b=TIAS)";
            sdp.extras.bandwidth_tias = Some(positive(100_000_000, allowed)?);
        }
        "sdp_session_attributes" => sdp.extras.session_attributes = sdp_attributes(s, full)?,
        "sdp_media_attributes" => sdp.extras.media_attributes = sdp_attributes(s, full)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A class's SDP keys as `--check-config` prints them (only those set).
pub(super) fn class_sdp_lines(sdp: &ClassSdp) -> String {
    let mut out = String::new();
    let names = |v: &[String]| v.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", ");
    if !sdp.codecs.is_empty() {
        let codecs: Vec<String> = sdp
            .codecs
            .iter()
            .map(|c| c.encoding_name().to_string())
            .collect();
        out.push_str(&format!("codecs = [{}]\n", names(&codecs)));
    }
    if let Some(p) = sdp.ptime_ms {
        out.push_str(&format!("ptime = {p}\n"));
    }
    if let Some(v) = sdp.extras.bandwidth_as {
        out.push_str(&format!("sdp_bandwidth_as = {v}\n"));
    }
    if let Some(v) = sdp.extras.bandwidth_tias {
        out.push_str(&format!("sdp_bandwidth_tias = {v}\n"));
    }
    if !sdp.extras.session_attributes.is_empty() {
        let v = names(&sdp.extras.session_attributes);
        out.push_str(&format!("sdp_session_attributes = [{v}]\n"));
    }
    if !sdp.extras.media_attributes.is_empty() {
        let v = names(&sdp.extras.media_attributes);
        out.push_str(&format!("sdp_media_attributes = [{v}]\n"));
    }
    out
}

/// Relative paths from the file are relative to the file's directory; from flags and the
/// environment, to the working directory.
pub(super) fn resolve(path: &str, origin: &Origin, base: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(path);
    match (origin, base) {
        (Origin::File(_), Some(dir)) if p.is_relative() && !dir.as_os_str().is_empty() => {
            dir.join(p)
        }
        _ => p,
    }
}

/// A `music` value that is a URL: the live source, or why it cannot be one. A path is `None`.
pub(super) fn live_url(t: &str, key: &str, s: &Setting) -> Result<Option<HttpUrl>, ConfigError> {
    if !is_url(t) {
        return Ok(None);
    }
    HttpUrl::parse(t).map(Some).map_err(|why| err(key, s, &why))
}

pub(super) fn parse_classes(
    tables: toml::Table,
    origin: Option<Origin>,
    base: Option<&Path>,
) -> Result<Vec<ClassConfig>, ConfigError> {
    let origin = origin.unwrap_or(Origin::Default);
    let mut out = Vec::new();
    for (name, value) in tables {
        let key = format!("classes.{}", quote_key(&name));
        let setting = |raw: toml::Value| Setting {
            raw: Raw::Toml(raw),
            origin: origin.clone(),
        };
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | ':' | ';'))
        {
            return Err(err(
                &key,
                &setting(value),
                "a class name is a Request-URI user part: no spaces, '@', ':' or ';'",
            ));
        }
        let toml::Value::Table(table) = value else {
            return Err(err(
                &key,
                &setting(value),
                &format!("must be a table of {}", CLASS_KEYS.join(", ")),
            ));
        };
        let mut class = ClassConfig::new(&name);
        for (k, v) in table {
            let full = format!("{key}.{k}");
            let s = setting(v);
            match k.as_str() {
                "music" => {
                    let t = text(&s, &full, "must be a path or an http:// URL")?;
                    class.live = live_url(&t, &full, &s)?;
                    class.music =
                        (!t.is_empty() && class.live.is_none()).then(|| resolve(&t, &origin, base));
                }
                "announcement" | "fallback" => {
                    let t = text(&s, &full, "must be a path")?;
                    let path = (!t.is_empty()).then(|| resolve(&t, &origin, base));
                    if k == "fallback" {
                        class.fallback = path;
                    } else {
                        class.announcement = path;
                    }
                }
                "live_buffer" => {
                    let allowed = "must be a duration from 60ms to 2s (e.g. 300ms)";
                    let d = duration(&s, &full, allowed)?;
                    if d < Duration::from_millis(60) || d > Duration::from_secs(2) {
                        return Err(err(&full, &s, allowed));
                    }
                    class.live_buffer = d;
                }
                "mode" => {
                    let allowed = "must be \"per-call\" or \"shared\"";
                    class.mode = match text(&s, &full, allowed)?.as_str() {
                        "per-call" => PlayMode::PerCall,
                        "shared" => PlayMode::Shared,
                        _ => return Err(err(&full, &s, allowed)),
                    };
                }
                "order" => {
                    let allowed = "must be \"sorted\" or \"shuffle\"";
                    class.order = match text(&s, &full, allowed)?.as_str() {
                        "sorted" => MusicOrder::Sorted,
                        "shuffle" => MusicOrder::Shuffle,
                        _ => return Err(err(&full, &s, allowed)),
                    };
                }
                "record" => class.record = boolean(&s, &full)?,
                k if class_sdp_key(&mut class.sdp, k, &s, &full)? => {}
                "announcement_every" => {
                    let allowed = "must be a duration from 1s to 24h (e.g. 60s, 5m)";
                    let d = duration(&s, &full, allowed)?;
                    if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
                        return Err(err(&full, &s, allowed));
                    }
                    class.announcement_every = d;
                }
                _ => {
                    return Err(err(
                        &full,
                        &s,
                        &format!("unknown key; known keys: {}", CLASS_KEYS.join(", ")),
                    ))
                }
            }
        }
        let live_only = if class.live.is_some() {
            class.announcement.as_ref().map(|_| "announcement")
        } else if class.fallback.is_some() {
            Some("fallback")
        } else {
            None
        };
        if let Some(what) = live_only {
            return Err(ConfigError {
                key: format!("{key}.{what}"),
                value: String::new(),
                allowed: if what == "fallback" {
                    "only a live class (music = \"http://…\") has a fallback".into()
                } else {
                    "a live class plays no announcement".into()
                },
                origin: Some(origin.clone()),
            });
        }
        if class.live.is_some() {
            // Every caller of a live class hears the one source.
            class.mode = PlayMode::Shared;
        }
        if class.music.is_none() && class.live.is_none() && name != "default" {
            return Err(ConfigError {
                key: format!("{key}.music"),
                value: String::new(),
                allowed: "missing: every class but default needs a file or directory".into(),
                origin: Some(origin.clone()),
            });
        }
        out.push(class);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
