//! `dms`: the one command line of the Distribution Management System.
//!
//! Subcommands wire the library crates together; no protocol logic lives
//! here. Errors are reported with anyhow; logs go through `tracing`
//! (`RUST_LOG=debug dms …` for more).

mod commands;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Distribution Management System: stores update objects and delivers them to
/// fleets of devices over FLUTE multicast with RaptorQ FEC, unicast repair
/// and peer-to-peer repair.
#[derive(Debug, Parser)]
#[command(name = "dms", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system on this machine: an origin, a broadcast and N UEs
    /// that repair from peers and the repair service, then a table.
    Demo(commands::demo::DemoArgs),
    /// Binary deltas between versions: make one, apply one.
    #[command(subcommand)]
    Delta(commands::delta::DeltaCommand),
    /// Forward error correction tools: measurements of the FEC codes.
    #[command(subcommand)]
    Fec(commands::fec::FecCommand),
    /// Download a Package URI (https, coap, coap+tcp, coaps+tcp) as a
    /// device does: resumable, verified against the signed manifest.
    Fetch(commands::fetch::FetchArgs),
    /// Send files as one FLUTE session to a multicast group, paced, and
    /// exit when the last carousel round is out.
    Send(commands::send::SendArgs),
    /// Run the origin: object repository, management API, descriptors.
    Serve(commands::serve::ServeArgs),
    /// Serve downloads and symbol repair alone, read-only over an origin's
    /// data directory (scale repair out behind a load balancer or CDN).
    RepairServe(commands::repair_serve::RepairServeArgs),
    /// Publish an object to an origin; prints its JSON.
    Publish(commands::publish::PublishArgs),
    /// Inspect and manage the objects of an origin.
    #[command(subcommand)]
    Objects(commands::objects::ObjectsCommand),
    /// Broadcast sessions of stored objects on an origin: start, status,
    /// stop, list.
    #[command(subcommand)]
    Session(commands::session::SessionCommand),
    /// Re-hash every stored object against its SHA-256 and block hashes;
    /// mark the damaged ones (refused until uploaded again), name them and
    /// exit non-zero.
    Scrub(commands::scrub::ScrubArgs),
    /// Make a new manifest signing key in a data directory.
    Keygen(commands::keygen::KeygenArgs),
    /// Receive FLUTE objects from a multicast group into a directory; exit
    /// once `--count` are complete and verified.
    Receive(commands::receive::ReceiveArgs),
    /// Simulate FEC and repair for a population of UEs (no sockets):
    /// repair load against FEC overhead and loss; CSV, JSON and an SVG plot.
    Sim(commands::sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // webrtc-dtls warns of every TLS extension a client offers that
            // it does not implement (one line per handshake): errors only.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,webrtc_dtls=error,webrtc_util=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Delta(command) => commands::delta::run(command),
        Command::Fec(command) => commands::fec::run(command),
        Command::Fetch(args) => commands::fetch::run(args),
        Command::Send(args) => commands::send::run(&args),
        Command::Serve(args) => commands::serve::run_serve(args),
        Command::Publish(args) => commands::publish::run_publish(args),
        Command::RepairServe(args) => commands::repair_serve::run(args),
        Command::Objects(command) => commands::objects::run(command),
        Command::Session(command) => commands::session::run(command),
        Command::Scrub(args) => commands::scrub::run(args),
        Command::Keygen(args) => commands::keygen::run_keygen(args),
        Command::Receive(args) => commands::receive::run(args),
        Command::Sim(args) => commands::sim::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
