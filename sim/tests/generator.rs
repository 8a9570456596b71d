//! The committed synthetic captures are exactly what `onhold-sim generate` writes.

use onhold_probe::msg::Message;
use onhold_sim::{captures_in, generate, pcap, synthetic_captures_dir};

#[test]
fn committed_captures_match_the_generator() {
    let dir = synthetic_captures_dir();
    let generated = generate::all();
    for (name, bytes) in &generated {
        let path = dir.join(name);
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `onhold-sim generate`", path.display()));
        assert!(
            committed == *bytes,
            "{} drifted from the generator; run `onhold-sim generate` and review the diff",
            path.display()
        );
    }
    let on_disk = captures_in(&dir).expect("tests/captures");
    assert_eq!(
        on_disk.len(),
        generated.len(),
        "tests/captures holds files the generator does not make: {on_disk:?}"
    );
}

#[test]
fn generator_is_deterministic() {
    assert_eq!(generate::all(), generate::all());
}

#[test]
fn dp750_invites_keep_the_firmware_shape() {
    for (name, bytes) in generate::all() {
        let datagrams = pcap::read_bytes(&bytes).expect("readable");
        let invite = datagrams
            .iter()
            .find_map(|d| Message::parse(&d.payload).filter(|m| m.method() == Some("INVITE")))
            .unwrap_or_else(|| panic!("{name}: no INVITE"));
        let names = invite.header_names();
        let firmware = [
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Contact",
            "Max-Forwards",
            "User-Agent",
            "Privacy",
            "P-Preferred-Identity",
            "Supported",
            "Allow",
        ];
        assert_eq!(&names[..firmware.len()], &firmware, "{name}: header order");
        assert_eq!(names.last(), Some(&"Content-Length"), "{name}");
        assert!(
            invite
                .header("user-agent")
                .unwrap()
                .starts_with("Grandstream DP750 1.0."),
            "{name}"
        );
        assert!(
            invite
                .call_id()
                .unwrap_or_default()
                .ends_with("@BJC.BGI.B.FA"),
            "{name}"
        );
        let branch = invite.top_via_branch().unwrap();
        assert!(
            branch
                .strip_prefix("z9hG4bK")
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit()),
            "{name}: {branch}"
        );
        assert!(
            invite
                .from_tag()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit()),
            "{name}"
        );
        let raw = String::from_utf8_lossy(
            &datagrams
                .iter()
                .find(|d| d.payload.starts_with(b"INVITE"))
                .unwrap()
                .payload,
        )
        .into_owned();
        assert!(
            raw.contains("\r\nContent-Length:   "),
            "{name}: padded Content-Length"
        );
        assert_eq!(
            invite.body.len(),
            invite
                .header("content-length")
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap(),
            "{name}: exact body length"
        );
    }
}
