//! Library building (classes, playlists, directory tolerance, announcements) and the program
//! position maths behind `fill`.

use std::time::Duration;

use onhold_core::media::g711::{linear_to_alaw, linear_to_ulaw};
use onhold_core::media::{
    g722, ClassId, ClassSpec, Encoded, G722Cursor, Library, LibrarySpec, MusicSource, Order,
    PlayMode, Program, ProgramBuilder,
};
use onhold_core::Codec;

/// A mono 16-bit WAV at 8 kHz holding `samples`.
fn wav8k(samples: &[i16]) -> Vec<u8> {
    wav(8000, samples)
}

fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(2 * rate).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// `n` samples of a constant level: at 8 kHz the G.711 bytes of the class are then known
/// exactly (8 kHz input is not resampled for G.711).
fn source(name: &str, level: i16, n: usize) -> MusicSource {
    MusicSource {
        name: name.into(),
        bytes: wav8k(&vec![level; n]),
    }
}

fn class(name: &str, sources: Vec<MusicSource>) -> ClassSpec {
    ClassSpec {
        name: name.into(),
        sources,
        from_directory: false,
        order: Order::Sorted,
        mode: PlayMode::PerCall,
        announcement: None,
        live: None,
    }
}

fn spec(classes: Vec<ClassSpec>) -> LibrarySpec {
    LibrarySpec {
        classes,
        normalize: false,
        gain_db: 0.0,
        g722: true,
    }
}

fn pcmu(lib: &Library, class: ClassId, pos: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    lib.fill(class, Codec::Pcmu, pos, &mut out);
    out
}

#[test]
fn classes_by_user_part_with_default_fallback() {
    let mut sales = class("sales", vec![source("s.wav", 1000, 800)]);
    sales.mode = PlayMode::Shared;
    let (lib, warnings) = Library::build(
        &spec(vec![
            class("default", vec![source("d.wav", 0, 1600)]),
            sales,
        ]),
        1,
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(lib.class_for("sales"), ClassId(1));
    assert_eq!(
        lib.class_for("Sales"),
        ClassId(0),
        "user parts are case-sensitive"
    );
    assert_eq!(lib.class_for("123"), ClassId(0));
    assert_eq!(lib.class_for(""), ClassId(0));
    assert_eq!(lib.mode(ClassId(1)), PlayMode::Shared);
    assert_eq!(lib.mode(ClassId(0)), PlayMode::PerCall);
    assert_eq!(lib.program_len(ClassId(0)), 1600);
    assert_eq!(lib.program_len(ClassId(1)), 800);
    assert_eq!(lib.class_name(ClassId(1)), "sales");
    // An unknown class id plays the default class rather than panicking.
    assert_eq!(lib.program_len(ClassId(9)), 1600);
    let s = lib.summary();
    assert!(!s.contains('\n'));
    assert!(s.starts_with("2 music classes, 2 tracks"), "{s}");
    assert!(s.contains("sales (1 track"), "{s}");
}

#[test]
fn no_default_class_falls_back_to_the_first_with_a_warning() {
    let (lib, warnings) =
        Library::build(&spec(vec![class("moh", vec![source("a.wav", 0, 80)])]), 1).unwrap();
    assert_eq!(lib.class_for("anything"), ClassId(0));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("moh"));
}

#[test]
fn playlist_concatenates_in_name_order_and_wraps() {
    // b.wav sorts after a.wav whatever the given order; each holds a distinct level.
    let (lib, _) = Library::build(
        &spec(vec![class(
            "default",
            vec![source("b.wav", -5000, 300), source("a.wav", 3000, 500)],
        )]),
        1,
    )
    .unwrap();
    let c = ClassId(0);
    let names: Vec<&str> = lib.tracks(c).iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a.wav", "b.wav"]);
    assert_eq!(lib.tracks(c)[1].start, 500);
    assert_eq!(lib.program_len(c), 800);
    let (a, b) = (linear_to_ulaw(3000), linear_to_ulaw(-5000));
    // Across the boundary between the items.
    let got = pcmu(&lib, c, 490, 20);
    assert_eq!(got[..10], [a; 10]);
    assert_eq!(got[10..], [b; 10]);
    // Across the loop end back into the first item, and from a position many loops on.
    let got = pcmu(&lib, c, 790 + 800 * 1000, 20);
    assert_eq!(got[..10], [b; 10]);
    assert_eq!(got[10..], [a; 10]);
    // A buffer longer than the whole program wraps several times.
    let got = pcmu(&lib, c, 0, 2000);
    assert_eq!(got[..800], got[800..1600]);
    assert_eq!(got[1600..], got[..400]);
    // PCMA agrees with the same samples.
    let mut out = [0u8; 4];
    lib.fill(c, Codec::Pcma, 498, &mut out);
    assert_eq!(
        out,
        [
            linear_to_alaw(3000),
            linear_to_alaw(3000),
            linear_to_alaw(-5000),
            linear_to_alaw(-5000)
        ]
    );
    // Every codec has the same program length; G.722 too (one byte per 1/8000 s).
    let mut g = vec![0u8; 800];
    lib.fill(c, Codec::G722, 0, &mut g);
    assert_eq!(lib.slice(c, Codec::G722, 0, 10_000).len(), 800);
    assert_eq!(lib.slice(c, Codec::Pcmu, 799, 160), &[b]);
}

