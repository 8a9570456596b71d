//! The `http://` URL of a live source (RFC 3986 §3, the parts an HTTP/1.1 GET needs): read
//! here so that `--check-config` refuses a bad one, and by the runtime's client for redirects.

use std::fmt;

/// An `http://` URL: host (a name, an IPv4 address or a bracketed IPv6 one), port (80 unless
/// given) and the path with its query (`/` when empty); any fragment is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Does `text` name a live source rather than a file (a URL scheme, not a path)?
pub fn is_url(text: &str) -> bool {
    text.find("://").is_some_and(|i| {
        i > 0
            && text[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    })
}

impl HttpUrl {
    /// Read an `http://` URL; `Err` says what is wrong in a few words (and, for `https://`,
    /// how to play such a stream anyway).
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let Some(i) = text.find("://") else {
            return Err("not a URL (http://host[:port]/path)".into());
        };
        let scheme = &text[..i];
        if scheme.eq_ignore_ascii_case("https") {
            return Err(
                "https:// is not supported (no TLS in onhold): relay the stream as \
                        http:// from a host you trust, e.g. an Icecast <relay> or \
                        `ffmpeg -i https://… -c copy -f mp3 icecast://…`"
                    .into(),
            );
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "{scheme}:// is not supported: only http:// streams"
            ));
        }
        let rest = &text[i + 3..];
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path) = match rest.find(['/', '?']) {
            Some(j) if rest.as_bytes()[j] == b'?' => (&rest[..j], format!("/{}", &rest[j..])),
            Some(j) => (&rest[..j], rest[j..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err("user:password@ in the URL is not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err("unclosed [ in the host".into());
            };
            let host = &v6[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("[{host}] is not an IPv6 address"));
            }
            (format!("[{host}]"), &v6[end + 1..])
        } else {
            match authority.find(':') {
                Some(j) => (authority[..j].to_string(), &authority[j..]),
                None => (authority.to_string(), ""),
            }
        };
        let port = match port.strip_prefix(':') {
            None if port.is_empty() => 80,
            Some("") => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("port {p:?} is not a port number")),
            },
            None => return Err(format!("unexpected {port:?} after the host")),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || (!host.starts_with('[') && !host.chars().all(valid)) {
            return Err(format!("host {host:?} is not a host name or address"));
        }
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("spaces or control characters in the path (percent-encode them)".into());
        }
        Ok(HttpUrl { host, port, path })
    }

    /// The host for a `Host` header and for connecting (brackets kept off for the latter by
    /// the caller): with the port when it is not 80.
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolve a redirect's `Location` against this URL: absolute (`http://…`), or a path on
    /// the same host.
    pub fn join(&self, location: &str) -> Result<HttpUrl, String> {
        if is_url(location) {
            return HttpUrl::parse(location);
        }
        if location.starts_with("//") {
            return HttpUrl::parse(&format!("http:{location}"));
        }
        if !location.starts_with('/') {
            return Err(format!("redirect to {location:?}: not an absolute path"));
        }
        HttpUrl::parse(&format!("http://{}{location}", self.host_header()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_get_needs() {
        let u = HttpUrl::parse("http://127.0.0.1:8000/live.mp3").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8000, "/live.mp3")
        );
        let u = HttpUrl::parse("HTTP://radio.example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(u.to_string(), "http://radio.example.org/");
        let u = HttpUrl::parse("http://[::1]:8001?x=1#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 8001, "/?x=1")
        );
        assert_eq!(u.host_header(), "[::1]:8001");
    }

    #[test]
    fn refuses_with_a_reason() {
        let e = |s: &str| HttpUrl::parse(s).unwrap_err();
        assert!(e("https://x/s").starts_with("https:// is not supported"));
        assert!(e("https://x/s").contains("relay"));
        assert!(e("rtsp://x/").contains("only http://"));
        assert!(e("http://:80/").contains("host"));
        assert!(e("http://x:99999/").contains("port"));
        assert!(e("http://x:0/").contains("port"));
        assert!(e("http://u:p@x/").contains("user:password"));
        assert!(e("http://[zz]/").contains("IPv6"));
        assert!(e("http://x/a b").contains("spaces"));
        assert!(e("http://x y/").contains("host"));
    }

    #[test]
    fn redirects_resolve_against_the_url() {
        let u = HttpUrl::parse("http://a:8000/one").unwrap();
        assert_eq!(u.join("/two").unwrap().to_string(), "http://a:8000/two");
        assert_eq!(
            u.join("http://b/three").unwrap().to_string(),
            "http://b/three"
        );
        assert_eq!(u.join("//c:81/x").unwrap().to_string(), "http://c:81/x");
        assert!(u.join("relative").is_err());
        assert!(is_url("http://x") && is_url("https://x") && !is_url("/srv/moh/a.mp3"));
        assert!(!is_url("dir/with://odd"));
    }
}
