//! Repair from peers over libp2p (TCP + Noise + Yamux, identify, explicit
//! peers): a request-response protocol `/dms/symbols/1` (CBOR) with two
//! questions, "which blocks of this object do you have" (a have-map) and
//! "send n symbols of block b with ESIs from s, not these". A peer answers
//! from the objects it holds whole and verified by making fresh repair
//! symbols with [`dms_fec::BlockEncoder`], so any number of peers serve
//! one asker without coordination (each asked for its own ESI range).
//!
//! The swarm runs in a tokio task; [`PeerNode`] is the handle to it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dms_fec::{BlockEncoder, Oti};
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
pub use libp2p::{Multiaddr, PeerId};
use libp2p::{StreamProtocol, identify, noise, tcp, yamux};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The protocol name.
pub const PROTOCOL: &str = "/dms/symbols/1";

/// Most symbols one answer carries.
pub const MAX_SYMBOLS: u32 = 4096;

/// A question to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Which blocks of the object at this Content-Location do you have?
    HaveMap {
        /// The object's Content-Location.
        content_location: String,
    },
    /// `count` symbols of block `sbn`, ESIs from `first_esi`, skipping
    /// those in `not`.
    Symbols {
        /// The object's Content-Location.
        content_location: String,
        /// Source block number.
        sbn: u32,
        /// How many symbols.
        count: u32,
        /// First ESI to make.
        first_esi: u32,
        /// ESIs the asker already has.
        not: Vec<u32>,
    },
}

/// A peer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// One flag per block: decoded and verified here.
    HaveMap {
        /// The flags, in block order (empty: object unknown).
        blocks: Vec<bool>,
    },
    /// `(esi, symbol)` pairs of T bytes.
    Symbols {
        /// The symbols.
        symbols: Vec<(u32, Vec<u8>)>,
    },
    /// The question could not be answered.
    Error {
        /// Why.
        reason: String,
    },
}

/// Errors of the peer node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// Building the swarm or listening failed.
    #[error("libp2p: {0}")]
    Setup(String),
    /// The node's task is gone.
    #[error("peer node stopped")]
    Stopped,
    /// The request failed (connection, timeout, protocol).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The peer answered with an error or the wrong answer.
    #[error("peer {peer}: {reason}")]
    Answer {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// An object this node serves to peers: a whole, verified file.
#[derive(Debug, Clone)]
pub struct Served {
    /// The file.
    pub path: PathBuf,
    /// Its FEC parameters.
    pub oti: Oti,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    symbols: request_response::cbor::Behaviour<Request, Response>,
    identify: identify::Behaviour,
}

enum Command {
    Ask {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, P2pError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Ban {
        peer: PeerId,
    },
}

/// The handle on a running peer node (cheap to clone).
#[derive(Clone)]
pub struct PeerNode {
    commands: mpsc::Sender<Command>,
    served: Arc<Mutex<HashMap<String, Served>>>,
    /// This node's peer id.
    pub peer_id: PeerId,
}

impl std::fmt::Debug for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNode")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl PeerNode {
    /// Starts a node listening on `listen` and dialing `peers`; must be
    /// called within a tokio runtime, whose task then runs the swarm. A
    /// `malicious` node answers with garbage symbols (for tests of
    /// banning).
    pub fn start(
        listen: &[Multiaddr],
        peers: &[Multiaddr],
        malicious: bool,
    ) -> Result<Self, P2pError> {
        let setup = |e: &dyn std::fmt::Display| P2pError::Setup(e.to_string());
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_behaviour(|key| Behaviour {
                symbols: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30)),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/dms/1".into(),
                    key.public(),
                )),
            })
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for addr in listen {
            swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
        }
        for addr in peers {
            swarm.dial(addr.clone()).map_err(|e| setup(&e))?;
        }
        let peer_id = *swarm.local_peer_id();
        let served = Arc::new(Mutex::new(HashMap::new()));
        let (commands, rx) = mpsc::channel(64);
        tokio::spawn(run(swarm, rx, Arc::clone(&served), malicious));
        Ok(PeerNode {
            commands,
            served,
            peer_id,
        })
    }

    /// Serves the object at `content_location` to peers from now on.
    pub fn serve(&self, content_location: String, served: Served) {
        if let Ok(mut map) = self.served.lock() {
            map.insert(content_location, served);
        }
    }

    /// The peers connected now (banned ones excluded).
    pub async fn peers(&self) -> Vec<PeerId> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Peers { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Asks `peer` a question.
    pub async fn ask(&self, peer: PeerId, request: Request) -> Result<Response, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Ask {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)?
    }

    /// Disconnects `peer` and never talks to it again.
    pub async fn ban(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Ban { peer }).await;
    }
}

