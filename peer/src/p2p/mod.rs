//! Repair from peers over libp2p: TCP + Noise + Yamux and QUIC, identify,
//! explicit peers, Kademlia and mDNS for discovery, and a request-response
//! protocol [`PROTOCOL`] (CBOR) with three questions: "which blocks of this
//! object do you have" (a have-map), "send n symbols of block b with ESIs
//! from s, not these", and "which objects do you know" (FDT facts and
//! signed manifests, for UEs that missed the broadcast).
//!
//! A node serves blocks as soon as they are decoded and written to a file
//! ([`PeerNode::serve_blocks`], [`PeerNode::block_done`]), by making fresh
//! repair symbols with a [`dms_fec::PreparedBlock`] (kept in a cache of
//! [`PeerConfig::encoder_cache_bytes`] between requests), so any number of peers
//! serve one asker without coordination (each asked for its own ESI
//! range). Each asking peer has limits ([`PeerLimits`]): requests in
//! flight and bytes per time window, beyond which it is told
//! [`Response::Busy`]. A banned peer is disconnected and never dialed or
//! served again.
//!
//! The swarm runs in a tokio task; [`PeerNode`] is the handle to it.

mod config;
mod limits;
mod protocol;
mod store;
mod swarm;

use std::path::PathBuf;

use dms_fec::Oti;
pub use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{DEFAULT_PEER_ENCODER_CACHE_BYTES, PeerConfig, PeerLimits};
pub use protocol::{MAX_SYMBOLS, ObjectAnnouncement, PROTOCOL, Request, Response};

use store::Store;
use swarm::Command;

/// Errors of the peer node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// Building the swarm, listening or dialing failed.
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

/// The handle on a running peer node (cheap to clone; the node stops when
/// the last handle is dropped).
#[derive(Clone)]
pub struct PeerNode {
    commands: mpsc::Sender<Command>,
    store: Store,
    listening: watch::Receiver<Vec<Multiaddr>>,
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
    /// Starts a node listening on `listen` and dialing `peers`, with
    /// Kademlia on, mDNS off and the default limits (the settings before
    /// [`PeerConfig`]); see [`PeerNode::start_with`]. A `malicious` node
    /// answers with garbage symbols (for tests of banning).
    pub fn start(
        listen: &[Multiaddr],
        peers: &[Multiaddr],
        malicious: bool,
    ) -> Result<Self, P2pError> {
        Self::start_with(PeerConfig {
            listen: listen.to_vec(),
            peers: peers.to_vec(),
            mdns: false,
            malicious,
            ..PeerConfig::default()
        })
    }

    /// Starts a node as `config` says; must be called within a tokio
    /// runtime, whose task then runs the swarm.
    pub fn start_with(config: PeerConfig) -> Result<Self, P2pError> {
        let swarm = swarm::build(&config)?;
        let peer_id = *swarm.local_peer_id();
        let store = Store::new(config.encoder_cache_bytes);
        let (listen_tx, listening) = watch::channel(Vec::new());
        let (commands, rx) = mpsc::channel(64);
        let task = swarm::Task::new(swarm, store.clone(), config, listen_tx);
        tokio::spawn(task.run(rx));
        Ok(PeerNode {
            commands,
            store,
            listening,
            peer_id,
        })
    }

    /// Serves the whole object at `content_location` from `served.path`
    /// from now on (every block held).
    pub fn serve(&self, content_location: String, served: Served) {
        let blocks = served.oti.layout().block_count() as usize;
        self.store.serve_blocks(
            content_location,
            served.oti,
            served.path,
            vec![true; blocks],
        );
    }

    /// Serves the object at `content_location` from the file `path`, where
    /// each block flagged in `have` (one flag per block, missing ones
    /// false) is written at its offset; replaces what was served under
    /// that name (call again with the final path once the file moves).
    pub fn serve_blocks(&self, content_location: String, oti: Oti, path: PathBuf, have: Vec<bool>) {
        self.store.serve_blocks(content_location, oti, path, have);
    }

    /// Block `sbn` of the object at `content_location` is now written in
    /// its file and served; false when the object is not served here or
    /// has no such block.
    pub fn block_done(&self, content_location: &str, sbn: u32) -> bool {
        self.store.block_done(content_location, sbn)
    }

    /// Stops serving the object at `content_location`.
    pub fn stop_serving(&self, content_location: &str) {
        self.store.stop_serving(content_location);
    }

    /// This node's have-map of the object at `content_location`, if served.
    pub fn have_map(&self, content_location: &str) -> Option<Vec<bool>> {
        self.store.have_map(content_location)
    }

    /// Tells peers that ask ([`Request::Objects`]) about an object;
    /// replaces an earlier announcement with the same Content-Location.
    pub fn announce(&self, announcement: ObjectAnnouncement) {
        self.store.announce(announcement);
    }

    /// The objects this node announces, by Content-Location.
    pub fn announced(&self) -> Vec<ObjectAnnouncement> {
        self.store.announced()
    }

    /// The addresses this node listens on, once it listens on at least
    /// one (empty if it never will: no listen address, or stopped).
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut rx = self.listening.clone();
        match rx.wait_for(|l| !l.is_empty()).await {
            Ok(addrs) => addrs.clone(),
            Err(_) => Vec::new(),
        }
    }

    /// Dials `addr` now and again while not connected to it (like the
    /// explicit peers of the config).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Dial { addr, reply })
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)?
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

    /// Asks `peer` which objects it knows.
    pub async fn objects_of(&self, peer: PeerId) -> Result<Vec<ObjectAnnouncement>, P2pError> {
        match self.ask(peer, Request::Objects).await? {
            Response::Objects { objects } => Ok(objects),
            other => Err(P2pError::Answer {
                peer,
                reason: format!("asked for objects, answered {}", kind(&other)),
            }),
        }
    }

    /// Disconnects `peer` and never talks to it again.
    pub async fn ban(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Ban { peer }).await;
    }
}

/// A short name of an answer, for errors.
fn kind(response: &Response) -> String {
    match response {
        Response::HaveMap { .. } => "a have-map".into(),
        Response::Symbols { .. } => "symbols".into(),
        Response::DontHave => "don't have".into(),
        Response::Objects { .. } => "objects".into(),
        Response::Busy { .. } => "busy".into(),
        Response::Error { reason } => format!("error: {reason}"),
    }
}
