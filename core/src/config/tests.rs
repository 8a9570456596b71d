//! Precedence, every key's validation and the exact error lines.

use super::*;
use crate::codec::Codec;
use crate::server::Hop;
use std::net::IpAddr;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> Result<Config, ConfigError> {
    Config::load(
        &RunArgs::default(),
        &[],
        Some((Path::new("/etc/onhold/onhold.toml"), text)),
    )
}

fn flags(argv: &[&str]) -> RunArgs {
    use clap::{Args, FromArgMatches};
    let cmd = RunArgs::augment_args(clap::Command::new("onhold"));
    let m = cmd
        .try_get_matches_from(std::iter::once("onhold").chain(argv.iter().copied()))
        .unwrap();
    RunArgs::from_arg_matches(&m).unwrap()
}

fn error_line(r: Result<Config, ConfigError>) -> String {
    let e = r.unwrap_err().to_string();
    assert!(!e.contains('\n'), "error must be one line: {e}");
    e
}

#[test]
fn defaults() {
    let c = Config::load(&RunArgs::default(), &[], None).unwrap();
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].to_string(), "udp:0.0.0.0:5060");
    assert_eq!(c.server.rtp_ports, (10000, 20000));
    assert_eq!(c.server.rtp_ip, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.server.advertised, None);
    assert!(c.server.codecs.is_empty(), "offer order decides");
    assert_eq!(c.server.ptime_ms, 20);
    assert_eq!(c.server.max_calls, 1000);
    assert_eq!(
        c.server.max_call_duration,
        Some(Duration::from_secs(4 * 3600))
    );
    assert_eq!(c.server.media_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.server.keepalive_interval, None);
    assert!(c.server.accept_register);
    assert_eq!(c.server.rtp_latching, Latching::Auto);
    assert!(!c.server.send_ringing);
    assert!(c.music.classes.is_empty());
    assert!(c.music.normalize);
    assert_eq!(c.music.gain_db, 0.0);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.seed, None);
    assert_eq!(c.shutdown_grace, Duration::from_secs(5));
    assert_eq!(c.origin("ptime"), &Origin::Default);
}

#[test]
fn precedence_flags_over_env_over_file_over_defaults() {
    let text = "ptime = 30\nmax_calls = 7\nlog_level = \"debug\"\nsend_ringing = true\n";
    let path = Path::new("onhold.toml");
    let e = env(&[("ONHOLD_PTIME", "40"), ("ONHOLD_MAX_CALLS", "8")]);
    let args = flags(&["--ptime", "50"]);
    let c = Config::load(&args, &e, Some((path, text))).unwrap();
    assert_eq!(c.server.ptime_ms, 50, "flag wins");
    assert_eq!(c.origin("ptime"), &Origin::Flag("--ptime".into()));
    assert_eq!(c.server.max_calls, 8, "env beats the file");
    assert_eq!(
        c.origin("max_calls"),
        &Origin::Env("ONHOLD_MAX_CALLS".into())
    );
    assert_eq!(c.log_level, "debug", "file beats the default");
    assert_eq!(c.origin("log_level"), &Origin::File("onhold.toml".into()));
    assert!(c.server.send_ringing);
    assert_eq!(c.shutdown_grace, Duration::from_secs(5), "default");
    assert_eq!(c.origin("shutdown_grace"), &Origin::Default);
}

#[test]
fn config_path_flag_then_env() {
    let e = env(&[("ONHOLD_CONFIG", "/env.toml")]);
    assert_eq!(
        config_path(&RunArgs::default(), &e),
        Some("/env.toml".into())
    );
    let args = flags(&["--config", "/flag.toml"]);
    assert_eq!(config_path(&args, &e), Some("/flag.toml".into()));
    assert_eq!(config_path(&RunArgs::default(), &[]), None);
}

#[test]
fn unknown_env_is_a_warning_and_other_variables_are_ignored() {
    let e = env(&[
        ("ONHOLD_PTIM", "20"),
        ("HOME", "/root"),
        ("ONHOLD_CONFIG", "x"),
    ]);
    let c = Config::load(&RunArgs::default(), &e, None).unwrap();
    assert_eq!(
        c.warnings,
        vec!["ignoring unknown environment variable ONHOLD_PTIM"]
    );
}

