//! The libp2p swarm (TCP + Noise + Yamux and QUIC; identify, Kademlia,
//! mDNS, a block list and the symbols protocol) and the task that drives
//! it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, allow_block_list, identify, mdns, noise, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::P2pError;
use super::config::PeerConfig;
use super::limits::Limiter;
use super::protocol::{PROTOCOL, Request, Response};
use super::store::Store;

/// The Kademlia protocol of dms nodes (apart from the public IPFS DHT).
const KAD_PROTOCOL: &str = "/dms/kad/1";
/// Largest request and answer on the wire (the answers' payload is capped
/// by the limits below this).
const MAX_REQUEST_BYTES: u64 = 1 << 20;
const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// How often explicit peers are dialed again while not connected (and
/// Kademlia asked for more peers).
const REDIAL: Duration = Duration::from_secs(10);

type SymbolsBehaviour = request_response::cbor::Behaviour<Request, Response>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    symbols: SymbolsBehaviour,
    identify: identify::Behaviour,
    kad: Toggle<kad::Behaviour<MemoryStore>>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the handle asks of the task.
pub(crate) enum Command {
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
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
}

/// Builds the swarm and starts listening and dialing.
pub(crate) fn build(config: &PeerConfig) -> Result<libp2p::Swarm<Behaviour>, P2pError> {
    let setup = |e: &dyn std::fmt::Display| P2pError::Setup(e.to_string());
    let (mdns_on, kad_on) = (config.mdns, config.kademlia);
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let codec = request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_REQUEST_BYTES)
                .set_response_size_maximum(MAX_RESPONSE_BYTES);
            let symbols = request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            );
            let kad = kad_on.then(|| {
                let mut cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                cfg.set_periodic_bootstrap_interval(Some(Duration::from_secs(60)));
                let mut kad = kad::Behaviour::with_config(id, MemoryStore::new(id), cfg);
                // Loopback and LAN nodes never confirm an external address,
                // which would leave them clients that nobody routes to.
                kad.set_mode(Some(kad::Mode::Server));
                kad
            });
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), id)?)
            } else {
                None
            };
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                symbols,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/dms/1".into(),
                    key.public(),
                )),
                kad: kad.into(),
                mdns: mdns.into(),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
    }
    for addr in &config.peers {
        swarm.dial(addr.clone()).map_err(|e| setup(&e))?;
    }
    Ok(swarm)
}

/// An answer made off the swarm task, on its way back.
struct Answered {
    peer: PeerId,
    channel: ResponseChannel<Response>,
    response: Response,
    bytes: u64,
}

/// The state of the task driving the swarm.
pub(crate) struct Task {
    swarm: libp2p::Swarm<Behaviour>,
    store: Store,
    config: PeerConfig,
    limiter: Limiter<PeerId>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, P2pError>>>,
    connected: HashSet<PeerId>,
    banned: HashSet<PeerId>,
    /// Explicit peers' addresses and, once connected, who answered there.
    explicit: Vec<(Multiaddr, Option<PeerId>)>,
    listening: watch::Sender<Vec<Multiaddr>>,
    answered_tx: mpsc::UnboundedSender<Answered>,
    answered_rx: mpsc::UnboundedReceiver<Answered>,
}

impl Task {
    pub(crate) fn new(
        swarm: libp2p::Swarm<Behaviour>,
        store: Store,
        config: PeerConfig,
        listening: watch::Sender<Vec<Multiaddr>>,
    ) -> Self {
        let (answered_tx, answered_rx) = mpsc::unbounded_channel();
        Task {
            swarm,
            store,
            limiter: Limiter::new(config.limits),
            explicit: config.peers.iter().map(|a| (a.clone(), None)).collect(),
            config,
            pending: HashMap::new(),
            connected: HashSet::new(),
            banned: HashSet::new(),
            listening,
            answered_tx,
            answered_rx,
        }
    }

