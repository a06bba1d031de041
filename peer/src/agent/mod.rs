//! The UE agent: one multicast reception driven to the end, with repair.
//!
//! [`run`] starts a [`MulticastReceiver`], follows its events and, once a
//! session ends (closed by the sender, or idle), completes what is still
//! incomplete: after the back-off it asks peers (libp2p) and then the
//! repair service for fresh repair symbols per block, and as a last resort
//! downloads the object whole. With an origin key, nothing reaches its
//! final name unless the object's signed manifest verifies and the object
//! matches it. At the end it posts a reception report per object (bytes by
//! source) and returns an [`AgentReport`].
//!
//! ```text
//!  MulticastReceiver ──events──> run() ──session ended──> Repairer
//!        ^  Control (gaps, symbols in, manifest)            │ peers (p2p) → repair service
//!        └──────────────────────────────────────────────────┘ → whole download
//! ```
//!
//! `dms receive` renders the [`AgentEvent`]s as progress bars; `dms demo`
//! runs many agents side by side.

mod base;
mod late;
mod repair;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use dms_repair::client::backoff::Backoff;
use dms_repair::report::BytesBySource;

use crate::p2p::Multiaddr;
use crate::receive::{
    MulticastReceiver, ObjectProgress, ObjectState, ReceiveConfig, ReceiveError, ReceiveEvent,
    ReceiveStats,
};
use repair::Repairer;

/// How an agent is set up. [`AgentConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The multicast reception (group, interface, output directory, TSI,
    /// idle timeout, injected loss). `require_manifest` is set by [`run`]
    /// when an origin key is given.
    pub receive: ReceiveConfig,
    /// Stop once this many objects are delivered.
    pub count: u64,
    /// Give up after this long (the report then says what is missing).
    pub timeout: Option<Duration>,
    /// Repair services (`{base}/repair`), tried in a random order.
    pub repair_uris: Vec<String>,
    /// The origin's public key (PEM, as in `DATA/origin.pub`): when set,
    /// objects are delivered only once their signed manifest verifies and
    /// they match it.
    pub origin_key_pem: Option<String>,
    /// Trusted roots for `https://` repair, manifest and report URLs.
    pub roots: rustls::RootCertStore,
    /// Where reception reports are posted; `None` posts none.
    pub report_uri: Option<String>,
    /// An APD's `reportType`: `RAck` and `StaR` report received objects
    /// only, `RAck` without statistics (bytes by source, time). With one
    /// the report is the 3GPP `receptionReport` XML (TS 26.346 §9.4), one
    /// document for all the objects; `None` (the default) posts our JSON,
    /// one report per object, for every object, with statistics.
    pub report_type: Option<dms_flute::mbms::ReportType>,
    /// Wait before reporting after the session ends (the APD's
    /// `postReceptionReport` `offsetTime` and `randomTimePeriod`); a
    /// repair that ends later delays the report to its end. None by
    /// default.
    pub report_backoff: Backoff,
    /// `sessionId` of 3GPP statistical reports (`ADDRESS:TSI`).
    pub report_session_id: Option<String>,
    /// `serviceId` of 3GPP statistical reports (the USD's).
    pub report_service_id: Option<String>,
    /// Stop once a session ended, its repair is done and no object is
    /// still being received, even if fewer than `count` were delivered
    /// (what failed is reported as failed). For a UE that joined one
    /// session from its description: nothing else is coming. Off by
    /// default (the agent waits for `count` objects, or the timeout).
    pub end_with_session: bool,
    /// Seed of the repair randomness (back-off, ESI ranges, and the order
    /// repair servers are tried in: [`RepairServers::new`] with this seed).
    ///
    /// [`RepairServers::new`]: dms_repair::client::failover::RepairServers::new
    pub seed: u64,
    /// How long a repair server (and every other HTTP server the agent
    /// asks: manifests, downloads, reports) may take to answer, and to
    /// send each piece of a body; past it the next repair server is
    /// tried. 30 s by default.
    pub http_timeout: Duration,
    /// A directory for the agent's state (the last report per object).
    pub state_dir: Option<PathBuf>,
    /// Wait before the first repair request after a session ends.
    pub backoff: Backoff,
    /// libp2p addresses to listen on for peers.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial.
    pub peers: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS (off by default: it
    /// sends on every interface).
    pub mdns: bool,
    /// Serve garbage symbols to peers (tests of banning).
    pub malicious_peer: bool,
    /// Keep serving peers this long after the objects are delivered.
    pub linger: Duration,
    /// Ends the linger early once set (a demo sets it when every UE is
    /// done).
    pub stop_lingering: Option<Arc<AtomicBool>>,
    /// This device's id in reception reports.
    pub device: String,
    /// The installed version of what is received: a delta the session
    /// carries for it is applied (and verified) instead of waiting for the
    /// whole object; deltas for other bases are ignored.
    pub base: Option<PathBuf>,
    /// Late join: when no broadcast object was seen this long after the
    /// start, ask the connected peers which objects they hold, adopt up
    /// to [`AgentConfig::count`] whose signed manifest verifies with the
    /// origin key (without a key: those announced with a SHA-256, checked
    /// against it, unauthenticated), announce them onward and complete
    /// them by repair alone (peers, then the repair service, then the
    /// whole download). Peers are asked again every second until one has
    /// something. Needs peers; off (`None`) by default.
    pub late_join_after: Option<Duration>,
}

