//! The seed messages: RFC 4475's torture tests, the SIP of the DP750 captures, and one
//! well-formed request of each kind the fuzzer writes.

use std::path::Path;

use onhold_core::Transport;

use super::generate::{self, Leg};
use super::msg::Msg;
use crate::rng::Rng;

/// Every seed, in a fixed order: files sorted by name, then the generated ones.
pub fn load(rng: &mut Rng) -> Vec<Msg> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = torture(&root.join("../core/tests/torture"));
    seeds.extend(captures(&crate::synthetic_captures_dir()));
    seeds.extend(generated(rng));
    seeds
}

/// `*.sip` of a directory (RFC 4475 §3), as written.
pub fn torture(dir: &Path) -> Vec<Msg> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| Msg::parse(&b))
        .collect()
}

/// The SIP datagrams (requests and responses) of every capture in a directory.
pub fn captures(dir: &Path) -> Vec<Msg> {
    let Ok(files) = crate::captures_in(dir) else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    for f in files {
        let Ok(datagrams) = crate::pcap::read_file(&f) else {
            continue;
        };
        seeds.extend(
            datagrams
                .iter()
                .filter(|d| onhold_core::sip::parse(&d.payload).is_ok())
                .map(|d| Msg::parse(&d.payload)),
        );
    }
    seeds
}

/// One request of each method a call uses, with an offer where one goes, from a phone.
fn generated(rng: &mut Rng) -> Vec<Msg> {
    let peer = generate::peers()[0];
    let mut leg = Leg::new(rng, 0, peer, Transport::Udp);
    let mut out = Vec::new();
    let offer = leg.sdp("sendrecv");
    out.push(leg.next("INVITE", Some(offer)).0);
    leg.to_tag = "a1b2c3d4e5f60718".into();
    out.push(leg.next("ACK", None).0);
    for dir in ["sendonly", "sendrecv", "inactive"] {
        let sdp = leg.sdp(dir);
        out.push(leg.next("INVITE", Some(sdp)).0);
    }
    let sdp = leg.sdp("sendrecv");
    out.push(leg.next("UPDATE", Some(sdp)).0);
    out.push(
        leg.next("INFO", Some(b"Signal=1\r\nDuration=100\r\n".to_vec()))
            .0,
    );
    out.push(leg.next("OPTIONS", None).0);
    out.push(leg.next("BYE", None).0);
    let mut fresh = Leg::new(rng, 1, peer, Transport::Tcp);
    out.push(fresh.next("INVITE", None).0);
    let (cseq, branch) = (fresh.cseq, fresh.next_branch());
    out.push(fresh.request("CANCEL", cseq, &branch, None));
    out.push(generate::stray_response(rng, peer, 2));
    out
}
