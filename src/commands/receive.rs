//! `dms receive`: receive a FLUTE session from a multicast group into a
//! directory, with a progress bar per object (stderr) and the path of each
//! finished object on stdout.
//!
//! With `--repair`, objects still incomplete when the session ends (closed
//! by the sender, or idle) are completed from the repair service after a
//! random back-off: fresh repair symbols per block (`more=`), a
//! whole-object download only if symbol repair fails. With `--origin-key`,
//! nothing reaches its final name unless the object's signed manifest
//! verifies and the object matches it (size, SHA-256, every block hash).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use dms_peer::receive::{
    Interface, LossModel, MulticastReceiver, ObjectProgress, ObjectState, ReceiveConfig,
    ReceiveEvent, ReceiveStats,
};

mod repair;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `dms receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Multicast group and port to receive, e.g. `239.255.1.1:5000`.
    #[arg(long)]
    group: SocketAddr,
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
    /// random order. Incomplete objects are repaired from them once the
    /// session ends.
    #[arg(long = "repair", value_name = "URL")]
    repair: Vec<String>,
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
    /// Seed of the injected loss and of the repair back-off.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the agent's state (repair bookkeeping: the last
    /// reception report of each object).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Seconds without a packet after which a session counts as ended.
    #[arg(long, default_value_t = 10.0)]
    idle: f64,
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
    /// Seconds to keep serving peers after the objects are complete.
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// Serve garbage symbols to peers (to test that they ban us).
    #[arg(long, hide = true)]
    malicious_peer: bool,
    /// This device's id in reception reports.
    #[arg(long, default_value = "ue")]
    device: String,
}

/// `PERCENT[,BURST]`.
fn parse_drop(s: &str) -> Result<(f64, Option<f64>), String> {
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

/// What is known of one object.
struct Tracked {
    last: ObjectProgress,
    bar: ProgressBar,
}

/// Runs `dms receive`.
pub fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    let deadline = match args.timeout {
        Some(secs) => {
            let limit = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--timeout must be a positive number of seconds")?;
            Some(Instant::now() + limit)
        }
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let mut config = ReceiveConfig::new(args.group, args.iface, &args.out);
    if let Some(tsi) = args.tsi {
        config.flute.tsi = Some(tsi);
    }
    config.flute.session_idle_timeout = Duration::try_from_secs_f64(args.idle)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--idle must be a positive number of seconds")?;
    config.loss = args.drop.map(|(rate, mean_burst)| LossModel {
        rate,
        mean_burst,
        seed: args.seed,
    });
    config.require_manifest = args.origin_key.is_some();
    config.state = args.state.clone();
    let mut agent = repair::Agent::new(&args)?;
    let (receiver, events) = MulticastReceiver::start(config)
        .with_context(|| format!("receiving {} on {:?}", args.group, args.iface))?;
    let control = receiver.control();

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
    let mut objects: BTreeMap<(u64, u128), Tracked> = BTreeMap::new();
    let mut complete = 0u64;
    let started = Instant::now();

    let mut repair_at: Option<Instant> = None;
    while complete < args.count {
        let wait = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if wait.is_zero() {
            break;
        }
        if repair_at.is_some_and(|at| at <= Instant::now()) {
            repair_at = None;
            let incomplete: Vec<ObjectProgress> = objects
                .values()
                .filter(|t| matches!(t.last.state, ObjectState::Receiving))
                .map(|t| t.last.clone())
                .collect();
            for object in incomplete {
                if let Some(path) = multi.suspend(|| agent.repair(&control, &object))? {
                    // Downloaded whole: the receiver gave it up.
                    complete += 1;
                    if let Some(t) = objects.get_mut(&(object.tsi, object.toi)) {
                        t.bar
                            .finish_with_message(format!("{} (downloaded)", object.name));
                        t.last.state = ObjectState::Complete {
                            path: path.clone(),
                            size: object.total_bytes,
                            verified: true,
                        };
                    }
                    multi.suspend(|| println!("{}", path.display()));
                }
            }
            continue;
        }
        let wait = match repair_at {
            Some(at) => wait.min(at.saturating_duration_since(Instant::now())),
            None => wait,
        };
        let event = match events.recv_timeout(wait) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            ReceiveEvent::Object(progress) => {
                // Fetches and verifies the manifest once it is named; a
                // manifest that does not verify ends the agent.
                agent.object_seen(&control, &progress)?;
                let key = (progress.tsi, progress.toi);
                let tracked = objects.entry(key).or_insert_with(|| Tracked {
                    bar: multi
                        .add(ProgressBar::new(progress.total_bytes).with_style(style.clone())),
                    last: progress.clone(),
                });
                let finished_before = !matches!(tracked.last.state, ObjectState::Receiving);
                tracked.bar.set_length(progress.total_bytes);
                tracked.bar.set_position(progress.bytes_decoded);
                match &progress.state {
                    ObjectState::Receiving => tracked.bar.set_message(progress.name.clone()),
                    ObjectState::Complete { path, verified, .. } => {
                        let note = if *verified {
                            "verified"
                        } else {
                            "no digest given"
                        };
                        tracked
                            .bar
                            .finish_with_message(format!("{} ({note})", progress.name));
                        if !finished_before {
                            complete += 1;
                            agent.object_done(&progress, Some(path));
                        }
                        // The results, one path a line, for scripts.
                        multi.suspend(|| println!("{}", path.display()));
                    }
                    ObjectState::Failed { reason } => {
                        tracked
                            .bar
                            .abandon_with_message(format!("{} FAILED: {reason}", progress.name));
                    }
                    _ => {}
                }
                tracked.last = progress;
            }
            ReceiveEvent::SessionClosed { tsi } => {
                tracing::info!("session {tsi} closed by the sender");
                repair_at = repair_at.or_else(|| agent.repair_time());
            }
            ReceiveEvent::SessionIdle { tsi } => {
                tracing::info!("session {tsi} idle");
                repair_at = repair_at.or_else(|| agent.repair_time());
            }
            _ => {}
        }
    }

    let stats = receiver.stop().context("stopping the receiver")?;
    if !args.quiet {
        summary(&stats, started.elapsed());
    }
    agent.finish(&stats, started.elapsed())?;
    if complete >= args.count {
        return Ok(());
    }
    bail!(
        "timed out: {complete} of {} objects complete{}",
        args.count,
        unfinished(&objects, &stats)
    )
}

/// What was not received, for the timeout message.
fn unfinished(objects: &BTreeMap<(u64, u128), Tracked>, stats: &ReceiveStats) -> String {
    let mut lines = String::new();
    for t in objects.values() {
        let p = &t.last;
        match &p.state {
            ObjectState::Receiving => lines.push_str(&format!(
                "\n  {} (TSI {}, TOI {}): incomplete, {} of {} bytes decoded, {} missing",
                p.name,
                p.tsi,
                p.toi,
                p.bytes_decoded,
                p.total_bytes,
                p.total_bytes.saturating_sub(p.bytes_decoded)
            )),
            ObjectState::Failed { reason } => lines.push_str(&format!(
                "\n  {} (TSI {}, TOI {}): failed: {reason}",
                p.name, p.tsi, p.toi
            )),
            _ => {}
        }
    }
    if objects.is_empty() {
        lines = format!(
            "; no object started ({} datagrams received)",
            stats.datagrams
        );
    }
    lines
}

fn summary(stats: &ReceiveStats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
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