impl AgentConfig {
    /// The defaults around `receive`: one object, no timeout, no repair,
    /// no peers, no origin key, a back-off of up to 1 s.
    pub fn new(receive: ReceiveConfig) -> Self {
        AgentConfig {
            receive,
            count: 1,
            timeout: None,
            repair_uris: Vec::new(),
            origin_key_pem: None,
            roots: rustls::RootCertStore::empty(),
            report_uri: None,
            report_type: None,
            report_backoff: Backoff {
                offset: Duration::ZERO,
                random_period: Duration::ZERO,
            },
            report_session_id: None,
            report_service_id: None,
            end_with_session: false,
            seed: 1,
            http_timeout: Duration::from_secs(30),
            state_dir: None,
            backoff: Backoff {
                offset: Duration::ZERO,
                random_period: Duration::from_secs(1),
            },
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: false,
            malicious_peer: false,
            linger: Duration::ZERO,
            stop_lingering: None,
            device: "ue".into(),
            base: None,
            late_join_after: None,
        }
    }

    /// The report URL that goes with the first repair service:
    /// `{base}/report` for `{base}/repair`.
    pub fn default_report_uri(&self) -> Option<String> {
        let first = self.repair_uris.first()?;
        let base = first.trim_end_matches('/');
        let base = base.strip_suffix("/repair").unwrap_or(base);
        Some(format!("{base}/report"))
    }
}

/// What the agent tells its caller while it runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The receiver joined the group: packets sent from now on arrive.
    Started,
    /// The receiver's progress on an object (started, blocks decoded,
    /// complete, failed).
    Progress(ObjectProgress),
    /// Repair of an object starts (the session ended without it).
    Repairing(ObjectProgress),
    /// An object was delivered by a whole download after symbol repair
    /// failed.
    Downloaded {
        /// The object as last seen.
        progress: ObjectProgress,
        /// Where it was written.
        path: PathBuf,
    },
    /// A peer sent symbols that fail the manifest and was banned.
    PeerBanned(String),
    /// The session ended: repair starts after this back-off.
    RepairScheduled {
        /// The wait drawn from the repair back-off.
        after: Duration,
    },
    /// Repair gave up on an object: it is not delivered (and is reported
    /// as failed where the report type says so).
    RepairFailed {
        /// The object as last seen.
        progress: ObjectProgress,
        /// Why.
        reason: String,
    },
    /// Reception reports are about to be sent, after the report back-off.
    Reporting {
        /// Files the reports speak of.
        files: usize,
        /// The wait drawn from the report back-off, counted from the
        /// session's end (or the agent's, if no end was seen).
        after: Duration,
        /// Where they go.
        uri: String,
    },
    /// A delta for the installed version was applied: the target, verified,
    /// is at `target`.
    DeltaApplied {
        /// The delivered target.
        target: PathBuf,
    },
}

