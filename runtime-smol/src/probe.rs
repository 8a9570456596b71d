//! `onhold probe`: a SIP test client for any Music On Hold server (placeholder; see issue 5).

/// Arguments of `onhold probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The MOH URI to call, e.g. sip:123@127.0.0.1:5060
    pub target: String,
}

/// Run the probe; exit code 0 only when every call was healthy.
pub fn run(args: ProbeArgs) -> std::process::ExitCode {
    eprintln!("onhold probe: not implemented yet (target {})", args.target);
    std::process::ExitCode::from(2)
}
