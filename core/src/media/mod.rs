//! Music: decoding from bytes, resampling, G.711/G.722 encoding, libraries and classes.
//!
//! CONTRACT (the server depends on exactly this; the media work fills it in):
//! - every codec stream is 8000 bytes per second, so a position in a class's looping program is
//!   one `u64` in RTP timestamp units (1/8000 s), the same for PCMU, PCMA and G.722;
//! - `Library::fill` copies `out.len()` bytes of the program starting at `pos`, wrapping at the
//!   end of the loop; it never allocates and never fails.
//!
//! How it is built: the runtime reads the music files and passes their bytes in a
//! [`LibrarySpec`]; [`Library::build`] decodes each file ([`decode`]), down-mixes to mono,
//! resamples to 8 and 16 kHz ([`resample`]), optionally normalises, and encodes each class's
//! whole playlist once per G.711 codec into one shared `Arc<[u8]>` ([`g711`]). A G.711 call then
//! needs nothing but a position: frames of any ptime are slices of those buffers
//! ([`Library::slice`]) or copies of them ([`Library::fill`]).
//!
//! A class's program ([`Program`]) is its playlist looped, with an optional announcement after
//! every N seconds of music (the music then resumes where it paused); positions map to bytes by
//! arithmetic alone. G.722 is adaptive: a caller's decoder is in step only with bytes encoded
//! from the state it is in. So when G.722 may be negotiated the library also keeps the 16 kHz
//! PCM, and each G.722 call carries an encoder of its own ([`G722Cursor`],
//! [`Library::fill_g722`]); the program's start up to its first seam, which every per-call
//! caller is sent alike, is encoded once (see `encoded.rs` and `program.rs`).

pub mod decode;
mod encoded;
pub mod g711;
pub mod g722;
pub mod live;
mod program;
pub mod resample;
#[doc(hidden)]
pub mod synth;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::codec::Codec;
use crate::rng::Rng;

pub use encoded::{Encoded, EncodedBuilder};
pub use live::LiveBuffer;
pub use program::{announcement_interval, G722Cursor, Program, ProgramBuilder, CUT_GRID};

/// Index of a music class inside a [`Library`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId(pub u16);

/// How callers of a class share the music.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayMode {
    /// Each caller starts at the beginning of the program.
    PerCall,
    /// Radio: every caller hears the same point, derived from the global pacing grid.
    Shared,
}

/// One music file as the runtime read it.
#[derive(Clone)]
pub struct MusicSource {
    /// The file's path, for messages (and its extension as a format hint).
    pub name: String,
    pub bytes: Vec<u8>,
}

impl MusicSource {
    /// The built-in music as a source, e.g. for a class configured without files.
    pub fn builtin() -> MusicSource {
        MusicSource {
            name: DEFAULT_MUSIC_NAME.into(),
            bytes: DEFAULT_MUSIC_WAV.to_vec(),
        }
    }
}

impl fmt::Debug for MusicSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MusicSource({:?}, {} bytes)",
            self.name,
            self.bytes.len()
        )
    }
}

/// Playlist order of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By source name (byte-wise), e.g. `01-intro.mp3` before `02-theme.mp3`.
    Sorted,
    /// Shuffled once at build time with the seeded RNG (same seed, same order).
    Shuffled,
}

/// A music class: what callers dialling one Request-URI user part hear.
#[derive(Clone, Debug)]
pub struct ClassSpec {
    /// The Request-URI user part it serves; `"default"` is the class for everything else.
    pub name: String,
    pub sources: Vec<MusicSource>,
    /// The sources are whatever a directory held: unreadable files are skipped with a warning
    /// (the class fails only if nothing playable remains). Otherwise every file must decode.
    pub from_directory: bool,
    pub order: Order,
    pub mode: PlayMode,
    /// An announcement played after every `Duration` of music; the music then resumes where it
    /// paused.
    pub announcement: Option<(MusicSource, Duration)>,
    /// The class plays a live source (the runtime feeds it, see `Server::live_audio`); its
    /// `sources` are then the fallback, played while the source is silent. A live class is
    /// always shared.
    pub live: Option<LiveSpec>,
}

/// A live source as the library knows it: its address (for messages and the control API) and
/// how much audio to buffer before playing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSpec {
    pub url: String,
    pub buffer: Duration,
}