#[test]
fn listen_forms() {
    let c = file(r#"listen = ["127.0.0.1:5070", "udp:[::1]:5060", "tcp:0.0.0.0:5060"]"#).unwrap();
    let got: Vec<String> = c.listen.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        got,
        ["udp:127.0.0.1:5070", "udp:[::1]:5060", "tcp:0.0.0.0:5060"]
    );
    let args = flags(&["--listen", "127.0.0.1:0", "--listen", "tcp:127.0.0.1:0"]);
    let c = Config::load(&args, &[], None).unwrap();
    assert_eq!(c.listen[1].transport, Transport::Tcp);
    let c = Config::load(
        &RunArgs::default(),
        &env(&[("ONHOLD_LISTEN", "1.2.3.4:1, 1.2.3.4:2")]),
        None,
    )
    .unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(
        error_line(file(r#"listen = ["sctp:1.2.3.4:5060"]"#)),
        "config: listen = \"sctp:1.2.3.4:5060\": must be a list of \
         [udp:|tcp:]IP:PORT[@ADVERTISED_IP], e.g. [\"0.0.0.0:5060\", \"tcp:[::]:5060\", \
         \"udp:10.0.0.2:5060@203.0.113.5\"] (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("listen = []")).starts_with("config: listen = []: must be"));
    assert!(error_line(file("listen = 5060")).starts_with("config: listen = 5060: must be"));
    assert!(
        error_line(file(r#"listen = ["1.2.3.4:1", "udp:1.2.3.4:1"]"#))
            .contains("each address may be listed once")
    );
}

#[test]
fn rtp_shared_port() {
    let shared = |text: &str| file(text).unwrap().server.rtp_shared_port;
    assert_eq!(shared(""), None, "off by default");
    assert_eq!(shared("rtp_shared_port = 4000"), Some(4000));
    assert_eq!(shared(r#"rtp_shared_port = "off""#), None);
    assert_eq!(shared("rtp_shared_port = 0"), None);
    for bad in ["4001", "65536", "-2", "\"x\""] {
        let e = error_line(file(&format!("rtp_shared_port = {bad}")));
        assert_eq!(
            e,
            format!(
                "config: rtp_shared_port = {bad}: must be an even port from 2 to 65534, or \"off\" \
                 (in /etc/onhold/onhold.toml)"
            )
        );
    }
    let c = Config::load(&flags(&["--rtp-shared-port", "30000"]), &[], None).unwrap();
    assert_eq!(c.server.rtp_shared_port, Some(30000));
}

#[test]
fn media_threads() {
    let threads = |text: &str| file(text).unwrap().media_threads;
    assert_eq!(threads(""), None, "auto by default");
    assert_eq!(threads(r#"media_threads = "auto""#), None);
    assert_eq!(threads("media_threads = 0"), Some(0));
    assert_eq!(
        threads("rtp_shared_port = 4000\nmedia_threads = 3"),
        Some(3)
    );
    for bad in ["65", "-1", "\"many\""] {
        let e = error_line(file(&format!("media_threads = {bad}")));
        assert!(
            e.starts_with(&format!(
                "config: media_threads = {bad}: must be \"auto\" or"
            )),
            "{e}"
        );
    }
    let alone = file("media_threads = 2").unwrap();
    assert!(
        alone
            .warnings
            .iter()
            .any(|w| w.contains("rtp_shared_port is off")),
        "{:?}",
        alone.warnings
    );
}

#[test]
fn rtp_ports() {
    assert_eq!(
        file(r#"rtp_ports = "20000-20001""#)
            .unwrap()
            .server
            .rtp_ports,
        (20000, 20001)
    );
    for bad in [
        "\"20000\"",
        "\"20000-19999\"",
        "\"80-1000\"",
        "\"x-y\"",
        "\"20001-20002\"",
        "5",
    ] {
        let e = error_line(file(&format!("rtp_ports = {bad}")));
        assert!(
            e.starts_with(&format!("config: rtp_ports = {bad}: must ")),
            "{e}"
        );
    }
    assert_eq!(
        error_line(Config::load(&flags(&["--rtp-ports", "9-8"]), &[], None)),
        "config: rtp_ports = 9-8: must be \"LOW-HIGH\" with 1024 ≤ LOW < HIGH ≤ 65535 \
         (from --rtp-ports)"
    );
}

#[test]
fn addresses() {
    let c = file("rtp_ip = \"192.0.2.1\"\nadvertised_address = \"203.0.113.5\"").unwrap();
    assert_eq!(c.server.rtp_ip, IpAddr::from([192, 0, 2, 1]));
    assert_eq!(c.server.advertised, Some(IpAddr::from([203, 0, 113, 5])));
    assert_eq!(
        file("advertised_address = \"auto\"")
            .unwrap()
            .server
            .advertised,
        None
    );
    assert_eq!(
        error_line(file("rtp_ip = \"localhost\"")),
        "config: rtp_ip = \"localhost\": must be an IP address, e.g. 0.0.0.0 or :: \
         (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("advertised_address = \"pbx.example\""))
        .starts_with("config: advertised_address = \"pbx.example\": must be an IP address"));
}

#[test]
fn a_listener_can_advertise_an_address_of_its_own() {
    let c = file(
        "advertised_address = \"198.51.100.1\"\n\
         listen = [\"udp:10.0.0.2:5060@203.0.113.5\", \"tcp:[::]:5060 @ 2001:db8::5\", \
         \"192.168.1.1:5060\"]",
    )
    .unwrap();
    let got: Vec<String> = c.listen.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        got,
        [
            "udp:10.0.0.2:5060@203.0.113.5",
            "tcp:[::]:5060@2001:db8::5",
            "udp:192.168.1.1:5060"
        ]
    );
    // The core gets the listeners with an address of their own; the rest use the global one.
    assert_eq!(
        c.server.listeners,
        vec![
            ListenerAdvertised {
                transport: Transport::Udp,
                listen: "10.0.0.2:5060".parse().unwrap(),
                advertised: IpAddr::from([203, 0, 113, 5]),
            },
            ListenerAdvertised {
                transport: Transport::Tcp,
                listen: "[::]:5060".parse().unwrap(),
                advertised: "2001:db8::5".parse().unwrap(),
            },
        ]
    );
    assert_eq!(c.server.advertised, Some(IpAddr::from([198, 51, 100, 1])));
    // The same form from a flag and from the environment.
    let c = Config::load(&flags(&["--listen", "127.0.0.1:0@192.0.2.9"]), &[], None).unwrap();
    assert_eq!(c.listen[0].advertised, Some(IpAddr::from([192, 0, 2, 9])));
    let e = env(&[("ONHOLD_LISTEN", "1.2.3.4:1@192.0.2.1, tcp:1.2.3.4:1")]);
    let c = Config::load(&RunArgs::default(), &e, None).unwrap();
    assert_eq!(c.server.listeners.len(), 1);

    assert_eq!(
        error_line(file(r#"listen = ["0.0.0.0:5060@pbx.example"]"#)),
        "config: listen = \"0.0.0.0:5060@pbx.example\": the address after @ must be an IP \
         address (e.g. 203.0.113.5), advertised in Contact and SDP for calls arriving on this \
         listener (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file(r#"listen = ["0.0.0.0:5060@0.0.0.0"]"#))
        .contains("the address after @ must be one a caller can reach"));
    assert!(error_line(file(r#"listen = ["0.0.0.0:5060@"]"#))
        .contains("the address after @ must be an IP address"));
    assert!(error_line(file(
        r#"listen = ["1.2.3.4:1@192.0.2.1", "1.2.3.4:1@192.0.2.2"]"#
    ))
    .contains("each address may be listed once"));
}

#[test]
fn codecs() {
    let c = file(r#"codecs = ["g722", "PCMA"]"#).unwrap();
    assert_eq!(c.server.codecs, vec![Codec::G722, Codec::Pcma]);
    let c = Config::load(
        &RunArgs::default(),
        &env(&[("ONHOLD_CODECS", "PCMU")]),
        None,
    )
    .unwrap();
    assert_eq!(c.server.codecs, vec![Codec::Pcmu]);
    assert_eq!(
        error_line(file(r#"codecs = ["PCMU", "G729"]"#)),
        "config: codecs = \"G729\": must be a list of PCMU, PCMA, G722 (each at most once; \
         empty: all) \
         (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file(r#"codecs = ["PCMU", "pcmu"]"#)).contains("at most once"));
    assert!(file("codecs = []").unwrap().server.codecs.is_empty());
    assert!(error_line(file("codecs = [20]")).starts_with("config: codecs = [20]: must be"));
}

#[test]
fn ptime() {
    for ok in [10, 20, 30, 60] {
        assert_eq!(file(&format!("ptime = {ok}")).unwrap().server.ptime_ms, ok);
    }
    assert_eq!(
        error_line(Config::load(&flags(&["--ptime", "7"]), &[], None)),
        "config: ptime = 7: must be 10–60 ms in steps of 10 (from --ptime)"
    );
    assert_eq!(
        error_line(file("ptime = 70")),
        "config: ptime = 70: must be 10–60 ms in steps of 10 (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("ptime = 25")).contains("steps of 10"));
    assert!(error_line(file("ptime = 2.5")).starts_with("config: ptime = 2.5: must"));
}

#[test]
fn max_calls_and_durations() {
    assert_eq!(file("max_calls = 1").unwrap().server.max_calls, 1);
    assert_eq!(
        error_line(Config::load(
            &RunArgs::default(),
            &env(&[("ONHOLD_MAX_CALLS", "0")]),
            None
        )),
        "config: max_calls = 0: must be a whole number from 1 to 1000000 (from ONHOLD_MAX_CALLS)"
    );
    let c = file("max_call_duration = \"1h30m\"\nshutdown_grace = \"500ms\"").unwrap();
    assert_eq!(c.server.max_call_duration, Some(Duration::from_secs(5400)));
    assert_eq!(c.shutdown_grace, Duration::from_millis(500));
    assert_eq!(
        file("max_call_duration = 90")
            .unwrap()
            .server
            .max_call_duration,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        file("max_call_duration = \"off\"")
            .unwrap()
            .server
            .max_call_duration,
        None
    );
    assert!(error_line(file("max_call_duration = \"500ms\"")).contains("at least 1s"));
    assert_eq!(
        error_line(file("max_call_duration = \"1 hour\"")),
        "config: max_call_duration = \"1 hour\": must be a duration of at least 1s \
         (e.g. 90s, 1h, 1h30m) or \"off\" (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("shutdown_grace = \"2h\"")).contains("from 0s to 1h"));
    assert_eq!(
        file("shutdown_grace = \"0s\"").unwrap().shutdown_grace,
        Duration::ZERO
    );
}

#[test]
fn durations_parse_and_print() {
    for (text, ms) in [
        ("90s", 90_000),
        ("1h", 3_600_000),
        ("1h30m", 5_400_000),
        ("250ms", 250),
        ("2m", 120_000),
        ("15", 15_000),
        ("1d", 86_400_000),
    ] {
        let d = parse_duration(text).unwrap();
        assert_eq!(d, Duration::from_millis(ms), "{text}");
        assert_eq!(
            parse_duration(&format_duration(d)),
            Some(d),
            "{text} round trip"
        );
    }
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    for bad in ["", "s", "5x", "1.5h", "-3s", "h1"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn booleans_levels_formats_seed() {
    let a = flags(&["--send-ringing", "--normalize", "false"]);
    let c = Config::load(&a, &[], None).unwrap();
    assert!(c.server.send_ringing, "a bare --send-ringing means true");
    assert!(!c.music.normalize);
    assert_eq!(
        error_line(Config::load(
            &RunArgs::default(),
            &env(&[("ONHOLD_SEND_RINGING", "maybe")]),
            None
        )),
        "config: send_ringing = maybe: must be true or false (from ONHOLD_SEND_RINGING)"
    );
    assert!(error_line(file("normalize = 1"))
        .starts_with("config: normalize = 1: must be true or false"));
    assert_eq!(file("log_level = \"WARN\"").unwrap().log_level, "warn");
    assert_eq!(
        error_line(file("log_level = \"verbose\"")),
        "config: log_level = \"verbose\": must be trace, debug, info, warn or error \
         (in /etc/onhold/onhold.toml)"
    );
    assert_eq!(
        file("log_format = \"json\"").unwrap().log_format,
        LogFormat::Json
    );
    assert!(error_line(file("log_format = \"xml\"")).contains("must be human or json"));
    assert_eq!(file("seed = 42").unwrap().seed, Some(42));
    assert_eq!(file("seed = \"random\"").unwrap().seed, None);
    assert_eq!(file("seed = \"clock\"").unwrap().seed, None);
    let c = Config::load(&flags(&["--seed", "18446744073709551615"]), &[], None).unwrap();
    assert_eq!(c.seed, Some(u64::MAX));
    assert!(error_line(file("seed = -1")).starts_with("config: seed = -1: must be a whole number"));
}

#[test]
fn gain() {
    assert_eq!(file("gain_db = -6").unwrap().music.gain_db, -6.0);
    assert_eq!(
        Config::load(&flags(&["--gain-db", "-3.5"]), &[], None)
            .unwrap()
            .music
            .gain_db,
        -3.5
    );
    assert_eq!(
        error_line(file("gain_db = 30.0")),
        "config: gain_db = 30: must be a number of dB from -40 to 20 (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("gain_db = \"loud\"")).contains("from -40 to 20"));
}

#[test]
fn music_and_classes() {
    let c = file(
        r#"
music = "music/default"
[classes.sales]
music = "/srv/sales.wav"
mode = "shared"
order = "shuffle"
announcement = "ann/wait.wav"
announcement_every = "45s"
[classes.default]
mode = "shared"
"#,
    )
    .unwrap();
    let names: Vec<&str> = c.music.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["default", "sales"]);
    let d = &c.music.classes[0];
    assert_eq!(
        d.music,
        Some(PathBuf::from("/etc/onhold/music/default")),
        "relative to the file"
    );
    assert_eq!(d.mode, PlayMode::Shared);
    let s = &c.music.classes[1];
    assert_eq!(s.music, Some(PathBuf::from("/srv/sales.wav")));
    assert_eq!(s.order, MusicOrder::Shuffle);
    assert_eq!(
        s.announcement,
        Some(PathBuf::from("/etc/onhold/ann/wait.wav"))
    );
    assert_eq!(s.announcement_every, Duration::from_secs(45));

    // A flag names a path relative to the working directory and overrides the file's.
    let c = Config::load(
        &flags(&["--music", "here.mp3"]),
        &[],
        Some((
            Path::new("/etc/onhold/onhold.toml"),
            "music = \"there.mp3\"",
        )),
    )
    .unwrap();
    assert_eq!(c.music.classes[0].music, Some(PathBuf::from("here.mp3")));

    assert_eq!(
        error_line(file("[classes.sales]\nmode = \"radio\"\nmusic = \"x\"")),
        "config: classes.sales.mode = \"radio\": must be \"per-call\" or \"shared\" \
         (in /etc/onhold/onhold.toml)"
    );
    assert!(
        error_line(file("[classes.sales]\norder = \"random\"\nmusic = \"x\"")).starts_with(
            "config: classes.sales.order = \"random\": must be \"sorted\" or \"shuffle\""
        )
    );
    assert_eq!(
        error_line(file("[classes.sales]\nmode = \"shared\"")),
        "config: classes.sales.music: missing: every class but default needs a file or \
         directory (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("[classes.a]\nmusic = \"x\"\nvolume = 3"))
        .starts_with("config: classes.a.volume = 3: unknown key; known keys: music, mode"));
    assert!(error_line(file(
        "[classes.a]\nmusic = \"x\"\nannouncement_every = \"0s\""
    ))
    .contains("from 1s to 24h"));
    assert!(error_line(file("[classes.\"a b\"]\nmusic = \"x\"")).contains("Request-URI user part"));
    assert!(error_line(file("classes = 3")).starts_with("config: classes = 3: must be tables"));
}

#[test]
fn unknown_key_and_syntax_errors_are_one_line() {
    assert_eq!(
        error_line(file("ptim = 20")),
        format!(
            "config: ptim = 20: unknown key; known keys: {} (in /etc/onhold/onhold.toml)",
            KEYS.join(", ")
        )
    );
    let e = error_line(file("ptime = 20\nmax_calls = = 3\n"));
    assert!(
        e.starts_with("config: /etc/onhold/onhold.toml:2: not valid TOML: "),
        "{e}"
    );
}

#[test]
fn check_config_output_names_every_key_and_parses_back() {
    let text = r#"
listen = ["127.0.0.1:5070", "tcp:127.0.0.1:5070@192.0.2.7"]
rtp_ports = "30000-30999"
music = "/srv/moh"
codecs = ["PCMA"]
max_call_duration = "1h"
seed = 7
[classes."sales-1"]
music = "/srv/sales"
announcement = "/srv/a.wav"
codecs = ["G722", "PCMU"]
ptime = 30
sdp_bandwidth_as = 80
sdp_media_attributes = ["label:moh"]
"#;
    let c = Config::load(
        &flags(&["--ptime", "30"]),
        &env(&[("ONHOLD_LOG_FORMAT", "json")]),
        Some((Path::new("/etc/onhold.toml"), text)),
    )
    .unwrap();
    let out = c.to_toml();
    for key in KEYS
        .iter()
        .filter(|k| !matches!(**k, "classes" | "limits" | "control_token" | "register"))
    {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{key} missing:\n{out}"
        );
    }
    assert!(out.contains("# --ptime"), "{out}");
    assert!(out.contains("# ONHOLD_LOG_FORMAT"), "{out}");
    assert!(out.contains("# /etc/onhold.toml"), "{out}");
    assert!(out.contains("[classes.sales-1]"), "{out}");
    let back = file(&out).unwrap();
    assert_eq!(
        back.to_toml()
            .lines()
            .skip(1)
            .map(|l| l.split('#').next().unwrap().trim_end())
            .collect::<Vec<_>>(),
        out.lines()
            .skip(1)
            .map(|l| l.split('#').next().unwrap().trim_end())
            .collect::<Vec<_>>()
    );
    assert_eq!(back.server.ptime_ms, 30);
    assert_eq!(back.music, c.music);
    assert_eq!(back.listen, c.listen);
    assert_eq!(back.server.listeners, c.server.listeners);
    assert_eq!(back.seed, Some(7));
}

#[test]
fn example_file_shows_the_defaults_and_its_class_examples_parse() {
    let example = include_str!("../../../onhold.example.toml");
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .map(|l| l.split("  #").next().unwrap().trim_end().to_string())
            .collect()
    };
    let from_file = file(example).unwrap();
    let defaults = Config::load(&RunArgs::default(), &[], None).unwrap();
    assert_eq!(strip(&from_file.to_toml()), strip(&defaults.to_toml()));
    for key in KEYS
        .iter()
        .filter(|k| !matches!(**k, "classes" | "limits" | "control_token" | "register"))
    {
        assert_ne!(
            from_file.origin(key),
            &Origin::Default,
            "{key} missing from the example"
        );
    }
    // The commented class tables are valid once uncommented.
    let start = example.find("# [classes.default]").unwrap();
    let tables: String = example[start..]
        .lines()
        .map(|l| l.trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let c = file(&tables).unwrap();
    let names: Vec<&str> = c.music.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["default", "radio", "sales"]);
    assert!(
        c.music.classes[1].live.is_some(),
        "the radio example is live"
    );
}

#[test]
fn help_explains_every_flag_with_its_default() {
    use clap::Args;
    let mut cmd = RunArgs::augment_args(clap::Command::new("onhold"));
    let help = cmd.render_long_help().to_string();
    let defaults = Config::load(&RunArgs::default(), &[], None)
        .unwrap()
        .to_toml();
    for key in KEYS
        .iter()
        .filter(|k| !matches!(**k, "classes" | "limits" | "control_token" | "register"))
    {
        let flag = format!("--{}", key.replace('_', "-"));
        assert!(help.contains(&flag), "{flag} missing from --help");
        assert!(
            help.contains(&format!("ONHOLD_{}", key.to_ascii_uppercase())),
            "{key} env"
        );
        // The default written in the help is the effective default.
        let line = defaults
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap();
        let value = line[key.len() + 3..]
            .split("  #")
            .next()
            .unwrap()
            .trim()
            .trim_matches('"');
        let shown = match *key {
            "listen" => "udp:0.0.0.0:5060".to_string(),
            "codecs" => "\"\"".to_string(),
            "gain_db" => "0".to_string(),
            "music" | "record_dir" => "\"\"".to_string(),
            // Too long for one help line: named, and each network listed in the text.
            "allow" => {
                for net in value.trim_matches(['[', ']']).split(", ") {
                    let net = net.trim_matches('"');
                    assert!(help.contains(net), "allow: {net} not in help");
                }
                "private networks".to_string()
            }
            _ => value.to_string(),
        };
        assert!(
            help.contains(&format!("[default: {shown}]")),
            "{key}: [default: {shown}] not in help"
        );
    }
}

#[test]
fn who_may_talk_inside_a_call_and_where_media_may_go() {
    use crate::server::{InDialogFrom, MediaTo};
    let c = file("").unwrap();
    assert_eq!(c.server.in_dialog_from, InDialogFrom::Peer);
    assert_eq!(c.server.media_to, MediaTo::Sdp);
    let c = file("in_dialog_from = \"any\"\nmedia_to = \"sip-source\"").unwrap();
    assert_eq!(c.server.in_dialog_from, InDialogFrom::Any);
    assert_eq!(c.server.media_to, MediaTo::SipSource);
    let c = Config::load(&flags(&["--media-to", "SIP-SOURCE"]), &[], None).unwrap();
    assert_eq!(c.server.media_to, MediaTo::SipSource);
    assert_eq!(
        error_line(file("media_to = \"victim\"")),
        "config: media_to = \"victim\": must be \"sdp\" or \"sip-source\" \
         (in /etc/onhold/onhold.toml)"
    );
    assert_eq!(
        error_line(file("in_dialog_from = 3")),
        "config: in_dialog_from = 3: must be \"peer\" or \"any\" (in /etc/onhold/onhold.toml)"
    );
    let printed = file("media_to = \"sip-source\"").unwrap().to_toml();
    assert!(printed.contains("in_dialog_from = \"peer\""), "{printed}");
    assert!(printed.contains("media_to = \"sip-source\""), "{printed}");
}

#[test]
fn who_may_send_sip() {
    use crate::server::{DenyAction, Network};
    let c = file("").unwrap();
    assert_eq!(c.server.allow, Network::private());
    assert_eq!(c.server.deny_action, DenyAction::Drop);
    assert!(c.warnings.is_empty());
    let c = file("allow = [\"192.0.2.0/24\", \"2001:db8::1\"]\ndeny_action = \"403\"").unwrap();
    let nets: Vec<String> = c.server.allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["192.0.2.0/24", "2001:db8::1/128"]);
    assert_eq!(c.server.deny_action, DenyAction::Forbidden);
    let c = Config::load(
        &RunArgs::default(),
        &env(&[("ONHOLD_ALLOW", "0.0.0.0/0, ::/0")]),
        None,
    )
    .unwrap();
    assert_eq!(c.server.allow.len(), 2);
    assert!(c.warnings[0].contains("whole internet"), "{:?}", c.warnings);
    assert!(error_line(file("allow = [\"10.0.0.0/33\"]"))
        .starts_with("config: allow = [\"10.0.0.0/33\"]: must be a list of networks"));
    assert!(error_line(file("deny_action = \"reject\"")).contains("must be \"drop\" or \"403\""));
    let printed = file("allow = [\"10.0.0.0/8\"]").unwrap().to_toml();
    assert!(printed.contains("allow = [\"10.0.0.0/8\"]"), "{printed}");
}

#[test]
fn limits_come_from_the_table_the_environment_or_flags() {
    let text = "[limits]\ninvite_rate = 50\ntransaction_memory = \"64MiB\"\nack_wait = \"4s\"\n";
    let c = Config::load(
        &flags(&["--limit", "calls_per_source=20"]),
        &env(&[
            ("ONHOLD_LIMITS_INVITE_BURST", "7"),
            ("ONHOLD_LIMITS_INVITE_RATE", "30"),
        ]),
        Some((Path::new("/etc/onhold.toml"), text)),
    )
    .unwrap();
    let l = &c.server.limits;
    assert_eq!(l.calls_per_source, 20);
    assert_eq!(l.invite_rate, 30.0, "the environment over the file");
    assert_eq!(l.invite_burst, 7);
    assert_eq!(l.transaction_bytes, 64 << 20);
    assert_eq!(c.server.ack_wait, Duration::from_secs(4));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.origin("limits.calls_per_source"),
        &Origin::Flag("--limit".into())
    );
    let out = c.to_toml();
    assert!(out.contains("\n[limits]\ncalls_per_source = 20 "), "{out}");
    assert_eq!(file(&out).unwrap().server.limits, c.server.limits);
}

#[test]
fn bad_limits_get_one_line_naming_the_key() {
    assert_eq!(
        error_line(file("[limits]\ninvite_rate = 0")),
        "config: limits.invite_rate = 0: must be a number of INVITEs per second from 0.01 to \
         1000000 (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("[limits]\nfrobs = 1"))
        .contains("unknown key; known keys: calls_per_source"));
    assert!(error_line(file("limits = 3")).contains("must be a table: [limits]"));
    let e = Config::load(&flags(&["--limit", "ack_wait=40s"]), &[], None);
    assert!(error_line(e).contains("must be a duration from 1s to 32s (from --limit)"));
    let e = Config::load(&flags(&["--limit", "nonsense"]), &[], None);
    assert!(error_line(e).contains("must be KEY=VALUE"));
    assert!(error_line(file("[limits]\ntransaction_memory = \"1KiB\"")).contains("1MiB to 64GiB"));
}

#[test]
fn liveness_registration_and_latching_keys() {
    let text = "media_timeout = \"off\"\nkeepalive_interval = \"30s\"\naccept_register = false\n\
                rtp_latching = \"always\"\nmax_call_duration = \"off\"\n";
    let c = file(text).unwrap();
    assert_eq!(c.server.media_timeout, None);
    assert_eq!(c.server.keepalive_interval, Some(Duration::from_secs(30)));
    assert!(!c.server.accept_register);
    assert_eq!(c.server.rtp_latching, Latching::Always);
    assert_eq!(c.server.max_call_duration, None);
    let back = file(&c.to_toml()).unwrap();
    assert_eq!(back.server.keepalive_interval, c.server.keepalive_interval);
    assert_eq!(back.server.rtp_latching, c.server.rtp_latching);
    assert_eq!(
        error_line(file("rtp_latching = \"sometimes\"")),
        "config: rtp_latching = \"sometimes\": must be \"auto\" or \"off\" or \"always\" \
         (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("keepalive_interval = \"1s\"")).contains("at least 5s"));
}

#[test]
fn the_control_listener_needs_a_token_off_loopback_and_the_token_is_never_printed() {
    let c = file("").unwrap();
    assert_eq!(
        c.control_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
    assert_eq!(
        file("control_listen = \"off\"").unwrap().control_listen,
        None
    );
    let e = error_line(file("control_listen = \"0.0.0.0:8080\""));
    assert!(
        e.starts_with("config: control_listen = \"0.0.0.0:8080\": is not a loopback address"),
        "{e}"
    );
    let secret = "s3cret-token-0123456789";
    let c = file(&format!(
        "control_listen = \"0.0.0.0:8080\"\ncontrol_token = \"{secret}\""
    ))
    .unwrap();
    assert_eq!(
        c.control_listen,
        Some(SocketAddr::from(([0, 0, 0, 0], 8080)))
    );
    assert_eq!(c.control_token.as_deref(), Some(secret));
    let out = c.to_toml();
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains("# control_token = (set, hidden)"), "{out}");
    let e = error_line(file("control_token = \"short\""));
    assert!(!e.contains("short"), "the value is not echoed: {e}");
    assert!(e.contains("at least 16 characters"), "{e}");
    assert!(error_line(file("control_listen = \"localhost\"")).contains("IP:PORT"));
}

#[test]
fn the_register_example_parses_with_its_password_from_the_environment() {
    let example = include_str!("../../../onhold.example.toml");
    let start = example.find("# [[register]]").unwrap();
    let end = example[start..].find("\n\n").unwrap() + start;
    let table: String = example[start..end]
        .lines()
        .map(|l| l.trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::load(
        &RunArgs::default(),
        &env(&[("ONHOLD_PBX_PASSWORD", "hunter2-secret")]),
        Some((Path::new("/etc/onhold.toml"), &table)),
    )
    .unwrap();
    let r = &c.server.registrations[0];
    assert_eq!(r.registrar, "sip:pbx.example.com");
    assert_eq!(r.aor, "sip:moh@pbx.example.com");
    assert_eq!(r.auth_user, "moh");
    assert_eq!(r.password, "hunter2-secret");
    assert_eq!(r.expires, Duration::from_secs(3600));
    assert_eq!(r.local, "0.0.0.0:5060".parse().unwrap());
    let out = c.to_toml();
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("password_env = \"ONHOLD_PBX_PASSWORD\""),
        "{out}"
    );
    assert!(!format!("{c:?}").contains("hunter2"));
    // What --check-config prints parses back to the same accounts.
    let back = Config::load(
        &RunArgs::default(),
        &env(&[("ONHOLD_PBX_PASSWORD", "hunter2-secret")]),
        Some((Path::new("/etc/onhold.toml"), &out)),
    )
    .unwrap();
    assert_eq!(back.server.registrations, c.server.registrations);
}

#[test]
fn register_entries_get_one_line_errors_and_never_show_the_password() {
    let line = |text: &str| error_line(file(text));
    assert_eq!(
        line("[[register]]\naor = \"sip:moh@pbx\""),
        "config: register[0].registrar: is required (in /etc/onhold/onhold.toml)"
    );
    assert!(
        line("[[register]]\nregistrar = \"http://pbx\"\naor = \"sip:a@b\"")
            .starts_with("config: register[0].registrar = \"http://pbx\": must be a sip: URI")
    );
    assert!(
        line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:pbx\"")
            .contains("must be a sip: URI with a user")
    );
    let e = line(
        "[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\npassword = \"pw\\u0001x\"",
    );
    assert!(!e.contains("pw"), "{e}");
    let e =
        line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\npassword_env = \"NOPE\"");
    assert!(e.contains("not set"), "{e}");
    let e = line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\ntransport = \"tcp\"");
    assert!(
        e.contains("registering over tcp needs a TCP listen address"),
        "{e}"
    );
    let e = line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\ntransport = \"tls\"");
    assert!(e.contains("must be \"udp\" or \"tcp\""), "{e}");
    // Over TCP: the TCP listener, named by the key or by the registrar URI's parameter.
    let both = "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5070\"]\n[[register]]\naor = \"sip:a@pbx\"\npassword = \"pw\"\n";
    for how in [
        "registrar = \"sip:pbx\"\ntransport = \"tcp\"",
        "registrar = \"sip:pbx;transport=tcp\"",
    ] {
        let c = file(&format!("{both}{how}")).unwrap();
        let r = &c.server.registrations[0];
        assert_eq!(
            (r.transport, r.local),
            (Transport::Tcp, "127.0.0.1:5070".parse().unwrap()),
            "{how}"
        );
        let back = file(
            &c.to_toml()
                .replace("# password = (set, hidden)", "password = \"pw\""),
        )
        .unwrap();
        assert_eq!(back.server.registrations[0].transport, Transport::Tcp);
    }
    let e = line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\nexpires = 5");
    assert!(e.contains("60s to 24h"), "{e}");
    let e = line("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\nbogus = 1");
    assert!(e.contains("unknown key"), "{e}");
    let e = line("listen = [\"tcp:0.0.0.0:5060\"]\n[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"");
    assert!(
        e.contains("registering over udp needs a UDP listen address"),
        "{e}"
    );
    let c = file("[[register]]\nregistrar = \"sip:192.0.2.1\"\naor = \"sip:a@pbx\"\npassword = \"pw\"\noutbound_proxy = \"192.0.2.9\"\nexpires = \"10m\"").unwrap();
    let r = &c.server.registrations[0];
    assert_eq!(
        r.outbound_proxy,
        Some(Hop::Addr("192.0.2.9:5060".parse().unwrap()))
    );
    let proxy = |v: &str| {
        let text = format!("[[register]]\nregistrar = \"sip:pbx\"\naor = \"sip:a@pbx\"\npassword = \"pw\"\noutbound_proxy = \"{v}\"");
        file(&text).map(|c| c.server.registrations[0].outbound_proxy.clone().unwrap())
    };
    assert_eq!(
        proxy("Proxy.Example.com:5080").unwrap(),
        Hop::Name {
            host: "proxy.example.com".into(),
            port: Some(5080)
        }
    );
    assert_eq!(
        proxy("edge").unwrap(),
        Hop::Name {
            host: "edge".into(),
            port: None
        }
    );
    assert_eq!(
        proxy("[2001:db8::1]:5062").unwrap(),
        Hop::Addr("[2001:db8::1]:5062".parse().unwrap())
    );
    for bad in ["proxy:0", "a b", "proxy:x", "sip:proxy"] {
        assert!(proxy(bad).is_err(), "{bad}");
    }
    assert_eq!(r.expires, Duration::from_secs(600));
    assert_eq!(r.auth_user, "a");
    let out = c.to_toml();
    assert!(
        out.contains("# password = (set, hidden)") && !out.contains("\"pw\""),
        "{out}"
    );
}

#[test]
fn live_classes() {
    let c = file(
        r#"
[classes.radio]
music = "http://127.0.0.1:8000/live.mp3"
fallback = "hold.wav"
live_buffer = "500ms"
[classes.news]
music = "http://news.example.org/stream.ogg"
"#,
    )
    .unwrap();
    let (news, radio) = (&c.music.classes[0], &c.music.classes[1]);
    let url = radio.live.as_ref().unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.path.as_str()),
        ("127.0.0.1", 8000, "/live.mp3")
    );
    assert_eq!(radio.music, None, "a URL is no path");
    assert_eq!(radio.fallback, Some(PathBuf::from("/etc/onhold/hold.wav")));
    assert_eq!(radio.live_buffer, Duration::from_millis(500));
    assert_eq!(news.fallback, None, "the built-in music");
    assert_eq!(news.live_buffer, Duration::from_millis(300));
    let shown = c.to_toml();
    assert!(shown.contains("music = \"http://127.0.0.1:8000/live.mp3\"\nfallback = \"/etc/onhold/hold.wav\"\nlive_buffer = \"500ms\""), "{shown}");

    // The top-level key (and so --music) may name a stream for the default class.
    let c = file("music = \"http://[::1]:8000/a\"").unwrap();
    assert_eq!(
        c.music.classes[0].live.as_ref().unwrap().to_string(),
        "http://[::1]:8000/a"
    );

    assert_eq!(
        error_line(file("[classes.r]\nmusic = \"https://radio.example/s\"")),
        "config: classes.r.music = \"https://radio.example/s\": https:// is not supported (no \
         TLS in onhold): relay the stream as http:// from a host you trust, e.g. an Icecast \
         <relay> or `ffmpeg -i https://… -c copy -f mp3 icecast://…` (in /etc/onhold/onhold.toml)"
    );
    assert!(error_line(file("music = \"http://x:70000/\"")).contains("is not a port number"));
    assert!(
        error_line(file("[classes.r]\nmusic = \"a.mp3\"\nfallback = \"b.mp3\""))
            .starts_with("config: classes.r.fallback: only a live class")
    );
    assert!(error_line(file(
        "[classes.r]\nmusic = \"http://x/\"\nannouncement = \"b.mp3\""
    ))
    .contains("a live class plays no announcement"));
    assert!(error_line(file(
        "[classes.r]\nmusic = \"http://x/\"\nlive_buffer = \"5s\""
    ))
    .contains("from 60ms to 2s"));
}

