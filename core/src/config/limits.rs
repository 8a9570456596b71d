//! The `[limits]` table: what one source address may hold and the caps on transactions
//! ([`Limits`]), and how long a new call waits for its ACK. Set in the file's `[limits]`, by
//! `ONHOLD_LIMITS_<KEY>` or by `--limit KEY=VALUE`, with the same precedence as every other key.

use std::collections::BTreeMap;
use std::time::Duration;

use super::values::*;
use super::{ConfigError, Origin};
use crate::server::{Limits, ServerConfig};

/// Every key of `[limits]`, as `--check-config` prints and error lines name them.
pub const LIMIT_KEYS: [&str; 9] = [
    "limits.calls_per_source",
    "limits.invite_rate",
    "limits.invite_burst",
    "limits.transactions",
    "limits.transactions_per_source",
    "limits.transaction_memory",
    "limits.transaction_memory_per_source",
    "limits.ack_wait",
    "limits.overload_lateness",
];

/// The qualified key of `name` (a key inside `[limits]`), if there is one.
pub(super) fn qualified(name: &str) -> Option<&'static str> {
    LIMIT_KEYS
        .iter()
        .find(|k| k.strip_prefix("limits.") == Some(name))
        .copied()
}

/// The `[limits]` table of the file into `layers`, each value under its qualified key.
pub(super) fn from_file(
    value: toml::Value,
    origin: &Origin,
    layers: &mut BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    let table = match value {
        toml::Value::Table(t) => t,
        other => {
            let s = Setting {
                raw: Raw::Toml(other),
                origin: origin.clone(),
            };
            return Err(err("limits", &s, "must be a table: [limits]"));
        }
    };
    for (name, value) in table {
        let Some(key) = qualified(&name) else {
            let names: Vec<&str> = LIMIT_KEYS.iter().map(|k| &k[7..]).collect();
            return Err(ConfigError {
                key: format!("limits.{name}"),
                value: render(&Raw::Toml(value)),
                allowed: format!("unknown key; known keys: {}", names.join(", ")),
                origin: Some(origin.clone()),
            });
        };
        let origin = origin.clone();
        layers.insert(
            key,
            Setting {
                raw: Raw::Toml(value),
                origin,
            },
        );
    }
    Ok(())
}

/// `--limit KEY=VALUE` flags into `layers`.
pub(super) fn from_flags(
    flags: &[String],
    layers: &mut BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    for flag in flags {
        let origin = Origin::Flag("--limit".into());
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        let Some(key) = qualified(name.trim()) else {
            let names: Vec<&str> = LIMIT_KEYS.iter().map(|k| &k[7..]).collect();
            return Err(ConfigError {
                key: "limit".into(),
                value: flag.clone(),
                allowed: format!("must be KEY=VALUE with KEY one of {}", names.join(", ")),
                origin: Some(origin),
            });
        };
        let raw = Raw::Text(value.trim().to_string());
        layers.insert(key, Setting { raw, origin });
    }
    Ok(())
}

/// Validate the layers' values into `server`.
pub(super) fn apply(
    layers: &BTreeMap<&'static str, Setting>,
    server: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let l = &mut server.limits;
    let count = |key: &'static str, max: i64| -> Result<Option<usize>, ConfigError> {
        let Some(s) = layers.get(key) else {
            return Ok(None);
        };
        let allowed = format!("must be a whole number from 1 to {max}");
        let v = int(s, key, &allowed)?;
        if !(1..=max).contains(&v) {
            return Err(err(key, s, &allowed));
        }
        Ok(Some(v as usize))
    };
    let memory = |key: &'static str| -> Result<Option<usize>, ConfigError> {
        let Some(s) = layers.get(key) else {
            return Ok(None);
        };
        let allowed = "must be a size from 1MiB to 64GiB, e.g. \"32MiB\"";
        let t = match &s.raw {
            Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => t.clone(),
            _ => return Err(err(key, s, allowed)),
        };
        match parse_size(&t) {
            Some(n) if (1 << 20..=64 << 30).contains(&n) => Ok(Some(n)),
            _ => Err(err(key, s, allowed)),
        }
    };
    if let Some(v) = count("limits.calls_per_source", 1_000_000)? {
        l.calls_per_source = v;
    }
    if let Some(s) = layers.get("limits.invite_rate") {
        let allowed = "must be a number of INVITEs per second from 0.01 to 1000000";
        let v = float(s, "limits.invite_rate", allowed)?;
        if !(0.01..=1e6).contains(&v) {
            return Err(err("limits.invite_rate", s, allowed));
        }
        l.invite_rate = v;
    }
    if let Some(v) = count("limits.invite_burst", 1_000_000)? {
        l.invite_burst = v as u32;
    }
    if let Some(v) = count("limits.transactions", 10_000_000)? {
        l.transactions = v;
    }
    if let Some(v) = count("limits.transactions_per_source", 10_000_000)? {
        l.transactions_per_source = v;
    }
    if let Some(v) = memory("limits.transaction_memory")? {
        l.transaction_bytes = v;
    }
    if let Some(v) = memory("limits.transaction_memory_per_source")? {
        l.transaction_bytes_per_source = v;
    }
    if let Some(s) = layers.get("limits.ack_wait") {
        let max = 64 * server.t1;
        let allowed = format!("must be a duration from 1s to {}", format_duration(max));
        let d = duration(s, "limits.ack_wait", &allowed)?;
        if d < Duration::from_secs(1) || d > max {
            return Err(err("limits.ack_wait", s, &allowed));
        }
        server.ack_wait = d;
    }
    if let Some(s) = layers.get("limits.overload_lateness") {
        l.overload_lateness =
            duration_or_off(s, "limits.overload_lateness", Duration::from_millis(1))?;
    }
    Ok(())
}

/// `123`, `64KiB`, `32MiB`, `1GiB` (also `KB`/`MB`/`GB` as the same powers of two).
pub(super) fn parse_size(t: &str) -> Option<usize> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" | "kb" | "k" => 10,
        "mib" | "mb" | "m" => 20,
        "gib" | "gb" | "g" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

pub(super) fn format_size(n: usize) -> String {
    match n {
        n if n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// The `[limits]` table's lines for `--check-config`: (key inside the table, value).
pub(super) fn lines(server: &ServerConfig) -> [(&'static str, String); 9] {
    let l: &Limits = &server.limits;
    [
        ("limits.calls_per_source", l.calls_per_source.to_string()),
        ("limits.invite_rate", format!("{:?}", l.invite_rate)),
        ("limits.invite_burst", l.invite_burst.to_string()),
        ("limits.transactions", l.transactions.to_string()),
        (
            "limits.transactions_per_source",
            l.transactions_per_source.to_string(),
        ),
        (
            "limits.transaction_memory",
            quote(&format_size(l.transaction_bytes)),
        ),
        (
            "limits.transaction_memory_per_source",
            quote(&format_size(l.transaction_bytes_per_source)),
        ),
        ("limits.ack_wait", quote(&format_duration(server.ack_wait))),
        (
            "limits.overload_lateness",
            quote(&l.overload_lateness.map_or("off".into(), format_duration)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_back() {
        for (text, n) in [
            ("32MiB", 32 << 20),
            ("8 MB", 8 << 20),
            ("1GiB", 1 << 30),
            ("4096", 4096),
        ] {
            assert_eq!(parse_size(text), Some(n), "{text}");
            assert_eq!(parse_size(&format_size(n)), Some(n));
        }
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("MiB"), None);
    }
}