impl ClassSpec {
    /// The `default` class of the built-in music, played in `mode`.
    pub fn builtin(mode: PlayMode) -> ClassSpec {
        ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource::builtin()],
            from_directory: false,
            order: Order::Sorted,
            mode,
            announcement: None,
            live: None,
        }
    }
}

/// Everything [`Library::build`] needs.
#[derive(Clone, Debug)]
pub struct LibrarySpec {
    pub classes: Vec<ClassSpec>,
    /// Peak-normalise each track (and announcement) to [`NORMALIZE_PEAK_DBFS`] before the gain.
    pub normalize: bool,
    /// Gain applied to all audio, in dB (after normalisation); the result is clipped safely.
    pub gain_db: f32,
    /// Calls may use G.722 (it is among the configured codecs): keep the 16 kHz PCM that G.722
    /// calls are encoded from, 32 kB per second of audio. Without it a G.722 call gets silence.
    pub g722: bool,
}

/// Peak level that normalisation aims for: a little headroom for resampling overshoot.
pub const NORMALIZE_PEAK_DBFS: f32 = -1.0;

/// Why music could not be loaded: one line naming the file (or class) and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaError {
    file: String,
    problem: String,
}

impl MediaError {
    pub fn new(file: impl Into<String>, problem: impl Into<String>) -> MediaError {
        MediaError {
            file: file.into(),
            problem: problem.into(),
        }
    }
    /// The file (or `class NAME` for class-level problems) the error is about.
    pub fn file(&self) -> &str {
        &self.file
    }
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

impl std::error::Error for MediaError {}

/// A playlist item's place in its class's music, for logs and the control API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub name: String,
    /// Offset into the class's music (not counting announcements), in RTP timestamp units.
    pub start: u64,
    pub len: u64,
}

#[derive(Debug)]
struct Class {
    name: String,
    mode: PlayMode,
    live: Option<LiveSpec>,
    tracks: Vec<TrackInfo>,
    program: Program,
}

/// Decoded, encoded, immutable music for every class.
#[derive(Debug)]
pub struct Library {
    classes: Vec<Class>,
    by_name: BTreeMap<String, ClassId>,
    default: ClassId,
}

/// The built-in music: a 30 s loop rendered by [`synth`] (see `core/examples/make_default_music.rs`).
pub const DEFAULT_MUSIC_WAV: &[u8] = include_bytes!("../../assets/default_music.wav");
/// The name the built-in music goes by in messages.
pub const DEFAULT_MUSIC_NAME: &str = "(built-in music)";

impl Library {
    /// One class of one second of silence (tests, and the last resort).
    pub fn silence() -> Library {
        let pcm8 = vec![0i16; 8000];
        let pcm16 = vec![0i16; 16000];
        let music = Encoded::encode(&pcm8, &pcm16, true);
        Library::single(
            "default",
            PlayMode::PerCall,
            vec![TrackInfo {
                name: "(silence)".into(),
                start: 0,
                len: 8000,
            }],
            Program::music_only(music),
        )
    }

    fn single(name: &str, mode: PlayMode, tracks: Vec<TrackInfo>, program: Program) -> Library {
        let mut by_name = BTreeMap::new();
        by_name.insert(name.to_string(), ClassId(0));
        Library {
            classes: vec![Class {
                name: name.to_string(),
                mode,
                live: None,
                tracks,
                program,
            }],
            by_name,
            default: ClassId(0),
        }
    }

    /// The built-in hold music as the single `default` class (per-call), ready for G.722.
    pub fn embedded_default() -> Library {
        Library::embedded(true)
    }

    /// The built-in hold music as the single `default` class (per-call), keeping the 16 kHz
    /// PCM only `with_g722` (see [`LibrarySpec::g722`]). Never fails: if the embedded file
    /// could not be decoded (a build defect the tests catch) it is silence.
    pub fn embedded(with_g722: bool) -> Library {
        let spec = LibrarySpec {
            classes: vec![ClassSpec::builtin(PlayMode::PerCall)],
            normalize: false,
            gain_db: 0.0,
            g722: with_g722,
        };
        match Library::build(&spec, 0) {
            Ok((lib, _)) => lib,
            Err(_) => Library::silence(),
        }
    }

