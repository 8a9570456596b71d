//! A SIP message as the fuzzer holds it: start line, header lines and body, kept as bytes so
//! that a mutation can work on its structure (swap a line, fold it, inject into a value) and
//! still produce anything at all, not only text.

/// Header names and their compact forms (RFC 3261 §7.3.3 and the registry), for finding a
/// line whatever way it was spelt.
const COMPACT: &[(&str, &str)] = &[
    ("call-id", "i"),
    ("from", "f"),
    ("to", "t"),
    ("via", "v"),
    ("contact", "m"),
    ("content-length", "l"),
    ("content-type", "c"),
    ("supported", "k"),
    ("subject", "s"),
    ("session-expires", "x"),
    ("content-encoding", "e"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub start: Vec<u8>,
    /// Whole header lines without their line end (`Name: value`, or anything a mutation made).
    pub headers: Vec<Vec<u8>>,
    pub body: Vec<u8>,
    /// What ends each line: CRLF, or a bare LF.
    pub eol: &'static [u8],
    /// Write Content-Length from the body (false: the lines say whatever they say).
    pub auto_length: bool,
}

impl Msg {
    pub fn new(start: impl Into<Vec<u8>>) -> Msg {
        Msg {
            start: start.into(),
            headers: Vec::new(),
            body: Vec::new(),
            eol: b"\r\n",
            auto_length: true,
        }
    }

    /// Split a datagram into lines: up to the first empty line the head, then the body. A
    /// datagram without an empty line is all head. Its Content-Length is kept as written.
    pub fn parse(bytes: &[u8]) -> Msg {
        let crlf = find(bytes, b"\r\n\r\n").map(|i| (i, i + 4));
        let lf = find(bytes, b"\n\n").map(|i| (i, i + 2));
        let (head_end, body_start) = match (crlf, lf) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or((bytes.len(), bytes.len())),
        };
        let head = &bytes[..head_end];
        let eol: &'static [u8] = if head.contains(&b'\r') || head.is_empty() {
            b"\r\n"
        } else {
            b"\n"
        };
        let mut lines = head.split(|&b| b == b'\n').map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l.to_vec()
        });
        let start = lines.next().unwrap_or_default();
        Msg {
            start,
            headers: lines.collect(),
            body: bytes[body_start..].to_vec(),
            eol,
            auto_length: false,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Msg {
        self.push(name, value.as_ref());
        self
    }

    pub fn push(&mut self, name: &str, value: &str) {
        let mut line = Vec::with_capacity(name.len() + 2 + value.len());
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b": ");
        line.extend_from_slice(value.as_bytes());
        self.headers.push(line);
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Msg {
        self.push("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// The index of the first line of header `name` (any case, long or compact form).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|l| line_is(l, name))
    }

    /// Every line of header `name`.
    pub fn find_all(&self, name: &str) -> Vec<usize> {
        (0..self.headers.len())
            .filter(|&i| line_is(&self.headers[i], name))
            .collect()
    }

    /// The value of line `i` (after the first colon), untrimmed.
    pub fn value_range(&self, i: usize) -> std::ops::Range<usize> {
        let l = &self.headers[i];
        match l.iter().position(|&b| b == b':') {
            Some(c) => c + 1..l.len(),
            None => l.len()..l.len(),
        }
    }

    /// Replace the value of line `i`, keeping its name as written.
    pub fn set_value(&mut self, i: usize, value: &[u8]) {
        let r = self.value_range(i);
        let l = &mut self.headers[i];
        l.truncate(r.start);
        l.push(b' ');
        l.extend_from_slice(value);
    }

    /// Set header `name` (the first line of it), or add it.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.find(name) {
            Some(i) => self.set_value(i, value.as_bytes()),
            None => self.push(name, value),
        }
    }

    /// The trimmed value of the first line of `name`, as text.
    pub fn get(&self, name: &str) -> Option<String> {
        let i = self.find(name)?;
        let r = self.value_range(i);
        Some(
            String::from_utf8_lossy(&self.headers[i][r])
                .trim()
                .to_string(),
        )
    }

    /// The datagram: lines joined by `eol`, the empty line, the body. With `auto_length` the
    /// first Content-Length line says the body's length (one is added at the end if none was
    /// there) and any other is dropped.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_within(usize::MAX)
    }

    /// [`Msg::to_bytes`] cut at `limit` bytes (writing stops there: a mutation may have made
    /// the message far larger than a datagram).
    pub fn to_bytes_within(&self, limit: usize) -> Vec<u8> {
        let size = self.start.len()
            + self.headers.iter().map(|h| h.len() + 2).sum::<usize>()
            + self.body.len()
            + 32;
        let mut out = Vec::with_capacity(size.min(limit));
        out.extend_from_slice(&self.start);
        out.extend_from_slice(self.eol);
        let mut length_written = false;
        for h in &self.headers {
            if out.len() >= limit {
                out.truncate(limit);
                return out;
            }
            if self.auto_length && line_is(h, "content-length") {
                if length_written {
                    continue;
                }
                length_written = true;
                out.extend_from_slice(format!("Content-Length: {}", self.body.len()).as_bytes());
            } else {
                out.extend_from_slice(h);
            }
            out.extend_from_slice(self.eol);
        }
        if self.auto_length && !length_written {
            out.extend_from_slice(format!("Content-Length: {}", self.body.len()).as_bytes());
            out.extend_from_slice(self.eol);
        }
        out.extend_from_slice(self.eol);
        out.extend_from_slice(&self.body[..self.body.len().min(limit.saturating_sub(out.len()))]);
        out.truncate(limit);
        out
    }
}

/// Is this header line one of `name` (case-insensitive, long or compact form)?
pub fn line_is(line: &[u8], name: &str) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let n = line[..colon].trim_ascii();
    if n.eq_ignore_ascii_case(name.as_bytes()) {
        return true;
    }
    let is = |a: &str, b: &[u8]| a.as_bytes().eq_ignore_ascii_case(b);
    COMPACT.iter().any(|(long, short)| {
        (is(long, name.as_bytes()) && is(short, n)) || (is(short, name.as_bytes()) && is(long, n))
    })
}

/// Where `needle` first occurs in `hay` (the core's byte scan for its first byte).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(p) = onhold_core::sip::find_byte(&hay[from..], first) {
        let at = from + p;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip() {
        let text = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: x\r\nContent-Length: 3\r\n\r\nabc";
        let m = Msg::parse(text);
        assert_eq!(m.to_bytes(), text);
        assert_eq!(m.get("Call-ID").as_deref(), Some("x"));
        assert_eq!(m.body, b"abc");
        let mut m = m;
        m.auto_length = true;
        m.body = b"hello".to_vec();
        let out = String::from_utf8(m.to_bytes()).unwrap();
        assert!(out.contains("Content-Length: 5\r\n\r\nhello"), "{out}");
        let lf = Msg::parse(b"BYE sip:a@b SIP/2.0\nTo: x\n\nbody");
        assert_eq!(lf.eol, b"\n");
        assert_eq!(lf.headers, vec![b"To: x".to_vec()]);
        assert_eq!(lf.body, b"body");
    }
}
