//! The status page: one HTML page with its stylesheet and script, embedded in the binary and
//! served by the control listener, plus what only the page needs from the server (the settings
//! it shows in its header, a WAV preview of a class's music).
//!
//! The page's files hold no data, so they are served without the token: the page asks for it.
//! Their Content-Security-Policy allows nothing but this origin, so the page works offline and
//! a browser refuses anything (a script, a font, a beacon) from anywhere else.

use std::net::SocketAddr;

use onhold_core::config::ListenAddr;
use onhold_core::media::{g711::ulaw_to_linear, ClassId, Library};
use onhold_core::{Codec, ServerConfig, Transport};
use serde_json::{json, Value};

use super::http::Response;

const INDEX_HTML: &str = include_str!("page/index.html");
const STATUS_CSS: &str = include_str!("page/status.css");
const STATUS_JS: &str = include_str!("page/status.js");

/// Only this origin: scripts, styles, fetches. `blob:` media for the music preview (fetched with
/// the token, then handed to an `<audio>` element as a blob URL).
pub const CSP: &str = "default-src 'self'; media-src 'self' blob:; img-src 'self'; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

/// How much music the preview holds.
pub const PREVIEW_SECONDS: u32 = 15;

/// The page's files by path; `None` for any other path.
pub fn asset(path: &str) -> Option<Response> {
    let (content_type, body) = match path {
        "" | "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/status.css" => ("text/css; charset=utf-8", STATUS_CSS),
        "/status.js" => ("text/javascript; charset=utf-8", STATUS_JS),
        _ => return None,
    };
    Some(
        Response {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer"),
    )
}

/// The SIP listeners as bound (ports chosen by the OS filled in; `bound` is in the order of
/// `listen`), each with the address it advertises when it has one of its own.
pub fn listeners_json(bound: &[(Transport, SocketAddr)], listen: &[ListenAddr]) -> Value {
    let list: Vec<Value> = bound
        .iter()
        .zip(listen.iter().map(|l| l.advertised))
        .map(|((t, addr), advertised)| {
            json!({
                "transport": t.name(),
                "address": addr.to_string(),
                "advertised": advertised.map(|a| a.to_string()),
            })
        })
        .collect();
    Value::Array(list)
}

/// The settings a reload may change (they apply to new calls), for the page's header. Nothing
/// secret is in a `ServerConfig`; the control token lives elsewhere.
pub fn settings_json(c: &ServerConfig) -> Value {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
    let codecs: Vec<&str> = c.codecs.iter().map(|c| c.encoding_name()).collect();
    json!({
        "advertised": c.advertised.map(|a| a.to_string()),
        "rtp": {
            "ip": c.rtp_ip.to_string(),
            "ports": [c.rtp_ports.0, c.rtp_ports.1],
            "shared_port": c.rtp_shared_port,
        },
        "codecs": codecs,
        "ptime_ms": c.ptime_ms,
        "limits": {
            "max_calls": c.max_calls,
            "max_call_duration_s": secs(c.max_call_duration),
            "media_timeout_s": secs(c.media_timeout),
            "calls_per_source": c.limits.calls_per_source,
            "invite_rate": c.limits.invite_rate,
            "invite_burst": c.limits.invite_burst,
        },
    })
}

/// A class's music from its start as callers on PCMU hear it: `seconds` of µ-law decoded to
/// 16-bit PCM, 8 kHz mono, in a WAV file.
pub fn preview_wav(library: &Library, class: ClassId, seconds: u32) -> Vec<u8> {
    let samples = seconds as usize * 8000;
    let mut ulaw = vec![0u8; samples];
    library.fill(class, Codec::Pcmu, 0, &mut ulaw);
    let mut wav = Vec::with_capacity(44 + samples * 2);
    wav.extend_from_slice(&super::taps::wav_header(8000, (samples * 2) as u32));
    for code in ulaw {
        wav.extend_from_slice(&ulaw_to_linear(code).to_le_bytes());
    }
    wav
}

/// A path segment with its `%XX` escapes decoded (class names are SIP user parts, and the page
/// escapes them); `None` when that is not UTF-8 or an escape is malformed.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_is_a_wav_of_the_class_decoded_from_pcmu() {
        let lib = Library::embedded_default();
        let wav = preview_wav(&lib, lib.default_class(), 2);
        assert_eq!(wav.len(), 44 + 2 * 8000 * 2);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8000);
        assert_eq!(&wav[36..40], b"data");
        let mut ulaw = [0u8; 160];
        lib.fill(lib.default_class(), Codec::Pcmu, 0, &mut ulaw);
        let first: Vec<i16> = wav[44..44 + 320]
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let expected: Vec<i16> = ulaw.iter().map(|&c| ulaw_to_linear(c)).collect();
        assert_eq!(first, expected);
        assert!(
            first.iter().any(|&s| s != 0),
            "the built-in music is not silence"
        );
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("sales").as_deref(), Some("sales"));
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn every_page_file_is_served_with_the_same_origin_policy() {
        for path in ["/", "/status.css", "/status.js"] {
            let r = asset(path).expect(path);
            assert!(r.headers.iter().any(
                |(n, v)| *n == "Content-Security-Policy" && v.starts_with("default-src 'self'")
            ));
        }
        assert!(asset("/nope").is_none());
    }
}
