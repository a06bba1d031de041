//! Bit rot: a byte flipped in a blob of a real server's data directory is
//! found by `dms scrub` (through the running server, and offline), which
//! exits non-zero naming the object; the object is then refused (410 JSON)
//! by downloads, manifests, session starts and symbol repair, counted in
//! /metrics, and served again once its content is uploaded again.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

mod binary;
mod origin_process;
use binary::flip_blob_byte;
use origin_process::{free_port, spawn_server, wait_ready};

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn publish(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let r = client
        .post(format!("{base}/v1/objects?name={name}&version=1.0.0"))
        .bearer_auth(token)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn scrub(data: &Path) -> Output {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(["scrub", "--data"])
            .arg(&data)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Status and JSON error of a GET.
async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    (status, body)
}

fn gone(answer: &(StatusCode, String), what: &str) {
    assert_eq!(answer.0, StatusCode::GONE, "{what}: {}", answer.1);
    let v: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("damaged"),
        "{what}: {}",
        answer.1
    );
}

async fn metric(client: &reqwest::Client, base: &str, token: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_bit_rot_and_the_object_is_refused_until_uploaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut server = spawn_server(&data, port);
    let (client, token) = wait_ready(&data, &base).await;

    // Several source blocks, so the damage is located in one of them.
    let fw = bytes(3_000_000, 7);
    let cfg = bytes(100_000, 9);
    let (status, a) = publish(&client, &base, &token, "fw.bin", &fw).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = publish(&client, &base, &token, "cfg.bin", &cfg).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_id = b["id"].as_str().unwrap().to_owned();

    // An intact store: exit 0, nothing damaged.
    let out = scrub(&data).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    flip_blob_byte(&data, a["sha256"].as_str().unwrap(), 1_500_000);

    // Through the running server (it holds the catalog).
    let out = scrub(&data).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "scrub succeeded: {stdout}");
    assert!(
        stdout.contains(&a_id) && stderr.contains(&a_id),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("source block"), "{stdout}");
    assert!(!stdout.contains(&b_id), "{stdout}");

    // Refused everywhere, with a JSON error; the other object is served.
    let a_uri = a["uri"].as_str().unwrap();
    gone(&get(&client, a_uri).await, "download");
    gone(
        &get(&client, a["manifest_uri"].as_str().unwrap()).await,
        "manifest",
    );
    gone(
        &get(&client, a["dd_uri"].as_str().unwrap()).await,
        "descriptor",
    );
    let repair = format!(
        "{}?fileURI={a_uri}&SBN=0;ESI=0,1",
        a["repair_uri"].as_str().unwrap()
    );
    gone(&get(&client, &repair).await, "symbol repair");
    let r = client
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "objects": [a_id], "group": "239.255.74.9:47419", "iface": "127.0.0.1",
            "rate": 1, "fec": "raptorq", "repair": 10
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    gone(&(status, r.text().await.unwrap()), "session start");
    let shown: serde_json::Value = client
        .get(format!("{base}/v1/objects/{a_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown["damaged"]["reason"].is_string(), "{shown}");
    let (status, body) = get(&client, b["uri"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        metric(&client, &base, &token, "dms_objects_damaged").await,
        1
    );
    assert_eq!(
        metric(&client, &base, &token, "dms_scrub_runs_total").await,
        2
    );
    assert_eq!(
        metric(&client, &base, &token, "dms_scrub_last_damaged").await,
        1
    );
    assert!(metric(&client, &base, &token, "dms_scrub_last_bytes_checked").await >= 3_100_000);

    // Other content may not take the damaged object's name and version.
    let (status, body) = publish(&client, &base, &token, "fw.bin", &cfg).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Its own content, uploaded again, replaces the damaged blob.
    let (status, again) = publish(&client, &base, &token, "fw.bin", &fw).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"].as_str().unwrap(), a_id);
    assert!(again.get("damaged").is_none(), "{again}");
    let served = client.get(a_uri).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let served = served.bytes().await.unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&served)),
        a["sha256"].as_str().unwrap()
    );
    assert_eq!(
        metric(&client, &base, &token, "dms_objects_damaged").await,
        0
    );
    assert!(scrub(&data).await.status.success());

    // Offline: the server stopped, the other object rots.
    server.kill().unwrap();
    server.wait().unwrap();
    flip_blob_byte(&data, b["sha256"].as_str().unwrap(), 0);
    let out = scrub(&data).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&b_id) && !stdout.contains(&a_id),
        "{stdout}"
    );
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut server = spawn_server(&data, port);
    let (client, _token) = wait_ready(&data, &base).await;
    // The record keeps its id; the URL has the new port.
    let b_uri = format!("{base}/dl/{b_id}/cfg.bin");
    gone(&get(&client, &b_uri).await, "download after restart");
    server.kill().unwrap();
    server.wait().unwrap();
}
