//! Peer nodes on loopback find each other and talk: over QUIC, through
//! Kademlia from one bootstrap peer, and the object listing for late
//! joiners. Real libp2p swarms, real sockets.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod p2p_support;

use std::time::{Duration, Instant};

use dms_fec::{BlockSize, FecScheme, Oti};
use dms_peer::p2p::{
    Multiaddr, ObjectAnnouncement, PeerConfig, PeerNode, Request, Response, Served,
};
use p2p_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_nodes_exchange_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(10_000, 1);
    let oti = small_oti(data.len());
    let path = write_file(dir.path(), "object", &data);

    // A listens on QUIC alone, so B's connection can only be QUIC.
    let a = PeerNode::start_with(config("/ip4/127.0.0.1/udp/0/quic-v1", &[])).unwrap();
    a.serve("/obj".into(), Served { path, oti });
    let a_addr = addr_of(&a).await;
    assert!(a_addr.to_string().contains("/quic-v1"), "{a_addr}");
    let b = PeerNode::start_with(config("/ip4/127.0.0.1/udp/0/quic-v1", &[a_addr])).unwrap();
    wait_connected(&b, a.peer_id).await;

    let have = b
        .ask(
            a.peer_id,
            Request::HaveMap {
                content_location: "/obj".into(),
            },
        )
        .await
        .unwrap();
    let blocks = oti.layout().block_count();
    assert!(blocks > 1);
    assert_eq!(
        have,
        Response::HaveMap {
            blocks: vec![true; blocks as usize]
        }
    );
    for sbn in 0..blocks {
        let k = oti.layout().source_symbols(sbn).unwrap();
        let symbols = symbols_of(ask_symbols(&b, a.peer_id, "/obj", sbn, k + 4, 0).await);
        assert!(
            symbols.iter().all(|(esi, _)| *esi >= k),
            "repair symbols only"
        );
        assert_eq!(
            decode(&oti, sbn, &symbols).unwrap(),
            block(&oti, &data, sbn)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kademlia_finds_a_peer_known_only_to_the_bootstrap_peer() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(9_000, 2);
    let oti = small_oti(data.len());
    let path = write_file(dir.path(), "object", &data);

    let a = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[])).unwrap();
    let a_addr = addr_of(&a).await;
    let b = PeerNode::start_with(config(
        "/ip4/127.0.0.1/tcp/0",
        std::slice::from_ref(&a_addr),
    ))
    .unwrap();
    b.serve("/obj".into(), Served { path, oti });
    wait_connected(&a, b.peer_id).await;

    // C knows A only; A's routing table (filled from identify) names B.
    let c = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[a_addr])).unwrap();
    wait_connected(&c, a.peer_id).await;
    wait_connected(&c, b.peer_id).await;

    let sbn = oti.layout().block_count() - 1;
    let k = oti.layout().source_symbols(sbn).unwrap();
    let symbols = symbols_of(ask_symbols(&c, b.peer_id, "/obj", sbn, k + 4, 0).await);
    assert_eq!(
        decode(&oti, sbn, &symbols).unwrap(),
        block(&oti, &data, sbn)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_learns_the_objects_a_peer_knows() {
    let a = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[])).unwrap();
    let announced = vec![
        ObjectAnnouncement {
            content_location: "/fw/v2.bin".into(),
            content_length: 123_456,
            content_type: Some("application/octet-stream".into()),
            content_encoding: None,
            oti: small_oti(123_456),
            sha256: Some([7; 32]),
            manifest_uri: Some("https://origin.example/manifests/fw-v2.json".into()),
            manifest: br#"{"id":"fw-v2","sig":"..."}"#.to_vec(),
        },
        ObjectAnnouncement {
            content_location: "/maps/tile.pbf".into(),
            content_length: 1000,
            content_type: None,
            content_encoding: Some("gzip".into()),
            oti: Oti::for_object(FecScheme::NoCode, 1000, 100, BlockSize::Bytes(500)).unwrap(),
            sha256: None,
            manifest_uri: None,
            manifest: Vec::new(),
        },
    ];
    for o in announced.iter().rev() {
        a.announce(o.clone());
    }
    // Announcing again replaces, never duplicates.
    a.announce(announced[0].clone());
    assert_eq!(a.announced(), announced);

    let b = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[addr_of(&a).await])).unwrap();
    wait_connected(&b, a.peer_id).await;
    let listed = tokio::time::timeout(DEADLINE, b.objects_of(a.peer_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed, announced);
    assert_eq!(listed[0].oti.encode().len(), 12);
    // B knows nothing: an empty list, not an error.
    assert!(a.objects_of(b.peer_id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_node_starts_and_listens_on_tcp_and_quic() {
    let node = PeerNode::start_with(PeerConfig {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        ],
        mdns: true,
        ..PeerConfig::default()
    })
    .unwrap();
    let start = Instant::now();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    while addrs.len() < 2 {
        assert!(start.elapsed() < DEADLINE, "listening on {addrs:?}");
        addrs = node.listen_addrs().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|a| a.contains("/tcp/")), "{text:?}");
    assert!(text.iter().any(|a| a.contains("/quic-v1")), "{text:?}");
}
