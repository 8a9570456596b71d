//! The parts of the `onhold` binaries that do not depend on the event loop: the command line,
//! start-up, music loading, logging, signals, socket bookkeeping. `onhold` (smol) and
//! `onhold-mio` (raw mio) both build on this crate, so the two differ only in how they wait and
//! how they move datagrams.

pub mod batch;
pub mod control;
pub mod ctl;
pub mod icmp;
pub mod lifecycle;
pub mod live;
pub mod logging;
pub mod music;
pub mod net;
pub mod pktinfo;
pub mod record;
pub mod resolve;
pub mod senders;
pub mod signals;
pub mod sockaddr;
pub mod startup;
pub mod stream;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use onhold_core::config::RunArgs;

/// What `--version` prints after the binary's name: the package version and the git commit it
/// was built from (`0.1.0 (0123456789ab)`; `unknown` when built without git or
/// `ONHOLD_GIT_COMMIT`, see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ONHOLD_BUILD_COMMIT"),
    ")"
);

/// Music On Hold SIP server: answers any INVITE and streams music (PCMU, PCMA, G.722) until the
/// caller hangs up. Settings come from flags, then ONHOLD_* environment variables, then the
/// --config file, then the defaults shown below.
#[derive(Debug, Parser)]
#[command(version = VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the server (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// Call a Music On Hold server and judge the stream it sends (exit 0 when healthy).
    Probe(onhold_probe::ProbeArgs),
    /// Load and measure SIP/RTP senders side by side: calls ramped, held and torn down, RTP
    /// judged with kernel timestamps, CPU and memory per call, a table, ratios and a plot.
    Bench(onhold_probe::bench::BenchArgs),
    /// Talk to a running server's control API: calls, hangup, reload, events, metrics.
    Ctl(ctl::CtlArgs),
}

/// Parse the command line and run: `name` is the binary's (for `--version` and usage),
/// `serve` the runtime's event loop.
pub fn main_with(name: &'static str, serve: fn(startup::Startup) -> ExitCode) -> ExitCode {
    let matches = Cli::command().name(name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let args = match cli.command {
        Some(CliCommand::Probe(p)) => return onhold_probe::run(p),
        Some(CliCommand::Bench(b)) => return onhold_probe::bench::run(b),
        Some(CliCommand::Ctl(c)) => return ctl::run(c),
        Some(CliCommand::Run(args)) => *args,
        None => cli.run,
    };
    match startup::start(args) {
        Ok(startup) => serve(startup),
        Err(code) => code,
    }
}