    /// Decode, resample and encode every class. Warnings (skipped files, odd configuration) come
    /// back as lines for the log; `seed` drives shuffled playlists.
    pub fn build(spec: &LibrarySpec, seed: u64) -> Result<(Library, Vec<String>), MediaError> {
        let mut warnings = Vec::new();
        if spec.classes.is_empty() {
            return Err(MediaError::new("music", "no music classes configured"));
        }
        if spec.classes.len() > u16::MAX as usize {
            return Err(MediaError::new("music", "too many music classes"));
        }
        if !spec.gain_db.is_finite() || spec.gain_db.abs() > 60.0 {
            return Err(MediaError::new(
                "music",
                format!("gain {} dB is out of range (-60 to 60)", spec.gain_db),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut by_name = BTreeMap::new();
        let mut classes = Vec::with_capacity(spec.classes.len());
        for (i, cs) in spec.classes.iter().enumerate() {
            let id = ClassId(i as u16);
            if by_name.insert(cs.name.clone(), id).is_some() {
                return Err(MediaError::new(
                    format!("class {}", cs.name),
                    "defined twice",
                ));
            }
            classes.push(build_class(spec, cs, &mut rng, &mut warnings)?);
        }
        let default = match by_name.get("default") {
            Some(&id) => id,
            None => {
                warnings.push(format!(
                    "no music class named \"default\": class \"{}\" plays for unknown users",
                    spec.classes[0].name
                ));
                ClassId(0)
            }
        };
        Ok((
            Library {
                classes,
                by_name,
                default,
            },
            warnings,
        ))
    }

    /// The class for a Request-URI user part (the default class for anything unknown). User
    /// parts compare case-sensitively, as RFC 3261 §19.1.4 says.
    pub fn class_for(&self, user: &str) -> ClassId {
        self.class_named(user).unwrap_or(self.default)
    }

    /// The class of exactly this name, if there is one.
    pub fn class_named(&self, name: &str) -> Option<ClassId> {
        self.by_name.get(name).copied()
    }

    /// The class unknown users get.
    pub fn default_class(&self) -> ClassId {
        self.default
    }

    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The class's name (the user part it serves); `""` for an unknown id.
    pub fn class_name(&self, class: ClassId) -> &str {
        self.class(class).map_or("", |c| c.name.as_str())
    }

    /// The class's playlist in play order.
    pub fn tracks(&self, class: ClassId) -> &[TrackInfo] {
        self.class(class).map_or(&[], |c| c.tracks.as_slice())
    }

    pub fn mode(&self, class: ClassId) -> PlayMode {
        self.class(class).map_or(PlayMode::PerCall, |c| c.mode)
    }

    /// The class's live source, if it plays one (its program is then the fallback).
    pub fn live(&self, class: ClassId) -> Option<&LiveSpec> {
        self.class(class).and_then(|c| c.live.as_ref())
    }

    /// Every class that plays a live source, with its id.
    pub fn live_classes(&self) -> impl Iterator<Item = (ClassId, &str, &LiveSpec)> {
        self.classes.iter().enumerate().filter_map(|(i, c)| {
            let live = c.live.as_ref()?;
            Some((ClassId(i as u16), c.name.as_str(), live))
        })
    }

    /// Length of the class's looping program in RTP timestamp units (bytes of any codec).
    /// With an announcement this is the full period after which music and announcements line
    /// up again. Never zero.
    pub fn program_len(&self, class: ClassId) -> u64 {
        self.program(class).len()
    }

    /// Copy `out.len()` bytes of `codec` from position `pos` (wrapping) of the class's program
    /// (G.722: as a call that started at 0 would be sent after jumping to `pos`; calls use
    /// [`fill_g722`](Self::fill_g722)).
    /// An unknown class plays the default class. Inlined: it is on every RTP packet's path, and
    /// the caller has usually just looked the class up too.
    #[inline]
    pub fn fill(&self, class: ClassId, codec: Codec, pos: u64, out: &mut [u8]) {
        self.program(class).fill(codec, pos, out);
    }

    /// Write the G.722 bytes of `out.len()` positions from `pos` for the call whose encoder is
    /// `cursor` (see [`G722Cursor`]). In a shared class a cursor at the start goes live from
    /// the zero state: a shared caller joins wherever the programme is, never at its start.
    /// Never allocates, never fails. Never inlined: a G.722 packet costs over a hundred
    /// thousand instructions, next to which a call is nothing, and inlined into the packet path
    /// its code would take cache lines from every G.711 packet.
    #[inline(never)]
    pub fn fill_g722(&self, class: ClassId, cursor: &mut G722Cursor, pos: u64, out: &mut [u8]) {
        if self.mode(class) == PlayMode::Shared && !cursor.is_live() {
            *cursor = G722Cursor::live();
        }
        self.program(class).fill_g722(cursor, pos, out);
    }

    /// The longest contiguous run of encoded bytes starting at `pos` (wrapped), at most
    /// `max_len` long: a zero-copy view for callers that can send from borrowed slices. For
    /// G.722, the pre-encoded start only (empty past it: see [`fill_g722`](Self::fill_g722)).
    pub fn slice(&self, class: ClassId, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        self.program(class).run(codec, pos, max_len)
    }

    /// Bytes of audio held (G.711 bytes, 16 kHz PCM and G.722 starts, all classes,
    /// announcements included).
    pub fn memory_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.program.memory_bytes()).sum()
    }

    /// Seconds of distinct audio held (music plus announcements, all classes).
    pub fn audio_seconds(&self) -> f64 {
        self.classes
            .iter()
            .map(|c| c.program.audio_len() as f64 / 8000.0)
            .sum()
    }

    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        let tracks: usize = self.classes.iter().map(|c| c.tracks.len()).sum();
        let mut s = format!(
            "{} music class{}, {} track{}, {} of audio, codecs PCMU PCMA{}, {:.1} MB in memory:",
            self.classes.len(),
            if self.classes.len() == 1 { "" } else { "es" },
            tracks,
            if tracks == 1 { "" } else { "s" },
            hms(self.audio_seconds()),
            if self.classes.iter().all(|c| c.program.has_g722()) {
                " G722"
            } else {
                ""
            },
            self.memory_bytes() as f64 / 1e6
        );
        for (i, c) in self.classes.iter().enumerate() {
            let music = c.program.music_len() as f64 / 8000.0;
            s.push_str(&format!(
                "{} {}{} ({} track{}, {}, {}",
                if i == 0 { "" } else { ";" },
                c.name,
                if ClassId(i as u16) == self.default && c.name != "default" {
                    " [default]"
                } else {
                    ""
                },
                c.tracks.len(),
                if c.tracks.len() == 1 { "" } else { "s" },
                hms(music),
                match c.mode {
                    PlayMode::PerCall => "per-call",
                    PlayMode::Shared => "shared",
                }
            ));
            if let Some(live) = &c.live {
                s.push_str(&format!(", live {} with that as fallback", live.url));
            }
            if let Some((every, len)) = c.program.announcement() {
                s.push_str(&format!(
                    ", {} announcement every {}",
                    hms(len as f64 / 8000.0),
                    hms(every as f64 / 8000.0)
                ));
            }
            s.push(')');
        }
        s
    }

