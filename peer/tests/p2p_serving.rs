//! What a peer node serves: blocks as they decode (have-maps, "don't
//! have"), fresh symbols that rebuild the block, per-peer limits, and the
//! ban of a peer serving garbage. Real libp2p swarms on loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod p2p_support;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use dms_peer::p2p::{PeerConfig, PeerLimits, PeerNode, Request, Response, Served};
use p2p_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_decoded_object_is_served_block_by_block() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(14_000, 3);
    let oti = small_oti(data.len());
    let layout = oti.layout();
    assert_eq!(layout.block_count(), 4);
    // The receiver's file: blocks 0 and 2 written at their offsets, the
    // rest still holes.
    let path = dir.path().join(".partial");
    let file = std::fs::File::create(&path).unwrap();
    for sbn in [0u32, 2] {
        file.write_all_at(&block(&oti, &data, sbn), layout.block_offset(sbn).unwrap())
            .unwrap();
    }

    let a = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[])).unwrap();
    a.serve_blocks("/obj".into(), oti, path.clone(), vec![true, false, true]);
    let b = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[addr_of(&a).await])).unwrap();
    wait_connected(&b, a.peer_id).await;

    let have = |location: &str| Request::HaveMap {
        content_location: location.into(),
    };
    // The short have-map is padded to one flag per block.
    assert_eq!(
        b.ask(a.peer_id, have("/obj")).await.unwrap(),
        Response::HaveMap {
            blocks: vec![true, false, true, false]
        }
    );
    assert_eq!(
        b.ask(a.peer_id, have("/unknown")).await.unwrap(),
        Response::HaveMap { blocks: Vec::new() }
    );
    assert_eq!(
        ask_symbols(&b, a.peer_id, "/obj", 1, 10, 0).await,
        Response::DontHave
    );
    assert_eq!(
        ask_symbols(&b, a.peer_id, "/unknown", 0, 10, 0).await,
        Response::DontHave
    );
    for sbn in [0u32, 2] {
        let k = layout.source_symbols(sbn).unwrap();
        let symbols = symbols_of(ask_symbols(&b, a.peer_id, "/obj", sbn, k + 3, 0).await);
        assert_eq!(symbols.len() as u32, k + 3);
        assert_eq!(
            decode(&oti, sbn, &symbols).unwrap(),
            block(&oti, &data, sbn)
        );
    }

    // Block 1 decodes at the receiver: served from then on.
    file.write_all_at(&block(&oti, &data, 1), layout.block_offset(1).unwrap())
        .unwrap();
    assert!(a.block_done("/obj", 1));
    assert!(!a.block_done("/obj", 9));
    assert!(!a.block_done("/unknown", 0));
    assert_eq!(a.have_map("/obj").unwrap(), vec![true, true, true, false]);
    let k = layout.source_symbols(1).unwrap();
    let symbols = symbols_of(ask_symbols(&b, a.peer_id, "/obj", 1, k + 3, 50_000).await);
    assert!(symbols.iter().all(|(esi, _)| *esi >= 50_000));
    assert_eq!(decode(&oti, 1, &symbols).unwrap(), block(&oti, &data, 1));

    a.stop_serving("/obj");
    assert_eq!(
        b.ask(a.peer_id, have("/obj")).await.unwrap(),
        Response::HaveMap { blocks: Vec::new() }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbols_skip_the_esis_the_asker_has() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(4_000, 4);
    let oti = small_oti(data.len());
    let path = write_file(dir.path(), "object", &data);
    let a = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[])).unwrap();
    a.serve("/obj".into(), Served { path, oti });
    let b = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[addr_of(&a).await])).unwrap();
    wait_connected(&b, a.peer_id).await;

    let k = oti.layout().source_symbols(0).unwrap();
    let first = 1000;
    let not: Vec<u32> = (first..first + 10).step_by(2).collect();
    let request = Request::Symbols {
        content_location: "/obj".into(),
        sbn: 0,
        count: k + 2,
        first_esi: first,
        not: not.clone(),
    };
    let symbols = symbols_of(b.ask(a.peer_id, request).await.unwrap());
    assert_eq!(symbols.len() as u32, k + 2);
    assert!(
        symbols
            .iter()
            .all(|(esi, _)| *esi >= first && !not.contains(esi))
    );
    assert_eq!(decode(&oti, 0, &symbols).unwrap(), block(&oti, &data, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_over_its_limits_is_told_busy() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(8_000, 5);
    let oti = small_oti(data.len());
    let path = write_file(dir.path(), "object", &data);
    let a = PeerNode::start_with(PeerConfig {
        limits: PeerLimits {
            max_symbols_per_request: 70,
            // One answer uses up the window's budget.
            max_bytes_per_window: 1000,
            window: Duration::from_secs(600),
            ..PeerLimits::default()
        },
        ..config("/ip4/127.0.0.1/tcp/0", &[])
    })
    .unwrap();
    a.serve("/obj".into(), Served { path, oti });
    let a_addr = addr_of(&a).await;
    let b = PeerNode::start_with(config(
        "/ip4/127.0.0.1/tcp/0",
        std::slice::from_ref(&a_addr),
    ))
    .unwrap();
    let c = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[a_addr])).unwrap();
    wait_connected(&b, a.peer_id).await;
    wait_connected(&c, a.peer_id).await;

    // Capped to 70 symbols of 64 bytes: more than the byte budget.
    let symbols = symbols_of(ask_symbols(&b, a.peer_id, "/obj", 0, 500, 0).await);
    assert_eq!(symbols.len(), 70);
    assert_eq!(decode(&oti, 0, &symbols).unwrap(), block(&oti, &data, 0));
    match ask_symbols(&b, a.peer_id, "/obj", 1, 5, 0).await {
        Response::Busy { retry_after_ms } => assert!(retry_after_ms > 0),
        other => panic!("expected busy, got {other:?}"),
    }
    let objects = b.ask(a.peer_id, Request::Objects).await.unwrap();
    assert!(matches!(objects, Response::Busy { .. }), "{objects:?}");
    // Another peer has its own budget.
    let k = oti.layout().source_symbols(1).unwrap();
    let symbols = symbols_of(ask_symbols(&c, a.peer_id, "/obj", 1, k + 3, 0).await);
    assert_eq!(decode(&oti, 1, &symbols).unwrap(), block(&oti, &data, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_serving_garbage_is_banned_and_shunned() {
    let dir = tempfile::tempdir().unwrap();
    let data = object_bytes(8_000, 6);
    let oti = small_oti(data.len());
    let path = write_file(dir.path(), "object", &data);

    let honest = PeerNode::start_with(config("/ip4/127.0.0.1/tcp/0", &[])).unwrap();
    honest.serve(
        "/obj".into(),
        Served {
            path: path.clone(),
            oti,
        },
    );
    let bad = PeerNode::start_with(PeerConfig {
        malicious: true,
        ..config("/ip4/127.0.0.1/tcp/0", &[])
    })
    .unwrap();
    bad.serve("/obj".into(), Served { path, oti });
    let asker = PeerNode::start_with(config(
        "/ip4/127.0.0.1/tcp/0",
        &[addr_of(&honest).await, addr_of(&bad).await],
    ))
    .unwrap();
    wait_connected(&asker, honest.peer_id).await;
    wait_connected(&asker, bad.peer_id).await;

    // The asker checks each rebuilt block against what it must be (the
    // agent checks the manifest's block hash) and bans a liar.
    let k = oti.layout().source_symbols(0).unwrap();
    let mut banned = Vec::new();
    let mut good = 0;
    for peer in asker.peers().await {
        let symbols = symbols_of(ask_symbols(&asker, peer, "/obj", 0, k + 3, 0).await);
        if decode(&oti, 0, &symbols).as_deref() == Some(&block(&oti, &data, 0)[..]) {
            good += 1;
        } else {
            asker.ban(peer).await;
            banned.push(peer);
        }
    }
    assert_eq!(banned, vec![bad.peer_id]);
    assert_eq!(good, 1);

    // Disconnected, not asked, and not let back in when it dials.
    let start = Instant::now();
    while bad.peers().await.contains(&asker.peer_id) {
        assert!(
            start.elapsed() < DEADLINE,
            "the banned peer stays connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!asker.peers().await.contains(&bad.peer_id));
    assert!(ask_symbols_result(&asker, bad.peer_id).await.is_err());
    bad.dial(addr_of(&asker).await).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!asker.peers().await.contains(&bad.peer_id));
    assert!(asker.peers().await.contains(&honest.peer_id));
}

async fn ask_symbols_result(
    node: &PeerNode,
    peer: dms_peer::p2p::PeerId,
) -> Result<Response, dms_peer::p2p::P2pError> {
    let request = Request::Symbols {
        content_location: "/obj".into(),
        sbn: 0,
        count: 1,
        first_esi: 0,
        not: Vec::new(),
    };
    tokio::time::timeout(DEADLINE, node.ask(peer, request))
        .await
        .unwrap()
}
