//! `dms session …`: a thin client of the origin's `/v1/sessions` API
//! (broadcast sessions of stored objects).

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;

use super::publish::{Client, ServerArgs};

/// Session subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Schedule a broadcast session of stored objects; prints its JSON.
    Start(Box<StartArgs>),
    /// Show a session: state, packets and bytes sent, per-object progress.
    Status(IdArgs),
    /// Stop a session.
    Stop(IdArgs),
    /// List the sessions.
    List(ListArgs),
}

/// FEC scheme names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fec {
    /// RaptorQ (RFC 6330).
    Raptorq,
    /// Raptor (RFC 5053), as 3GPP MBMS download uses.
    Raptor,
    /// Compact No-Code (RFC 5445).
    Nocode,
}

impl Fec {
    fn as_str(self) -> &'static str {
        match self {
            Fec::Raptorq => "raptorq",
            Fec::Raptor => "raptor",
            Fec::Nocode => "nocode",
        }
    }
}

/// Arguments of `dms session start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Object ids, comma-separated (sent critical first).
    #[arg(long, value_delimiter = ',', required = true, value_name = "ID,...")]
    objects: Vec<String>,
    /// Multicast group and port, e.g. 239.255.1.1:5000.
    #[arg(long, value_name = "ADDR:PORT")]
    group: String,
    /// Interface the origin sends on: an IPv4 address (127.0.0.1), a
    /// name, an index or `any`.
    #[arg(long)]
    iface: String,
    /// Rate of UDP payload in Mbit/s (> 0).
    #[arg(long)]
    rate: f64,
    /// Forward error correction.
    #[arg(long, value_enum, default_value_t = Fec::Raptorq)]
    fec: Fec,
    /// Repair symbols per source block, percent of K (RaptorQ, Raptor).
    #[arg(long, default_value_t = 10)]
    repair: u32,
    /// Symbol size T (default: each object's stored layout).
    #[arg(long)]
    symbol_size: Option<u16>,
    /// How many times the object list is sent.
    #[arg(long)]
    carousel: Option<u32>,
    /// Transport Session Identifier (default: random).
    #[arg(long)]
    tsi: Option<u64>,
    /// When to start: RFC 3339 (2026-11-24T22:30:00Z) or Unix seconds.
    #[arg(long)]
    start_at: Option<String>,
    /// Also send, beside each object, the stored delta from its previous
    /// active version (the version most of a fleet runs).
    #[arg(long)]
    delta_previous: bool,
    /// Also send, beside each object, the stored delta from each of these
    /// installed versions (hex SHA-256, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "SHA256,...")]
    delta_from: Vec<String>,
    /// Repair servers the session's APD names (`{base}/repair` URLs,
    /// repeatable); default the origin's own.
    #[arg(long = "repair-server", value_name = "URL")]
    repair_server: Vec<String>,
    /// APD `offsetTime`: seconds a device waits after the session before
    /// repair or a report (default 0).
    #[arg(long, value_name = "S")]
    backoff_offset: Option<u64>,
    /// APD `randomTimePeriod`: width of the random wait added, seconds
    /// (default 1).
    #[arg(long, value_name = "S")]
    backoff_window: Option<u64>,
    /// APD `samplePercentage`: share of devices that report (default 100).
    #[arg(long, value_name = "PERCENT")]
    report_sample: Option<f64>,
    /// APD `reportType`: RAck, StaR or StaR-all (default StaR-all).
    #[arg(long, value_name = "RAck|StaR|StaR-all", value_parser = ["RAck", "StaR", "StaR-all"])]
    report_type: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// A session id and the server.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Session id.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `dms session list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// The JSON body of `POST /v1/sessions`.
fn start_body(a: &StartArgs) -> serde_json::Value {
    let mut body = serde_json::json!({
        "objects": a.objects,
        "group": a.group,
        "iface": a.iface,
        "rate": a.rate,
        "fec": a.fec.as_str(),
        "repair": a.repair,
    });
    if let Some(t) = a.symbol_size {
        body["symbol_size"] = t.into();
    }
    if let Some(c) = a.carousel {
        body["carousel"] = c.into();
    }
    if let Some(t) = a.tsi {
        body["tsi"] = t.into();
    }
    if a.delta_previous {
        body["deltas"] = "previous".into();
    }
    if !a.delta_from.is_empty() {
        body["delta_from"] = a.delta_from.clone().into();
    }
    if !a.repair_server.is_empty() {
        body["repair_servers"] = a.repair_server.clone().into();
    }
    if let Some(s) = a.backoff_offset {
        body["backoff_offset"] = s.into();
    }
    if let Some(s) = a.backoff_window {
        body["backoff_window"] = s.into();
    }
    if let Some(p) = a.report_sample {
        body["report_sample"] = p.into();
    }
    if let Some(t) = &a.report_type {
        body["report_type"] = t.as_str().into();
    }
    if let Some(s) = &a.start_at {
        body["start_at"] = match s.parse::<u64>() {
            Ok(secs) => secs.into(),
            Err(_) => s.as_str().into(),
        };
    }
    body
}