#[test]
fn fill_survives_extreme_positions_and_empty_buffers() {
    let lib = Library::silence();
    let mut out = [0u8; 160];
    lib.fill(ClassId(0), Codec::Pcmu, u64::MAX, &mut out);
    assert!(out.iter().all(|&b| b == 0xFF));
    lib.fill(ClassId(0), Codec::Pcma, u64::MAX - 5, &mut out);
    assert!(out.iter().all(|&b| b == 0xD5));
    lib.fill(ClassId(0), Codec::G722, 7, &mut []);
    lib.fill(ClassId(0), Codec::G722, u64::MAX, &mut out);
    let mut cursor = onhold_core::media::G722Cursor::at_start();
    lib.fill_g722(ClassId(0), &mut cursor, u64::MAX - 5, &mut out);
    assert_eq!(lib.program_len(ClassId(0)), 8000);
}

#[test]
fn shuffle_is_seeded() {
    let sources: Vec<MusicSource> = (0..8)
        .map(|i| source(&format!("{i}.wav"), i as i16 * 100, 80))
        .collect();
    let order = |seed| {
        let mut c = class("default", sources.clone());
        c.order = Order::Shuffled;
        let (lib, _) = Library::build(&spec(vec![c]), seed).unwrap();
        lib.tracks(ClassId(0))
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(7), order(7));
    assert_ne!(order(7), order(8));
    let mut sorted = order(7);
    sorted.sort();
    assert_eq!(
        sorted,
        (0..8).map(|i| format!("{i}.wav")).collect::<Vec<_>>()
    );
}

#[test]
fn directory_class_skips_bad_files_with_warnings() {
    let mut c = class(
        "default",
        vec![
            MusicSource {
                name: "music/broken.mp3".into(),
                bytes: b"not audio".to_vec(),
            },
            source("music/good.wav", 100, 800),
            MusicSource {
                name: "music/empty.wav".into(),
                bytes: vec![],
            },
        ],
    );
    c.from_directory = true;
    let (lib, warnings) = Library::build(&spec(vec![c.clone()]), 1).unwrap();
    assert_eq!(lib.tracks(ClassId(0)).len(), 1);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("music/broken.mp3: "),
        "{warnings:?}"
    );
    assert!(warnings[1].starts_with("music/empty.wav: "), "{warnings:?}");

    // Nothing playable left: the class fails, naming the class.
    c.sources.remove(1);
    let err = Library::build(&spec(vec![c.clone()]), 1).unwrap_err();
    assert_eq!(err.file(), "class default");
    assert!(err.to_string().contains("2 file(s) skipped"), "{err}");

    // Not a directory: the first bad file is fatal and named.
    c.from_directory = false;
    let err = Library::build(&spec(vec![c]), 1).unwrap_err();
    assert!(err.to_string().starts_with("music/broken.mp3: "), "{err}");
}

#[test]
fn configuration_errors() {
    assert!(Library::build(&spec(vec![]), 1).is_err());
    let dup = spec(vec![
        class("x", vec![source("a.wav", 0, 80)]),
        class("x", vec![source("b.wav", 0, 80)]),
    ]);
    assert_eq!(
        Library::build(&dup, 1).unwrap_err().to_string(),
        "class x: defined twice"
    );
    let err = Library::build(&spec(vec![class("default", vec![])]), 1).unwrap_err();
    assert_eq!(err.to_string(), "class default: no music files");
}

