//! `[[register]]`: accounts we register at a PBX or trunk. A password is never echoed in an
//! error or in `--check-config` output; `password_env` names a variable of the environment the
//! runtime passed in.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::values::{duration, err, quote, text, Raw, Setting};
use super::{ConfigError, ListenAddr, Origin};
use crate::server::{Hop, Registration, Transport};
use crate::sip::{Scheme, Uri};

pub(super) const REGISTER_KEYS: [&str; 8] = [
    "registrar",
    "aor",
    "auth_user",
    "password",
    "password_env",
    "expires",
    "outbound_proxy",
    "transport",
];

/// One account as configured: the core's part and where its password came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterConfig {
    pub registration: Registration,
    /// The variable the password was read from, if it was.
    pub password_env: Option<String>,
}

/// The `[[register]]` array, its accounts sending from the first UDP listener.
pub(super) fn parse(
    value: toml::Value,
    origin: &Origin,
    env: &[(String, String)],
    listen: &[ListenAddr],
) -> Result<Vec<RegisterConfig>, ConfigError> {
    let setting = |raw: toml::Value| Setting {
        raw: Raw::Toml(raw),
        origin: origin.clone(),
    };
    let toml::Value::Array(entries) = value else {
        return Err(err(
            "register",
            &setting(value),
            "must be an array of tables: [[register]]",
        ));
    };
    let listener = |t: Transport| listen.iter().find(|l| l.transport == t).map(|l| l.addr);
    let mut out = Vec::new();
    for (n, entry) in entries.into_iter().enumerate() {
        let key = format!("register[{n}]");
        let toml::Value::Table(table) = entry else {
            return Err(err(&key, &setting(entry), "must be a table: [[register]]"));
        };
        let missing = |name: &str| ConfigError {
            key: format!("{key}.{name}"),
            value: String::new(),
            allowed: "is required".into(),
            origin: Some(origin.clone()),
        };
        let mut r = Registration {
            registrar: String::new(),
            aor: String::new(),
            auth_user: String::new(),
            password: String::new(),
            expires: Duration::from_secs(3600),
            outbound_proxy: None,
            transport: Transport::Udp,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            contact_ip: None,
        };
        let mut transport = None;
        let mut password_env = None;
        let mut has_password = false;
        for (k, v) in table {
            let full = format!("{key}.{k}");
            let s = setting(v);
            match k.as_str() {
                "registrar" => {
                    let allowed = "must be a sip: URI, e.g. \"sip:pbx.example.com\"";
                    let t = text(&s, &full, allowed)?;
                    let ok = Uri::parse(&t).is_ok_and(|u| {
                        u.scheme == Scheme::Sip && u.user.is_none() && !u.host.is_empty()
                    });
                    if !ok {
                        return Err(err(&full, &s, allowed));
                    }
                    r.registrar = t;
                }
                "aor" => {
                    let allowed =
                        "must be a sip: URI with a user, e.g. \"sip:moh@pbx.example.com\"";
                    let t = text(&s, &full, allowed)?;
                    let ok = Uri::parse(&t).is_ok_and(|u| {
                        u.scheme == Scheme::Sip && u.user.is_some_and(|u| !u.is_empty())
                    });
                    if !ok || t.contains(['<', '>', '"']) {
                        return Err(err(&full, &s, allowed));
                    }
                    r.aor = t;
                }
                "auth_user" => {
                    let allowed = "must be a user name without control characters";
                    let t = text(&s, &full, allowed)?;
                    if t.is_empty() || t.chars().any(char::is_control) {
                        return Err(err(&full, &s, allowed));
                    }
                    r.auth_user = t;
                }
                "password" => {
                    // Never echoed: a wrong type or control character is named, not shown.
                    let toml::Value::String(p) = &s.raw_toml() else {
                        return Err(hidden(&full, origin, "must be a string"));
                    };
                    if p.chars().any(char::is_control) {
                        return Err(hidden(&full, origin, "must have no control characters"));
                    }
                    r.password = p.clone();
                    has_password = true;
                }
                "password_env" => {
                    let allowed = "must name an environment variable";
                    let name = text(&s, &full, allowed)?;
                    let Some((_, p)) = env.iter().find(|(k, _)| *k == name) else {
                        return Err(err(&full, &s, "names a variable that is not set"));
                    };
                    if p.is_empty() || p.chars().any(char::is_control) {
                        return Err(err(
                            &full,
                            &s,
                            "names a variable that is empty or has control characters",
                        ));
                    }
                    r.password = p.clone();
                    password_env = Some(name);
                }
                "expires" => {
                    let allowed = "must be a duration from 60s to 24h (e.g. 3600s, 1h)";
                    let d = match &s.raw {
                        Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i)
                            .map(Duration::from_secs)
                            .map_err(|_| err(&full, &s, allowed))?,
                        _ => duration(&s, &full, allowed)?,
                    };
                    if d < Duration::from_secs(60) || d > Duration::from_secs(86_400) {
                        return Err(err(&full, &s, allowed));
                    }
                    r.expires = Duration::from_secs(d.as_secs());
                }
                "outbound_proxy" => {
                    let allowed =
                        "must be HOST, HOST:PORT, IP or IP:PORT (e.g. proxy.example.com:5060)";
                    let t = text(&s, &full, allowed)?;
                    r.outbound_proxy = Some(hop_of(&t).ok_or_else(|| err(&full, &s, allowed))?);
                }
                "transport" => {
                    let allowed = "must be \"udp\" or \"tcp\"";
                    transport = Some(
                        match text(&s, &full, allowed)?.to_ascii_lowercase().as_str() {
                            "udp" => Transport::Udp,
                            "tcp" => Transport::Tcp,
                            _ => return Err(err(&full, &s, allowed)),
                        },
                    );
                }
                _ => {
                    return Err(err(
                        &full,
                        &s,
                        &format!("unknown key; known keys: {}", REGISTER_KEYS.join(", ")),
                    ))
                }
            }
        }
        if r.registrar.is_empty() {
            return Err(missing("registrar"));
        }
        // RFC 3263 §4.1: a `transport` parameter in the registrar URI names it too.
        let in_uri = Uri::parse(&r.registrar)
            .ok()
            .and_then(|u| u.transport().map(|t| t.eq_ignore_ascii_case("tcp")));
        r.transport = match (transport, in_uri) {
            (Some(t), _) => t,
            (None, Some(true)) => Transport::Tcp,
            _ => Transport::Udp,
        };
        r.local = listener(r.transport).ok_or_else(|| ConfigError {
            key: key.clone(),
            value: String::new(),
            allowed: format!(
                "registering over {} needs a {} listen address",
                r.transport.name(),
                r.transport.name().to_uppercase()
            ),
            origin: Some(origin.clone()),
        })?;
        if r.aor.is_empty() {
            return Err(missing("aor"));
        }
        if has_password && password_env.is_some() {
            return Err(hidden(
                &format!("{key}.password"),
                origin,
                "set password or password_env, not both",
            ));
        }
        if r.auth_user.is_empty() {
            r.auth_user = Uri::parse(&r.aor)
                .ok()
                .and_then(|u| u.user)
                .unwrap_or_default()
                .to_string();
        }
        out.push(RegisterConfig {
            registration: r,
            password_env,
        });
    }
    Ok(out)
}

