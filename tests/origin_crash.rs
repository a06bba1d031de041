//! `dms serve` killed with SIGKILL in the middle of uploads, again and
//! again: after each restart every listed object downloads whole and
//! matches its hash, every acknowledged upload is listed, and no blob is
//! left that the catalog does not reference.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

mod origin_process;
use origin_process::{free_port, spawn_server, wait_ready};

const ROUNDS: usize = 8;
const UPLOADS_PER_ROUND: usize = 4;

fn bytes_for(round: usize, i: usize) -> Vec<u8> {
    // The last one streams for at least 8 MB / 64 KiB x 5 ms = 640 ms, longer
    // than the wait before the kill: every round cuts at least one upload.
    let len = [200_000, 900_000, 2_000_000, 8_000_000][i] + 13 * round;
    let mut x = (round * 131 + i * 7 + 1) as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Streams `bytes` slowly (so a kill lands mid-upload); returns the id if
/// the server acknowledged it.
async fn upload(
    client: reqwest::Client,
    base: String,
    token: String,
    name: String,
    bytes: Vec<u8>,
) -> Option<(String, String)> {
    let (mut writer, reader) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        for chunk in bytes.chunks(64 << 10) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
    let response = client
        .post(format!("{base}/v1/objects?name={name}&version=1"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::CREATED {
        return None;
    }
    let value: serde_json::Value = response.json().await.ok()?;
    Some((
        value["id"].as_str()?.to_owned(),
        value["sha256"].as_str()?.to_owned(),
    ))
}

fn stored_blobs(data: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for fan in std::fs::read_dir(data.join("blobs")).unwrap() {
        let fan = fan.unwrap().path();
        if fan.file_name().unwrap() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(&fan).unwrap() {
            out.insert(f.unwrap().file_name().into_string().unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_leaves_a_consistent_repository() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..ROUNDS {
        let port = free_port();
        let base = format!("https://127.0.0.1:{port}");
        let mut child = spawn_server(&data, port);
        let (client, token) = wait_ready(&data, &base).await;
        let mut tasks = Vec::new();
        for i in 0..UPLOADS_PER_ROUND {
            tasks.push(tokio::spawn(upload(
                client.clone(),
                base.clone(),
                token.clone(),
                format!("r{round}-o{i}"),
                bytes_for(round, i),
            )));
        }
        // Small objects finish, large ones are cut: kill at varying moments.
        tokio::time::sleep(Duration::from_millis(80 + 60 * round as u64)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut cut = 0;
        for task in tasks {
            match task.await.unwrap() {
                Some(ack) => acknowledged.push(ack),
                None => cut += 1,
            }
        }
        assert!(cut >= 1, "round {round}: the kill cut no upload");
    }

    // Restart and check everything.
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut child = spawn_server(&data, port);
    let (client, token) = wait_ready(&data, &base).await;
    let list: serde_json::Value = client
        .get(format!("{base}/v1/objects?limit=1000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let objects = list["objects"].as_array().unwrap();
    let listed: BTreeSet<String> = objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for (id, _) in &acknowledged {
        assert!(listed.contains(id), "acknowledged object {id} lost");
    }
    let mut referenced = BTreeSet::new();
    for o in objects {
        let bytes = client
            .get(o["uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, o["size"].as_u64().unwrap());
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            o["sha256"].as_str().unwrap()
        );
        referenced.insert(o["sha256"].as_str().unwrap().to_owned());
    }
    // No orphan: every blob on disk belongs to a listed object, no partial upload is left.
    assert_eq!(stored_blobs(&data), referenced);
    assert_eq!(
        std::fs::read_dir(data.join("blobs/tmp")).unwrap().count(),
        0
    );
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "{} uploads acknowledged, {} objects listed after {ROUNDS} kills",
        acknowledged.len(),
        objects.len()
    );
}