/// How one object ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectOutcome {
    /// The object as last seen (name, TSI/TOI, state).
    pub progress: ObjectProgress,
    /// Its final path, when delivered.
    pub path: Option<PathBuf>,
    /// Whether it was delivered and checked against a digest (and, with
    /// an origin key, against its verified signed manifest).
    pub verified: bool,
    /// Whether its signed manifest was verified with the origin key.
    pub manifest_verified: bool,
    /// Bytes received from peers and from the repair service.
    pub peer_bytes: u64,
    /// Bytes received from the repair service (symbols and downloads).
    pub repair_bytes: u64,
    /// Bytes the broadcast left missing (symbols still needed × symbol
    /// size) when repair started; `None` if it needed no repair.
    pub missed_bytes: Option<u64>,
    /// From the agent's start to delivery.
    pub time_to_complete: Option<Duration>,
    /// Whether it was downloaded whole.
    pub downloaded_whole: bool,
    /// Whether that download was a delta from the installed version
    /// (`uri?from=`), applied and checked against the signed SHA-256.
    pub unicast_delta: bool,
}

/// What an agent did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentReport {
    /// Every object seen, in (TSI, TOI) order.
    pub objects: Vec<ObjectOutcome>,
    /// Objects delivered.
    pub complete: u64,
    /// Objects asked for ([`AgentConfig::count`]).
    pub wanted: u64,
    /// The receiver's counters.
    pub stats: ReceiveStats,
    /// How long the agent ran.
    pub elapsed: Duration,
    /// Peers banned for bad symbols.
    pub banned_peers: Vec<String>,
}

impl AgentReport {
    /// Whether every object asked for was delivered.
    pub fn is_complete(&self) -> bool {
        self.complete >= self.wanted
    }

    /// Bytes by source over all objects: broadcast (datagram payload bytes
    /// the receiver kept), peers, repair.
    pub fn bytes(&self) -> BytesBySource {
        BytesBySource {
            broadcast: self.stats.bytes_kept,
            peers: self.objects.iter().map(|o| o.peer_bytes).sum(),
            repair: self.objects.iter().map(|o| o.repair_bytes).sum(),
        }
    }

    /// Bytes missed from the broadcast over all objects.
    pub fn missed_bytes(&self) -> u64 {
        self.objects.iter().filter_map(|o| o.missed_bytes).sum()
    }