/// An error about a password: the value is never shown.
fn hidden(key: &str, origin: &Origin, allowed: &str) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        value: "\"(hidden)\"".into(),
        allowed: allowed.into(),
        origin: Some(origin.clone()),
    }
}

impl Setting {
    fn raw_toml(&self) -> toml::Value {
        match &self.raw {
            Raw::Toml(v) => v.clone(),
            Raw::Text(t) => toml::Value::String(t.clone()),
        }
    }
}

/// The `[[register]]` tables as `--check-config` prints them, the password hidden.
pub(super) fn lines(accounts: &[RegisterConfig]) -> String {
    let mut out = String::new();
    for a in accounts {
        let r = &a.registration;
        out.push_str("\n[[register]]\n");
        out.push_str(&format!("registrar = {}\n", quote(&r.registrar)));
        out.push_str(&format!("aor = {}\n", quote(&r.aor)));
        out.push_str(&format!("auth_user = {}\n", quote(&r.auth_user)));
        match &a.password_env {
            Some(name) => out.push_str(&format!("password_env = {}\n", quote(name))),
            None if r.password.is_empty() => {}
            None => out.push_str("# password = (set, hidden)\n"),
        }
        out.push_str(&format!("expires = {}\n", r.expires.as_secs()));
        if let Some(p) = &r.outbound_proxy {
            out.push_str(&format!("outbound_proxy = {}\n", quote(&p.to_string())));
        }
        out.push_str(&format!("transport = {}\n", quote(r.transport.name())));
    }
    out
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`, `HOST` or `HOST:PORT`; an IP without a port gets 5060 (a
/// name's port stays unset: the runtime's lookup picks it).
fn hop_of(t: &str) -> Option<Hop> {
    let t = t.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Some(Hop::Addr(a));
    }
    if let Ok(ip) = t
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(Hop::Addr(SocketAddr::new(ip, 5060)));
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?)),
        None => (t, None),
    };
    let label =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    host.split('.').all(label).then(|| Hop::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}
