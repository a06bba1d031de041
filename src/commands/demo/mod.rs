//! `dms demo`: the whole system in one command. An origin on a temporary
//! data directory publishes a generated firmware image and broadcasts it on
//! loopback multicast; N UE agents, each with its own seeded loss, receive
//! it, repair from each other (libp2p) and from the repair service, and
//! verify it against the signed manifest. A table then shows bytes by
//! source per UE and the origin's unicast bytes against plain unicast.

mod fleet;
mod origin;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use dms_peer::agent::AgentEvent;
use dms_peer::receive::ObjectState;
use dms_repair::client::backoff::Backoff;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use fleet::{Fleet, FleetSettings, Loss, MEAN_BURST, UeEvent, UeResult};
use origin::DemoOrigin;

/// Peers on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// UEs repair from each other first.
    On,
    /// UEs repair from the repair service only.
    Off,
}

/// Arguments of `dms demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of UE agents.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    ues: u32,
    /// Size of the firmware image (KiB, MiB, GiB).
    #[arg(long, default_value = "64MiB", value_parser = super::units::parse_size)]
    size: u64,
    /// Packet loss at each UE, percent.
    #[arg(long, default_value_t = 5.0)]
    loss: f64,
    /// Loss in Gilbert–Elliott bursts (mean 10 packets) instead of i.i.d.
    #[arg(long)]
    burst: bool,
    /// Whether UEs repair from each other before the repair service.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    peers: OnOff,
    /// Broadcast rate, Mbit/s.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// FEC repair symbols in the broadcast, percent of each block's source
    /// symbols. At or below the loss, every UE has gaps to repair.
    #[arg(long, default_value_t = 5)]
    overhead: u32,
    /// One more UE with this loss, `PERCENT[,BURST]` (a device at the cell
    /// edge), e.g. `30,10`.
    #[arg(long, value_name = "PERCENT[,BURST]", value_parser = parse_outlier)]
    outlier: Option<Loss>,
    /// Keep the origin's data and the UEs' files here (default: a
    /// temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
}

/// `PERCENT[,BURST]`, as `dms receive --drop` takes it.
fn parse_outlier(s: &str) -> Result<Loss, String> {
    let (rate, mean_burst) = super::receive::parse_drop(s)?;
    Ok(Loss { rate, mean_burst })
}

/// What the demo found, for the table and `--json`.
pub struct Outcome {
    /// The arguments that ran.
    pub ues: Vec<UeResult>,
    /// Object size.
    pub size: u64,
    /// UDP payload bytes the session sent.
    pub broadcast_sent: u64,
    /// Devices the origin's report summary counts.
    pub devices_reported: u64,
    /// Wall time of the whole demo.
    pub elapsed: Duration,
    /// Peers on.
    pub peers: bool,
}

