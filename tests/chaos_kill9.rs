//! Chaos: the real `dms serve` killed with SIGKILL at random moments, 24
//! times, while uploads stream in (new versions of one name, so deltas are
//! being made), reception reports are posted, and broadcast sessions start
//! and run. After each restart on the same data directory: every blob on
//! disk belongs to a listed object and every listed object has its blob at
//! its size (no object without bytes, no half object), no partial upload
//! is left, sessions that had ended stay ended and running ones are
//! running or have finished; at the end every object and delta downloads
//! intact with its SHA-256. The RNG is seeded (printed; `DMS_CHAOS_SEED`
//! replays a run).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

mod origin_process;
use origin_process::{free_port, spawn_server, wait_ready};

const KILLS: usize = 24;

/// A new version: the previous one with a changed stretch (so a delta
/// pays), of a random length.
fn next_version(prev: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = prev.to_vec();
    let len = rng.random_range(200_000..2_500_000usize);
    out.resize(len, 0);
    for b in out.iter_mut().skip(prev.len().min(len)) {
        *b = rng.random();
    }
    let at = rng.random_range(0..len);
    let n = rng.random_range(1..50_000usize).min(len - at);
    rng.fill(&mut out[at..at + n]);
    out
}

/// Streams `bytes` slowly (so a kill lands mid-upload); the id if acknowledged.
async fn upload(
    client: reqwest::Client,
    base: String,
    token: String,
    version: String,
    bytes: Vec<u8>,
) -> Option<String> {
    let (mut writer, reader) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        for chunk in bytes.chunks(64 << 10) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
    let response = client
        .post(format!(
            "{base}/v1/objects?name=fw.bin&version={version}&kind=firmware"
        ))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::CREATED {
        return None;
    }
    let value: serde_json::Value = response.json().await.ok()?;
    Some(value["id"].as_str()?.to_owned())
}

