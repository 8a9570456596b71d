//! Reading the configured music from disk into a library spec, and building the [`Library`].
//!
//! The core decodes bytes; this module is the IO in front of it: it reads each file, lists a
//! directory in file-name order, and skips what it cannot read with a warning rather than
//! refusing to start over one bad file. A class whose music yields nothing at all is an error.

use std::path::{Path, PathBuf};

use onhold_core::config::{MusicConfig, MusicOrder};
use onhold_core::media::{ClassSpec, Library, LibrarySpec, LiveSpec, MusicSource, Order};

/// File name endings the decoder understands (symphonia's enabled formats). Anything else in a
/// music directory (cover art, playlists, READMEs) is skipped with a warning.
const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "mp3", "flac", "ogg", "oga", "m4a", "mp4", "aac", "wave",
];

/// Read every configured file. `Err` is one line naming the path and the problem; the `Vec` holds
/// warnings about skipped files. `g722`: calls may use G.722 (see [`LibrarySpec::g722`]).
pub fn read_spec(music: &MusicConfig, g722: bool) -> Result<(LibrarySpec, Vec<String>), String> {
    let mut warnings = Vec::new();
    let mut classes = Vec::new();
    for class in &music.classes {
        // A live class plays its fallback (a file, a directory or the built-in music) while
        // the source is silent.
        let music = match &class.live {
            Some(_) => &class.fallback,
            None => &class.music,
        };
        let (sources, from_directory) = match music {
            Some(path) => read_music_path(path, &mut warnings)?,
            // The default class without a path plays the built-in music, with its own mode and
            // announcement.
            None => (vec![MusicSource::builtin()], false),
        };
        let announcement = match &class.announcement {
            Some(p) => Some((read_file(p)?, class.announcement_every)),
            None => None,
        };
        classes.push(ClassSpec {
            name: class.name.clone(),
            sources,
            from_directory,
            order: match class.order {
                MusicOrder::Sorted => Order::Sorted,
                MusicOrder::Shuffle => Order::Shuffled,
            },
            mode: class.mode,
            announcement,
            live: class.live.as_ref().map(|url| LiveSpec {
                url: url.to_string(),
                buffer: class.live_buffer,
            }),
        });
    }
    Ok((
        LibrarySpec {
            classes,
            normalize: music.normalize,
            gain_db: music.gain_db,
            g722,
        },
        warnings,
    ))
}

/// A file gives one source; a directory gives its audio files sorted by name (not recursive).
fn read_music_path(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Vec<MusicSource>, bool), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("music: {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok((vec![read_file(path)?], false));
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("music: {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let p = e.path();
                let hidden = e.file_name().to_string_lossy().starts_with('.');
                if hidden || p.is_dir() {
                    continue;
                }
                if is_audio(&p) {
                    files.push(p);
                } else {
                    warnings.push(format!(
                        "music: skipping {}: not an audio file",
                        p.display()
                    ));
                }
            }
            Err(e) => warnings.push(format!("music: {}: {e}", path.display())),
        }
    }
    files.sort();
    let mut sources = Vec::with_capacity(files.len());
    for f in files {
        match read_file(&f) {
            Ok(s) => sources.push(s),
            Err(line) => warnings.push(format!("{line} (skipped)")),
        }
    }
    if sources.is_empty() {
        return Err(format!(
            "music: {}: no readable audio files ({})",
            path.display(),
            AUDIO_EXTENSIONS.join(", ")
        ));
    }
    Ok((sources, true))
}

fn is_audio(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

fn read_file(path: &Path) -> Result<MusicSource, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(format!("music: {}: empty file", path.display())),
        Ok(bytes) => Ok(MusicSource {
            name: path.display().to_string(),
            bytes,
        }),
        Err(e) => Err(format!("music: {}: {e}", path.display())),
    }
}

/// Decode and encode the spec into a library (`seed` drives shuffles): the built-in music when
/// nothing is configured. `Err` is one line naming the file and the problem.
pub fn build_library(spec: &LibrarySpec, seed: u64) -> Result<(Library, Vec<String>), String> {
    if spec.classes.is_empty() {
        return Ok((Library::embedded(spec.g722), Vec::new()));
    }
    Library::build(spec, seed).map_err(|e| format!("music: {e}"))
}

