//! The servers a run starts: an onhold-compatible binary or SIPp as a UAS playing PCMU with
//! `rtp_stream`. A fresh process per run, so its RSS starts clean, on a free loopback port;
//! stopped (SIGTERM, then SIGKILL) when the run is over.

use std::net::{SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::load;

/// The SIPp scenario: answer with PCMU from `[rtpstream_audio_port]`, stream the file in a loop
/// from the ACK, stop at the BYE. `@FILE@` is replaced with the audio file's path.
pub const SIPP_SCENARIO: &str = include_str!("sipp_uas_rtp_stream.xml");

/// The loopback address the started servers' SIP listens on.
const SERVER_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// A started server.
pub struct Server {
    pub sip: SocketAddrV4,
    child: Child,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL.
    pub fn stop(mut self, grace: Duration) {
        // SAFETY: kill(2) on our own child, which we have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!(
                "exited with {st}: {}",
                std::fs::read_to_string(&self.log)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
            _ => None,
        }
    }
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind((SERVER_IP, 0))?.local_addr()?.port())
}

/// Start an onhold binary (or anything taking its flags) for `calls` calls: SIP on a free port,
/// RTP from `rtp_ports`, the control API off, and the caps that would refuse one source's load
/// raised (max_calls, the per-source call, rate and transaction limits). The overload check
/// (`limits.overload_lateness`) is left as configured: `extra` may change it.
pub fn start_onhold(
    bin: &Path,
    rtp_ports: (u16, u16),
    extra: &[String],
    dir: &Path,
) -> Result<Server, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let sip = SocketAddrV4::new(SERVER_IP, port);
    let log = dir.join(format!(
        "{}-{port}.log",
        bin.file_name().and_then(|n| n.to_str()).unwrap_or("server")
    ));
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &sip.to_string()])
        .args(["--control-listen", "off"])
        .args(["--rtp-ports", &format!("{}-{}", rtp_ports.0, rtp_ports.1)])
        .args(["--rtp-ip", "127.0.0.1", "--advertised-address", "127.0.0.1"])
        .args(["--max-calls", "1000000", "--log-level", "warn"])
        .args(["--limit", "calls_per_source=1000000"])
        .args(["--limit", "invite_rate=1000000"])
        .args(["--limit", "invite_burst=1000000"])
        .args(["--limit", "transactions=10000000"])
        .args(["--limit", "transactions_per_source=10000000"])
        .args(["--limit", "transaction_memory=4GiB"])
        .args(["--limit", "transaction_memory_per_source=4GiB"])
        .args(extra);
    spawn(cmd, sip, log, true)
}

/// Start SIPp as the UAS: `scenario` and `audio` written into `dir`.
pub fn start_sipp(bin: &Path, dir: &Path) -> Result<Server, String> {
    let audio = dir.join("bench-pcmu.wav");
    std::fs::write(&audio, pcmu_wav(1.0)).map_err(|e| format!("{}: {e}", audio.display()))?;
    let scenario = dir.join("sipp-uas-rtp-stream.xml");
    let text = SIPP_SCENARIO.replace("@FILE@", &audio.display().to_string());
    std::fs::write(&scenario, text).map_err(|e| format!("{}: {e}", scenario.display()))?;
    let port = free_port().map_err(|e| e.to_string())?;
    let sip = SocketAddrV4::new(SERVER_IP, port);
    let log = dir.join(format!("sipp-{port}.log"));
    let mut cmd = Command::new(bin);
    cmd.arg("-sf")
        .arg(&scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args([
            "-t",
            "u1",
            "-nostdin",
            "-l",
            "1000000",
            "-max_socket",
            "100000",
        ])
        .current_dir(dir);
    spawn(cmd, sip, log, false)
}

fn spawn(
    mut cmd: Command,
    sip: SocketAddrV4,
    log: PathBuf,
    answers_options: bool,
) -> Result<Server, String> {
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    for (k, _) in std::env::vars() {
        if k.starts_with("ONHOLD_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))?;
    let mut server = Server { sip, child, log };
    if answers_options {
        if !load::wait_ready(sip.into(), Duration::from_secs(10)) {
            let why = server
                .exited()
                .unwrap_or_else(|| "no answer to OPTIONS in 10 s".into());
            server.stop(Duration::from_secs(1));
            return Err(why);
        }
    } else {
        // SIPp answers nothing outside its scenario: give it a moment, then check it lives.
        std::thread::sleep(Duration::from_millis(500));
        if let Some(why) = server.exited() {
            return Err(why);
        }
    }
    Ok(server)
}

/// A WAV file of `secs` seconds of a 440 Hz tone in G.711 µ-law, 8 kHz mono (format 7), which
/// SIPp's `rtp_stream` plays as PCMU.
pub fn pcmu_wav(secs: f64) -> Vec<u8> {
    let n = (8000.0 * secs) as usize;
    let data: Vec<u8> = (0..n)
        .map(|i| {
            let x = (i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin();
            linear_to_ulaw((x * 8000.0) as i16)
        })
        .collect();
    let mut w = Vec::with_capacity(58 + n);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&((50 + n) as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&18u32.to_le_bytes());
    w.extend_from_slice(&7u16.to_le_bytes()); // µ-law
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes()); // bytes per second
    w.extend_from_slice(&1u16.to_le_bytes()); // block align
    w.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(&0u16.to_le_bytes()); // no extension
    w.extend_from_slice(b"fact");
    w.extend_from_slice(&4u32.to_le_bytes());
    w.extend_from_slice(&(n as u32).to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(n as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// G.711 µ-law (ITU-T G.711, the classic Sun reference algorithm).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_matches_the_g711_table_at_its_corners() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(-1), 0x7f);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        // 1000 + bias lies in segment 3: !(exponent 3 << 4 | mantissa 1).
        assert_eq!(linear_to_ulaw(1000), 0xce);
    }

    #[test]
    fn the_wav_header_describes_its_data() {
        let w = pcmu_wav(0.5);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize,
            w.len() - 8
        );
        assert_eq!(u16::from_le_bytes([w[20], w[21]]), 7);
        assert_eq!(&w[50..54], b"data");
        assert_eq!(u32::from_le_bytes(w[54..58].try_into().unwrap()), 4000);
        assert_eq!(w.len(), 58 + 4000);
    }

    #[test]
    fn the_scenario_names_the_file_and_the_rtp_stream_port() {
        assert!(SIPP_SCENARIO.contains("rtp_stream=\"@FILE@,-1,0\""));
        assert!(SIPP_SCENARIO.contains("m=audio [rtpstream_audio_port] RTP/AVP 0"));
    }
}
