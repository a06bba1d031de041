//! The agent's network side: signed manifests (fetched when the FDT names
//! them, verified with the origin key), repair from peers and then from the
//! repair service after the back-off, the whole-object download fallback,
//! and the reception reports with bytes by source.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dms_fec::PayloadId;
use dms_repair::client::backoff::Backoff;
use dms_repair::manifest::{ManifestBody, SignedManifest, public_key_from_pem};
use dms_repair::query::{RepairItem, RepairQuery};
use dms_repair::report::{BytesBySource, JsonReport};
use dms_repair::{ClientConfig, DownloadTarget, RepairClient};
use ed25519_dalek::VerifyingKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{AgentConfig, AgentError, AgentEvent, AgentReport, ObjectOutcome};
use crate::p2p::{PeerNode, Request, Response, Served};
use crate::receive::{
    Control, ManifestCheck, ObjectGaps, ObjectProgress, ObjectState, ReceiveStats,
};

/// Symbols asked beyond what each block needs: none. RaptorQ decodes
/// from exactly K symbols in about 99.5 % of tries (`dms fec overhead`);
/// a block that does not is then reported needing one more symbol, which
/// the next round asks for. A margin of one symbol per block cost 4 % more
/// repair bytes at 5 % loss, and up to 19 % where blocks miss few symbols.
const MARGIN: u32 = 0;

/// Rounds of symbol repair before the whole object is downloaded.
const ROUNDS: u32 = 6;

/// Rounds asked of each peer before the next one.
const PEER_ROUNDS: u32 = 3;

/// Fresh repair ESIs start here (far above what a broadcast sends), each
/// round and each device in its own range.
const FRESH_ESI_BASE: u32 = 1 << 22;

/// Largest signed manifest accepted.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// What is known of one object for repair and reporting.
#[derive(Default)]
struct ObjectRecord {
    content_location: Option<String>,
    manifest_uri: Option<String>,
    manifest: Option<ManifestBody>,
    path: Option<PathBuf>,
    repair_bytes: u64,
    peer_bytes: u64,
    missed_bytes: Option<u64>,
    time_to_complete: Option<Duration>,
    downloaded_whole: bool,
}

/// How asking the peers went.
enum PeerOutcome {
    /// The object needs nothing more.
    Complete,
    /// It still needs symbols.
    Incomplete,
    /// A peer's symbols made it fail: that peer is banned.
    Failed,
}

/// The agent's network side.
pub(super) struct Repairer {
    rt: tokio::runtime::Runtime,
    client: RepairClient,
    repair_uris: Vec<String>,
    report_uri: Option<String>,
    key: Option<VerifyingKey>,
    backoff: Backoff,
    rng: StdRng,
    out: PathBuf,
    state: Option<PathBuf>,
    device: String,
    objects: HashMap<(u64, u128), ObjectRecord>,
    node: Option<PeerNode>,
    linger: Duration,
    stop_lingering: Option<Arc<AtomicBool>>,
    banned: Vec<String>,
}

