//! Steps as text: the format of `sim/tests/fuzz-regressions/*.txt`, in which a failure is
//! saved and from which it is replayed.
//!
//! ```text
//! # a comment
//! +1.5ms                       virtual time passes (ns, us, ms or s)
//! +32s late                    … and the runtime wakes only at its end
//! udp 192.168.1.50:5060 > 192.168.1.100:5060
//!   494e56495445207369703a...  the payload in hex, on the lines that follow (spaces ignored)
//! tcp [fd66::1]:5060 > [fd00::100]:5060 hostile
//!   ...
//! hangup 4294967297            Control::Hangup of a call handle
//! reconfigure                  Control::Reconfigure with the same settings
//! = 0123456789abcdef #4294967297  tags, branches and call handles the server made up in answer
//!                              to the steps before (a replay maps them to its server's own)
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use onhold_core::{CallHandle, Transport};

use super::rig::Step;

/// The steps as text: each datagram's first line as a comment, then its header line and hex.
pub fn write(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Advance { by, late } => {
                let _ = writeln!(
                    out,
                    "+{}us{}",
                    by.as_micros(),
                    if *late { " late" } else { "" }
                );
            }
            Step::Datagram {
                transport,
                local,
                remote,
                bytes,
                hostile,
            } => {
                let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                let first = String::from_utf8_lossy(&first[..first.len().min(100)])
                    .replace(|c: char| c.is_control(), "\u{fffd}");
                let t = transport.name();
                let _ = writeln!(out, "# {} bytes: {first}", bytes.len());
                let _ = writeln!(
                    out,
                    "{t} {remote} > {local}{}",
                    if *hostile { " hostile" } else { "" }
                );
                for chunk in bytes.chunks(48) {
                    out.push_str("  ");
                    for b in chunk {
                        let _ = write!(out, "{b:02x}");
                    }
                    out.push('\n');
                }
            }
            Step::Hangup(h) => {
                let _ = writeln!(out, "hangup {}", h.0);
            }
            Step::Reconfigure => out.push_str("reconfigure\n"),
            Step::Issued(tokens) => {
                let _ = writeln!(out, "= {}", tokens.join(" "));
            }
        }
    }
    out
}

/// Read steps back; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line}", n + 1);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let Some(Step::Datagram { bytes, .. }) = steps.last_mut() else {
                return Err(err("hex outside a datagram"));
            };
            let hex: Vec<u8> = t.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if hex.len() % 2 != 0 {
                return Err(err("odd number of hex digits"));
            }
            for pair in hex.chunks(2) {
                let s = std::str::from_utf8(pair).map_err(|_| err("not hex"))?;
                bytes.push(u8::from_str_radix(s, 16).map_err(|_| err("not hex"))?);
            }
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let step = match words.as_slice() {
            [by, rest @ ..] if by.starts_with('+') => Step::Advance {
                by: duration(&by[1..]).ok_or_else(|| err("bad duration"))?,
                late: rest == ["late"],
            },
            [t @ ("udp" | "tcp"), remote, ">", local, rest @ ..] => Step::Datagram {
                transport: if *t == "udp" {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
                remote: remote.parse().map_err(|_| err("bad source address"))?,
                local: local.parse().map_err(|_| err("bad local address"))?,
                bytes: Vec::new(),
                hostile: rest == ["hostile"],
            },
            ["hangup", h] => Step::Hangup(CallHandle(h.parse().map_err(|_| err("bad handle"))?)),
            ["reconfigure"] => Step::Reconfigure,
            ["=", tokens @ ..] => Step::Issued(tokens.iter().map(|t| t.to_string()).collect()),
            _ => return Err(err("not a step")),
        };
        steps.push(step);
    }
    Ok(steps)
}

fn duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_survive_the_round_trip() {
        let steps = vec![
            Step::Advance {
                by: Duration::from_micros(1500),
                late: false,
            },
            Step::Datagram {
                transport: Transport::Tcp,
                local: "[fd00::100]:5060".parse().unwrap(),
                remote: "[fd66::1]:5060".parse().unwrap(),
                bytes: (0..=255u8).collect(),
                hostile: true,
            },
            Step::Advance {
                by: Duration::from_secs(32),
                late: true,
            },
            Step::Hangup(CallHandle(1 << 32 | 7)),
            Step::Reconfigure,
            Step::Issued(vec!["0123456789abcdef".into(), "#5".into()]),
        ];
        assert_eq!(parse(&write(&steps)), Ok(steps));
        assert!(parse("udp 1.2.3.4:5 > nowhere").is_err());
        assert_eq!(
            parse("+2ms\n+1s late"),
            Ok(vec![
                Step::Advance {
                    by: Duration::from_millis(2),
                    late: false
                },
                Step::Advance {
                    by: Duration::from_secs(1),
                    late: true
                }
            ])
        );
    }
}
