//! HTTP Digest for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760): reading a challenge and writing
//! the credentials that answer it. MD5 and SHA-256, each also as `-sess`; `qop=auth` when the
//! challenge offers it (`auth-int` alone is not answered: it would hash an INVITE's SDP, and a
//! server asking only for it is rare enough to refuse). Used by our REGISTERs and by the calls
//! we place.

use md5::Md5;

use crate::sip;
use sha2::{Digest, Sha256};

/// The challenge of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) we answer: a
/// SHA-256 one when offered (RFC 8760 §2.4: the strongest algorithm we support), else the first
/// we can read.
pub(crate) fn best_challenge(msg: &sip::Message<'_>, code: u16) -> Option<Challenge> {
    let header = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    msg.headers(header)
        .filter_map(Challenge::parse)
        .reduce(|best, c| {
            if c.algorithm == Algorithm::Sha256 && best.algorithm != Algorithm::Sha256 {
                c
            } else {
                best
            }
        })
}

/// The header our credentials go in, answering a 401 or (`proxy`) a 407.
pub(crate) fn credentials_header(proxy: bool) -> &'static str {
    if proxy {
        "Proxy-Authorization"
    } else {
        "Authorization"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Md5,
    Sha256,
}

/// One `Digest` challenge from a `WWW-Authenticate` or `Proxy-Authenticate` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `-sess`: the first hash also covers the nonce and cnonce.
    pub session: bool,
    /// The challenge offered `qop=auth`.
    pub qop_auth: bool,
    /// The last credentials were refused only for an old nonce (RFC 7616 §3.3).
    pub stale: bool,
}

impl Challenge {
    /// Read one challenge value; `None` if it is not Digest, lacks a nonce, or names an
    /// algorithm we do not have (or only `qop=auth-int`).
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim_start();
        let scheme = value.get(..6)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut c = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: Algorithm::Md5,
            session: false,
            qop_auth: false,
            stale: false,
        };
        let mut nonce = false;
        let mut qop_offered = false;
        for (name, v) in params(&value[6..])? {
            match name.to_ascii_lowercase().as_str() {
                "realm" => c.realm = v,
                "nonce" => {
                    c.nonce = v;
                    nonce = true;
                }
                "opaque" => c.opaque = Some(v),
                "stale" => c.stale = v.eq_ignore_ascii_case("true"),
                "qop" => {
                    qop_offered = true;
                    c.qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth"));
                }
                "algorithm" => {
                    let a = v.to_ascii_uppercase();
                    let (base, session) = match a.strip_suffix("-SESS") {
                        Some(b) => (b.to_string(), true),
                        None => (a, false),
                    };
                    c.algorithm = match base.as_str() {
                        "MD5" => Algorithm::Md5,
                        "SHA-256" => Algorithm::Sha256,
                        _ => return None,
                    };
                    c.session = session;
                }
                _ => {}
            }
        }
        (nonce && (!qop_offered || c.qop_auth)).then_some(c)
    }

    /// The credentials (an `Authorization` or `Proxy-Authorization` value) for `method` to
    /// `uri`, with nonce count `nc` and client nonce `cnonce`.
    pub fn answer(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let nc_text = format!("{nc:08x}");
        let response = response(self, user, password, method, uri, &nc_text, cnonce);
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quoted(user),
            quoted(&self.realm),
            quoted(&self.nonce),
            quoted(uri),
            self.algorithm_name(),
        );
        if self.qop_auth {
            out.push_str(&format!(
                ", cnonce=\"{}\", qop=auth, nc={nc_text}",
                quoted(cnonce)
            ));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quoted(o)));
        }
        out
    }

    fn algorithm_name(&self) -> &'static str {
        match (self.algorithm, self.session) {
            (Algorithm::Md5, false) => "MD5",
            (Algorithm::Md5, true) => "MD5-sess",
            (Algorithm::Sha256, false) => "SHA-256",
            (Algorithm::Sha256, true) => "SHA-256-sess",
        }
    }
}

/// The `response` value (RFC 7616 §3.4.1): KD(H(A1), nonce:nc:cnonce:qop:H(A2)), or without
/// qop the RFC 2069 form H(H(A1):nonce:H(A2)).
pub(crate) fn response(
    c: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: &str,
    cnonce: &str,
) -> String {
    let h = |s: &str| hash(c.algorithm, s);
    let mut ha1 = h(&format!("{user}:{}:{password}", c.realm));
    if c.session {
        ha1 = h(&format!("{ha1}:{}:{cnonce}", c.nonce));
    }
    let ha2 = h(&format!("{method}:{uri}"));
    if c.qop_auth {
        h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce))
    } else {
        h(&format!("{ha1}:{}:{ha2}", c.nonce))
    }
}

/// Lower-case hex of the hash of `s`.
pub(crate) fn hash(algorithm: Algorithm, s: &str) -> String {
    let bytes: Vec<u8> = match algorithm {
        Algorithm::Md5 => Md5::digest(s.as_bytes()).to_vec(),
        Algorithm::Sha256 => Sha256::digest(s.as_bytes()).to_vec(),
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `s` for inside a quoted-string: `"` and `\` escaped.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `name=value` pairs separated by commas, values as tokens or quoted strings (unescaped).
/// `None` for text that is not such a list.
fn params(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ',']);
        if s.is_empty() {
            return Some(out);
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        if let Some(rest) = s.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            out.push((name, value));
            s = &rest[end + 1..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            out.push((name, s[..end].trim().to_string()));
            s = &s[end..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_quoted_challenge() {
        let c = Challenge::parse(
            r#"Digest realm="a\"b", nonce="n,1", qop="auth,auth-int", algorithm=SHA-256, stale=TRUE"#,
        )
        .unwrap();
        assert_eq!(c.realm, "a\"b");
        assert_eq!(c.nonce, "n,1");
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"n\", algorithm=SHA-512-256").is_none());
        assert!(Challenge::parse("Digest nonce=\"n\", qop=\"auth-int\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"unterminated").is_none());
        assert!(Challenge::parse("Dig").is_none());
    }

    /// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn rfc_7616_example() {
        let mut c = Challenge {
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            opaque: None,
            algorithm: Algorithm::Md5,
            session: false,
            qop_auth: true,
            stale: false,
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let r = |c: &Challenge| {
            response(
                c,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "00000001",
                cnonce,
            )
        };
        assert_eq!(r(&c), "8ca523f5e9506fed4657c9700eebdbec");
        c.algorithm = Algorithm::Sha256;
        assert_eq!(
            r(&c),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }
}
