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
    /// Forward error correction tools: measurements of the FEC codes.
    #[command(subcommand)]
    Fec(commands::fec::FecCommand),
    /// Receive FLUTE objects from a multicast group into a directory; exit
    /// once `--count` are complete and verified.
    Receive(commands::receive::ReceiveArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Fec(command) => commands::fec::run(command),
        Command::Receive(args) => commands::receive::run(args),
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