#[test]
fn a_class_has_its_own_codecs_ptime_and_sdp_lines() {
    let c = file(
        r#"
[classes.sales]
music = "/srv/sales.wav"
codecs = ["PCMA", "PCMU"]
ptime = 40
sdp_bandwidth_as = 64
sdp_bandwidth_tias = 64000
sdp_session_attributes = ["a=tool:onhold", "x-moh"]
sdp_media_attributes = ["label:1"]
[classes.support]
music = "/srv/support.wav"
"#,
    )
    .unwrap();
    // Only the class with settings of its own reaches the core.
    assert_eq!(c.server.class_sdp.len(), 1);
    let s = &c.server.class_sdp[0];
    assert_eq!(s.class, "sales");
    assert_eq!(s.codecs, [Codec::Pcma, Codec::Pcmu]);
    assert_eq!(s.ptime_ms, Some(40));
    assert_eq!(s.extras.bandwidth_as, Some(64));
    assert_eq!(s.extras.bandwidth_tias, Some(64000));
    assert_eq!(s.extras.session_attributes, ["tool:onhold", "x-moh"]);
    assert_eq!(s.extras.media_attributes, ["label:1"]);
    let back = file(&c.to_toml()).unwrap();
    assert_eq!(
        back.server.class_sdp, c.server.class_sdp,
        "--check-config round trip"
    );

    let bad = |body: &str| error_line(file(&format!("[classes.a]\nmusic = \"x\"\n{body}")));
    assert!(bad("sdp_media_attributes = [\"rtpmap:0 PCMU/8000\"]")
        .starts_with("config: classes.a.sdp_media_attributes = \"rtpmap:0 PCMU/8000\": must be"));
    assert!(bad("sdp_session_attributes = [\"sendrecv\"]").contains("onhold writes"));
    assert!(bad("sdp_session_attributes = [\"x\\r\\nm=video\"]").contains("one line"));
    assert!(bad("sdp_bandwidth_as = 0").contains("from 1 to 100000"));
    assert!(bad("ptime = 25").starts_with("config: classes.a.ptime = 25: must be 10–60 ms"));
    assert!(bad("codecs = [\"G729\"]").starts_with("config: classes.a.codecs = \"G729\""));
}
