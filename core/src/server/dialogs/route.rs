//! Where a request we send inside a dialog goes (RFC 3261 §12.2.1.1, §8.1.2): its Request-URI,
//! its Route headers and the next hop, from the dialog's route set and remote target.
//!
//! A route set whose first URI has `;lr` is loose: the Request-URI is the remote target and
//! every route becomes a Route header. Without `;lr` the first hop is a strict router
//! (RFC 2543): it goes in the Request-URI, the other routes follow as Route headers, and the
//! remote target is the last Route. The next hop is the first route, or the remote target when
//! there is none; a host name there is resolved by the runtime (RFC 3263), never by the core.

use std::net::SocketAddr;

pub(crate) use super::super::Hop;
use crate::ascii;
use crate::sip::{Scheme, Uri};

/// The Request-URI, Route headers and next hop of the requests we send in a dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub request_uri: String,
    pub routes: Vec<String>,
    pub hop: Hop,
}

impl Plan {
    /// `route_set`: the Record-Route values of the request that made the dialog, in order (as
    /// written: `<sip:proxy;lr>`); `target`: the remote target URI. `natted`: the caller's Via
    /// shows it is behind a NAT, so with no route set its target is unreachable and
    /// `source`, where its requests come from, is the next hop.
    pub fn new(route_set: &[String], target: &str, natted: bool, source: SocketAddr) -> Plan {
        let Some(first) = route_set.first() else {
            let hop = if natted {
                Hop::Addr(source)
            } else {
                hop_of(target).unwrap_or(Hop::Addr(source))
            };
            return Plan {
                request_uri: target.to_string(),
                routes: Vec::new(),
                hop,
            };
        };
        let first_uri = uri_of(first);
        let hop = hop_of(first_uri).unwrap_or(Hop::Addr(source));
        // A first route that does not parse is no strict router we could write as a
        // Request-URI: it stays a Route header, which is cleaned like any header value.
        let loose = Uri::parse(first_uri).map_or(true, |u| u.params.has("lr"));
        if loose {
            return Plan {
                request_uri: target.to_string(),
                routes: route_set.to_vec(),
                hop,
            };
        }
        // RFC 3261 §12.2.1.1: the strict router's URI is the Request-URI (without headers, which
        // a Request-URI cannot carry); the remote target is appended as the last route.
        let request_uri = match first_uri.find('?') {
            Some(q) => &first_uri[..q],
            None => first_uri,
        };
        let mut routes: Vec<String> = route_set[1..].to_vec();
        routes.push(format!("<{target}>"));
        Plan {
            request_uri: request_uri.to_string(),
            routes,
            hop,
        }
    }
}

/// The URI in a route-set entry: the part in angle brackets of a name-addr, else the value.
fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    }
}

/// The hop a route-set entry (`<sip:proxy;lr>`) names.
pub(crate) fn hop_of_route(value: &str) -> Option<Hop> {
    hop_of(uri_of(value))
}

/// The hop a SIP URI names: its address when the host is an IP literal (port defaulted by
/// scheme, RFC 3263 §4.2), else the host name to resolve. `None` for a URI that does not parse
/// or names the unspecified address, which no request can reach.
fn hop_of(uri: &str) -> Option<Hop> {
    let u = Uri::parse(uri).ok()?;
    let host = u.host_unbracketed();
    if let Ok(ip) = ascii::parse_ip(host) {
        if ip.is_unspecified() {
            return None;
        }
        let default = if matches!(u.scheme, Scheme::Sips) {
            5061
        } else {
            5060
        };
        return Some(Hop::Addr(SocketAddr::new(ip, u.port.unwrap_or(default))));
    }
    if host.is_empty() {
        return None;
    }
    Some(Hop::Name {
        host: host.to_ascii_lowercase(),
        port: u.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "192.0.2.9:5070".parse().unwrap()
    }

    #[test]
    fn no_route_set_goes_to_the_remote_target() {
        let p = Plan::new(&[], "sip:201@192.0.2.50:5062", false, source());
        assert_eq!(p.request_uri, "sip:201@192.0.2.50:5062");
        assert!(p.routes.is_empty());
        assert_eq!(p.hop, Hop::Addr("192.0.2.50:5062".parse().unwrap()));
        // Behind a NAT the target is unreachable: the source address is the hop.
        let p = Plan::new(&[], "sip:201@10.0.0.5", true, source());
        assert_eq!(p.hop, Hop::Addr(source()));
        // A target host name is resolved.
        let p = Plan::new(&[], "sip:201@Phone.Example;transport=tcp", false, source());
        let name = Hop::Name {
            host: "phone.example".into(),
            port: None,
        };
        assert_eq!(p.hop, name);
    }

    #[test]
    fn a_loose_route_set_keeps_the_target_as_request_uri() {
        let rs = vec![
            "<sip:proxy.example:5076;lr>".to_string(),
            "<sip:10.0.0.8;lr>".to_string(),
        ];
        let p = Plan::new(&rs, "sip:201@192.0.2.50", false, source());
        assert_eq!(p.request_uri, "sip:201@192.0.2.50");
        assert_eq!(p.routes, rs);
        let name = Hop::Name {
            host: "proxy.example".into(),
            port: Some(5076),
        };
        assert_eq!(p.hop, name);
        // The route hop wins over a NAT guess: the proxy is where requests go.
        let rs = vec!["<sip:10.0.0.7:5070;lr>".to_string()];
        let p = Plan::new(&rs, "sip:201@10.1.1.1", true, source());
        assert_eq!(p.hop, Hop::Addr("10.0.0.7:5070".parse().unwrap()));
    }

    /// RFC 3261 §12.2.1.1: a first route without `;lr` is a strict router.
    #[test]
    fn a_strict_router_takes_the_request_uri_and_the_target_goes_last() {
        let rs = vec![
            "<sip:10.0.0.7:5070;maddr=x>".to_string(),
            "<sip:10.0.0.8;lr>".to_string(),
        ];
        let p = Plan::new(&rs, "sip:201@192.0.2.50:5060", false, source());
        assert_eq!(p.request_uri, "sip:10.0.0.7:5070;maddr=x");
        assert_eq!(p.routes, ["<sip:10.0.0.8;lr>", "<sip:201@192.0.2.50:5060>"]);
        assert_eq!(p.hop, Hop::Addr("10.0.0.7:5070".parse().unwrap()));
        let rs = vec!["<sips:strict.example?h=1>".to_string()];
        let p = Plan::new(&rs, "sip:201@192.0.2.50", false, source());
        assert_eq!(p.request_uri, "sips:strict.example");
        assert_eq!(p.routes, ["<sip:201@192.0.2.50>"]);
    }

    #[test]
    fn an_unreadable_hop_falls_back_to_the_source() {
        let rs = vec!["<garbage>".to_string()];
        let p = Plan::new(&rs, "sip:201@192.0.2.50", false, source());
        assert_eq!(p.hop, Hop::Addr(source()));
        let p = Plan::new(&[], "nonsense", false, source());
        assert_eq!(p.hop, Hop::Addr(source()));
        let p = Plan::new(&[], "sip:moh@0.0.0.0", false, source());
        assert_eq!(p.hop, Hop::Addr(source()));
    }
}
