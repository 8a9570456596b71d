//! What replay writes for other tools: a pcap that reads back with valid checksums, and JSON that
//! parses and says what the text says.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use onhold_sim::engine::RunConfig;
use onhold_sim::{generate, pcap, replay, report, wire_pcap};

fn hold_unhold() -> onhold_sim::RunResult {
    let (_, bytes) = generate::all()
        .into_iter()
        .find(|(n, _)| n == "dp750-hold-unhold.pcap")
        .unwrap();
    replay(
        "dp750-hold-unhold.pcap",
        &pcap::read_bytes(&bytes).unwrap(),
        &RunConfig::default(),
    )
}

#[test]
fn pcap_out_has_every_datagram_with_valid_udp_checksums() {
    let r = hold_unhold();
    let bytes = wire_pcap(&r.trace);
    let back = pcap::read_bytes(&bytes).unwrap();
    assert_eq!(back.len(), r.trace.wire.len());
    for (d, w) in back.iter().zip(&r.trace.wire) {
        assert_eq!(d.payload, w.bytes);
        assert_eq!(d.at.as_micros(), w.at.as_micros());
    }
    // Walk the frames and verify the IPv4 header and UDP checksums.
    let mut off = 24;
    let mut frames = 0;
    while off < bytes.len() {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let frame = &bytes[off + 16..off + 16 + caplen];
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("IPv4 expected")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Udp(u)) = &p.transport else {
            panic!("UDP expected")
        };
        let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
        assert_eq!(u.checksum(), want);
        off += 16 + caplen;
        frames += 1;
    }
    assert_eq!(frames, back.len());
}

#[test]
fn json_report_parses_and_agrees_with_the_text() {
    let r = hold_unhold();
    let v: serde_json::Value = serde_json::from_str(&report::json(&r)).unwrap();
    assert_eq!(v["capture"], "dp750-hold-unhold.pcap");
    assert_eq!(v["pass"], r.passed());
    assert_eq!(
        v["media"][0]["segments"], 2,
        "hold then resume: two sending segments"
    );
    let lines = v["timeline"].as_array().unwrap();
    assert!(lines[0]["line"]
        .as_str()
        .unwrap()
        .starts_with("→ INVITE sip:123@192.168.1.100:5060"));
    assert!(report::text(&r).contains("+0.000000 → INVITE sip:123@192.168.1.100:5060"));
}
