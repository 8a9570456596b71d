//! Library building (classes, playlists, directory tolerance, announcements) and the program
//! position maths behind `fill`.

use std::time::Duration;

use onhold_core::media::g711::{linear_to_alaw, linear_to_ulaw};
use onhold_core::media::{
    ClassId, ClassSpec, Encoded, Library, LibrarySpec, MusicSource, Order, PlayMode, Program,
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
    }
}

fn spec(classes: Vec<ClassSpec>) -> LibrarySpec {
    LibrarySpec {
        classes,
        normalize: false,
        gain_db: 0.0,
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
fn model(music: &[u8], ann: &[u8], every: usize, len: usize) -> Vec<u8> {
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
    for codec in Codec::ALL {
        let want = model(music.get(codec), ann.get(codec), 300, 2 * 3700);
        // Fill from a spread of positions and lengths, including across the period.
        for pos in (0..3700u64).step_by(53).chain([299, 300, 369, 370, 3699]) {
            for len in [1usize, 7, 160, 371, 1000] {
                let mut out = vec![0u8; len];
                p.fill(codec, pos, &mut out);
                assert_eq!(
                    out[..],
                    want[pos as usize..pos as usize + len],
                    "{codec} {pos} {len}"
                );
                // Adding whole periods changes nothing (shared mode relies on it).
                let mut later = vec![0u8; len];
                p.fill(codec, pos + 3700 * 12345, &mut later);
                assert_eq!(later, out);
            }
        }
    }
}

#[test]
fn library_with_announcement_reports_the_full_period() {
    let mut c = class("default", vec![source("m.wav", 1000, 8000)]);
    c.announcement = Some((source("ann.wav", -1000, 800), Duration::from_millis(300)));
    let (lib, _) = Library::build(&spec(vec![c.clone()]), 1).unwrap();
    // 8000 units of music, 2400 between announcements of 800: 10 cycles of 3200.
    assert_eq!(lib.program_len(ClassId(0)), 32_000);
    let got = pcmu(&lib, ClassId(0), 2390, 20);
    assert_eq!(got[..10], [linear_to_ulaw(1000); 10]);
    assert_eq!(got[10..], [linear_to_ulaw(-1000); 10]);
    assert!(
        lib.summary().contains("announcement every"),
        "{}",
        lib.summary()
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
    for codec in Codec::ALL {
        assert_eq!(lib.slice(ClassId(0), codec, 0, usize::MAX).len(), 8000);
    }
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
    assert_eq!(lib.memory_bytes(), 3 * 30 * 8000);
    println!("{}", lib.summary());
}
