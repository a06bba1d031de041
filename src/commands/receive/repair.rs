//! The repair side of `dms receive`: signed manifests (fetched when the
//! FDT names them, verified with `--origin-key`), symbol repair from the
//! repair service after the back-off, the whole-object download fallback,
//! and the reception report with bytes by source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dms_fec::PayloadId;
use dms_peer::p2p::{PeerNode, Request, Response, Served};
use dms_peer::receive::{Control, ManifestCheck, ObjectProgress, ReceiveStats};
use dms_repair::client::backoff::Backoff;
use dms_repair::manifest::{ManifestBody, SignedManifest, public_key_from_pem};
use dms_repair::query::{RepairItem, RepairQuery};
use dms_repair::report::{BytesBySource, JsonReport};
use dms_repair::{ClientConfig, DownloadTarget, RepairClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ReceiveArgs;

/// Symbols asked beyond what each block needs. RaptorQ decodes with K + 1
/// symbols in all but a few in a million tries (`dms fec overhead`), and a
/// block that still fails is asked for again in the next round: one extra
/// symbol keeps repair bytes within 5 % of the bytes missed.
const MARGIN: u32 = 1;

/// Rounds of symbol repair before the whole object is downloaded.
const ROUNDS: u32 = 6;

/// Fresh repair ESIs start here (far above what a broadcast sends), each
/// round and each device in its own range.
const FRESH_ESI_BASE: u32 = 1 << 22;

/// What is known of one object for repair and reporting.
#[derive(Default)]
struct ObjectRecord {
    content_location: Option<String>,
    manifest_uri: Option<String>,
    manifest: Option<ManifestBody>,
    success: bool,
    repair_bytes: u64,
    peer_bytes: u64,
    missed_bytes: Option<u64>,
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
pub struct Agent {
    rt: tokio::runtime::Runtime,
    client: RepairClient,
    http: reqwest::Client,
    repair_uris: Vec<String>,
    report_uri: Option<String>,
    key_pem: Option<String>,
    backoff: Backoff,
    rng: StdRng,
    out: PathBuf,
    state: Option<PathBuf>,
    device: String,
    objects: HashMap<(u64, u128), ObjectRecord>,
    node: Option<PeerNode>,
    linger: Duration,
}

fn roots(cacert: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
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

impl Agent {
    /// The agent for these arguments (reads the origin key and the CA).
    pub fn new(args: &ReceiveArgs) -> anyhow::Result<Self> {
        let key_pem = match &args.origin_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                public_key_from_pem(&pem)
                    .with_context(|| format!("{}: not an origin public key", path.display()))?;
                Some(pem)
            }
            None => None,
        };
        let roots = roots(args.cacert.as_deref())?;
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()?;
        let client = RepairClient::new(ClientConfig {
            roots,
            ..ClientConfig::default()
        })?;
        let report_uri = args.report.clone().or_else(|| {
            let first = args.repair.first()?;
            let base = first.trim_end_matches('/');
            let base = base.strip_suffix("/repair").unwrap_or(base);
            Some(format!("{base}/report"))
        });
        if let Some(state) = &args.state {
            std::fs::create_dir_all(state)
                .with_context(|| format!("creating state directory {}", state.display()))?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let node = if args.listen.is_empty() && args.peer.is_empty() {
            None
        } else {
            let _guard = rt.enter();
            Some(
                PeerNode::start(&args.listen, &args.peer, args.malicious_peer)
                    .context("starting the peer node")?,
            )
        };
        Ok(Agent {
            rt,
            node,
            linger: secs(args.linger, "--linger")?,
            client,
            http,
            repair_uris: args.repair.clone(),
            report_uri,
            key_pem,
            backoff: Backoff {
                offset: secs(args.backoff_offset, "--backoff-offset")?,
                random_period: secs(args.backoff_window, "--backoff-window")?,
            },
            rng: StdRng::seed_from_u64(args.seed ^ 0x5eed_0fba_c0ff),
            out: args.out.clone(),
            state: args.state.clone(),
            device: args.device.clone(),
            objects: HashMap::new(),
        })
    }

    /// Notes what an event tells of an object; with `--origin-key`, fetches
    /// and verifies its manifest the first time the FDT names one, and
    /// hands the check to the receiver. A manifest that does not verify is
    /// an error (the agent stops; nothing was delivered).
    pub fn object_seen(&mut self, control: &Control, p: &ObjectProgress) -> anyhow::Result<()> {
        let record = self.objects.entry((p.tsi, p.toi)).or_default();
        if p.content_location.is_some() {
            record.content_location.clone_from(&p.content_location);
        }
        if p.manifest.is_some() {
            record.manifest_uri.clone_from(&p.manifest);
        }
        let (Some(pem), Some(uri)) = (&self.key_pem, &record.manifest_uri) else {
            return Ok(());
        };
        if record.manifest.is_some() {
            return Ok(());
        }
        let uri = uri.clone();
        let signed = self.rt.block_on(fetch_manifest(&self.http, &uri))?;
        let key = public_key_from_pem(pem).map_err(|e| anyhow!("origin key: {e}"))?;
        let body = signed
            .verify(&key)
            .map_err(|e| anyhow!("manifest {uri} does not verify with the origin key: {e}"))?;
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

    /// An object was delivered to `path`: it is served to peers from now
    /// on (when its manifest is known).
    pub fn object_done(&mut self, p: &ObjectProgress, path: Option<&PathBuf>) {
        let record = self.objects.entry((p.tsi, p.toi)).or_default();
        record.success = path.is_some();
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

    /// Asks the connected peers for what object `p` still needs; true once
    /// it needs nothing more. A peer whose symbols make the object fail its
    /// manifest is banned (the object is then downloaded again whole).
    fn repair_from_peers(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
        location: &str,
        device_offset: u32,
    ) -> PeerOutcome {
        let Some(node) = self.node.clone() else {
            return PeerOutcome::Incomplete;
        };
        let key = (p.tsi, p.toi);
        let peers = self.rt.block_on(node.peers());
        for (i, peer) in peers.iter().enumerate() {
            for round in 0..3u32 {
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
                        eprintln!("peer {peer} banned: its symbols fail the manifest");
                        self.rt.block_on(node.ban(*peer));
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
    fn note_missed(&mut self, key: (u64, u128), gaps: &dms_peer::receive::ObjectGaps) {
        let record = self.objects.entry(key).or_default();
        if record.missed_bytes.is_none() {
            let t = u64::from(gaps.oti.symbol_size());
            let needed: u64 = gaps.gaps.iter().map(|g| u64::from(g.symbols_needed)).sum();
            record.missed_bytes = Some(needed * t);
        }
    }

    /// When to start repairing, for a session that just ended; `None`
    /// without repair servers.
    pub fn repair_time(&mut self) -> Option<Instant> {
        if self.repair_uris.is_empty() && self.node.is_none() {
            return None;
        }
        Some(self.backoff.first_request_at(Instant::now(), &mut self.rng))
    }

    /// Completes object `p` from the repair service: per block
    /// `max(0, K − received) + margin` fresh repair symbols, round after
    /// round, then (if symbol repair failed) a whole-object download.
    /// Returns the path when it was downloaded whole.
    pub fn repair(
        &mut self,
        control: &Control,
        p: &ObjectProgress,
    ) -> anyhow::Result<Option<PathBuf>> {
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
        match self.repair_from_peers(control, p, &location, device_offset) {
            PeerOutcome::Complete => return Ok(None),
            // What was received is gone with the bad block: fetch it whole.
            PeerOutcome::Failed if !self.repair_uris.is_empty() => {
                return self.download(control, p, &location).map(Some);
            }
            PeerOutcome::Failed => bail!("{location}: a peer sent bad symbols"),
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
    ) -> anyhow::Result<PathBuf> {
        let key = (p.tsi, p.toi);
        let record = self.objects.entry(key).or_default();
        let body = match (&record.manifest, &record.manifest_uri) {
            (Some(body), _) => body.clone(),
            // Without --origin-key the manifest still gives the digests the
            // download is checked against (unauthenticated).
            (None, Some(uri)) => {
                let uri = uri.clone();
                self.rt
                    .block_on(fetch_manifest(&self.http, &uri))?
                    .body()
                    .map_err(|e| anyhow!("manifest {uri}: {e}"))?
            }
            (None, None) => bail!("{location}: symbol repair failed and no manifest is known"),
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
            .with_context(|| format!("downloading {location}"))?;
        let record = self.objects.entry(key).or_default();
        record.repair_bytes += stats.bytes_received;
        record.success = true;
        Ok(dest)
    }

    /// Prints the bytes by source, posts a reception report per object and
    /// keeps it in the state directory.
    pub fn finish(&mut self, stats: &ReceiveStats, elapsed: Duration) -> anyhow::Result<()> {
        let repair: u64 = self.objects.values().map(|r| r.repair_bytes).sum();
        let peers: u64 = self.objects.values().map(|r| r.peer_bytes).sum();
        let missed: u64 = self.objects.values().filter_map(|r| r.missed_bytes).sum();
        let bytes = BytesBySource {
            broadcast: stats.bytes_kept,
            peers,
            repair,
        };
        let ratio = if missed > 0 {
            format!("{:.3}", (repair + peers) as f64 / missed as f64)
        } else {
            "-".into()
        };
        eprintln!(
            "bytes by source: broadcast {} peers {} repair {} (missed {missed}, (peers+repair)/missed {ratio}; {} datagrams dropped by --drop)",
            bytes.broadcast, bytes.peers, bytes.repair, stats.dropped_injected
        );
        for record in self.objects.values() {
            let Some(location) = &record.content_location else {
                continue;
            };
            let report = JsonReport {
                object: record.manifest.as_ref().map(|m| m.id.clone()),
                file_uri: Some(location.clone()),
                device: self.device.clone(),
                success: record.success,
                bytes: BytesBySource {
                    broadcast: stats.bytes_kept,
                    peers: record.peer_bytes,
                    repair: record.repair_bytes,
                },
                seconds_to_complete: record.success.then_some(elapsed.as_secs_f64()),
            };
            let json = serde_json::to_vec_pretty(&report)?;
            if let Some(state) = &self.state {
                let name = dms_peer::receive::file_name_or_toi(Some(location), 0);
                write_atomic(state, &format!("report-{name}.json"), &json)?;
            }
            if let Some(uri) = &self.report_uri {
                let request = self
                    .http
                    .post(uri)
                    .header("content-type", "application/json")
                    .body(json);
                // The request's timer needs the runtime: build it inside.
                let posted = self.rt.block_on(async move { request.send().await });
                match posted {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(%uri, status = %r.status(), "report refused"),
                    Err(e) => tracing::warn!(%uri, error = %e, "report not sent"),
                }
            }
        }
        if self.node.is_some() && !self.linger.is_zero() {
            // Peers may still need what we hold.
            std::thread::sleep(self.linger);
        }
        Ok(())
    }
}

async fn fetch_manifest(http: &reqwest::Client, uri: &str) -> anyhow::Result<SignedManifest> {
    let response = http
        .get(uri)
        .send()
        .await
        .with_context(|| format!("fetching manifest {uri}"))?;
    if !response.status().is_success() {
        bail!("fetching manifest {uri}: {}", response.status());
    }
    let bytes = response.bytes().await?;
    SignedManifest::from_json(&bytes).map_err(|e| anyhow!("manifest {uri}: {e}"))
}

/// Writes `dir/name` atomically (temp file, fsync, rename).
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(data)?;
    temp.as_file().sync_all()?;
    temp.persist(dir.join(name))?;
    Ok(())
}