#[test]
fn normalisation_and_gain() {
    let quiet = vec![source("q.wav", 1000, 800)];
    let mut s = spec(vec![class("default", quiet)]);
    s.normalize = true;
    let (lib, _) = Library::build(&s, 1).unwrap();
    // Peak normalised to -1 dBFS: 0.891 of full scale.
    let want = linear_to_ulaw((0.891 * 32767.0) as i16);
    assert_eq!(pcmu(&lib, ClassId(0), 400, 1)[0], want);
    // +20 dB on a half-scale signal clips at full scale instead of wrapping.
    let mut s = spec(vec![class("default", vec![source("h.wav", 16000, 800)])]);
    s.gain_db = 20.0;
    let (lib, _) = Library::build(&s, 1).unwrap();
    assert_eq!(pcmu(&lib, ClassId(0), 400, 1)[0], linear_to_ulaw(i16::MAX));
    s.gain_db = -6.0206;
    let (lib, _) = Library::build(&s, 1).unwrap();
    assert_eq!(pcmu(&lib, ClassId(0), 400, 1)[0], linear_to_ulaw(8000));
}

/// A reference model of the announcement schedule: walk the program one unit at a time.
fn model<T: Copy>(music: &[T], ann: &[T], every: usize, len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    let mut m = 0;
    while out.len() < len {
        for _ in 0..every {
            out.push(music[m % music.len()]);
            m += 1;
        }
        out.extend_from_slice(ann);
    }
    out.truncate(len);
    out
}

fn encoded(levels: &[i16]) -> Encoded {
    let pcm16: Vec<i16> = levels.iter().flat_map(|&l| [l, l]).collect();
    Encoded::encode(levels, &pcm16, true)
}

proptest::proptest! {
    /// Any playlist length, announcement length and interval: `fill` agrees with the model
    /// from any position, for any buffer length.
    #[test]
    fn fill_matches_the_model(
        music_len in 1usize..300,
        ann_len in 0usize..80,
        every in 1u64..400,
        pos in 0u64..100_000,
        len in 0usize..1500,
    ) {
        let music = encoded(&(0..music_len).map(|i| (i as i16) * 97 - 14000).collect::<Vec<_>>());
        let ann = encoded(&(0..ann_len).map(|i| 15000 + i as i16).collect::<Vec<_>>());
        let p = Program::with_announcement(music.clone(), ann.clone(), every).unwrap();
        let period = p.len() as usize;
        let pos_in = (pos % p.len()) as usize;
        let want = if ann_len == 0 {
            let m = music.get(Codec::Pcmu);
            (0..pos_in + len).map(|i| m[i % m.len()]).collect::<Vec<_>>()
        } else {
            model(music.get(Codec::Pcmu), ann.get(Codec::Pcmu), every as usize, pos_in + len)
        };
        let mut out = vec![0u8; len];
        p.fill(Codec::Pcmu, pos, &mut out);
        proptest::prop_assert_eq!(&out[..], &want[pos_in..]);
        if ann_len > 0 {
            // The model itself repeats with the period the program reports.
            let twice = model(music.get(Codec::Pcmu), ann.get(Codec::Pcmu), every as usize, 2 * period);
            proptest::prop_assert_eq!(&twice[..period], &twice[period..]);
        }
    }
}

#[test]
fn library_is_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Library>();
}

