//! `dms receive`: receive a FLUTE session from a multicast group into a
//! directory, with a progress bar per object (stderr) and the path of each
//! finished object on stdout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use dms_peer::receive::{
    Interface, MulticastReceiver, ObjectProgress, ObjectState, ReceiveConfig, ReceiveEvent,
    ReceiveStats,
};
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
    let (receiver, events) = MulticastReceiver::start(config)
        .with_context(|| format!("receiving {} on {:?}", args.group, args.iface))?;

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

    while complete < args.count {
        let wait = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if wait.is_zero() {
            break;
        }
        let event = match events.recv_timeout(wait) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            ReceiveEvent::Object(progress) => {
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
            }
            ReceiveEvent::SessionIdle { tsi } => tracing::info!("session {tsi} idle"),
            _ => {}
        }
    }

    let stats = receiver.stop().context("stopping the receiver")?;
    if !args.quiet {
        summary(&stats, started.elapsed());
    }
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
