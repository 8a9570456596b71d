//! Scale-out on an existing engine: `packaging/cluster/run.sh` puts `onhold` and `onhold-mio`
//! behind Debian's Kamailio with the dispatcher module (`packaging/cluster/kamailio.cfg`), on
//! loopback addresses of their own. The script itself checks the split of 200 calls, a SIGTERM
//! drain of one instance with calls up (its calls end with BYE through the proxy, it exits 0)
//! and that every call after it reaches the survivor; this test runs it, bounded in time.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use onhold_tests::kamailio::require_kamailio;
use onhold_tests::{binary, ports, wait_for, workspace_root, Runtime, TempDir};

#[test]
fn two_instances_behind_the_dispatcher_share_calls_and_one_drains() {
    require_kamailio();
    let dir = TempDir::new("cluster");
    let out = dir.join("out");
    let mut child = Command::new("bash")
        .arg(workspace_root().join("packaging/cluster/run.sh"))
        .env("ONHOLD", binary(Runtime::Smol))
        .env("ONHOLD_B", binary(Runtime::Mio))
        .env("PROXY_PORT", ports::free_udp_port().to_string())
        .env("SIP_PORT", ports::free_udp_port().to_string())
        .env("CALLS", "200")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run packaging/cluster/run.sh");
    let status = wait_for(Duration::from_secs(120), || child.try_wait().ok().flatten());
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let Some(status) = status else {
        // SAFETY: kill(2) on the process group our child leads (process_group(0)).
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.wait();
        panic!("run.sh still running after 120 s:\n{text}");
    };
    assert!(status.success(), "run.sh failed:\n{text}");
    assert!(
        text.contains("answered 100, instance B (127.0.0.3) answered 100"),
        "{text}"
    );
    assert!(text.contains("exited 0"), "{text}");
    assert!(text.contains("answered 50 of them"), "{text}");
    assert!(text.trim_end().ends_with("PASS"), "{text}");
}