#[test]
fn announcement_positions_follow_the_model() {
    // Music: 1000 distinct-ish units; announcement: 70 units; every 300 units of music.
    let music_pcm: Vec<i16> = (0..1000)
        .map(|i| ((i * 37) % 2000) as i16 * 16 - 16000)
        .collect();
    let ann_pcm: Vec<i16> = (0..70).map(|i| 20000 + i as i16 * 10).collect();
    let music = encoded(&music_pcm);
    let ann = encoded(&ann_pcm);
    let p = Program::with_announcement(music.clone(), ann.clone(), 300).unwrap();
    // 1000 / gcd(1000, 300) = 10 cycles of 370 units.
    assert_eq!(p.len(), 3700);
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let want = model(music.get(codec), ann.get(codec), 300, 3 * 3700);
        // Fill from a spread of positions and lengths, including across the period.
        for pos in (0..3700u64).step_by(53).chain([299, 300, 369, 370, 3699]) {
            for len in [1usize, 7, 160, 371, 1000] {
                let mut out = vec![0u8; len];
                p.fill(codec, pos, &mut out);
                let at = pos as usize;
                assert_eq!(out[..], want[at..at + len], "{codec} {pos} {len}");
                // Whole periods change nothing.
                let mut later = vec![0u8; len];
                p.fill(codec, pos + 3700 * 12345, &mut later);
                assert_eq!(later, out);
            }
        }
    }
    // G.722's input, the 16 kHz PCM, follows the same schedule, two samples a position.
    let pairs = |e: &Encoded| -> Vec<[i16; 2]> {
        let pcm = e.pcm16().expect("kept for G.722");
        pcm.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    };
    let want: Vec<i16> = model(&pairs(&music), &pairs(&ann), 300, 3 * 3700)
        .into_iter()
        .flatten()
        .collect();
    for pos in (0..3700usize).step_by(53).chain([299, 300, 369, 370, 3699]) {
        for len in [1usize, 7, 160, 371, 1000] {
            let mut out = vec![0i16; 2 * len];
            p.fill_pcm16(pos as u64 + 3700 * 7, &mut out);
            assert_eq!(out[..], want[2 * pos..2 * (pos + len)], "{pos} {len}");
        }
    }
    // A G.722 caller from the start is sent one encoding of that PCM from the zero state.
    let mut live = Vec::new();
    g722::Encoder::new().encode(&want, &mut live);
    let mut got = vec![0u8; 3 * 3700];
    p.fill(Codec::G722, 0, &mut got);
    assert_eq!(got, live);
}

#[test]
fn library_with_announcement_reports_the_full_period() {
    // 2.5 s of music (padded to 3 s: cuts sit on whole seconds), an announcement of 0.1 s
    // asked every 1.3 s, which is rounded to 1 s with a warning.
    let mut c = class("default", vec![source("m.wav", 1000, 20_000)]);
    c.announcement = Some((source("ann.wav", -1000, 800), Duration::from_millis(1300)));
    let (lib, warnings) = Library::build(&spec(vec![c.clone()]), 1).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rounded to 1 s"), "{warnings:?}");
    // 24 000 units of music, 8000 between announcements of 800: 3 cycles of 8800.
    assert_eq!(lib.program_len(ClassId(0)), 26_400);
    let (m, a, pad) = (
        linear_to_ulaw(1000),
        linear_to_ulaw(-1000),
        linear_to_ulaw(0),
    );
    let got = pcmu(&lib, ClassId(0), 7990, 20);
    assert_eq!(got[..10], [m; 10]);
    assert_eq!(got[10..], [a; 10]);
    // Cycle 2 resumes at music 16 000 and reaches the 0.5 s of padding at 20 000.
    let got = pcmu(&lib, ClassId(0), 2 * 8800 + 3990, 20);
    assert_eq!(got[..10], [m; 10]);
    assert_eq!(got[10..], [pad; 10]);
    assert!(
        lib.summary().contains("announcement every 1.0s"),
        "{}",
        lib.summary()
    );
    // G.711 bytes, the 16 kHz PCM (two 2-byte samples a position) and the G.722 start up to
    // the first announcement.
    assert_eq!(
        lib.memory_bytes(),
        2 * (24_000 + 800) + 4 * (24_000 + 800) + 8000
    );

    c.announcement = Some((source("ann.wav", -1000, 800), Duration::ZERO));
    assert!(Library::build(&spec(vec![c.clone()]), 1).is_err());
    c.announcement = Some((
        MusicSource {
            name: "ann.mp3".into(),
            bytes: b"junk".to_vec(),
        },
        Duration::from_secs(30),
    ));
    let err = Library::build(&spec(vec![c]), 1).unwrap_err();
    assert!(err.to_string().starts_with("ann.mp3: "), "{err}");
}

/// Two tones (so the music's ADPCM state is busy) at 16 kHz and its 8 kHz decimation.
fn loud_music(seconds: f64) -> (Vec<i16>, Vec<i16>) {
    let n = (seconds * 16000.0) as usize;
    let pcm16: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f64 / 16000.0;
            let tau = 2.0 * std::f64::consts::PI;
            (12000.0 * (tau * 440.0 * t).sin() + 6000.0 * (tau * 1320.0 * t).sin()) as i16
        })
        .collect();
    let pcm8 = pcm16.iter().step_by(2).copied().collect();
    (pcm8, pcm16)
}