    fn class(&self, class: ClassId) -> Option<&Class> {
        self.classes.get(class.0 as usize)
    }

    fn program(&self, class: ClassId) -> &Program {
        match self.class(class) {
            Some(c) => &c.program,
            // Library always holds at least one class and `default` indexes it.
            None => &self.classes[self.default.0 as usize].program,
        }
    }
}

fn hms(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{:.1}s", seconds)
    }
}

/// A track ready to encode: mono 16-bit at 8 kHz and (twice as long) at 16 kHz.
struct Prepared {
    name: String,
    pcm8: Vec<i16>,
    pcm16: Vec<i16>,
}

fn build_class(
    spec: &LibrarySpec,
    cs: &ClassSpec,
    rng: &mut Rng,
    warnings: &mut Vec<String>,
) -> Result<Class, MediaError> {
    let class_label = format!("class {}", cs.name);
    let mut sources: Vec<&MusicSource> = cs.sources.iter().collect();
    match cs.order {
        Order::Sorted => sources.sort_by(|a, b| a.name.cmp(&b.name)),
        Order::Shuffled => {
            sources.sort_by(|a, b| a.name.cmp(&b.name));
            rng.shuffle(&mut sources);
        }
    }
    // The announcement first: a bad one fails before the (longer) music work.
    let announcement = match &cs.announcement {
        None => None,
        Some((src, every)) => {
            let asked = (every.as_micros() / 125).min(u64::MAX as u128) as u64;
            if asked == 0 {
                return Err(MediaError::new(
                    &src.name,
                    "announcement interval must be longer than zero",
                ));
            }
            let every_ts = announcement_interval(asked);
            if every_ts != asked {
                warnings.push(format!(
                    "{}: announcement interval {:.3} s rounded to {} s (announcements cut in on \
                     whole seconds of music)",
                    src.name,
                    asked as f64 / 8000.0,
                    every_ts / 8000
                ));
            }
            Some((prepare(src, spec)?, every_ts))
        }
    };

    let mut music = ProgramBuilder::new(announcement.as_ref().map(|(_, every)| *every), spec.g722);
    let mut tracks = Vec::with_capacity(sources.len());
    let mut skipped = 0usize;
    for src in sources {
        match prepare(src, spec) {
            Ok(p) => {
                tracks.push(TrackInfo {
                    name: p.name,
                    start: music.len(),
                    len: p.pcm8.len() as u64,
                });
                music.push(&p.pcm8, &p.pcm16);
            }
            Err(e) if cs.from_directory => {
                skipped += 1;
                warnings.push(format!("{e} (skipped)"));
            }
            Err(e) => return Err(e),
        }
    }
    if tracks.is_empty() {
        let problem = if cs.sources.is_empty() {
            "no music files".to_string()
        } else {
            format!("no playable music ({skipped} file(s) skipped)")
        };
        return Err(MediaError::new(class_label, problem));
    }
    let ann_pcm = announcement
        .as_ref()
        .map(|(p, _)| (p.pcm8.as_slice(), p.pcm16.as_slice()));
    let program = music.finish(ann_pcm).ok_or_else(|| {
        MediaError::new(
            class_label,
            "announcement interval and playlist length have no usable common period",
        )
    })?;
    Ok(Class {
        name: cs.name.clone(),
        mode: if cs.live.is_some() {
            PlayMode::Shared
        } else {
            cs.mode
        },
        live: cs.live.clone(),
        tracks,
        program,
    })
}

