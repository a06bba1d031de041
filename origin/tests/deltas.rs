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
    // (The delta's bytes and its record.)
    let mut files = files;
    files.sort_by_key(|f| f.extension().is_some());
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0], related[0].path);
    assert_eq!(files[1].extension().unwrap(), "json");
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

/// A GET without the token (the public routes).
async fn public_get(server: &common::TestServer, url: &str) -> reqwest::Response {
    server.client.get(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_is_an_object_with_its_own_uri_manifest_and_repair() {
    let server = start(Config::default()).await;
    let v1 = data(1_500_000, 30);
    let v2 = edit(&v1, 31);
    let o1 = publish(&server, "1.0.0", &v1).await;
    let o2 = publish(&server, "1.0.1", &v2).await;
    let id2 = o2["id"].as_str().unwrap();
    let list = wait_deltas(&server, id2, 1).await;
    let d = list["deltas"][0].clone();
    let delta_id = d["id"].as_str().unwrap();
    assert_eq!(delta_id.len(), 32);
    assert_ne!(delta_id, id2);
    assert_eq!(d["target_id"], id2);
    assert_eq!(d["target_sha256"], o2["sha256"]);
    assert_eq!(d["base_sha256"], o1["sha256"]);
    assert_eq!(d["content_type"], "application/vnd.dms.delta");
    assert_eq!(d["repair_uri"], o2["repair_uri"]);
    let location = d["content_location"].as_str().unwrap();
    assert_eq!(
        location,
        format!("{}/dl/{delta_id}/app.bin.delta", server.base)
    );
    assert_eq!(
        d["manifest_uri"],
        format!("{}/manifest/{delta_id}", server.base).as_str()
    );

    // Its own download: the delta's bytes, immutable, its own ETag.
    let response = public_get(&server, location).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.dms.delta"
    );
    assert_eq!(
        response.headers()["etag"],
        format!("\"{}\"", d["sha256"].as_str().unwrap()).as_str()
    );
    let delta = response.bytes().await.unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&delta)),
        d["sha256"].as_str().unwrap()
    );
    assert_eq!(delta.len() as u64, d["size"].as_u64().unwrap());
    assert_eq!(dms_delta::apply_bytes(&v1, &delta).unwrap(), v2);

    // Its own signed manifest: a version 2 manifest naming base, target
    // and target id, verifying with the origin's key, whose block hashes
    // are those of the delta's bytes in its FEC layout.
    let response = public_get(&server, d["manifest_uri"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let manifest =
        dms_repair::manifest::SignedManifest::from_json(&response.bytes().await.unwrap()).unwrap();
    let key = dms_repair::manifest::public_key_from_pem(
        &std::fs::read_to_string(server.data.path().join("origin.pub")).unwrap(),
    )
    .unwrap();
    let body = manifest.verify(&key).unwrap();
    assert_eq!(manifest.v, 2);
    assert_eq!(body.id, delta_id);
    assert_eq!(body.size, delta.len() as u64);
    assert_eq!(hex::encode(body.sha256), d["sha256"].as_str().unwrap());
    let md = body.delta.clone().unwrap();
    assert_eq!(hex::encode(md.base_sha256), o1["sha256"].as_str().unwrap());
    assert_eq!(
        hex::encode(md.target_sha256),
        o2["sha256"].as_str().unwrap()
    );
    assert_eq!(md.target_id, id2);
    let layout = body.oti.layout();
    assert_eq!(body.block_sha256.len(), layout.block_count() as usize);
    for (sbn, hash) in body.block_sha256.iter().enumerate() {
        let range = layout.block_range(sbn as u32).unwrap();
        let block = &delta[range.start as usize..range.end as usize];
        assert_eq!(&<[u8; 32]>::from(Sha256::digest(block)), hash);
    }
    // The target's manifest is still version 1.
    let response = public_get(&server, o2["manifest_uri"].as_str().unwrap()).await;
    let target_manifest =
        dms_repair::manifest::SignedManifest::from_json(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(target_manifest.v, 1);
    assert!(target_manifest.delta.is_none());

    // Symbol repair by its Content-Location: source symbols of block 0
    // are the delta's first bytes.
    let t = body.oti.symbol_size() as usize;
    let repair = format!(
        "{}?fileURI={}&SBN=0;ESI=0,1",
        d["repair_uri"].as_str().unwrap(),
        location
    );
    let response = public_get(&server, &repair).await;
    assert_eq!(response.status(), StatusCode::OK);
    let container = response.bytes().await.unwrap();
    let symbols: Vec<_> = dms_repair::container::ContainerReader::new(
        &container,
        body.oti.scheme(),
        body.oti.symbol_size(),
    )
    .map(Result::unwrap)
    .collect();
    assert_eq!(symbols.len(), 2);
    for (i, (id, symbol)) in symbols.iter().enumerate() {
        assert_eq!((id.sbn, id.esi), (0, i as u32));
        assert_eq!(*symbol, &delta[i * t..(i + 1) * t]);
    }

    // Not a name's version: listings by name show only the objects.
    let (_, history) = json_of(server.get("/v1/objects?name=app.bin").send().await.unwrap()).await;
    let shown = history.to_string();
    assert!(!shown.contains(delta_id), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_names_the_delta_only_for_its_base() {
    let server = start(Config::default()).await;
    let v1 = data(300_000, 40);
    let v2 = edit(&v1, 41);
    let o1 = publish(&server, "1.0.0", &v1).await;
    let o2 = publish(&server, "1.0.1", &v2).await;
    let id2 = o2["id"].as_str().unwrap();
    let list = wait_deltas(&server, id2, 1).await;
    let d = &list["deltas"][0];
    let dd = |from: Option<&str>| {
        let url = match from {
            Some(f) => format!("{}/dd/{id2}?from={f}", server.base),
            None => format!("{}/dd/{id2}", server.base),
        };
        let client = server.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let element = |xml: &str, name: &str| -> String {
        let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
        let end = xml[start..].find('<').unwrap() + start;
        xml[start..end].to_owned()
    };

    // From the base: the delta, with its own type, size and URI; the
    // install notification stays the target's.
    let (status, xml) = dd(o1["sha256"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(element(&xml, "type"), "application/vnd.dms.delta");
    assert_eq!(
        element(&xml, "size"),
        d["size"].as_u64().unwrap().to_string()
    );
    assert_eq!(
        element(&xml, "objectURI"),
        d["content_location"].as_str().unwrap()
    );
    assert_eq!(
        element(&xml, "installNotifyURI"),
        o2["notify_uri"].as_str().unwrap()
    );
    // Upper-case hex names the same base.
    let (_, upper) = dd(Some(&o1["sha256"].as_str().unwrap().to_uppercase())).await;
    assert_eq!(element(&upper, "objectURI"), element(&xml, "objectURI"));

    // No from, an unknown base, the target itself: the full object.
    for from in [
        None,
        Some("ab".repeat(32)),
        Some(o2["sha256"].as_str().unwrap().to_owned()),
    ] {
        let (status, xml) = dd(from.as_deref()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(element(&xml, "type"), "application/octet-stream");
        assert_eq!(element(&xml, "size"), v2.len().to_string());
        assert_eq!(element(&xml, "objectURI"), o2["uri"].as_str().unwrap());
    }
    // The base's own descriptor never names a delta (none goes backwards).
    let (_, xml) = dd(None).await;
    assert!(!xml.contains("vnd.dms.delta"));
    let base_dd = server
        .client
        .get(format!(
            "{}/dd/{}?from={}",
            server.base,
            o1["id"].as_str().unwrap(),
            o2["sha256"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(element(&base_dd, "objectURI"), o1["uri"].as_str().unwrap());
    // A malformed base: 400 with a JSON error.
    let (status, body) = dd(Some("xyz")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("from"), "{body}");
}