    /// Runs until every handle is dropped.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // The first dials were made at start.
        let mut redial = tokio::time::interval_at(tokio::time::Instant::now() + REDIAL, REDIAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => break,
                    Some(command) => self.command(command),
                },
                Some(done) = self.answered_rx.recv() => self.respond(done),
                _ = redial.tick() => self.redial(),
                event = self.swarm.select_next_some() => self.event(event),
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Ask {
                peer,
                request,
                reply,
            } => {
                if self.banned.contains(&peer) {
                    let _ = reply.send(Err(P2pError::Request {
                        peer,
                        reason: "peer is banned".into(),
                    }));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .symbols
                    .send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.connected.difference(&self.banned).copied().collect());
            }
            Command::Ban { peer } => {
                tracing::warn!(%peer, "peer banned");
                self.banned.insert(peer);
                self.connected.remove(&peer);
                let behaviour = self.swarm.behaviour_mut();
                // The block list closes its connections and refuses new ones.
                behaviour.blocked.block_peer(peer);
                if let Some(kad) = behaviour.kad.as_mut() {
                    kad.remove_peer(&peer);
                }
            }
            Command::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| P2pError::Setup(e.to_string()));
                if result.is_ok() {
                    self.explicit.push((addr, None));
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Dials the explicit peers this node is not connected to, and asks
    /// Kademlia again for peers while it could take more (a bootstrap peer
    /// may not have known its neighbours when first asked).
    fn redial(&mut self) {
        self.limiter.prune(Instant::now());
        let room = self.connected.len() < self.config.max_discovered_peers;
        if let (true, Some(kad)) = (room, self.swarm.behaviour_mut().kad.as_mut()) {
            // Fails only while no peer is known.
            let _ = kad.bootstrap();
        }
        for (addr, peer) in &self.explicit {
            let skip =
                peer.is_some_and(|p| self.connected.contains(&p) || self.banned.contains(&p));
            if !skip && let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "redial failed");
            }
        }
    }

    /// Dials a discovered peer, unless banned, connected or over the cap.
    fn dial_discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id()
            || self.banned.contains(&peer)
            || self.connected.contains(&peer)
            || self.connected.len() >= self.config.max_discovered_peers
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "dial of a discovered peer failed");
        }
    }

    fn respond(&mut self, done: Answered) {
        self.limiter.finish(&done.peer, done.bytes, Instant::now());
        let mut response = done.response;
        if let (true, Response::Symbols { symbols }) = (self.config.malicious, &mut response) {
            for (_, symbol) in symbols.iter_mut() {
                symbol.iter_mut().for_each(|b| *b ^= 0x5a);
            }
        }
        if self
            .swarm
            .behaviour_mut()
            .symbols
            .send_response(done.channel, response)
            .is_err()
        {
            tracing::debug!(peer = %done.peer, "asker gone before the answer");
        }
    }

    /// A request from `peer`: answered on a blocking thread (reading and
    /// encoding take time), or at once when over its limits.
    fn request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        if self.banned.contains(&peer) {
            return;
        }
        if let Err(wait) = self.limiter.admit(peer, Instant::now()) {
            let busy = Response::Busy {
                retry_after_ms: wait.as_millis().min(u128::from(u64::MAX)) as u64,
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .symbols
                .send_response(channel, busy);
            return;
        }
        let store = self.store.clone();
        let limits = self.config.limits;
        let tx = self.answered_tx.clone();
        tokio::task::spawn_blocking(move || {
            let (response, bytes) = store.answer(request, &limits);
            let _ = tx.send(Answered {
                peer,
                channel,
                response,
                bytes,
            });
        });
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "peer node listening");
                self.listening.send_modify(|l| l.push(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening.send_modify(|l| l.retain(|a| *a != address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if self.banned.contains(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.connected.insert(peer_id);
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let bare = strip_p2p(address);
                    for (addr, peer) in &mut self.explicit {
                        if strip_p2p(addr) == bare {
                            *peer = Some(peer_id);
                        }
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Symbols(event)) => self.symbols_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
                if let (true, Some(kad)) = (speaks_kad, self.swarm.behaviour_mut().kad.as_mut()) {
                    let mut new = false;
                    for addr in info.listen_addrs {
                        if is_dialable(&addr) {
                            new |= matches!(
                                kad.add_address(&peer_id, addr),
                                kad::RoutingUpdate::Success
                            );
                        }
                    }
                    if new && let Err(e) = kad.bootstrap() {
                        tracing::debug!(error = %e, "kademlia bootstrap");
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                addresses,
                ..
            })) => {
                self.dial_discovered(peer, addresses.into_vec());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        for addr in &addrs {
                            kad.add_address(&peer, addr.clone());
                        }
                    }
                    self.dial_discovered(peer, addrs);
                }
            }
            _ => {}
        }
    }

    fn symbols_event(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, error = %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// `addr` without its trailing `/p2p/…`.
fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Whether another node could dial `addr` (not unspecified).
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