/// Posts reception reports until the server goes away.
async fn reports(client: reqwest::Client, base: String, objects: Vec<String>) -> usize {
    let mut stored = 0;
    for i in 0..10_000usize {
        let Some(object) = objects.get(i % objects.len().max(1)) else {
            return stored;
        };
        let body = serde_json::json!({
            "device": format!("ue-{i}"), "object": object, "success": i % 3 != 0
        });
        match client
            .post(format!("{base}/report"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => stored += 1,
            Ok(_) => {}
            Err(_) => return stored,
        }
    }
    stored
}

async fn json(client: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn stored_blobs(data: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for fan in std::fs::read_dir(data.join("blobs")).unwrap() {
        let fan = fan.unwrap().path();
        if fan.file_name().unwrap() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(&fan).unwrap() {
            let f = f.unwrap();
            out.insert(
                f.file_name().into_string().unwrap(),
                f.metadata().unwrap().len(),
            );
        }
    }
    out
}

/// Catalog and blob store agree; returns the listed objects.
async fn check_consistent(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    data: &Path,
    round: usize,
) -> Vec<serde_json::Value> {
    let list = json(client, format!("{base}/v1/objects?limit=1000"), token).await;
    let objects = list["objects"].as_array().unwrap().clone();
    let blobs = stored_blobs(data);
    let mut referenced = BTreeSet::new();
    for o in &objects {
        let sha = o["sha256"].as_str().unwrap();
        assert_eq!(
            blobs.get(sha).copied(),
            Some(o["size"].as_u64().unwrap()),
            "round {round}: object {} without its whole blob",
            o["id"]
        );
        referenced.insert(sha.to_owned());
    }
    let on_disk: BTreeSet<String> = blobs.into_keys().collect();
    assert_eq!(
        on_disk, referenced,
        "round {round}: blobs no object references"
    );
    assert_eq!(
        std::fs::read_dir(data.join("blobs/tmp")).unwrap().count(),
        0,
        "round {round}: partial upload left"
    );
    objects
}

async fn download_sha(client: &reqwest::Client, uri: &str) -> String {
    let r = client.get(uri).send().await.unwrap();
    assert!(r.status().is_success(), "{uri}: {}", r.status());
    hex::encode(Sha256::digest(r.bytes().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_keeps_catalog_blobs_and_sessions_consistent() {
    let seed: u64 = std::env::var("DMS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos seed {seed} (DMS_CHAOS_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut prev: Vec<u8> = Vec::new();
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    // Session id → state seen before the last kill.
    let mut sessions: BTreeMap<String, String> = BTreeMap::new();
    let mut cut_uploads = 0;
    let mut reports_stored = 0;
    for round in 0..=KILLS {
        let port = free_port();
        let base = format!("https://127.0.0.1:{port}");
        let mut child = spawn_server(&data, port);
        let (client, token) = wait_ready(&data, &base).await;
        let objects = check_consistent(&client, &base, &token, &data, round).await;
        let listed: BTreeSet<String> = objects
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            acknowledged.is_subset(&listed),
            "round {round}: an acknowledged upload was lost"
        );
        for (id, before) in &sessions {
            let view = json(&client, format!("{base}/v1/sessions/{id}"), &token).await;
            let now = view["state"].as_str().unwrap_or("missing");
            match before.as_str() {
                "finished" | "stopped" | "failed" => {
                    assert_eq!(now, before, "round {round}: ended session {id} came back")
                }
                _ => assert!(
                    matches!(now, "scheduled" | "running" | "finished"),
                    "round {round}: session {id} was {before}, is {now} after the restart"
                ),
            }
        }
        if round == KILLS {
            // The last start: everything downloads intact, deltas too.
            let mut delta_count = 0;
            for o in &objects {
                let uri = o["uri"].as_str().unwrap();
                assert_eq!(
                    download_sha(&client, uri).await,
                    o["sha256"].as_str().unwrap()
                );
                let id = o["id"].as_str().unwrap();
                let deltas = json(&client, format!("{base}/v1/objects/{id}/deltas"), &token).await;
                for d in deltas["deltas"].as_array().into_iter().flatten() {
                    delta_count += 1;
                    assert_eq!(
                        download_sha(&client, d["uri"].as_str().unwrap()).await,
                        d["sha256"].as_str().unwrap(),
                        "delta {}",
                        d["id"]
                    );
                }
            }
            eprintln!(
                "{KILLS} kills: {} objects listed ({} acknowledged, {cut_uploads} uploads cut), \
                 {delta_count} deltas, {} sessions followed, {reports_stored} reports stored",
                objects.len(),
                acknowledged.len(),
                sessions.len()
            );
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }

        // The work the kill will land in.
        let mut uploads = Vec::new();
        for i in 0..rng.random_range(1..=2usize) {
            let bytes = next_version(&prev, &mut rng);
            prev = bytes.clone();
            uploads.push(tokio::spawn(upload(
                client.clone(),
                base.clone(),
                token.clone(),
                format!("1.{round}.{i}"),
                bytes,
            )));
        }
        let reporter = tokio::spawn(reports(
            client.clone(),
            base.clone(),
            listed.iter().cloned().collect(),
        ));
        if let Some(object) = listed.iter().nth(rng.random_range(0..listed.len().max(1)))
            && rng.random_bool(0.5)
        {
            // Short ones end within a few rounds, long ones are running at kills.
            let carousel = if rng.random_bool(0.5) { 1 } else { 1000 };
            let r = client
                .post(format!("{base}/v1/sessions"))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "objects": [object], "group": format!("239.255.75.{}:4750{}", round % 200 + 1, round % 10),
                    "iface": "127.0.0.1", "rate": 20, "fec": "raptorq", "repair": 5,
                    "carousel": carousel
                }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "session start: {}", r.status());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..700))).await;
        // What the sessions are just before the kill (a session may still
        // end in between: then it is "finished" after the restart, allowed).
        let list = json(&client, format!("{base}/v1/sessions"), &token).await;
        for s in list["sessions"].as_array().into_iter().flatten() {
            sessions.insert(
                s["id"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for u in uploads {
            match u.await.unwrap() {
                Some(id) => {
                    acknowledged.insert(id);
                }
                None => cut_uploads += 1,
            }
        }
        reports_stored += reporter.await.unwrap();
    }
}
