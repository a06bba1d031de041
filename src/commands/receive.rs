//! `dms receive`: the UE agent ([`dms_peer::agent`]) on the command line:
//! receive a FLUTE session from a multicast group into a directory, with a
//! progress bar per object (stderr) and the path of each finished object on
//! stdout.
//!
//! With `--repair` (and `--peer`), objects still incomplete when the
//! session ends (closed by the sender, or idle) are completed from peers
//! and the repair service after a random back-off: fresh repair symbols per
//! block (`more=`), a whole-object download only if symbol repair fails.
//! With `--origin-key`, nothing reaches its final name unless the object's
//! signed manifest verifies and the object matches it (size, SHA-256,
//! every block hash).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use dms_peer::agent::{AgentConfig, AgentEvent, AgentReport};
use dms_peer::receive::{Interface, LossModel, ObjectState, ReceiveConfig};
use dms_repair::client::backoff::Backoff;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::bootstrap::{self, Bootstrap};

/// Arguments of `dms receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Multicast group and port to receive, e.g. `239.255.1.1:5000`
    /// (or take it from `--usd` / `--sdp`).
    #[arg(long, required_unless_present_any = ["usd", "sdp"], conflicts_with_all = ["usd", "sdp"])]
    group: Option<SocketAddr>,
    /// Join the session of this User Service Description (`{base}/usd/{id}`):
    /// group, port, source, TSI, FEC and schedule from the SDP it names,
    /// repair servers, back-off and reporting from its APD, instead of
    /// flags. Waits for the scheduled start.
    #[arg(long, value_name = "URL", conflicts_with_all = ["sdp", "tsi", "repair", "report", "backoff_offset", "backoff_window"])]
    usd: Option<String>,
    /// Join the session of this SDP (a file or an `https://` URL): group,
    /// port, source, TSI, FEC and schedule; repair and reporting still
    /// from the flags.
    #[arg(long, value_name = "FILE|URL", conflicts_with = "tsi")]
    sdp: Option<String>,
    /// Interface to join the group on: an IPv4 address (`127.0.0.1`), an
    /// interface name or index, or `any`.
    #[arg(long, default_value = "any")]
    iface: Interface,
    /// Directory the objects are written to (created if missing); each
    /// under the file name from its Content-Location.
    #[arg(long)]
    out: PathBuf,
    /// Exit once this many objects are complete and verified (against
    /// Content-MD5 and SHA-256 where the FDT gives them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Give up after this many seconds (exit status 1, naming what is
    /// incomplete). Without it, wait until `--count` objects arrived.
    #[arg(long)]
    timeout: Option<f64>,
    /// Receive only this FLUTE session (TSI); by default every session on
    /// the group.
    #[arg(long)]
    tsi: Option<u64>,
    /// No progress bars or summary (errors are still reported).
    #[arg(long, short)]
    quiet: bool,
    /// A repair service (`{base}/repair`); repeat for several, tried in a
    /// random order (drawn from `--seed`). Incomplete objects are repaired
    /// from them once the session ends. One that refuses the connection,
    /// times out (`--http-timeout`) or answers 5xx or 429 is failed over
    /// to the next and left out of the following requests for a
    /// cool-down (2 s, doubling to 60 s); the report names each failover.
    #[arg(long = "repair", value_name = "URL")]
    repair: Vec<String>,
    /// Seconds a repair server (or the origin, for manifests, downloads
    /// and reports) may take to answer, and to send each piece of a body,
    /// before the request fails (and repair fails over to the next
    /// server).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    http_timeout: f64,
    /// The origin's public key (PEM, as in `DATA/origin.pub`): objects are
    /// delivered only once their signed manifest verifies and they match it.
    #[arg(long, value_name = "FILE")]
    origin_key: Option<PathBuf>,
    /// Trusted CA certificate (PEM) for `https://` repair and manifest
    /// URLs (e.g. `DATA/tls/cert.pem` of a local origin).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Where reception reports go; by default `{base}/report` of the
    /// first `--repair` URL.
    #[arg(long, value_name = "URL")]
    report: Option<String>,
    /// Injected packet loss: PERCENT (i.i.d.) or PERCENT,BURST
    /// (Gilbert–Elliott bursts of mean length BURST), for tests and demos.
    #[arg(long, value_name = "PERCENT[,BURST]", value_parser = parse_drop)]
    drop: Option<(f64, Option<f64>)>,
    /// Seed of the injected loss, of the repair back-off and of the order
    /// repair servers are tried in.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the agent's state: the reception of each object in
    /// progress (partial file, blocks done, symbols received), so a killed
    /// agent resumes where it was, and the last reception report of each
    /// object.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Seconds without a packet after which a session counts as ended.
    #[arg(long, default_value_t = 10.0)]
    idle: f64,
    /// Memory per object for blocks decoded ahead of a missing one
    /// (`32MiB`, `4MiB`; `1` keeps none). Past it such blocks are freed once written and
    /// the object is hashed from the file before it is delivered.
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    max_ahead: Option<u64>,
    /// Fixed wait after the session ends before asking for repair
    /// (`offsetTime`), in seconds.
    #[arg(long, default_value_t = 0.0)]
    backoff_offset: f64,
    /// Width of the uniform random wait added to it
    /// (`randomTimePeriod`), in seconds.
    #[arg(long, default_value_t = 1.0)]
    backoff_window: f64,
    /// Listen for peers on this libp2p address (e.g.
    /// `/ip4/0.0.0.0/tcp/4001`); repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<dms_peer::p2p::Multiaddr>,
    /// A peer to dial (e.g. `/ip4/192.0.2.7/tcp/4001`); repeatable. Peers
    /// are asked for repair symbols before the repair service.
    #[arg(long, value_name = "MULTIADDR")]
    peer: Vec<dms_peer::p2p::Multiaddr>,
    /// Find peers on the local network with mDNS (it sends on every
    /// interface, so it is off unless asked for).
    #[arg(long)]
    mdns: bool,
    /// Seconds to keep serving peers after the objects are complete.
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// Serve garbage symbols to peers (to test that they ban us).
    #[arg(long, hide = true)]
    malicious_peer: bool,
    /// The installed version (a file): a delta the session carries for it
    /// is applied and verified instead of receiving the whole object, which
    /// remains the fallback.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
    /// This device's id in reception reports.
    #[arg(long, default_value = "ue")]
    device: String,
    /// Late join: if no broadcast object was seen this many seconds after
    /// the start, ask the peers (`--peer`, `--mdns`) which objects they
    /// hold, verify their signed manifests (`--origin-key`; without it
    /// only objects announced with a SHA-256 are taken, unauthenticated)
    /// and complete them by repair alone: peers, then `--repair` (or the
    /// repair service of the manifest's origin). Off unless given, so a
    /// UE waiting for a later session never takes it from peers instead.
    #[arg(long, value_name = "SECS")]
    late_join: Option<f64>,
}

