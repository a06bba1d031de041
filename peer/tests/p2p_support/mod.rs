//! Shared by the p2p tests: objects in files, nodes on loopback, bounded
//! waits, and decoding served symbols back into blocks.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dms_fec::{BlockDecoder, BlockSize, FecScheme, Oti};
use dms_peer::p2p::{Multiaddr, PeerConfig, PeerId, PeerNode, Request, Response};

/// Longest wait of any step (only reached when something is broken).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `len` reproducible pseudo-random bytes.
pub fn object_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A RaptorQ plan of 4 KiB blocks of 64-byte symbols for `len` bytes.
pub fn small_oti(len: usize) -> Oti {
    Oti::for_object(FecScheme::RaptorQ, len as u64, 64, BlockSize::Bytes(4096)).unwrap()
}

/// Writes `data` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// The bytes of block `sbn` of `data`.
pub fn block(oti: &Oti, data: &[u8], sbn: u32) -> Vec<u8> {
    let range = oti.layout().block_range(sbn).unwrap();
    data[range.start as usize..range.end as usize].to_vec()
}

/// A node with only the given listen addresses and explicit peers, no mDNS.
pub fn config(listen: &str, peers: &[Multiaddr]) -> PeerConfig {
    PeerConfig {
        listen: vec![listen.parse().unwrap()],
        peers: peers.to_vec(),
        mdns: false,
        ..PeerConfig::default()
    }
}

/// A node's first listen address with its peer id.
pub async fn addr_of(node: &PeerNode) -> Multiaddr {
    let addr = tokio::time::timeout(DEADLINE, node.listen_addrs())
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    addr.with_p2p(node.peer_id).unwrap()
}

/// Waits until `node` is connected to `peer`.
pub async fn wait_connected(node: &PeerNode, peer: PeerId) {
    let start = Instant::now();
    while !node.peers().await.contains(&peer) {
        assert!(start.elapsed() < DEADLINE, "{peer} never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `peer` for `count` symbols of block `sbn` from `first_esi`.
pub async fn ask_symbols(
    node: &PeerNode,
    peer: PeerId,
    location: &str,
    sbn: u32,
    count: u32,
    first_esi: u32,
) -> Response {
    let request = Request::Symbols {
        content_location: location.into(),
        sbn,
        count,
        first_esi,
        not: Vec::new(),
    };
    tokio::time::timeout(DEADLINE, node.ask(peer, request))
        .await
        .unwrap()
        .unwrap()
}

/// Decodes block `sbn` from served symbols alone (no source symbol), or
/// `None` when they do not make a block.
pub fn decode(oti: &Oti, sbn: u32, symbols: &[(u32, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut decoder = BlockDecoder::new(&oti.layout(), sbn).unwrap();
    for (esi, symbol) in symbols {
        decoder.add_symbol(*esi, symbol).ok()?;
    }
    decoder.data().map(<[u8]>::to_vec)
}

/// The symbols of an answer (fails the test on any other answer).
pub fn symbols_of(response: Response) -> Vec<(u32, Vec<u8>)> {
    match response {
        Response::Symbols { symbols } => symbols,
        other => panic!("expected symbols, got {other:?}"),
    }
}