/// Read and build in one step: what start-up and SIGHUP both do.
pub fn load(
    music: &MusicConfig,
    g722: bool,
    seed: u64,
) -> Result<(Library, String, Vec<String>), String> {
    let (spec, mut warnings) = read_spec(music, g722)?;
    let (library, more) = build_library(&spec, seed)?;
    warnings.extend(more);
    let summary = library.summary();
    Ok((library, summary, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onhold_core::config::ClassConfig;
    use onhold_core::media::PlayMode;
    use std::time::Duration;

    fn class(name: &str, music: &Path) -> ClassConfig {
        ClassConfig {
            music: Some(music.to_path_buf()),
            mode: PlayMode::Shared,
            order: MusicOrder::Shuffle,
            ..ClassConfig::new(name)
        }
    }

    fn config(classes: Vec<ClassConfig>) -> MusicConfig {
        MusicConfig {
            classes,
            normalize: true,
            gain_db: -3.0,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("onhold-music-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn directory_is_read_in_name_order_skipping_other_files() {
        let d = temp_dir("order");
        std::fs::write(d.join("b.wav"), b"BB").unwrap();
        std::fs::write(d.join("a.mp3"), b"A").unwrap();
        std::fs::write(d.join("C.flac"), b"CCC").unwrap();
        std::fs::write(d.join("cover.jpg"), b"x").unwrap();
        std::fs::write(d.join(".hidden.wav"), b"x").unwrap();
        std::fs::create_dir(d.join("sub.wav")).unwrap();
        let (spec, warnings) = read_spec(&config(vec![class("sales", &d)]), true).unwrap();
        let c = &spec.classes[0];
        let names: Vec<String> = c
            .sources
            .iter()
            .map(|s| {
                Path::new(&s.name)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["C.flac", "a.mp3", "b.wav"]);
        assert_eq!(c.sources[2].bytes, b"BB");
        assert!(c.from_directory);
        assert_eq!(c.order, Order::Shuffled);
        assert_eq!(c.mode, PlayMode::Shared);
        assert_eq!(spec.gain_db, -3.0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("cover.jpg: not an audio file"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn missing_or_empty_music_is_one_line_error() {
        let d = temp_dir("empty");
        let e = read_spec(&config(vec![class("default", &d)]), true).unwrap_err();
        assert!(
            e.starts_with("music: ") && e.contains("no readable audio files"),
            "{e}"
        );
        let e = read_spec(&config(vec![class("default", &d.join("nope.wav"))]), true).unwrap_err();
        assert!(e.contains("nope.wav") && !e.contains('\n'), "{e}");
        std::fs::write(d.join("empty.wav"), b"").unwrap();
        let e = read_spec(&config(vec![class("default", &d.join("empty.wav"))]), true).unwrap_err();
        assert!(e.ends_with("empty.wav: empty file"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn single_file_and_announcement() {
        let d = temp_dir("file");
        std::fs::write(d.join("m.wav"), b"M").unwrap();
        std::fs::write(d.join("ann.wav"), b"ANN").unwrap();
        let mut c = class("default", &d.join("m.wav"));
        c.announcement = Some(d.join("ann.wav"));
        c.announcement_every = Duration::from_secs(45);
        let (spec, warnings) = read_spec(&config(vec![c]), true).unwrap();
        assert!(warnings.is_empty());
        assert!(!spec.classes[0].from_directory);
        let (ann, every) = spec.classes[0].announcement.as_ref().unwrap();
        assert_eq!(ann.bytes, b"ANN");
        assert_eq!(*every, Duration::from_secs(45));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn no_classes_means_built_in_music() {
        let (spec, _) = read_spec(&config(vec![]), true).unwrap();
        assert!(spec.classes.is_empty());
        let (library, summary, warnings) = load(&config(vec![]), true, 1).unwrap();
        assert_eq!(summary, Library::embedded_default().summary());
        assert!(warnings.is_empty());
        assert!(library.program_len(library.default_class()) > 0);
    }
}
