//! The demo's UEs: one UE agent ([`dms_peer::agent`]) per thread, each with
//! its own output and state directory, seeded loss model and libp2p port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use dms_peer::agent::{AgentConfig, AgentEvent, AgentReport};
use dms_peer::p2p::Multiaddr;
use dms_peer::receive::{LossModel, ReceiveConfig};
use dms_repair::client::backoff::Backoff;
use sha2::{Digest, Sha256};

/// Mean length of a loss burst (packets) for Gilbert–Elliott loss.
pub const MEAN_BURST: f64 = 10.0;

/// Peers each UE dials when the fleet is too big for a full mesh.
const MAX_DIALS: usize = 8;

/// Full mesh up to this many UEs.
const FULL_MESH: usize = 32;

/// How one UE loses packets.
#[derive(Debug, Clone, Copy)]
pub struct Loss {
    /// Fraction of packets lost (0..=1).
    pub rate: f64,
    /// Mean burst length, for Gilbert–Elliott loss; i.i.d. without.
    pub mean_burst: Option<f64>,
}

impl Loss {
    /// `5.0% iid` or `30.0% bursts/10`.
    pub fn describe(&self) -> String {
        match self.mean_burst {
            Some(b) => format!("{:.1}% bursts/{b:.0}", self.rate * 100.0),
            None => format!("{:.1}% iid", self.rate * 100.0),
        }
    }
}

/// What every UE shares.
pub struct FleetSettings {
    /// Where each UE's directories go (`ue-NN/`).
    pub dir: PathBuf,
    /// The session's group and port.
    pub group: std::net::SocketAddr,
    /// The repair service URL.
    pub repair_uri: String,
    /// The origin's public key (PEM).
    pub origin_key_pem: String,
    /// The CA the UEs trust (PEM file).
    pub cacert: PathBuf,
    /// Whether UEs repair from each other.
    pub peers: bool,
    /// The random wait before repair.
    pub backoff: Backoff,
    /// The SHA-256 the object must have (hex).
    pub sha256: String,
    /// Give up after this long.
    pub timeout: Duration,
}

/// An update from UE `index`.
pub struct Update {
    /// Which UE.
    pub index: usize,
    /// What happened.
    pub event: UeEvent,
}

/// What a UE did.
pub enum UeEvent {
    /// Its agent's event.
    Agent(Box<AgentEvent>),
    /// It finished; the result and whether its file is the published one.
    Finished(Box<UeResult>),
}

/// How a UE ended.
pub struct UeResult {
    /// Its loss model.
    pub loss: Loss,
    /// The agent's report, or why it failed.
    pub report: Result<AgentReport, String>,
    /// Whether its output file has the published SHA-256.
    pub sha256_matches: bool,
}

/// The running UEs.
pub struct Fleet {
    threads: Vec<JoinHandle<()>>,
    /// Set when every UE is done, so they stop serving peers.
    pub stop_lingering: Arc<AtomicBool>,
}

/// A free TCP port on loopback (for a UE's libp2p listener).
fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Which UEs UE `i` of `n` dials: every lower one in a small fleet (a full
/// mesh), else the next `MAX_DIALS` around the ring.
fn dials(i: usize, n: usize) -> Vec<usize> {
    if n <= FULL_MESH {
        (0..i).collect()
    } else {
        (1..=MAX_DIALS / 2).map(|k| (i + k) % n).collect()
    }
}

impl Fleet {
    /// Starts one agent thread per loss model; updates go to `updates`.
    pub fn start(
        settings: &FleetSettings,
        losses: &[Loss],
        updates: mpsc::Sender<Update>,
    ) -> anyhow::Result<Self> {
        let n = losses.len();
        let ports = (0..n)
            .map(|_| free_tcp_port())
            .collect::<std::io::Result<Vec<u16>>>()
            .context("choosing peer ports")?;
        let addr = |i: usize| -> anyhow::Result<Multiaddr> {
            format!("/ip4/127.0.0.1/tcp/{}", ports[i])
                .parse()
                .context("peer address")
        };
        let roots = super::super::receive::roots(Some(&settings.cacert))?;
        let stop_lingering = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        for (i, loss) in losses.iter().copied().enumerate() {
            let ue_dir = settings.dir.join(format!("ue-{:02}", i + 1));
            let out = ue_dir.join("out");
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut receive = ReceiveConfig::new(settings.group, "127.0.0.1".parse()?, &out);
            // A demo runs many UEs in one process: smaller queues.
            receive.queue_bytes = 16 << 20;
            receive.flute.session_idle_timeout = Duration::from_secs(3);
            receive.loss = (loss.rate > 0.0).then_some(LossModel {
                rate: loss.rate,
                mean_burst: loss.mean_burst,
                seed: 1000 + i as u64,
            });
            let mut config = AgentConfig::new(receive);
            config.timeout = Some(settings.timeout);
            config.repair_uris = vec![settings.repair_uri.clone()];
            config.report_uri = config.default_report_uri();
            config.origin_key_pem = Some(settings.origin_key_pem.clone());
            config.roots = roots.clone();
            config.seed = 7 + i as u64;
            config.state_dir = Some(ue_dir.join("state"));
            config.backoff = settings.backoff;
            config.device = format!("demo-ue-{:02}", i + 1);
            if settings.peers {
                config.listen = vec![addr(i)?];
                config.peers = dials(i, n)
                    .into_iter()
                    .map(addr)
                    .collect::<Result<_, _>>()?;
                config.linger = settings.timeout;
                config.stop_lingering = Some(stop_lingering.clone());
            }
            let updates = updates.clone();
            let sha256 = settings.sha256.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ue-{:02}", i + 1))
                .spawn(move || {
                    let agent_updates = updates.clone();
                    let report = dms_peer::agent::run(config, |event| {
                        let _ = agent_updates.send(Update {
                            index: i,
                            event: UeEvent::Agent(Box::new(event)),
                        });
                    })
                    .map_err(|e| e.to_string());
                    let sha256_matches = report.as_ref().is_ok_and(|r| {
                        r.objects
                            .iter()
                            .filter_map(|o| o.path.as_deref())
                            .any(|path| file_sha256(path).is_ok_and(|d| d == sha256))
                    });
                    let _ = updates.send(Update {
                        index: i,
                        event: UeEvent::Finished(Box::new(UeResult {
                            loss,
                            report,
                            sha256_matches,
                        })),
                    });
                })
                .context("starting a UE thread")?;
            threads.push(thread);
        }
        Ok(Fleet {
            threads,
            stop_lingering,
        })
    }

    /// Waits for every UE thread.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The SHA-256 of a file, in hex.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleets_are_a_full_mesh_and_big_ones_a_ring() {
        assert_eq!(dials(0, 3), Vec::<usize>::new());
        assert_eq!(dials(2, 3), vec![0, 1]);
        let n = 100;
        for i in 0..n {
            let d = dials(i, n);
            assert_eq!(d.len(), MAX_DIALS / 2);
            assert!(!d.contains(&i));
        }
    }
}