/// Decode, level and resample one file.
fn prepare(src: &MusicSource, spec: &LibrarySpec) -> Result<Prepared, MediaError> {
    let mut pcm = decode::decode(&src.name, &src.bytes)?;
    let mut gain = 10f32.powf(spec.gain_db / 20.0);
    if spec.normalize {
        let peak = pcm.samples.iter().fold(0f32, |m, &s| m.max(s.abs()));
        if peak > 1e-6 {
            gain *= 10f32.powf(NORMALIZE_PEAK_DBFS / 20.0) / peak;
        }
    }
    if gain != 1.0 {
        for s in pcm.samples.iter_mut() {
            *s *= gain;
        }
    }
    let n8 = resample::output_len(pcm.samples.len(), pcm.rate, 8000);
    if n8 == 0 {
        return Err(MediaError::new(&src.name, "too short (under 1/8000 s)"));
    }
    let fail = || MediaError::new(&src.name, format!("cannot resample from {} Hz", pcm.rate));
    let pcm16 = resample::resample(&pcm.samples, pcm.rate, 16000, n8 * 2).ok_or_else(fail)?;
    // 8 kHz from the 16 kHz signal: an exact 2:1 step on a third of the samples costs far less
    // than a second pass over a 44.1/48 kHz original, and filters just as well. Audio that is
    // already at 8 kHz is taken as it is.
    let pcm8 = if pcm.rate == 8000 {
        resample::resample(&pcm.samples, 8000, 8000, n8)
    } else {
        resample::resample(&pcm16, 16000, 8000, n8)
    }
    .ok_or_else(fail)?;
    Ok(Prepared {
        name: src.name.clone(),
        pcm8: to_i16(&pcm8),
        pcm16: to_i16(&pcm16),
    })
}

/// Float to 16-bit, rounded, with saturation: clipping, never wrapping (`as` saturates and
/// maps NaN to 0).
fn to_i16(x: &[f32]) -> Vec<i16> {
    x.iter()
        .map(|&s| {
            let v = s * 32767.0;
            (v + 0.5f32.copysign(v)) as i16
        })
        .collect()
}
