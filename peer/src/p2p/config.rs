//! How a peer node is set up: where it listens, whom it dials, how it
//! discovers peers and how much it serves.

use std::time::Duration;

use libp2p::Multiaddr;

use super::protocol::MAX_SYMBOLS;

/// A peer node's settings ([`PeerNode::start_with`](super::PeerNode::start_with)).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Addresses to listen on, TCP (`/ip4/…/tcp/…`) and QUIC
    /// (`/ip4/…/udp/…/quic-v1`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (and again while not connected to them); also
    /// Kademlia's bootstrap peers.
    pub peers: Vec<Multiaddr>,
    /// Discover peers on the local network by mDNS (libp2p skips loopback
    /// addresses, so it finds nothing between nodes on 127.0.0.1).
    pub mdns: bool,
    /// Find peers through the peers already known (Kademlia).
    pub kademlia: bool,
    /// Peers found by discovery (Kademlia, mDNS) are dialed only while
    /// fewer than this many peers are connected (explicit peers and
    /// inbound connections are never refused for it).
    pub max_discovered_peers: usize,
    /// What one asking peer may take from this node.
    pub limits: PeerLimits,
    /// Bytes of prepared blocks (block bytes and RaptorQ intermediate
    /// symbols, about three times the block) kept between symbol requests,
    /// least recently used first out, so peers asking for the same block
    /// do not each make the node re-read and re-encode it; 0 turns the
    /// cache off. Default [`DEFAULT_PEER_ENCODER_CACHE_BYTES`] (16 MiB:
    /// a device keeps about five 1 MiB blocks, the ones its neighbours
    /// miss at the same time).
    pub encoder_cache_bytes: usize,
    /// Answer with garbage symbols (for tests of banning only).
    pub malicious: bool,
}

/// The default [`PeerConfig::encoder_cache_bytes`]: smaller than a repair
/// server's, since a device has less memory to spare.
pub const DEFAULT_PEER_ENCODER_CACHE_BYTES: usize = 16 << 20;

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: true,
            kademlia: true,
            max_discovered_peers: 50,
            limits: PeerLimits::default(),
            encoder_cache_bytes: DEFAULT_PEER_ENCODER_CACHE_BYTES,
            malicious: false,
        }
    }
}

/// Per-peer limits on what this node serves; beyond them it answers
/// [`Response::Busy`](super::Response::Busy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Requests of one peer being answered at once.
    pub max_inflight_per_peer: u32,
    /// Bytes (symbols and listings) served to one peer per `window`.
    pub max_bytes_per_window: u64,
    /// The window of `max_bytes_per_window`.
    pub window: Duration,
    /// Most symbols in one answer.
    pub max_symbols_per_request: u32,
    /// Most payload bytes in one answer (the symbols asked for are cut to
    /// fit).
    pub max_response_bytes: u64,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_inflight_per_peer: 8,
            // 64 MiB per 10 s: about 50 Mbit/s to each peer.
            max_bytes_per_window: 64 << 20,
            window: Duration::from_secs(10),
            max_symbols_per_request: MAX_SYMBOLS,
            max_response_bytes: 16 << 20,
        }
    }
}
