//! The agent's network side: signed manifests (fetched when the FDT names
//! them, verified with the origin key), repair from peers and then from the
//! repair service after the back-off, the whole-object download fallback,
//! and the reception reports with bytes by source.

use std::collections::{BTreeMap, HashMap};

use futures_util::future::join_all;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dms_fec::{FecScheme, PayloadId};
use dms_repair::client::backoff::Backoff;
use dms_repair::client::failover::RepairServers;
use dms_repair::manifest::{ManifestBody, SignedManifest, public_key_from_pem};
use dms_repair::query::{RepairItem, RepairQuery};
use dms_repair::report::xml::{FileReport, FileStatistics, ReceptionReport};
use dms_repair::report::{BytesBySource, JsonReport, MAX_FAILOVERS, RepairFailover, ReportKind};
use dms_repair::{ClientConfig, DownloadTarget, MAX_SYMBOLS_PER_REQUEST, RepairClient};
use ed25519_dalek::VerifyingKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::base::InstalledBase;
use super::{AgentConfig, AgentError, AgentEvent, AgentReport, ObjectOutcome};
use crate::p2p::{ObjectAnnouncement, PeerConfig, PeerId, PeerNode, Request, Response, Served};
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

/// Times a round is asked again when the repair service answers 429 or
/// 503, and the mean pause before each (jittered ±50 %).
const OVERLOAD_RETRIES: u32 = 10;
const OVERLOAD_PAUSE: Duration = Duration::from_secs(1);

/// Rounds asked of each peer before the next one.
const PEER_ROUNDS: u32 = 3;

/// Fresh repair ESIs start here (far above what a broadcast sends), each
/// round and each device in its own range.
const FRESH_ESI_BASE: u32 = 1 << 22;

/// The first ESI of fresh repair symbols asked of the repair service in
/// `round`, and how many of `count` fit the scheme's ESI space. RaptorQ's
/// 24-bit ESIs give every device and round its own range far above the
/// broadcast; Raptor's are 16 bits (K ≤ 8192), so its fresh ESIs are the
/// upper half, 2^15…2^16, a device's offset and the round cycling within
/// it.
fn fresh_esis(scheme: FecScheme, device_offset: u32, round: u32, count: u32) -> (u32, u32) {
    match scheme {
        FecScheme::Raptor => {
            let first = (1 << 15) + device_offset % (1 << 12) + (round % 8) * 2048;
            (first, count.min((1 << 16) - first))
        }
        _ => (FRESH_ESI_BASE + device_offset + round * (1 << 16), count),
    }
}

/// As [`fresh_esis`], for a peer's answer in `slot` (apart from the repair
/// service's range): Raptor peers answer in 2^14…2^15.
fn peer_fresh_esis(scheme: FecScheme, device_offset: u32, slot: u32, count: u32) -> (u32, u32) {
    match scheme {
        FecScheme::Raptor => {
            let first = (1 << 14) + device_offset % (1 << 10) + (slot % 8) * 1920;
            (first, count.min((1 << 15) - first))
        }
        _ => (
            FRESH_ESI_BASE + device_offset + (1 << 21) + slot * (1 << 14),
            count,
        ),
    }
}