/// A quiet 300 Hz announcement.
fn quiet_announcement(seconds: f64) -> (Vec<i16>, Vec<i16>) {
    let n = (seconds * 16000.0) as usize;
    let pcm16: Vec<i16> = (0..n)
        .map(|i| (3000.0 * (2.0 * std::f64::consts::PI * 300.0 * i as f64 / 16000.0).sin()) as i16)
        .collect();
    let pcm8 = pcm16.iter().step_by(2).copied().collect();
    (pcm8, pcm16)
}

/// What a G.722 caller hears across `bytes` of the program from position 0.
fn decode_program(p: &Program, bytes: usize) -> Vec<i16> {
    let mut g = vec![0u8; bytes];
    p.fill(Codec::G722, 0, &mut g);
    let mut out = Vec::new();
    g722::Decoder::new().decode(&g, &mut out);
    out
}

fn peak(x: &[i16]) -> i32 {
    x.iter().map(|&s| (s as i32).abs()).max().unwrap()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn g722_announcement_boundaries_do_not_pop() {
    // 3 s of loud music, an announcement of 0.5 s every 1 s of music.
    let (m8, m16) = loud_music(3.0);
    let (a8, a16) = quiet_announcement(0.5);
    let mut b = ProgramBuilder::new(Some(8000), true);
    b.push(&m8, &m16);
    let p = b.finish(Some((&a8, &a16))).unwrap();
    // Cycles of 1 s music + 0.5 s announcement: 16 000 + 8000 samples at 16 kHz, codec delay 22.
    let cycle = 24_000;
    let out = decode_program(&p, 4 * 12_000);
    for k in 0..3 {
        // Into the announcement: nothing louder than the announcement itself (3000).
        let ann = &out[k * cycle + 16_022..k * cycle + 16_022 + 1600];
        assert!(
            peak(ann) < 3600,
            "pop entering the announcement: {}",
            peak(ann)
        );
        // Back into the music: the first 20 ms as loud as the music later on.
        let back = (k + 1) * cycle + 22;
        let first = rms(&out[back..back + 320]);
        let later = rms(&out[back + 3200..back + 3520]);
        assert!(
            (first / later - 1.0).abs() < 0.2,
            "{first:.0} vs {later:.0}"
        );
    }
}

#[test]
fn g722_caller_is_one_encoding_in_packets_of_any_size() {
    // Music not on the grid (padded), an announcement of odd length.
    let (m8, m16) = loud_music(2.3);
    let (a8, a16) = quiet_announcement(0.07);
    let mut b = ProgramBuilder::new(Some(16_000), true);
    b.push(&m8, &m16);
    let p = b.finish(Some((&a8, &a16))).unwrap();
    // 2.3 s padded to 3 s = 24 000; 2 s between announcements: gcd 8000, 3 cycles of 16 560.
    assert_eq!(p.len(), 3 * (16_000 + 560));
    let period = p.len() as usize;
    let mut pcm = vec![0i16; 2 * 3 * period];
    p.fill_pcm16(0, &mut pcm);
    let mut live = Vec::new();
    g722::Encoder::new().encode(&pcm, &mut live);
    // The pre-encoded start runs to the first announcement.
    assert_eq!(p.run(Codec::G722, 0, usize::MAX), &live[..16_000]);
    assert!(p.run(Codec::G722, 16_000, usize::MAX).is_empty());
    // One caller's cursor, in packets of any size (crossing the start's end, announcements and
    // the loop point anywhere), sends exactly that encoding.
    for step in [1usize, 80, 160, 997, 5000] {
        let mut cursor = G722Cursor::at_start();
        let mut got = vec![0u8; 3 * period];
        for (k, chunk) in got.chunks_mut(step).enumerate() {
            p.fill_g722(&mut cursor, (k * step) as u64, chunk);
        }
        assert!(got == live, "packets of {step}");
        assert!(cursor.is_live());
    }
    // A caller that starts mid-programme is one encoding from the zero state from there.
    let mut cursor = G722Cursor::live();
    let mut got = vec![0u8; period];
    for (k, chunk) in got.chunks_mut(160).enumerate() {
        p.fill_g722(&mut cursor, 12_345 + (k * 160) as u64, chunk);
    }
    let mut want = Vec::new();
    g722::Encoder::new().encode(&pcm[2 * 12_345..2 * (12_345 + period)], &mut want);
    assert!(got == want);
    // And it sounds right across every boundary: no pop anywhere.
    let out = decode_program(&p, 3 * period);
    assert!(peak(&out[100..]) <= 18_500, "peak {}", peak(&out[100..]));
}

#[test]
fn without_g722_nothing_16_khz_is_kept() {
    let (m8, m16) = loud_music(1.0);
    let mut b = ProgramBuilder::new(None, false);
    b.push(&m8, &m16);
    let p = b.finish(None).unwrap();
    assert_eq!(p.memory_bytes(), 2 * 8000);
    assert!(!p.has_g722());
    // A G.722 call regardless (the codecs changed, the music did not): encoded silence.
    let mut out = vec![0u8; 1600];
    p.fill(Codec::G722, 0, &mut out);
    let mut pcm = Vec::new();
    g722::Decoder::new().decode(&out, &mut pcm);
    assert!(peak(&pcm) < 64);
}

#[test]
fn resampled_tracks_keep_g711_and_g722_the_same_length() {
    // 44.1 kHz input of an awkward length: both rates derive from one rounded 8 kHz length.
    let n = 44_101usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| ((i as f64 * 0.07).sin() * 8000.0) as i16)
        .collect();
    let w = wav(44100, &samples);
    let (lib, _) = Library::build(
        &spec(vec![class(
            "default",
            vec![MusicSource {
                name: "odd.wav".into(),
                bytes: w,
            }],
        )]),
        1,
    )
    .unwrap();
    assert_eq!(lib.program_len(ClassId(0)), 8000);
    for codec in [Codec::Pcmu, Codec::Pcma] {
        // From the second pass on, the whole program is one run.
        assert_eq!(lib.slice(ClassId(0), codec, 8000, usize::MAX).len(), 8000);
    }
    // G.722's pre-encoded start is the whole loop.
    assert_eq!(
        lib.slice(ClassId(0), Codec::G722, 0, usize::MAX).len(),
        8000
    );
}