/// `PERCENT[,BURST]`: a loss fraction and, for bursts, their mean length.
pub fn parse_drop(s: &str) -> Result<(f64, Option<f64>), String> {
    let (rate, burst) = match s.split_once(',') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("bad percent {rate:?}"))?;
    if !(0.0..=100.0).contains(&rate) {
        return Err("percent must be in 0..=100".into());
    }
    let burst = match burst {
        Some(b) => {
            let b: f64 = b.trim().parse().map_err(|_| format!("bad burst {b:?}"))?;
            if !(b >= 1.0 && b.is_finite()) {
                return Err("burst must be at least 1".into());
            }
            Some(b)
        }
        None => None,
    };
    Ok((rate / 100.0, burst))
}

/// Trust roots from a PEM file of CA certificates (none without a file).
pub fn roots(cacert: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = cacert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?)?;
        }
        if roots.is_empty() {
            bail!("{}: no certificate", path.display());
        }
    }
    Ok(roots)
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} must be ≥ 0 seconds"))
}

fn positive_secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    secs(s, what)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{what} must be a positive number of seconds"))
}

/// The agent's settings from the command line (and the session
/// descriptions it names).
fn agent_config(args: &ReceiveArgs, bootstrap: Option<&Bootstrap>) -> anyhow::Result<AgentConfig> {
    let group = match (args.group, bootstrap) {
        (Some(group), _) => group,
        (None, Some(b)) => b.group(),
        (None, None) => bail!("--group, --usd or --sdp is required"),
    };
    let mut receive = ReceiveConfig::new(group, args.iface, &args.out);
    if let Some(tsi) = args.tsi.or(bootstrap.map(|b| b.sdp.tsi)) {
        receive.flute.tsi = Some(tsi);
    }
    if let Some(b) = bootstrap {
        receive.sources.clone_from(&b.sdp.sources);
    }
    receive.flute.session_idle_timeout = positive_secs(args.idle, "--idle")?;
    if let Some(bytes) = args.max_ahead {
        receive.flute.max_ahead_bytes = usize::try_from(bytes)?;
    }
    receive.loss = args.drop.map(|(rate, mean_burst)| LossModel {
        rate,
        mean_burst,
        seed: args.seed,
    });
    // Reception state (partial files, have-maps, spooled symbols) sits
    // beside the reports, so a killed agent resumes where it was.
    receive.state.clone_from(&args.state);
    let mut config = AgentConfig::new(receive);
    config.count = args.count;
    config.timeout = args
        .timeout
        .map(|t| positive_secs(t, "--timeout"))
        .transpose()?;
    config.repair_uris.clone_from(&args.repair);
    config.origin_key_pem = match &args.origin_key {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    config.roots = roots(args.cacert.as_deref())?;
    config.report_uri = args.report.clone().or_else(|| config.default_report_uri());
    config.seed = args.seed;
    config.http_timeout = positive_secs(args.http_timeout, "--http-timeout")?;
    config.state_dir.clone_from(&args.state);
    config.backoff = Backoff {
        offset: secs(args.backoff_offset, "--backoff-offset")?,
        random_period: secs(args.backoff_window, "--backoff-window")?,
    };
    config.listen.clone_from(&args.listen);
    config.peers.clone_from(&args.peer);
    config.mdns = args.mdns;
    config.malicious_peer = args.malicious_peer;
    config.linger = secs(args.linger, "--linger")?;
    config.device.clone_from(&args.device);
    if let Some(b) = bootstrap.filter(|b| b.procedures.is_some()) {
        // The APD's procedures replace the repair and report flags.
        config.repair_uris = b.repair_uris();
        if let Some(backoff) = b.backoff() {
            config.backoff = backoff;
        }
        // samplePercentage: a draw of this device (seeded, so a fleet
        // given distinct seeds reports in proportion).
        let mut rng =
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(args.seed ^ 0x5a3b_1e00);
        let unit: f64 = rand::Rng::random(&mut rng);
        let reporting: Option<(String, dms_flute::mbms::ReportType)> = b.reporting(unit);
        config.report_uri = reporting.as_ref().map(|(uri, _)| uri.clone());
        config.report_type = reporting.map(|(_, t)| t);
        if let Some(backoff) = b.report_backoff() {
            config.report_backoff = backoff;
        }
        config.report_session_id = Some(b.session_id());
        config.report_service_id.clone_from(&b.service_id);
    }
    // A described session is the only one: once it ended and its repair
    // is done, the UE is done (and reports what failed).
    config.end_with_session = bootstrap.is_some();
    config.base.clone_from(&args.base);
    config.late_join_after = args.late_join.map(|t| secs(t, "--late-join")).transpose()?;
    Ok(config)
}

/// Runs `dms receive`.
pub fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let bootstrap = match (&args.usd, &args.sdp) {
        (None, None) => None,
        (usd, sdp) => Some(bootstrap::load(
            usd.as_deref(),
            sdp.as_deref(),
            roots(args.cacert.as_deref())?,
        )?),
    };
    let config = agent_config(&args, bootstrap.as_ref())?;
    if let Some(b) = &bootstrap {
        // Joined a second ahead: a short session may be over within a
        // second of its start, and the join takes a moment.
        let wait = b.wait()?.saturating_sub(Duration::from_secs(1));
        if !wait.is_zero() {
            if !args.quiet {
                eprintln!(
                    "waiting {} s for the scheduled start of the session",
                    wait.as_secs()
                );
            }
            std::thread::sleep(wait);
        }
        if !args.quiet {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            eprintln!(
                "joining {} (TSI {}) at Unix time {now}",
                b.group(),
                b.sdp.tsi
            );
        }
    }
    let multi = MultiProgress::with_draw_target(if args.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
    )
    .context("progress bar template")?
    .progress_chars("=> ");
    let mut bars: BTreeMap<(u64, u128), ProgressBar> = BTreeMap::new();
    let quiet = args.quiet;
    // Each failure once (an object on a carousel fails again each round).
    let mut said: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let report = dms_peer::agent::run(config, |event| match event {
        AgentEvent::Progress(p) | AgentEvent::Repairing(p) => {
            let bar = bars.entry((p.tsi, p.toi)).or_insert_with(|| {
                multi.add(ProgressBar::new(p.total_bytes).with_style(style.clone()))
            });
            bar.set_length(p.total_bytes);
            bar.set_position(p.bytes_decoded);
            match &p.state {
                ObjectState::Receiving => bar.set_message(p.name.clone()),
                ObjectState::Complete { path, verified, .. } => {
                    let note = if *verified {
                        "verified"
                    } else {
                        "no digest given"
                    };
                    bar.finish_with_message(format!("{} ({note})", p.name));
                    // The results, one path a line, for scripts.
                    multi.suspend(|| println!("{}", path.display()));
                }
                ObjectState::Failed { reason } => {
                    bar.abandon_with_message(format!("{} FAILED: {reason}", p.name));
                    let line = format!("{} FAILED: {reason}", p.name);
                    if quiet && said.insert(line.clone()) {
                        // Failures are said even without progress bars.
                        eprintln!("{line}");
                    }
                }
                _ => {}
            }
        }
        AgentEvent::Downloaded { progress, path } => {
            if let Some(bar) = bars.get(&(progress.tsi, progress.toi)) {
                bar.finish_with_message(format!("{} (downloaded)", progress.name));
            }
            multi.suspend(|| println!("{}", path.display()));
        }
        AgentEvent::DeltaApplied { target } => {
            multi.suspend(|| println!("{}", target.display()));
        }
        AgentEvent::PeerBanned(peer) => {
            multi.suspend(|| eprintln!("peer {peer} banned: its symbols fail the manifest"));
        }
        AgentEvent::RepairScheduled { after } if !quiet => {
            multi.suspend(|| {
                eprintln!(
                    "session over: repair after a back-off of {:.3} s",
                    after.as_secs_f64()
                );
            });
        }
        AgentEvent::RepairFailed { progress, reason } => {
            let line = format!("{} FAILED: {reason}", progress.name);
            if let Some(bar) = bars.get(&(progress.tsi, progress.toi)) {
                bar.abandon_with_message(line.clone());
            }
            if said.insert(line.clone()) {
                multi.suspend(|| eprintln!("{line}"));
            }
        }
        AgentEvent::Reporting { files, after, uri } if !quiet => {
            multi.suspend(|| {
                eprintln!(
                    "reception report of {files} file(s) to {uri}, {:.3} s after the session's end",
                    after.as_secs_f64()
                );
            });
        }
        _ => {}
    })?;
    if !args.quiet {
        summary(&report);
    }
    eprintln!("{}", bytes_line(&report));
    if report.is_complete() {
        return Ok(());
    }
    bail!(
        "timed out: {} of {} objects complete{}",
        report.complete,
        report.wanted,
        report.unfinished()
    )
}

/// Bytes by source, and repair bytes against the bytes missed.
fn bytes_line(report: &AgentReport) -> String {
    let bytes = report.bytes();
    let missed = report.missed_bytes();
    let ratio = if missed > 0 {
        format!("{:.3}", (bytes.repair + bytes.peers) as f64 / missed as f64)
    } else {
        "-".into()
    };
    format!(
        "bytes by source: broadcast {} peers {} repair {} (missed {missed}, (peers+repair)/missed {ratio}; {} datagrams dropped by --drop)",
        bytes.broadcast, bytes.peers, bytes.repair, report.stats.dropped_injected
    )
}

fn summary(report: &AgentReport) {
    let stats = &report.stats;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "{} datagrams, {} bytes in {:.1} s ({:.1} Mbit/s); {} dropped (decoder lagging), {} receive errors, {} malformed; objects: {} complete, {} failed",
        stats.datagrams,
        stats.bytes,
        secs,
        stats.bytes as f64 * 8.0 / secs / 1e6,
        stats.dropped_lagging,
        stats.receive_errors,
        stats.flute.malformed,
        stats.objects_complete,
        stats.objects_failed,
    );
}
