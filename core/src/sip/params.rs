//! `;name[=value]` parameter lists, borrowed and scanned lazily (RFC 3261 §19.1.1, §20, §25.1).
//!
//! Used for URI parameters, Via parameters and header parameters of name-addrs. Nothing is
//! collected: a lookup walks the raw text, which for the handful of parameters SIP headers
//! carry is cheaper than building a map.

use std::fmt;

use super::lex::{is_token_byte, trim_lws, SplitTop};

/// A parameter list: the text after the first `;`, without it.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Wraps the text after the first `;` (e.g. `branch=z9hG4bK1;rport`).
    pub fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The list as sent, without the leading `;`.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        trim_lws(self.raw).is_empty()
    }

    /// Each parameter as `(name, value)`; a valueless parameter (`;lr`, `;rport`) has `None`.
    /// Names and values are trimmed of LWS; quoted values keep their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        SplitTop::new(self.raw, b';')
            .filter(|p| !p.is_empty())
            .map(|p| match eq_at(p) {
                Some(eq) => (trim_lws(&p[..eq]), Some(trim_lws(&p[eq + 1..]))),
                None => (p, None),
            })
    }

    /// `None`: absent. `Some(None)`: present without value. `Some(Some(v))`: `name=v`.
    /// Parameter names compare case-insensitively (RFC 3261 §19.1.4, §7.3.1).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of `name=value`, `None` when absent or valueless.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// True when `name` is present, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Checks the shape RFC 3261 §25.1 `generic-param` allows: a token name and, if present, a
    /// non-empty value. Values are not checked further: hosts, tokens and quoted strings all
    /// occur, and the typed accessors check the ones the server uses.
    pub(crate) fn well_formed(&self) -> bool {
        if let Some(ok) = plain_well_formed(self.raw.as_bytes()) {
            return ok;
        }
        if trim_lws(self.raw).is_empty() {
            return true;
        }
        SplitTop::new(self.raw, b';').all(|p| {
            let (name, value) = match eq_at(p) {
                Some(eq) => (trim_lws(&p[..eq]), Some(trim_lws(&p[eq + 1..]))),
                None => (p, None),
            };
            super::lex::is_token(name) && value.is_none_or(|v| !v.is_empty())
        })
    }
}

/// [`Params::well_formed`] in one pass for the usual list: only token bytes, `=` and `;`
/// (`tag=1928301774`, `branch=z9hG4bK776;rport`). With no quotes, brackets or LWS the list
/// splits at every `;` and nothing needs trimming, so each parameter is just a non-empty name
/// and, after the first `=`, a non-empty value. `None` means some other byte occurs: the
/// general path decides. It runs on every Via, From, To and Contact the server reads.
fn plain_well_formed(raw: &[u8]) -> Option<bool> {
    if raw.is_empty() {
        return Some(true);
    }
    // A parameter `raw[start..end]` with its first `=` at `eq` is well formed when its name
    // is not empty and, given an `=`, its value is not either.
    let ok_param = |start: usize, eq: Option<usize>, end: usize| match eq {
        None => end > start,
        Some(eq) => eq > start && end > eq + 1,
    };
    let mut ok = true;
    let (mut start, mut eq) = (0, None);
    for (i, &b) in raw.iter().enumerate() {
        // Token bytes are nearly all of the list: one table lookup and on to the next.
        if is_token_byte(b) {
            continue;
        }
        match b {
            b'=' => {
                if eq.is_none() {
                    eq = Some(i);
                }
            }
            b';' => {
                ok &= ok_param(start, eq, i);
                (start, eq) = (i + 1, None);
            }
            _ => return None,
        }
    }
    Some(ok && ok_param(start, eq, raw.len()))
}

/// Position of the first `=`: a plain loop, since a parameter is a few bytes and `str::find`
/// spends more on setting up its word-wise search than on searching.
#[inline]
fn eq_at(p: &str) -> Option<usize> {
    p.bytes().position(|b| b == b'=')
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        let p = Params::new("branch=z9hG4bK1 ; RPORT;received=10.0.0.1;x=\"a;b\"");
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.value("received"), Some("10.0.0.1"));
        assert_eq!(p.value("x"), Some("\"a;b\""));
        assert_eq!(p.get("maddr"), None);
        assert!(p.has("Branch"));
        assert_eq!(p.iter().count(), 4);
        assert!(p.well_formed());
    }

    #[test]
    fn plain_path_agrees_with_general_path() {
        let general = |raw: &str| {
            trim_lws(raw).is_empty()
                || SplitTop::new(raw, b';').all(|p| {
                    let (name, value) = match eq_at(p) {
                        Some(eq) => (trim_lws(&p[..eq]), Some(trim_lws(&p[eq + 1..]))),
                        None => (p, None),
                    };
                    super::super::lex::is_token(name) && value.is_none_or(|v| !v.is_empty())
                })
        };
        for raw in [
            "",
            ";",
            ";;",
            "a",
            "a;",
            ";a",
            "a=",
            "=a",
            "a==",
            "a==b",
            "a=b=c",
            "a;b",
            "a=1;b",
            "a=1;;b",
            "tag=1928301774",
            "branch=z9hG4bK776;rport",
            "a;=",
            "lr;x=",
            "a b",
            "a=\"x\"",
            "a=1 ",
            " a",
        ] {
            let plain = plain_well_formed(raw.as_bytes());
            assert!(plain.is_none_or(|p| p == general(raw)), "{raw:?}");
            assert_eq!(Params::new(raw).well_formed(), general(raw), "{raw:?}");
        }
    }

    #[test]
    fn empty_and_malformed() {
        assert!(Params::new("").is_empty());
        assert_eq!(Params::new("").iter().count(), 0);
        assert!(!Params::new("a=").well_formed());
        assert!(!Params::new("a b=1").well_formed());
        assert!(!Params::new(";;").well_formed());
    }
}