async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    served: Arc<Mutex<HashMap<String, Served>>>,
    malicious: bool,
) {
    let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, P2pError>>> =
        HashMap::new();
    let mut connected: HashSet<PeerId> = HashSet::new();
    let mut banned: HashSet<PeerId> = HashSet::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::Ask { peer, request, reply }) => {
                    let id = swarm.behaviour_mut().symbols.send_request(&peer, request);
                    pending.insert(id, reply);
                }
                Some(Command::Peers { reply }) => {
                    let _ = reply.send(connected.difference(&banned).copied().collect());
                }
                Some(Command::Ban { peer }) => {
                    banned.insert(peer);
                    let _ = swarm.disconnect_peer_id(peer);
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "peer node listening");
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    if banned.contains(&peer_id) {
                        let _ = swarm.disconnect_peer_id(peer_id);
                    } else {
                        connected.insert(peer_id);
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    connected.remove(&peer_id);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Symbols(event)) => match event {
                    request_response::Event::Message { peer, message, .. } => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let response = if banned.contains(&peer) {
                                Response::Error { reason: "banned".into() }
                            } else {
                                let mut response = answer(&served, request);
                                if let (true, Response::Symbols { symbols }) = (malicious, &mut response) {
                                    for (_, symbol) in symbols.iter_mut() {
                                        symbol.iter_mut().for_each(|b| *b ^= 0x5a);
                                    }
                                }
                                response
                            };
                            let _ = swarm.behaviour_mut().symbols.send_response(channel, response);
                        }
                        request_response::Message::Response { request_id, response } => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                    },
                    request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Err(P2pError::Request { peer, reason: error.to_string() }));
                        }
                    }
                    _ => {}
                },
                _ => {}
            },
        }
    }
}

/// Answers a question from the objects served.
fn answer(served: &Mutex<HashMap<String, Served>>, request: Request) -> Response {
    let location = match &request {
        Request::HaveMap { content_location }
        | Request::Symbols {
            content_location, ..
        } => content_location,
    };
    let object = served.lock().ok().and_then(|m| m.get(location).cloned());
    match (request, object) {
        (Request::HaveMap { .. }, None) => Response::HaveMap { blocks: Vec::new() },
        (Request::HaveMap { .. }, Some(o)) => Response::HaveMap {
            blocks: vec![true; o.oti.layout().block_count() as usize],
        },
        (Request::Symbols { .. }, None) => Response::Error {
            reason: "object not held".into(),
        },
        (
            Request::Symbols {
                sbn,
                count,
                first_esi,
                not,
                ..
            },
            Some(o),
        ) => match symbols(&o, sbn, count.min(MAX_SYMBOLS), first_esi, &not) {
            Ok(symbols) => Response::Symbols { symbols },
            Err(reason) => Response::Error { reason },
        },
    }
}

/// `count` fresh symbols of block `sbn` of a held object.
fn symbols(
    o: &Served,
    sbn: u32,
    count: u32,
    first_esi: u32,
    not: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let layout = o.oti.layout();
    let (Some(offset), Some(len)) = (layout.block_offset(sbn), layout.block_len(sbn)) else {
        return Err(format!("no block {sbn}"));
    };
    let k = layout.source_symbols(sbn).unwrap_or(0);
    let first_esi = first_esi.max(k);
    let mut data = vec![0u8; len];
    let file = std::fs::File::open(&o.path).map_err(|e| e.to_string())?;
    file.read_exact_at(&mut data, offset)
        .map_err(|e| e.to_string())?;
    let encoder = BlockEncoder::new(&layout, sbn, &data).map_err(|e| e.to_string())?;
    let skip: HashSet<u32> = not.iter().copied().collect();
    let made = encoder
        .repair_symbols(first_esi, count.saturating_add(skip.len() as u32))
        .map_err(|e| e.to_string())?;
    Ok(made
        .into_iter()
        .filter(|(esi, _)| !skip.contains(esi))
        .take(count as usize)
        .collect())
}