    /// What is not delivered, one line per object, for error messages.
    pub fn unfinished(&self) -> String {
        let mut lines = String::new();
        for o in &self.objects {
            let p = &o.progress;
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
        if self.objects.is_empty() {
            lines = format!(
                "; no object started ({} datagrams received)",
                self.stats.datagrams
            );
        }
        lines
    }
}

/// Why an agent stopped with an error (nothing unverified was delivered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The receiver could not start or stop.
    #[error("receiver: {0}")]
    Receive(#[from] ReceiveError),
    /// The origin key is not a public key.
    #[error("origin key: {0}")]
    OriginKey(String),
    /// A manifest could not be fetched or does not verify.
    #[error("manifest {uri}: {reason}")]
    Manifest {
        /// Its URI.
        uri: String,
        /// What went wrong.
        reason: String,
    },
    /// The repair client could not be set up.
    #[error("repair client: {0}")]
    Client(#[from] dms_repair::ClientError),
    /// Repair ended without the object.
    #[error("{location}: {reason}")]
    Repair {
        /// The object's Content-Location.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer node could not start.
    #[error("peer node: {0}")]
    Peer(String),
    /// Local file I/O (state directory, runtime).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Whether `progress` is another copy of an object already delivered
/// (by its Content-Location).
fn is_copy(progress: &ObjectProgress, delivered: &HashSet<String>) -> bool {
    progress
        .content_location
        .as_ref()
        .is_some_and(|l| delivered.contains(l))
}

/// A session ended (closed or idle): notes when, and schedules repair
/// after the back-off unless it is already due.
fn session_end(
    session_ended: &mut Option<Instant>,
    repair_at: &mut Option<Instant>,
    repairer: &mut Repairer,
    on_event: &mut dyn FnMut(AgentEvent),
) {
    let now = Instant::now();
    session_ended.get_or_insert(now);
    if repair_at.is_none() {
        *repair_at = repairer.repair_time();
        if let Some(at) = *repair_at {
            on_event(AgentEvent::RepairScheduled {
                after: at.saturating_duration_since(now),
            });
        }
    }
}

/// Runs an agent to the end: until `config.count` objects are delivered,
/// the timeout passes, or the receiver stops. `on_event` sees progress as
/// it happens (it runs on the calling thread; keep it quick).
///
/// An incomplete run is not an error: the report says what is missing
/// ([`AgentReport::is_complete`], [`AgentReport::unfinished`]).
pub fn run(
    mut config: AgentConfig,
    mut on_event: impl FnMut(AgentEvent),
) -> Result<AgentReport, AgentError> {
    let started = Instant::now();
    let deadline = config.timeout.map(|t| started + t);
    config.receive.require_manifest = config.origin_key_pem.is_some();
    let installed = config
        .base
        .as_deref()
        .map(base::InstalledBase::load)
        .transpose()?;
    let mut repairer = Repairer::new(&config)?;
    repairer.installed.clone_from(&installed);
    let (receiver, events) = MulticastReceiver::start(config.receive.clone())?;
    let control = receiver.control();
    on_event(AgentEvent::Started);

    let mut objects: BTreeMap<(u64, u128), ObjectProgress> = BTreeMap::new();
    // Targets delivered by applying a delta (SHA-256).
    let mut delivered: HashSet<[u8; 32]> = HashSet::new();
    // Content-Locations delivered: another copy of one (a late joiner's
    // adopted object on a later broadcast, or a new session of it) is
    // neither counted again nor repaired.
    let mut delivered_locations: HashSet<String> = HashSet::new();
    let mut complete = 0u64;
    let mut repair_at: Option<Instant> = None;
    // When a session was first seen to end (reports count from it).
    let mut session_ended: Option<Instant> = None;
    let mut late = late::LateJoin::new(&config, started);
    let outcome: Result<(), AgentError> = (|| {
        while complete < config.count {
            if config.end_with_session
                && session_ended.is_some()
                && repair_at.is_none()
                && !objects.values().any(|p| {
                    matches!(p.state, ObjectState::Receiving) && !is_copy(p, &delivered_locations)
                })
            {
                tracing::info!(complete, wanted = config.count, "the session is over");
                break;
            }
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
                    .filter(|p| matches!(p.state, ObjectState::Receiving))
                    .cloned()
                    .collect();
                for object in incomplete {
                    if is_copy(&object, &delivered_locations) {
                        control.abandon(object.tsi, object.toi);
                        continue;
                    }
                    on_event(AgentEvent::Repairing(object.clone()));
                    let repaired = match repairer.repair(&control, &object, &mut on_event) {
                        Ok(repaired) => repaired,
                        // This object is lost; the others go on, and the
                        // report says it failed.
                        Err(AgentError::Repair { location, reason }) => {
                            tracing::warn!(%location, %reason, "repair gave up");
                            control.abandon(object.tsi, object.toi);
                            let mut failed = object.clone();
                            failed.state = ObjectState::Failed {
                                reason: reason.clone(),
                            };
                            objects.insert((object.tsi, object.toi), failed.clone());
                            on_event(AgentEvent::RepairFailed {
                                progress: failed,
                                reason,
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if let Some(path) = repaired {
                        // Downloaded whole: the receiver gave it up.
                        complete += 1;
                        delivered_locations.extend(object.content_location.clone());
                        repairer.object_done(&object, Some(&path), started.elapsed());
                        let mut done = object.clone();
                        done.state = ObjectState::Complete {
                            path: path.clone(),
                            size: object.total_bytes,
                            verified: true,
                        };
                        done.bytes_decoded = object.total_bytes;
                        objects.insert((object.tsi, object.toi), done.clone());
                        on_event(AgentEvent::Downloaded {
                            progress: done,
                            path,
                        });
                    }
                }
                continue;
            }
            if late.due().is_some_and(|at| at <= Instant::now()) {
                let wanted = config.count.saturating_sub(complete);
                if late.check(&mut repairer, &control, !objects.is_empty(), wanted) > 0 {
                    repair_at = repair_at.or_else(|| repairer.repair_time());
                }
                continue;
            }
            let wait = match repair_at.into_iter().chain(late.due()).min() {
                Some(at) => wait.min(at.saturating_duration_since(Instant::now())),
                None => wait,
            };
            let event = match events.recv_timeout(wait) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match event {
                ReceiveEvent::Object(progress) => {
                    // Fetches and verifies the manifest once it is named; a
                    // manifest that does not verify ends the agent.
                    repairer.object_seen(&control, &progress)?;
                    let key = (progress.tsi, progress.toi);
                    let finished_before = objects
                        .get(&key)
                        .is_some_and(|p| !matches!(p.state, ObjectState::Receiving));
                    let mut progress = progress;
                    if let ObjectState::Complete { .. } = &progress.state
                        && !finished_before
                        && is_copy(&progress, &delivered_locations)
                    {
                        tracing::info!(name = %progress.name, tsi = progress.tsi, "already delivered: this copy is not counted");
                    } else if let ObjectState::Complete { path, .. } = &progress.state
                        && !finished_before
                    {
                        delivered_locations.extend(progress.content_location.clone());
                        let path = path.clone();
                        match (&installed, progress.delta.as_deref().cloned()) {
                            // With a base, a delta is a means, not an end.
                            (Some(installed), Some(delta)) => {
                                let signed = repairer.signed_delta(&progress);
                                let target = progress.name.clone();
                                let target =
                                    config.receive.out_dir.join(base::target_name(&target));
                                let applied = if installed.fits(&delta) {
                                    installed.apply(&path, &delta, signed.as_ref(), &target)
                                } else {
                                    Err("not a delta for the installed version".into())
                                };
                                // Its result (or nothing) stays, not the delta.
                                let _ = std::fs::remove_file(&path);
                                match applied {
                                    Ok(sha256) if delivered.insert(sha256) => {
                                        complete += 1;
                                        repairer.object_done(
                                            &progress,
                                            Some(&target),
                                            started.elapsed(),
                                        );
                                        progress.state = ObjectState::Complete {
                                            path: target.clone(),
                                            size: std::fs::metadata(&target).map_or(0, |m| m.len()),
                                            verified: true,
                                        };
                                        tracing::info!(target = %target.display(), "delta applied");
                                        on_event(AgentEvent::DeltaApplied { target });
                                    }
                                    Ok(_) => {}
                                    Err(reason) => {
                                        tracing::info!(name = %progress.name, %reason, "delta not used; the whole object will do");
                                        progress.state = ObjectState::Failed { reason };
                                    }
                                }
                            }
                            _ => {
                                // The whole object, unless a delta already
                                // gave it.
                                let already = repairer
                                    .manifest_sha256(&progress)
                                    .is_some_and(|sha| delivered.contains(&sha));
                                if !already {
                                    complete += 1;
                                }
                                repairer.object_done(&progress, Some(&path), started.elapsed());
                            }
                        }
                    }
                    objects.insert(key, progress.clone());
                    on_event(AgentEvent::Progress(progress));
                }
                ReceiveEvent::SessionClosed { tsi } => {
                    tracing::info!("session {tsi} closed by the sender");
                    session_end(
                        &mut session_ended,
                        &mut repair_at,
                        &mut repairer,
                        &mut on_event,
                    );
                }
                ReceiveEvent::SessionIdle { tsi } => {
                    tracing::info!("session {tsi} idle");
                    session_end(
                        &mut session_ended,
                        &mut repair_at,
                        &mut repairer,
                        &mut on_event,
                    );
                }
            }
        }
        Ok(())
    })();
    let stats = receiver.stop();
    outcome?;
    let stats = stats?;
    let elapsed = started.elapsed();
    let report = repairer.finish(
        objects,
        complete,
        config.count,
        stats,
        elapsed,
        session_ended,
        &mut on_event,
    )?;
    Ok(report)
}
