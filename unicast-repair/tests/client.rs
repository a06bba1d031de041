//! The UE client against real servers: failover, checked symbols, resume.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;

use common::{TestSource, bytes, serve};
use dms_fec::{BlockDecoder, SymbolOutcome};
use dms_repair::query::{RepairItem, RepairQuery};
use dms_repair::{ClientConfig, ClientError, DownloadTarget, RepairClient, ServiceConfig, router};

/// A loopback URL where nothing listens.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/repair")
}

#[tokio::test]
async fn symbols_fail_over_and_decode() {
    let source = TestSource::new();
    let data = bytes(2 * 150 * 256 + 33, 5);
    let info = source.add("c1", "x.bin", &data, 256, 150);
    let base = serve(router(source, None, ServiceConfig::default())).await;
    let client = RepairClient::new(ClientConfig::default()).unwrap();
    let servers = vec![dead_url().await, format!("{base}/repair"), dead_url().await];
    let layout = info.oti.layout();
    let sbn = layout.block_count() - 1;
    let k = layout.source_symbols(sbn).unwrap();
    // Nothing received of the last block: ask for K + 1 repair symbols.
    let query = RepairQuery {
        file_uri: info.content_location.clone(),
        items: vec![RepairItem::More {
            sbn,
            count: k + 1,
            first_esi: Some(k + 100),
        }],
    };
    // Whatever order the servers are tried in, the live one answers.
    for _ in 0..4 {
        let symbols = client.symbols(&servers, &query, &info.oti).await.unwrap();
        assert_eq!(symbols.len() as u32, k + 1);
        let mut decoder = BlockDecoder::new(&layout, sbn).unwrap();
        let mut decoded = false;
        for (id, s) in &symbols {
            assert_eq!(id.sbn, sbn);
            decoded |= decoder.add_symbol(id.esi, s).unwrap() == SymbolOutcome::Decoded;
        }
        assert!(decoded);
        let r = layout.block_range(sbn).unwrap();
        assert_eq!(
            decoder.data().unwrap(),
            &data[r.start as usize..r.end as usize]
        );
    }
    // A request that cannot fit the object fails before any request.
    let bad = RepairQuery {
        file_uri: info.content_location.clone(),
        items: vec![RepairItem::Blocks { first: 0, last: 9 }],
    };
    assert!(matches!(
        client.symbols(&servers, &bad, &info.oti).await,
        Err(ClientError::Plan(_))
    ));
    let only_dead = vec![dead_url().await];
    assert!(matches!(
        client.symbols(&only_dead, &query, &info.oti).await,
        Err(ClientError::Request(_))
    ));
}

fn target(info: &dms_repair::ObjectInfo, base: &str) -> DownloadTarget {
    DownloadTarget {
        uri: format!("{base}/dl/{}/{}", info.id, info.name),
        size: info.size,
        sha256: info.sha256,
        blocks: Some((info.oti.layout(), info.block_sha256.clone())),
    }
}

#[tokio::test]
async fn a_cut_download_resumes_with_range() {
    let source = TestSource::new();
    let data = bytes(1_500_000, 6);
    let info = source.add("c2", "big.bin", &data, 1280, 400);
    let base = serve(router(source.clone(), None, ServiceConfig::default())).await;
    // The first response dies after about 600 kB.
    *source.cut_first_open_after.lock().unwrap() = Some(600_000);
    let client = RepairClient::new(ClientConfig::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");
    let stats = client.download(&target(&info, &base), &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(stats.requests, 2);
    assert_eq!(source.opens.load(Ordering::SeqCst), 2);
    // The second request fetched only the rest.
    assert_eq!(stats.bytes_received, data.len() as u64);
    assert!(!out.path().join("big.bin.part").exists());
}

#[tokio::test]
async fn a_partial_file_is_resumed_and_verified() {
    let source = TestSource::new();
    let data = bytes(400_000, 7);
    let info = source.add("c3", "p.bin", &data, 1280, 100);
    let base = serve(router(source.clone(), None, ServiceConfig::default())).await;
    let client = RepairClient::new(ClientConfig::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("p.bin");
    let part = out.path().join("p.bin.part");

    // A good partial file: only the rest is fetched.
    std::fs::write(&part, &data[..123_456]).unwrap();
    let stats = client.download(&target(&info, &base), &dest).await.unwrap();
    assert_eq!(stats.bytes_resumed, 123_456);
    assert_eq!(stats.bytes_received, (data.len() - 123_456) as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // A corrupt partial file: the bad block is named, nothing is renamed
    // into place, and the partial file is gone so the next try starts over.
    std::fs::remove_file(&dest).unwrap();
    let mut bad = data[..200_000].to_vec();
    bad[150_000] ^= 1;
    std::fs::write(&part, &bad).unwrap();
    let err = client
        .download(&target(&info, &base), &dest)
        .await
        .unwrap_err();
    let layout = info.oti.layout();
    let bad_block = (0..layout.block_count())
        .find(|&s| layout.block_range(s).unwrap().contains(&150_000))
        .unwrap();
    assert!(
        matches!(err, ClientError::BlockHashMismatch(b) if b == bad_block),
        "{err}"
    );
    assert!(!dest.exists() && !part.exists());
    client.download(&target(&info, &base), &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}
