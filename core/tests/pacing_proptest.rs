//! Pacing under arbitrary wake-up schedules: whatever the runtime does (late, early, bursty),
//! no packet leaves before its grid slot, catch-up stays bounded, seq is contiguous and the
//! timestamp advances by exactly the samples of the packets sent plus the skips counted as Late.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::{Event, ServerConfig};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn grid_holds_under_any_wake_schedule(
        ptime in prop::sample::select(vec![10u32, 20, 30, 40, 60]),
        max_catchup in 0u32..5,
        // (gap in µs until the next wake-up); gaps up to 400 ms make late wake-ups common
        gaps in prop::collection::vec(0u64..400_000, 1..150),
    ) {
        let config = ServerConfig { max_catchup_frames: max_catchup, ..ServerConfig::default() };
        let mut h = Harness::with(config, onhold_core::media::Library::silence());
        let mut c = Dp750::new(0);
        let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv").replace("a=ptime:20", &format!("a=ptime:{ptime}"));
        h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
        c.to_tag = h.response("SIP/2.0 200").to_tag();
        h.send(PHONE, &c.ack(None));
        let start = h.elapsed();
        for gap in gaps {
            // wake at arbitrary times, not at the deadlines the server asked for
            h.now += Duration::from_micros(gap);
            h.server.handle_timeout(h.now);
            h.drain();
        }
        let rtp = h.rtp();
        prop_assert!(!rtp.is_empty());
        let frame = ptime * 8;
        let ts0 = rtp[0].rtp_ts();
        let slot = Duration::from_millis(ptime as u64);
        let mut burst = (Duration::ZERO, 0u32);
        for (i, p) in rtp.iter().enumerate() {
            prop_assert_eq!(p.rtp_seq(), rtp[0].rtp_seq().wrapping_add(i as u16), "seq contiguous");
            let k = p.rtp_ts().wrapping_sub(ts0) / frame;
            prop_assert_eq!(p.rtp_ts().wrapping_sub(ts0) % frame, 0, "ts on whole frames");
            let due = start + slot * k;
            prop_assert!(p.at >= due, "packet {} sent at {:?} before its slot {:?}", i, p.at, due);
            prop_assert!(p.at - due < slot * (max_catchup + 1), "packet {} is {:?} late: beyond the catch-up bound", i, p.at - due);
            if p.at == burst.0 { burst.1 += 1 } else { burst = (p.at, 1) }
            prop_assert!(burst.1 <= max_catchup + 1, "{} packets in one wake-up", burst.1);
        }
        let last_k = rtp[rtp.len() - 1].rtp_ts().wrapping_sub(ts0) / frame;
        let skipped: u32 = h.events.iter().map(|(_, e)| match e { Event::Late { skipped, .. } => *skipped, _ => 0 }).sum();
        prop_assert_eq!(last_k + 1, rtp.len() as u32 + skipped, "every grid slot was sent or counted as skipped");
        prop_assert_eq!(h.server.stats().late_skipped_frames, skipped as u64);
    }
}
