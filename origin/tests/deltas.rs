#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Differential updates on a real origin: deltas made in the background
//! after a publish, listed in the object JSON and `/v1/objects/{id}/deltas`,
//! served for `?from=` and applied by dms-delta to the exact new version.

mod common;

use std::time::Duration;

use common::{data, json_of, start};
use dms_origin::config::Config;
use dms_origin::deltas::{DeltaConfig, DeltaStore};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn edit(old: &[u8], seed: u32) -> Vec<u8> {
    let mut new = old.to_vec();
    let patch = data(3000, seed);
    let at = (seed as usize * 7919) % (new.len() - 4000);
    new[at..at + 3000].copy_from_slice(&patch);
    new.splice(1000..1000, patch[..500].iter().copied());
    new
}

async fn publish(server: &common::TestServer, version: &str, bytes: &[u8]) -> Value {
    let (status, obj) = server
        .publish(&format!("name=app.bin&version={version}"), bytes.to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{obj}");
    obj
}

/// Polls `/v1/objects/{id}/deltas` until it lists `count` deltas (60 s).
async fn wait_deltas(server: &common::TestServer, id: &str, count: usize) -> Value {
    for _ in 0..600 {
        let (status, list) = json_of(
            server
                .get(&format!("/v1/objects/{id}/deltas"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        if list["deltas"].as_array().unwrap().len() >= count {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deltas to {id} never appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_are_made_listed_served_and_apply() {
    let server = start(Config::default()).await;
    let v1 = data(400_000, 1);
    let v2 = edit(&v1, 2);
    let v3 = edit(&v2, 3);
    let o1 = publish(&server, "1.0.0", &v1).await;
    let o2 = publish(&server, "1.0.1", &v2).await;
    let id2 = o2["id"].as_str().unwrap();
    let list = wait_deltas(&server, id2, 1).await;
    assert_eq!(list["id"], id2);
    assert_eq!(list["deltas"].as_array().unwrap().len(), 1);
    assert_eq!(list["deltas"][0]["base_version"], "1.0.0");
    assert_eq!(list["deltas"][0]["base_id"], o1["id"]);

    // The third version gets deltas from both earlier ones.
    let o3 = publish(&server, "1.0.2", &v3).await;
    let id3 = o3["id"].as_str().unwrap();
    let list = wait_deltas(&server, id3, 2).await;
    let (_, shown) = json_of(
        server
            .get(&format!("/v1/objects/{id3}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["deltas"], list["deltas"]);

    for (base, base_obj) in [(&v1, &o1), (&v2, &o2)] {
        let base_sha = hex::encode(Sha256::digest(base));
        assert_eq!(base_obj["sha256"], base_sha.as_str());
        let entry = list["deltas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["base_sha256"] == base_sha.as_str())
            .unwrap()
            .clone();
        assert_eq!(entry["base_version"], base_obj["version"]);
        let uri = entry["uri"].as_str().unwrap();
        assert_eq!(
            uri,
            format!("{}?from={base_sha}", o3["uri"].as_str().unwrap())
        );
        let response = server.client.get(uri).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-dms-delta-base"], base_sha.as_str());
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.dms.delta"
        );
        let delta = response.bytes().await.unwrap();
        assert_eq!(delta.len() as u64, entry["size"].as_u64().unwrap());
        assert_eq!(
            hex::encode(Sha256::digest(&delta)),
            entry["sha256"].as_str().unwrap()
        );
        assert!((delta.len() as f64) < v3.len() as f64 * 0.6);
        assert_eq!(dms_delta::apply_bytes(base, &delta).unwrap(), v3);
    }

    // An unknown base: the full object, unmarked.
    let uri = o3["uri"].as_str().unwrap();
    let response = server
        .client
        .get(format!("{uri}?from={}", "ab".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-dms-delta-base").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), v3.as_slice());
    // The target itself as base: the full object.
    let response = server
        .client
        .get(format!("{uri}?from={}", o3["sha256"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-dms-delta-base").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), v3.as_slice());
    // A malformed base: 400 with a JSON error.
    let (status, body) = json_of(
        server
            .client
            .get(format!("{uri}?from=xyz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("from"), "{body}");
    // Unknown object: 404.
    let (status, _) = json_of(
        server
            .get("/v1/objects/0123456789abcdef0123456789abcdef/deltas")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_versions_keep_no_delta_and_bases_are_limited() {
    let server = start(Config {
        delta_bases: Some(0),
        ..Config::default()
    })
    .await;
    let a = publish(&server, "1.0.0", &data(100_000, 10)).await;
    let b = publish(&server, "2.0.0", &data(100_000, 11)).await;
    let c = publish(&server, "3.0.0", &edit(&data(100_000, 11), 5)).await;
    let repo = server.repo.clone();
    let dir = tempfile::tempdir().unwrap();
    let ids = [a, b, c].map(|o| o["id"].as_str().unwrap().to_owned());
    let made = tokio::task::spawn_blocking(move || {
        let one_base = DeltaStore::open(
            dir.path(),
            DeltaConfig {
                bases: 1,
                ..DeltaConfig::default()
            },
        )
        .unwrap();
        let rb = repo.get(&ids[1]).unwrap();
        let rc = repo.get(&ids[2]).unwrap();
        // Random content: a delta would be as large as the object.
        let unrelated = one_base.make_for(&repo, &rb).unwrap();
        // One base only: from 2.0.0, not from 1.0.0.
        let related = one_base.make_for(&repo, &rc).unwrap();
        let bases: Vec<String> = one_base
            .bases_for(&repo, &rc)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        // Nothing left behind but the delta kept.
        let files = walk(dir.path());
        (unrelated.len(), related, bases, ids, files)
    })
    .await
    .unwrap();
    let (unrelated, related, bases, ids, files) = made;
    assert_eq!(unrelated, 0);
    assert_eq!(related.len(), 1);
    assert_eq!(bases, vec![ids[1].clone()]);
    assert_eq!(files, vec![related[0].path.clone()]);
    // With delta_bases = 0 the server made none.
    let (_, list) = json_of(
        server
            .get(&format!("/v1/objects/{}/deltas", ids[2]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["deltas"], Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_deltas_of_deleted_versions() {
    let server = start(Config {
        delta_bases: Some(0),
        ..Config::default()
    })
    .await;
    let v1 = data(100_000, 20);
    publish(&server, "1.0.0", &v1).await;
    let o2 = publish(&server, "1.0.1", &edit(&v1, 21)).await;
    let id2 = o2["id"].as_str().unwrap().to_owned();
    let repo = server.repo.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let store = tokio::task::spawn_blocking(move || {
        let store = DeltaStore::open(&path, DeltaConfig::default()).unwrap();
        assert_eq!(
            store
                .make_for(&repo, &repo.get(&id2).unwrap())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.prune(&repo).unwrap(), 0);
        repo.delete(&id2).unwrap();
        assert_eq!(store.prune(&repo).unwrap(), 1);
        store
    })
    .await
    .unwrap();
    assert!(walk(dir.path()).is_empty());
    drop(store);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