/// Largest signed manifest accepted.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// What is known of one object for repair and reporting.
#[derive(Default)]
struct ObjectRecord {
    content_location: Option<String>,
    manifest_uri: Option<String>,
    manifest: Option<ManifestBody>,
    /// The partial file served to peers block by block.
    serving_partial: Option<PathBuf>,
    path: Option<PathBuf>,
    repair_bytes: u64,
    peer_bytes: u64,
    missed_bytes: Option<u64>,
    time_to_complete: Option<Duration>,
    downloaded_whole: bool,
    /// Delivered by a delta fetched over unicast (`uri?from=`).
    unicast_delta: bool,
    /// Repair servers that failed this object's requests, and which
    /// served instead.
    failovers: Vec<RepairFailover>,
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
    /// The order of tries and the circuits of `repair_uris`.
    servers: RepairServers,
    seed: u64,
    report_uri: Option<String>,
    report_type: Option<dms_flute::mbms::ReportType>,
    report_backoff: Backoff,
    report_session_id: Option<String>,
    report_service_id: Option<String>,
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
    /// The installed version (`--base`): the fallback asks for a delta
    /// from it before the whole object.
    pub(super) installed: Option<InstalledBase>,
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
            timeout: config.http_timeout,
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
                PeerNode::start_with(PeerConfig {
                    listen: config.listen.clone(),
                    peers: config.peers.clone(),
                    mdns: config.mdns,
                    malicious: config.malicious_peer,
                    ..PeerConfig::default()
                })
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
            servers: RepairServers::new(config.repair_uris.len(), config.seed),
            seed: config.seed,
            report_uri: config.report_uri.clone(),
            report_type: config.report_type,
            report_backoff: config.report_backoff,
            report_session_id: config.report_session_id.clone(),
            report_service_id: config.report_service_id.clone(),
            key,
            backoff: config.backoff,
            rng: StdRng::seed_from_u64(config.seed ^ 0x5eed_0fba_c0ff),
            out: config.receive.out_dir.clone(),
            state: config.state_dir.clone(),
            device: config.device.clone(),
            objects: HashMap::new(),
            banned: Vec::new(),
            installed: None,
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
        self.verify_manifest(control, p)?;
        self.serve_decoded_block(p);
        Ok(())
    }

    /// With an origin key, fetches and verifies the manifest of object `p`
    /// the first time the FDT names one, hands the check to the receiver
    /// and announces the object to peers.
    fn verify_manifest(&mut self, control: &Control, p: &ObjectProgress) -> Result<(), AgentError> {
        let Some(record) = self.objects.get(&(p.tsi, p.toi)) else {
            return Ok(());
        };
        let (Some(key), Some(uri)) = (&self.key, &record.manifest_uri) else {
            return Ok(());
        };
        if record.manifest.is_some() {
            return Ok(());
        }
        let uri = uri.clone();
        let (signed, raw) = self.fetch_manifest_raw(&uri)?;
        let body = signed.verify(key).map_err(|e| AgentError::Manifest {
            uri: uri.clone(),
            reason: format!("does not verify with the origin key: {e}"),
        })?;
        if let (Some(node), Some(location)) = (&self.node, &record.content_location) {
            // Late joiners learn the object, and can check it, from us.
            node.announce(ObjectAnnouncement {
                content_location: location.clone(),
                content_length: body.size,
                content_type: None,
                content_encoding: None,
                oti: body.oti,
                sha256: Some(body.sha256),
                manifest_uri: Some(uri.clone()),
                manifest: raw,
            });
        }
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

    /// The delta facts of object `p`'s verified signed manifest.
    pub(super) fn signed_delta(
        &self,
        p: &ObjectProgress,
    ) -> Option<dms_repair::manifest::ManifestDelta> {
        self.objects
            .get(&(p.tsi, p.toi))?
            .manifest
            .as_ref()?
            .delta
            .clone()
    }

    /// The SHA-256 object `p`'s verified signed manifest gives.
    pub(super) fn manifest_sha256(&self, p: &ObjectProgress) -> Option<[u8; 32]> {
        Some(self.objects.get(&(p.tsi, p.toi))?.manifest.as_ref()?.sha256)
    }

    /// Offers peers the block event `p` reports written (blocks are served
    /// from the partial file before the object is whole). Only blocks the
    /// receiver checked against a verified manifest are offered.
    fn serve_decoded_block(&mut self, p: &ObjectProgress) {
        let (Some(node), Some(sbn), Some(partial)) = (&self.node, p.decoded_block, &p.partial)
        else {
            return;
        };
        let Some(record) = self.objects.get_mut(&(p.tsi, p.toi)) else {
            return;
        };
        let (Some(location), Some(body)) = (&record.content_location, &record.manifest) else {
            return;
        };
        if record.serving_partial.as_ref() != Some(partial) {
            let blocks = body.oti.source_blocks() as usize;
            node.serve_blocks(
                location.clone(),
                body.oti,
                partial.clone(),
                vec![false; blocks],
            );
            record.serving_partial = Some(partial.clone());
        }
        node.block_done(location, sbn);
    }

    fn fetch_manifest(&self, uri: &str) -> Result<SignedManifest, AgentError> {
        self.fetch_manifest_raw(uri).map(|(signed, _)| signed)
    }

    /// The signed manifest at `uri`, parsed, and its bytes as served.
    fn fetch_manifest_raw(&self, uri: &str) -> Result<(SignedManifest, Vec<u8>), AgentError> {
        let error = |reason: String| AgentError::Manifest {
            uri: uri.to_owned(),
            reason,
        };
        let bytes = self
            .rt
            .block_on(self.client.fetch(uri, MAX_MANIFEST_BYTES))
            .map_err(|e| error(e.to_string()))?;
        let signed = SignedManifest::from_json(&bytes).map_err(|e| error(e.to_string()))?;
        Ok((signed, bytes.to_vec()))
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

    /// Asks the connected peers for what object `p` still needs: their
    /// have-maps first, then, each round, every missing block from a peer
    /// that holds it (spread over the peers, all requests at once). A peer
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
        let mut holders: Vec<(PeerId, Vec<bool>)> = self.rt.block_on(async {
            let peers = node.peers().await;
            let maps = join_all(peers.iter().map(|peer| {
                node.ask(
                    *peer,
                    Request::HaveMap {
                        content_location: location.to_owned(),
                    },
                )
            }))
            .await;
            peers
                .into_iter()
                .zip(maps)
                .filter_map(|(peer, map)| match map {
                    Ok(Response::HaveMap { blocks }) if blocks.contains(&true) => {
                        Some((peer, blocks))
                    }
                    _ => None,
                })
                .collect()
        });
        for round in 0..PEER_ROUNDS {
            let Some(gaps) = control.gaps(p.tsi, p.toi) else {
                return PeerOutcome::Incomplete;
            };
            if gaps.gaps.is_empty() {
                return PeerOutcome::Complete;
            }
            self.note_missed(key, &gaps);
            // Each block from one holder, turn by turn, so the load spreads.
            let mut asks: Vec<(usize, Request, u32)> = Vec::new();
            for (n, g) in gaps.gaps.iter().enumerate() {
                let has = |(_, blocks): &(PeerId, Vec<bool>)| {
                    blocks.get(g.sbn as usize).copied().unwrap_or(false)
                };
                let candidates: Vec<usize> =
                    (0..holders.len()).filter(|&i| has(&holders[i])).collect();
                if candidates.is_empty() {
                    continue;
                }
                let i = candidates[(n + round as usize) % candidates.len()];
                // Each peer and round its own ESI range, apart from the
                // repair service's.
                let slot = ((i as u32) % 64) * 4 + round;
                let (first_esi, count) = peer_fresh_esis(
                    gaps.oti.scheme(),
                    device_offset,
                    slot,
                    g.symbols_needed + MARGIN,
                );
                let request = Request::Symbols {
                    content_location: location.to_owned(),
                    sbn: g.sbn,
                    count,
                    first_esi,
                    not: Vec::new(),
                };
                asks.push((i, request, g.sbn));
            }
            tracing::debug!(
                %location,
                round,
                holders = holders.len(),
                gaps = gaps.gaps.len(),
                asks = asks.len(),
                "asking peers"
            );
            if asks.is_empty() {
                break;
            }
            let answers = self.rt.block_on(join_all(
                asks.iter()
                    .map(|(i, request, _)| node.ask(holders[*i].0, request.clone())),
            ));
            // Symbols fed peer by peer, so a bad block names its sender.
            let mut by_peer: BTreeMap<usize, Vec<(PayloadId, Vec<u8>)>> = BTreeMap::new();
            let mut unusable = Vec::new();
            for ((i, _, sbn), answer) in asks.iter().zip(answers) {
                match answer {
                    Ok(Response::Symbols { symbols }) => by_peer.entry(*i).or_default().extend(
                        symbols
                            .into_iter()
                            .map(|(esi, s)| (PayloadId::new(*sbn, esi), s)),
                    ),
                    other => {
                        tracing::debug!(peer = %holders[*i].0, answer = ?other, "peer gave no symbols");
                        unusable.push(*i);
                    }
                }
            }
            if by_peer.is_empty() {
                break;
            }
            for (i, got) in by_peer {
                let peer = holders[i].0;
                let bytes: u64 = got.iter().map(|(_, s)| s.len() as u64).sum();
                self.objects.entry(key).or_default().peer_bytes += bytes;
                tracing::info!(%location, %peer, symbols = got.len(), "peer symbols received");
                match control.repair(p.tsi, p.toi, got) {
                    Some(left) if left.failed => {
                        tracing::warn!(%peer, "peer banned: its symbols fail the manifest");
                        self.rt.block_on(node.ban(peer));
                        self.banned.push(peer.to_string());
                        on_event(AgentEvent::PeerBanned(peer.to_string()));
                        return PeerOutcome::Failed;
                    }
                    // Whole now (the receiver then forgets its gaps).
                    Some(left) if left.gaps.is_empty() => return PeerOutcome::Complete,
                    Some(_) => {}
                    None => return PeerOutcome::Incomplete,
                }
            }
            // A peer that was busy or failed is not asked again now.
            unusable.sort_unstable();
            unusable.dedup();
            for i in unusable.into_iter().rev() {
                holders.swap_remove(i);
            }
        }
        match control.gaps(p.tsi, p.toi) {
            Some(gaps) if gaps.gaps.is_empty() => PeerOutcome::Complete,
            _ => PeerOutcome::Incomplete,
        }
    }

    /// Records, for object `key`'s report, the repair servers that failed
    /// in `attempt` and the one that answered instead.
    fn note_failovers(&mut self, key: (u64, u128), attempt: &dms_repair::RepairAttempt) {
        if attempt.failed.is_empty() {
            return;
        }
        let served_by = attempt
            .result
            .as_ref()
            .ok()
            .and_then(|(i, _)| self.repair_uris.get(*i).cloned());
        let record = self.objects.entry(key).or_default();
        for failed in &attempt.failed {
            let Some(url) = self.repair_uris.get(failed.server) else {
                continue;
            };
            tracing::info!(
                failed = %url,
                reason = %failed.failure,
                served_by = served_by.as_deref().unwrap_or("none"),
                "repair failover"
            );
            if record.failovers.len() < MAX_FAILOVERS {
                record.failovers.push(RepairFailover {
                    failed: url.clone(),
                    reason: failed.failure.to_string(),
                    detail: failed.error.clone(),
                    served_by: served_by.clone(),
                });
            }
        }
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
        let mut round = 0;
        let mut overloaded = 0;
        // Rounds cut short by the per-request cap do not count as failures.
        let mut capped = 0;
        while round < ROUNDS + capped {
            let Some(gaps) = control.gaps(p.tsi, p.toi) else {
                tracing::warn!(%location, "no gap map for the object");
                break;
            };
            if gaps.gaps.is_empty() {
                return Ok(None);
            }
            self.note_missed(key, &gaps);
            // At most the service's cap a request; the rest next round.
            let mut budget = MAX_SYMBOLS_PER_REQUEST;
            let mut items = Vec::new();
            for g in &gaps.gaps {
                let wanted = (g.symbols_needed + MARGIN).min(budget);
                let (first_esi, count) =
                    fresh_esis(gaps.oti.scheme(), device_offset, round, wanted);
                if count == 0 {
                    break;
                }
                budget -= count;
                items.push(RepairItem::More {
                    sbn: g.sbn,
                    count,
                    first_esi: Some(first_esi),
                });
            }
            if budget == 0 {
                capped += 1;
            }
            let query = RepairQuery {
                file_uri: location.clone(),
                items,
            };
            let attempt = self.rt.block_on(self.client.symbols_failover(
                &self.repair_uris,
                &mut self.servers,
                &query,
                &gaps.oti,
            ));
            self.note_failovers(key, &attempt);
            let symbols = match attempt.result {
                Ok((_, symbols)) => symbols,
                // A storm of repair requests: wait and ask again
                // rather than fetch the whole object.
                Err(e) if e.is_overload() && overloaded < OVERLOAD_RETRIES => {
                    overloaded += 1;
                    let mut pause = OVERLOAD_PAUSE.mul_f64(self.rng.random_range(0.5..1.5));
                    if let dms_repair::ClientError::Resting { retry_in, .. } = &e {
                        pause = pause.max(*retry_in);
                    }
                    tracing::info!(%location, error = %e, ?pause, "repair service busy");
                    std::thread::sleep(pause);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%location, error = %e, "symbol repair failed");
                    break;
                }
            };
            let bytes: u64 = symbols.iter().map(|(_, s)| s.len() as u64).sum();
            self.objects.entry(key).or_default().repair_bytes += bytes;
            tracing::info!(%location, round, symbols = symbols.len(), "repair symbols received");
            round += 1;
            match control.repair(p.tsi, p.toi, symbols) {
                Some(left) if left.failed => {
                    tracing::warn!(%location, "repaired object fails its manifest");
                    break;
                }
                Some(left) if left.gaps.is_empty() => return Ok(None),
                Some(_) => {}
                None => {
                    tracing::warn!(%location, "receiver no longer knows the object");
                    break;
                }
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
        if let Some(installed) = &self.installed {
            match installed.fetch_and_apply(&self.rt, &self.client, location, &body, &dest) {
                Ok(Some(bytes)) => {
                    tracing::info!(target = %dest.display(), bytes, "delta applied (unicast)");
                    let record = self.objects.entry(key).or_default();
                    record.repair_bytes += bytes;
                    record.downloaded_whole = true;
                    record.unicast_delta = true;
                    return Ok(dest);
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::info!(%location, %reason, "delta not used; the whole object will do");
                }
            }
        }
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

    /// Reports, lingers for peers, and returns the agent's report. Each
    /// object's report is kept in the state directory (JSON); after the
    /// report back-off (from `session_ended`, else now) our JSON is posted
    /// per object, or, with an APD's report type, one 3GPP
    /// `receptionReport` for all the objects that type speaks of.
    #[allow(clippy::too_many_arguments)] // the run's results, handed over once
    pub(super) fn finish(
        mut self,
        seen: BTreeMap<(u64, u128), ObjectProgress>,
        complete: u64,
        wanted: u64,
        stats: ReceiveStats,
        elapsed: Duration,
        session_ended: Option<Instant>,
        on_event: &mut dyn FnMut(AgentEvent),
    ) -> Result<AgentReport, AgentError> {
        let mut objects = Vec::with_capacity(seen.len());
        let mut reports: Vec<(String, JsonReport)> = Vec::new();
        for (key, progress) in seen {
            let record = self.objects.remove(&key).unwrap_or_default();
            let verified = match &progress.state {
                ObjectState::Complete { verified, .. } => *verified,
                _ => false,
            };
            // An APD's reportType: RAck and StaR speak of received files
            // only, RAck without statistics; StaR-all (and no APD) of all.
            let success = record.path.is_some();
            let reported = self
                .report_type
                .is_none_or(|t| success || t.reports_failures());
            let statistics = self.report_type.is_none_or(|t| t.has_statistics());
            if let Some(location) = &record.content_location
                && reported
            {
                let report = JsonReport {
                    object: record.manifest.as_ref().map(|m| m.id.clone()),
                    file_uri: Some(location.clone()),
                    device: self.device.clone(),
                    success,
                    bytes: if statistics {
                        BytesBySource {
                            broadcast: stats.bytes_kept,
                            peers: record.peer_bytes,
                            repair: record.repair_bytes,
                        }
                    } else {
                        BytesBySource::default()
                    },
                    seconds_to_complete: record
                        .time_to_complete
                        .filter(|_| statistics)
                        .map(|t| t.as_secs_f64()),
                    repair_failovers: record.failovers.clone(),
                };
                self.keep_report(location, &report)?;
                reports.push((location.clone(), report));
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
                unicast_delta: record.unicast_delta,
                progress,
            });
        }
        if let Some(uri) = self.report_uri.clone()
            && !reports.is_empty()
        {
            // TS 26.346 §9.4.4: offsetTime + uniform(0, randomTimePeriod)
            // after the session, so a fleet's reports spread out.
            let ended = session_ended.unwrap_or_else(Instant::now);
            let at = self.report_backoff.first_request_at(ended, &mut self.rng);
            on_event(AgentEvent::Reporting {
                files: reports.len(),
                after: at.saturating_duration_since(ended),
                uri: uri.clone(),
            });
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                tracing::info!(?wait, "reception report back-off");
                std::thread::sleep(wait);
            }
            self.post_reports(&uri, reports);
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

    /// Keeps `report` in the state directory (the last one per object).
    fn keep_report(&self, location: &str, report: &JsonReport) -> Result<(), AgentError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(report).map_err(|e| AgentError::Io {
            context: "encoding the reception report".into(),
            source: e.into(),
        })?;
        let name = crate::receive::file_name_or_toi(Some(location), 0);
        write_atomic(state, &format!("report-{name}.json"), &json).map_err(|source| {
            AgentError::Io {
                context: format!("writing the report into {}", state.display()),
                source,
            }
        })
    }

    /// Posts `reports` to `uri`: our JSON one by one, or (with a report
    /// type) one 3GPP XML document. A report the server refuses is
    /// logged, not fatal.
    fn post_reports(&self, uri: &str, reports: Vec<(String, JsonReport)>) {
        let bodies: Vec<(&str, Vec<u8>)> = match self.report_type {
            None => reports
                .iter()
                .filter_map(|(_, r)| serde_json::to_vec(r).ok())
                .map(|json| ("application/json", json))
                .collect(),
            Some(report_type) => {
                let kind = if report_type.has_statistics() {
                    ReportKind::Star
                } else {
                    ReportKind::Rack
                };
                let document = ReceptionReport {
                    client_id: Some(self.device.clone()),
                    session_id: self.report_session_id.clone(),
                    service_id: self.report_service_id.clone(),
                    files: reports
                        .into_iter()
                        .map(|(location, r)| FileReport {
                            file_uri: location,
                            success: r.success,
                            kind,
                            statistics: report_type.has_statistics().then_some(FileStatistics {
                                bytes: r.bytes,
                                seconds_to_complete: r.seconds_to_complete,
                            }),
                            failovers: r.repair_failovers,
                        })
                        .collect(),
                };
                vec![(
                    dms_repair::report::xml::CONTENT_TYPE,
                    document.to_xml().into_bytes(),
                )]
            }
        };
        for (content_type, body) in bodies {
            if let Err(e) = self.rt.block_on(self.client.post(uri, content_type, body)) {
                tracing::warn!(%uri, error = %e, "reception report not accepted");
            }
        }
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

/// What the late join (`late.rs`) needs of the network side.
impl Repairer {
    /// The peer node, if peers are used.
    pub(super) fn peer_node(&self) -> Option<PeerNode> {
        self.node.clone()
    }

    /// Runs `future` on the agent's runtime.
    pub(super) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// The origin's key, if one was given.
    pub(super) fn origin_key(&self) -> Option<VerifyingKey> {
        self.key
    }

    /// Records an object learned from peers (kept as object `key` by the
    /// receiver), with its verified manifest if it has one: its events
    /// then find it known, so it is not fetched or verified again.
    pub(super) fn learned(
        &mut self,
        key: (u64, u128),
        content_location: String,
        manifest_uri: Option<String>,
        manifest: Option<ManifestBody>,
    ) {
        let record = self.objects.entry(key).or_default();
        record.content_location = Some(content_location);
        record.manifest_uri = manifest_uri;
        record.manifest = manifest;
    }

    /// Uses `uri` as the repair service when none was given.
    pub(super) fn repair_uri_if_none(&mut self, uri: String) {
        if self.repair_uris.is_empty() {
            tracing::info!(%uri, "repair service derived from the manifest's URI");
            self.repair_uris.push(uri);
            self.servers = RepairServers::new(self.repair_uris.len(), self.seed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raptor_fresh_esis_stay_in_sixteen_bits_above_the_broadcast() {
        for device in [0, 4095, (1 << 20) - 1] {
            for round in 0..12 {
                let (first, n) = fresh_esis(FecScheme::Raptor, device, round, 9000);
                assert!(first >= 1 << 15 && u64::from(first) + u64::from(n) <= 1 << 16);
                assert!(n > 0);
                let (first, n) = peer_fresh_esis(FecScheme::Raptor, device, round * 5, 9000);
                assert!(first >= 1 << 14 && first + n <= 1 << 15 && n > 0);
            }
        }
        // Rounds of one device do not overlap for the counts a block needs.
        let (a, _) = fresh_esis(FecScheme::Raptor, 7, 0, 100);
        let (b, _) = fresh_esis(FecScheme::Raptor, 7, 1, 100);
        assert!(b >= a + 100);
        assert_eq!(
            fresh_esis(FecScheme::RaptorQ, 5, 2, 10),
            (FRESH_ESI_BASE + 5 + 2 * (1 << 16), 10)
        );
    }
}
