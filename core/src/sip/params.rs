//! `;name[=value]` parameter lists, borrowed and scanned lazily (RFC 3261 §19.1.1, §20, §25.1).
//!
//! Used for URI parameters, Via parameters and header parameters of name-addrs. Nothing is
//! collected: a lookup walks the raw text, which for the handful of parameters SIP headers
//! carry is cheaper than building a map.

use std::fmt;

use super::lex::{trim_lws, SplitTop};

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
    fn well_formed_lists() {
        for (raw, ok) in [
            ("", true),
            (";", false),
            (";;", false),
            ("a", true),
            ("a;", false),
            (";a", false),
            ("a=", false),
            ("=a", false),
            ("a==", true),
            ("a==b", true),
            ("a=b=c", true),
            ("a;b", true),
            ("a=1;b", true),
            ("a=1;;b", false),
            ("tag=1928301774", true),
            ("branch=z9hG4bK776;rport", true),
            ("a;=", false),
            ("lr;x=", false),
            ("a b", false),
            ("a=\"x\"", true),
            ("a=1 ", true),
            (" a", true),
            (" ; a", false),
            ("a = 1 ; b", true),
        ] {
            assert_eq!(Params::new(raw).well_formed(), ok, "{raw:?}");
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