#[test]
fn embedded_default_music_builds() {
    let lib = Library::embedded_default();
    let c = lib.class_for("anyone");
    assert_eq!(lib.class_name(c), "default");
    assert_eq!(lib.program_len(c), 30 * 8000);
    assert_eq!(lib.mode(c), PlayMode::PerCall);
    // Not silence: plenty of distinct codes in every second.
    for codec in Codec::ALL {
        for second in 0..30u64 {
            let mut out = vec![0u8; 8000];
            lib.fill(c, codec, second * 8000, &mut out);
            let mut seen = [false; 256];
            out.iter().for_each(|&b| seen[b as usize] = true);
            let distinct = seen.iter().filter(|&&s| s).count();
            assert!(distinct > 30, "{codec} second {second}: {distinct} codes");
        }
    }
    // G.711 bytes, the 16 kHz PCM (two 2-byte samples a position) and the G.722 start (the
    // whole loop).
    assert_eq!(
        lib.memory_bytes(),
        2 * 30 * 8000 + 4 * 30 * 8000 + 30 * 8000
    );
    println!("{}", lib.summary());
}

/// SNR (dB) of decoded G.722 `out` against `input` looped, over output samples `range`, with
/// the codec's 22-sample delay.
fn loop_snr(input: &[i16], out: &[i16], range: std::ops::Range<usize>) -> f64 {
    let (mut sig, mut err) = (0.0, 0.0);
    for i in range {
        let want = input[(i + input.len() - 22) % input.len()] as f64;
        sig += want * want;
        err += (out[i] as f64 - want).powi(2);
    }
    10.0 * (sig / err).log10()
}

#[test]
fn g722_loop_point_is_as_clean_as_the_rest() {
    use onhold_core::media::{decode, DEFAULT_MUSIC_WAV};
    let pcm = decode::decode("default", DEFAULT_MUSIC_WAV).unwrap();
    let pcm16: Vec<i16> = pcm
        .samples
        .iter()
        .map(|&s| (s * 32767.0).round() as i16)
        .collect();
    let pcm8: Vec<i16> = pcm16.iter().step_by(2).copied().collect();
    let n = pcm16.len();
    let p = Program::music_only(Encoded::encode(&pcm8, &pcm16, true));
    // A caller who plays the loop twice through.
    let out = decode_program(&p, n);
    let wrap = loop_snr(&pcm16, &out, n - 200..n + 800);
    let middle = loop_snr(&pcm16, &out, n + n / 2 - 200..n + n / 2 + 800);
    println!("G.722 SNR at the loop point {wrap:.1} dB, mid-loop {middle:.1} dB");
    assert!(
        wrap > middle - 3.0,
        "{wrap:.1} dB at the wrap, {middle:.1} dB mid-loop"
    );
}