impl Repairer {
    /// The network side for `config` (parses the origin key, starts the
    /// peer node).
    pub(super) fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let key = match &config.origin_key_pem {
            Some(pem) => {
                Some(public_key_from_pem(pem).map_err(|e| AgentError::OriginKey(e.to_string()))?)
            }
            None => None,
        };
        let client = RepairClient::new(ClientConfig {
            roots: config.roots.clone(),
            ..ClientConfig::default()
        })?;
        if let Some(state) = &config.state_dir {
            std::fs::create_dir_all(state).map_err(|source| AgentError::Io {
                context: format!("creating state directory {}", state.display()),
                source,
            })?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|source| AgentError::Io {
                context: "starting the agent's runtime".into(),
                source,
            })?;
        let node = if config.listen.is_empty() && config.peers.is_empty() {
            None
        } else {
            let _guard = rt.enter();
            Some(
                PeerNode::start(&config.listen, &config.peers, config.malicious_peer)
                    .map_err(|e| AgentError::Peer(e.to_string()))?,
            )
        };
        Ok(Repairer {
            rt,
            node,
            linger: config.linger,
            stop_lingering: config.stop_lingering.clone(),
            client,
            repair_uris: config.repair_uris.clone(),
            report_uri: config.report_uri.clone(),
            key,
            backoff: config.backoff,
            rng: StdRng::seed_from_u64(config.seed ^ 0x5eed_0fba_c0ff),
            out: config.receive.out_dir.clone(),
            state: config.state_dir.clone(),
            device: config.device.clone(),
            objects: HashMap::new(),
            banned: Vec::new(),
        })
    }

    /// Notes what an event tells of an object; with an origin key, fetches
    /// and verifies its manifest the first time the FDT names one, and
    /// hands the check to the receiver. A manifest that does not verify is
    /// an error (the agent stops; nothing was delivered).
    pub(super) fn object_seen(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
    ) -> Result<(), AgentError> {
        let record = self.objects.entry((p.tsi, p.toi)).or_default();
        if p.content_location.is_some() {
            record.content_location.clone_from(&p.content_location);
        }
        if p.manifest.is_some() {
            record.manifest_uri.clone_from(&p.manifest);
        }
        let (Some(key), Some(uri)) = (&self.key, &record.manifest_uri) else {
            return Ok(());
        };
        if record.manifest.is_some() {
            return Ok(());
        }
        let uri = uri.clone();
        let signed = self.fetch_manifest(&uri)?;
        let body = signed.verify(key).map_err(|e| AgentError::Manifest {
            uri: uri.clone(),
            reason: format!("does not verify with the origin key: {e}"),
        })?;
        control.set_manifest(
            p.tsi,
            p.toi,
            ManifestCheck {
                size: body.size,
                sha256: body.sha256,
                block_sha256: body.block_sha256.clone(),
            },
        );
        tracing::info!(%uri, id = %body.id, "manifest verified");
        if let Some(record) = self.objects.get_mut(&(p.tsi, p.toi)) {
            record.manifest = Some(body);
        }
        Ok(())
    }

    fn fetch_manifest(&self, uri: &str) -> Result<SignedManifest, AgentError> {
        let error = |reason: String| AgentError::Manifest {
            uri: uri.to_owned(),
            reason,
        };
        let bytes = self
            .rt
            .block_on(self.client.fetch(uri, MAX_MANIFEST_BYTES))
            .map_err(|e| error(e.to_string()))?;
        SignedManifest::from_json(&bytes).map_err(|e| error(e.to_string()))
    }

    /// An object was delivered to `path` after `elapsed`: it is served to
    /// peers from now on (when its manifest is known).
    pub(super) fn object_done(
        &mut self,
        p: &ObjectProgress,
        path: Option<&PathBuf>,
        elapsed: Duration,
    ) {
        let record = self.objects.entry((p.tsi, p.toi)).or_default();
        record.path = path.cloned();
        record.time_to_complete = Some(elapsed);
        if let (Some(node), Some(path), Some(body), Some(location)) =
            (&self.node, path, &record.manifest, &record.content_location)
        {
            node.serve(
                location.clone(),
                Served {
                    path: path.clone(),
                    oti: body.oti,
                },
            );
        }
    }

    /// Asks the connected peers for what object `p` still needs. A peer
    /// whose symbols make the object fail its manifest is banned (the
    /// object is then downloaded again whole).
    fn repair_from_peers(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
        location: &str,
        device_offset: u32,
        on_event: &mut dyn FnMut(AgentEvent),
    ) -> PeerOutcome {
        let Some(node) = self.node.clone() else {
            return PeerOutcome::Incomplete;
        };
        let key = (p.tsi, p.toi);
        let peers = self.rt.block_on(node.peers());
        for (i, peer) in peers.iter().enumerate() {
            for round in 0..PEER_ROUNDS {
                let Some(gaps) = control.gaps(p.tsi, p.toi) else {
                    return PeerOutcome::Incomplete;
                };
                if gaps.gaps.is_empty() {
                    return PeerOutcome::Complete;
                }
                self.note_missed(key, &gaps);
                // Each peer and round its own ESI range, apart from the
                // repair service's.
                let slot = (i as u32).saturating_mul(4).saturating_add(round).min(255);
                let first_esi = FRESH_ESI_BASE + device_offset + (1 << 21) + slot * (1 << 14);
                let mut got = Vec::new();
                for g in &gaps.gaps {
                    let request = Request::Symbols {
                        content_location: location.to_owned(),
                        sbn: g.sbn,
                        count: g.symbols_needed + MARGIN,
                        first_esi,
                        not: Vec::new(),
                    };
                    match self.rt.block_on(node.ask(*peer, request)) {
                        Ok(Response::Symbols { symbols }) => got.extend(
                            symbols
                                .into_iter()
                                .map(|(esi, s)| (PayloadId::new(g.sbn, esi), s)),
                        ),
                        Ok(other) => {
                            tracing::debug!(%peer, answer = ?other, "peer has no symbols");
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "peer request failed");
                            break;
                        }
                    }
                }
                if got.is_empty() {
                    break;
                }
                let bytes: u64 = got.iter().map(|(_, s)| s.len() as u64).sum();
                self.objects.entry(key).or_default().peer_bytes += bytes;
                tracing::info!(%location, %peer, symbols = got.len(), "peer symbols received");
                match control.repair(p.tsi, p.toi, got) {
                    Some(left) if left.failed => {
                        tracing::warn!(%peer, "peer banned: its symbols fail the manifest");
                        self.rt.block_on(node.ban(*peer));
                        self.banned.push(peer.to_string());
                        on_event(AgentEvent::PeerBanned(peer.to_string()));
                        return PeerOutcome::Failed;
                    }
                    Some(left) if left.gaps.is_empty() => return PeerOutcome::Complete,
                    Some(_) => {}
                    None => return PeerOutcome::Incomplete,
                }
            }
        }
        PeerOutcome::Incomplete
    }

    /// Records what object `key` missed, the first time its gaps are seen.
    fn note_missed(&mut self, key: (u64, u128), gaps: &ObjectGaps) {
        let record = self.objects.entry(key).or_default();
        if record.missed_bytes.is_none() {
            let t = u64::from(gaps.oti.symbol_size());
            let needed: u64 = gaps.gaps.iter().map(|g| u64::from(g.symbols_needed)).sum();
            record.missed_bytes = Some(needed * t);
        }
    }

    /// When to start repairing, for a session that just ended; `None`
    /// without repair servers or peers.
    pub(super) fn repair_time(&mut self) -> Option<Instant> {
        if self.repair_uris.is_empty() && self.node.is_none() {
            return None;
        }
        Some(self.backoff.first_request_at(Instant::now(), &mut self.rng))
    }

    /// Completes object `p`: from peers first, then from the repair
    /// service, per block `max(0, K − received) + margin` fresh repair
    /// symbols, round after round, then (if symbol repair failed) a
    /// whole-object download. Returns the path when it was downloaded
    /// whole.
    pub(super) fn repair(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
        on_event: &mut dyn FnMut(AgentEvent),
    ) -> Result<Option<PathBuf>, AgentError> {
        let key = (p.tsi, p.toi);
        let Some(location) = self
            .objects
            .get(&key)
            .and_then(|r| r.content_location.clone())
        else {
            tracing::warn!(toi = %p.toi, "no Content-Location known: cannot repair");
            return Ok(None);
        };
        let device_offset = self.rng.random_range(0..1u32 << 20);
        match self.repair_from_peers(control, p, &location, device_offset, on_event) {
            PeerOutcome::Complete => return Ok(None),
            // What was received is gone with the bad block: fetch it whole.
            PeerOutcome::Failed if !self.repair_uris.is_empty() => {
                return self.download(control, p, &location).map(Some);
            }
            PeerOutcome::Failed => {
                return Err(AgentError::Repair {
                    location,
                    reason: "a peer sent bad symbols and no repair service is known".into(),
                });
            }
            PeerOutcome::Incomplete => {}
        }
        if self.repair_uris.is_empty() {
            return Ok(None);
        }
        for round in 0..ROUNDS {
            let Some(gaps) = control.gaps(p.tsi, p.toi) else {
                break;
            };
            if gaps.gaps.is_empty() {
                return Ok(None);
            }
            self.note_missed(key, &gaps);
            let first_esi = FRESH_ESI_BASE + device_offset + round * (1 << 16);
            let query = RepairQuery {
                file_uri: location.clone(),
                items: gaps
                    .gaps
                    .iter()
                    .map(|g| RepairItem::More {
                        sbn: g.sbn,
                        count: g.symbols_needed + MARGIN,
                        first_esi: Some(first_esi),
                    })
                    .collect(),
            };
            let symbols =
                match self
                    .rt
                    .block_on(self.client.symbols(&self.repair_uris, &query, &gaps.oti))
                {
                    Ok(symbols) => symbols,
                    Err(e) => {
                        tracing::warn!(%location, error = %e, "symbol repair failed");
                        break;
                    }
                };
            let bytes: u64 = symbols.iter().map(|(_, s)| s.len() as u64).sum();
            self.objects.entry(key).or_default().repair_bytes += bytes;
            tracing::info!(%location, round, symbols = symbols.len(), "repair symbols received");
            match control.repair(p.tsi, p.toi, symbols) {
                Some(left) if left.failed => break,
                Some(left) if left.gaps.is_empty() => return Ok(None),
                Some(_) => {}
                None => break,
            }
        }
        self.download(control, p, &location).map(Some)
    }

    /// The fallback: the whole object, verified against its manifest.
    fn download(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
        location: &str,
    ) -> Result<PathBuf, AgentError> {
        let key = (p.tsi, p.toi);
        let record = self.objects.entry(key).or_default();
        let repair_error = |reason: String| AgentError::Repair {
            location: location.to_owned(),
            reason,
        };
        let body = match (&record.manifest, &record.manifest_uri) {
            (Some(body), _) => body.clone(),
            // Without an origin key the manifest still gives the digests the
            // download is checked against (unauthenticated).
            (None, Some(uri)) => {
                let uri = uri.clone();
                self.fetch_manifest(&uri)?
                    .body()
                    .map_err(|e| AgentError::Manifest {
                        uri,
                        reason: e.to_string(),
                    })?
            }
            (None, None) => {
                return Err(repair_error(
                    "symbol repair failed and no manifest is known".into(),
                ));
            }
        };
        control.abandon(p.tsi, p.toi);
        let dest = self.out.join(&p.name);
        let target = DownloadTarget {
            uri: location.to_owned(),
            size: body.size,
            sha256: body.sha256,
            blocks: Some((body.oti.layout(), body.block_sha256.clone())),
        };
        let stats = self
            .rt
            .block_on(self.client.download(&target, &dest))
            .map_err(|e| repair_error(format!("downloading: {e}")))?;
        let record = self.objects.entry(key).or_default();
        record.repair_bytes += stats.bytes_received;
        record.downloaded_whole = true;
        Ok(dest)
    }

    /// Posts a reception report per object, keeps it in the state
    /// directory, lingers for peers, and returns the agent's report.
    pub(super) fn finish(
        mut self,
        seen: BTreeMap<(u64, u128), ObjectProgress>,
        complete: u64,
        wanted: u64,
        stats: ReceiveStats,
        elapsed: Duration,
    ) -> Result<AgentReport, AgentError> {
        let mut objects = Vec::with_capacity(seen.len());
        for (key, progress) in seen {
            let record = self.objects.remove(&key).unwrap_or_default();
            let verified = match &progress.state {
                ObjectState::Complete { verified, .. } => *verified,
                _ => false,
            };
            if let Some(location) = &record.content_location {
                let report = JsonReport {
                    object: record.manifest.as_ref().map(|m| m.id.clone()),
                    file_uri: Some(location.clone()),
                    device: self.device.clone(),
                    success: record.path.is_some(),
                    bytes: BytesBySource {
                        broadcast: stats.bytes_kept,
                        peers: record.peer_bytes,
                        repair: record.repair_bytes,
                    },
                    seconds_to_complete: record.time_to_complete.map(|t| t.as_secs_f64()),
                };
                self.send_report(location, &report)?;
            }
            objects.push(ObjectOutcome {
                verified: verified || record.downloaded_whole,
                manifest_verified: record.manifest.is_some(),
                path: record.path,
                peer_bytes: record.peer_bytes,
                repair_bytes: record.repair_bytes,
                missed_bytes: record.missed_bytes,
                time_to_complete: record.time_to_complete,
                downloaded_whole: record.downloaded_whole,
                progress,
            });
        }
        if self.node.is_some() {
            // Peers may still need what we hold.
            let until = Instant::now() + self.linger;
            while Instant::now() < until
                && !self
                    .stop_lingering
                    .as_ref()
                    .is_some_and(|stop| stop.load(Ordering::Relaxed))
            {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        }
        Ok(AgentReport {
            objects,
            complete,
            wanted,
            stats,
            elapsed,
            banned_peers: self.banned,
        })
    }

    /// Keeps `report` in the state directory and posts it; a report the
    /// server refuses is logged, not fatal.
    fn send_report(&self, location: &str, report: &JsonReport) -> Result<(), AgentError> {
        let json = serde_json::to_vec_pretty(report).map_err(|e| AgentError::Io {
            context: "encoding the reception report".into(),
            source: e.into(),
        })?;
        if let Some(state) = &self.state {
            let name = crate::receive::file_name_or_toi(Some(location), 0);
            write_atomic(state, &format!("report-{name}.json"), &json).map_err(|source| {
                AgentError::Io {
                    context: format!("writing the report into {}", state.display()),
                    source,
                }
            })?;
        }
        if let Some(uri) = &self.report_uri
            && let Err(e) = self
                .rt
                .block_on(self.client.post(uri, "application/json", json))
        {
            tracing::warn!(%uri, error = %e, "reception report not accepted");
        }
        Ok(())
    }
}

/// Writes `dir/name` atomically (temp file, fsync, rename).
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(data)?;
    temp.as_file().sync_all()?;
    temp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}