/// Runs a `dms session` subcommand; prints the JSON answer.
pub fn run(command: SessionCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let value = runtime.block_on(async {
        match command {
            SessionCommand::Start(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(
                        client
                            .request(Method::POST, "/v1/sessions")
                            .json(&start_body(&a)),
                    )
                    .await
            }
            SessionCommand::Status(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::GET, &format!("/v1/sessions/{}", a.id)))
                    .await
            }
            SessionCommand::Stop(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::DELETE, &format!("/v1/sessions/{}", a.id)))
                    .await
            }
            SessionCommand::List(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::GET, "/v1/sessions"))
                    .await
            }
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SessionCommand,
    }

    #[test]
    fn start_arguments_make_the_api_body() {
        let cli = Cli::try_parse_from([
            "dms",
            "start",
            "--objects",
            "ab,cd",
            "--group",
            "239.255.1.1:5000",
            "--iface",
            "127.0.0.1",
            "--rate",
            "2.5",
            "--fec",
            "nocode",
            "--repair",
            "0",
            "--carousel",
            "3",
            "--start-at",
            "1800000000",
            "--token",
            "t",
        ])
        .unwrap();
        let SessionCommand::Start(a) = cli.command else {
            panic!("not start")
        };
        let body = start_body(&a);
        assert_eq!(body["objects"], serde_json::json!(["ab", "cd"]));
        assert_eq!(body["rate"], 2.5);
        assert_eq!(body["fec"], "nocode");
        assert_eq!(body["carousel"], 3);
        assert_eq!(body["start_at"], 1_800_000_000u64);
        assert!(body.get("tsi").is_none() && body.get("symbol_size").is_none());
        assert!(body.get("deltas").is_none() && body.get("delta_from").is_none());
        assert!(body.get("repair_servers").is_none() && body.get("report_type").is_none());
    }

    #[test]
    fn procedure_options_make_the_api_body() {
        let cli = Cli::try_parse_from([
            "dms",
            "start",
            "--objects",
            "ab",
            "--group",
            "239.255.1.1:5000",
            "--iface",
            "127.0.0.1",
            "--rate",
            "1",
            "--repair-server",
            "https://r1/repair",
            "--repair-server",
            "https://r2/repair",
            "--backoff-offset",
            "5",
            "--backoff-window",
            "10",
            "--report-sample",
            "12.5",
            "--report-type",
            "StaR",
            "--token",
            "t",
        ])
        .unwrap();
        let SessionCommand::Start(a) = cli.command else {
            panic!("not start")
        };
        let body = start_body(&a);
        assert_eq!(
            body["repair_servers"],
            serde_json::json!(["https://r1/repair", "https://r2/repair"])
        );
        assert_eq!(
            (
                body["backoff_offset"].clone(),
                body["backoff_window"].clone()
            ),
            (5.into(), 10.into())
        );
        assert_eq!(body["report_sample"], 12.5);
        assert_eq!(body["report_type"], "StaR");
        assert!(
            Cli::try_parse_from([
                "dms",
                "start",
                "--objects",
                "ab",
                "--group",
                "g",
                "--iface",
                "i",
                "--rate",
                "1",
                "--report-type",
                "All",
                "--token",
                "t",
            ])
            .is_err()
        );
    }

    #[test]
    fn delta_options_make_the_api_body() {
        let sha = "ab".repeat(32);
        let cli = Cli::try_parse_from([
            "dms",
            "start",
            "--objects",
            "ab",
            "--group",
            "239.255.1.1:5000",
            "--iface",
            "127.0.0.1",
            "--rate",
            "1",
            "--delta-previous",
            "--delta-from",
            &sha,
            "--token",
            "t",
        ])
        .unwrap();
        let SessionCommand::Start(a) = cli.command else {
            panic!("not start")
        };
        let body = start_body(&a);
        assert_eq!(body["deltas"], "previous");
        assert_eq!(body["delta_from"], serde_json::json!([sha]));
    }
}