/// Runs `dms demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.loss >= 0.0 && args.loss <= 100.0) {
        bail!("--loss must be a percent in 0..=100");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of Mbit/s");
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    let started = Instant::now();
    let (_temp, dir) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            (None, dir.clone())
        }
        None => {
            let temp = tempfile::Builder::new().prefix("dms-demo-").tempdir()?;
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };

    // The origin, and the object it will broadcast.
    let origin = DemoOrigin::start(&runtime, &dir.join("origin"))?;
    say(format!(
        "origin: {} (data in {})",
        origin.base_url,
        origin.data.display()
    ));
    let image = dir.join("firmware-2.0.0.bin");
    origin::write_firmware(&image, args.size, 2026)?;
    let object = runtime.block_on(origin.publish(&image, "demo-firmware", "2.0.0"))?;
    std::fs::remove_file(&image).ok();
    let id = object["id"]
        .as_str()
        .context("object JSON without id")?
        .to_owned();
    let sha256 = object["sha256"]
        .as_str()
        .context("object JSON without sha256")?
        .to_owned();
    say(format!(
        "published demo-firmware 2.0.0: {} bytes, {} source blocks, sha256 {}…",
        args.size,
        object["fec"]["source_blocks"],
        &sha256[..16]
    ));

    // The UEs, joined before the session starts.
    let mut losses = vec![
        Loss {
            rate: args.loss / 100.0,
            mean_burst: args.burst.then_some(MEAN_BURST),
        };
        args.ues as usize
    ];
    losses.extend(args.outlier);
    let group = free_group()?;
    let peers = args.peers == OnOff::On;
    let settings = FleetSettings {
        dir: dir.join("ues"),
        group,
        repair_uri: object["repair_uri"]
            .as_str()
            .context("object JSON without repair_uri")?
            .to_owned(),
        origin_key_pem: origin.public_key_pem()?,
        cacert: origin.cacert(),
        peers,
        // Spread over a few seconds: the first UEs to finish serve the rest.
        backoff: Backoff {
            offset: Duration::ZERO,
            random_period: Duration::from_secs(if peers { 3 } else { 1 }),
        },
        sha256,
        timeout,
    };
    let (updates_tx, updates) = mpsc::channel();
    let fleet = Fleet::start(&settings, &losses, updates_tx)?;
    let view = Progress::new(&losses, args.json)?;
    let mut results: Vec<Option<UeResult>> = (0..losses.len()).map(|_| None).collect();
    let mut started_ues = 0;
    let deadline = Instant::now() + timeout;
    while started_ues < losses.len() {
        let update = updates
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("UEs did not start")?;
        if matches!(&update.event, UeEvent::Agent(e) if matches!(**e, AgentEvent::Started)) {
            started_ues += 1;
        }
        view.update(update, &mut results);
    }

    let session = runtime.block_on(origin.start_session(&origin::session_request(
        &id,
        group,
        args.rate,
        args.overhead,
    )))?;
    let session_id = session["id"]
        .as_str()
        .context("session JSON without id")?
        .to_owned();
    view.println(format!(
        "session {session_id}: {group} at {} Mbit/s, RaptorQ +{} %, {} UEs ({}peers)",
        args.rate,
        args.overhead,
        losses.len(),
        if peers { "" } else { "no " }
    ));

    // Until every UE has the object (or gave up).
    let mut delivered = vec![false; losses.len()];
    while results.iter().any(Option::is_none) {
        let update = match updates.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(update) => update,
            Err(_) => break,
        };
        let index = update.index;
        if match &update.event {
            UeEvent::Agent(e) => match &**e {
                AgentEvent::Downloaded { .. } => true,
                AgentEvent::Progress(p) => matches!(p.state, ObjectState::Complete { .. }),
                _ => false,
            },
            UeEvent::Finished(_) => true,
        } {
            delivered[index] = true;
        }
        view.update(update, &mut results);
        if delivered.iter().all(|&d| d) {
            // Nobody needs a peer any more.
            fleet.stop_lingering.store(true, Ordering::Relaxed);
        }
    }
    fleet.stop_lingering.store(true, Ordering::Relaxed);
    fleet.join();
    // Late results (after the timeout).
    while let Ok(update) = updates.try_recv() {
        view.update(update, &mut results);
    }
    view.clear();

    let session_view = runtime.block_on(origin::wait_session_end(&origin, &session_id))?;
    let summary = runtime.block_on(origin.reports(&id))?;
    origin.stop(&runtime)?;
    let outcome = Outcome {
        ues: results
            .into_iter()
            .zip(&losses)
            .map(|(r, loss)| {
                r.unwrap_or_else(|| UeResult {
                    loss: *loss,
                    report: Err("did not finish in time".into()),
                    sha256_matches: false,
                })
            })
            .collect(),
        size: args.size,
        broadcast_sent: session_view["bytes_sent"].as_u64().unwrap_or(0),
        devices_reported: summary["devices"].as_u64().unwrap_or(0),
        elapsed: started.elapsed(),
        peers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&table::json(&outcome))?);
    } else {
        print!("{}", table::render(&outcome));
    }
    let failed = outcome.ues.iter().filter(|u| !table::verified(u)).count();
    if failed > 0 {
        bail!(
            "{failed} of {} UEs did not end with the verified object",
            outcome.ues.len()
        );
    }
    Ok(())
}

/// A multicast group on a free port.
fn free_group() -> anyhow::Result<SocketAddr> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(SocketAddr::from(([239, 255, 42, 17], port)))
}

/// The live view: one bar per UE (stderr), hidden with `--json`.
struct Progress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(losses: &[Loss], hidden: bool) -> anyhow::Result<Self> {
        let multi = MultiProgress::with_draw_target(if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let style = ProgressStyle::with_template(
            "{prefix:>5} {msg:24!} [{bar:30}] {bytes:>10}/{total_bytes:<10}",
        )
        .context("progress bar template")?
        .progress_chars("=> ");
        let bars = losses
            .iter()
            .enumerate()
            .map(|(i, loss)| {
                let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                bar.set_prefix(format!("ue-{:02}", i + 1));
                bar.set_message(format!("waiting ({})", loss.describe()));
                bar
            })
            .collect();
        Ok(Progress {
            multi,
            bars,
            quiet: hidden,
        })
    }

    fn println(&self, line: String) {
        if !self.quiet {
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    fn update(&self, update: fleet::Update, results: &mut [Option<UeResult>]) {
        let bar = &self.bars[update.index];
        match update.event {
            UeEvent::Agent(event) => self.agent_event(bar, *event),
            UeEvent::Finished(result) => {
                if table::verified(&result) {
                    bar.finish_with_message("verified");
                } else {
                    let why = match &result.report {
                        Err(e) => e.clone(),
                        Ok(_) => "not verified".into(),
                    };
                    bar.abandon_with_message(format!("FAILED: {why}"));
                }
                results[update.index] = Some(*result);
            }
        }
    }

    fn agent_event(&self, bar: &ProgressBar, event: AgentEvent) {
        match event {
            AgentEvent::Progress(p) => {
                bar.set_length(p.total_bytes);
                bar.set_position(p.bytes_decoded);
                match p.state {
                    ObjectState::Receiving => bar.set_message("receiving"),
                    ObjectState::Complete { .. } => bar.set_message("complete, verifying"),
                    ObjectState::Failed { reason } => bar.set_message(format!("failed: {reason}")),
                    _ => {}
                }
            }
            AgentEvent::Repairing(_) => bar.set_message("repairing"),
            AgentEvent::Downloaded { progress, .. } => {
                bar.set_position(progress.total_bytes);
                bar.set_message("downloaded whole");
            }
            AgentEvent::PeerBanned(peer) => {
                bar.set_message(format!("banned {peer}"));
            }
            _ => {}
        }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}
