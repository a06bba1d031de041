//! A full disk, made by the test: a 32 MiB tmpfs mounted in a temp dir
//! (root needed; skipped with a message when the mount fails, a failure
//! with `DMS_TEST_REQUIRE_SERVICES=1`).
//!
//! - The origin's data directory on it: an upload that does not fit is
//!   answered 507 with a JSON error, its temporary bytes are removed,
//!   earlier objects download intact and the server keeps serving (a small
//!   upload after it succeeds).
//! - A receiver's `--out` on a 1 MiB tmpfs: `dms receive` fails with an
//!   error naming the full disk, its state directory keeps the reception,
//!   and a second run with room finishes from that state (verified).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

mod origin_process;
use origin_process::{free_port, wait_ready};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts `size` (like "32m") at `path`; None (with a message) when
    /// this machine does not let us.
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                path: path.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("DMS_TEST_REQUIRE_SERVICES").is_none(),
                    "cannot mount a tmpfs ({why}) and DMS_TEST_REQUIRE_SERVICES is set"
                );
                eprintln!("cannot mount a tmpfs ({why}): full-disk test skipped (run as root)");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

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

/// Uploads `body` as a stream without a Content-Length (so the disk, not
/// the declared size, is what stops it).
async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    body: Vec<u8>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let (mut writer, reader) = tokio::io::duplex(256 << 10);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for chunk in body.chunks(256 << 10) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let stream = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
    let r = client
        .post(format!("{base}/v1/objects?name={name}&version=1"))
        .bearer_auth(token)
        .body(stream)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn sha_of_download(client: &reqwest::Client, uri: &str) -> String {
    let r = client.get(uri).send().await.unwrap();
    assert!(r.status().is_success(), "{uri}: {}", r.status());
    hex::encode(Sha256::digest(r.bytes().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_a_full_disk_answers_507_and_the_origin_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "32m") else {
        return;
    };
    let data = disk.path.join("data");
    let config = dir.path().join("dms.toml");
    // No reserve: the disk itself must be what fills.
    std::fs::write(&config, "min_free_bytes = 0\n").unwrap();
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut server: Child = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["serve", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (client, token) = wait_ready(&data, &base).await;

    let first = bytes(6 << 20, 3);
    let (status, a) = upload(&client, &base, &token, "a.bin", first.clone()).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{a}");

    // 40 MiB onto what is left of 32 MiB.
    let (status, body) = upload(&client, &base, &token, "big.bin", bytes(40 << 20, 5)).await;
    assert_eq!(status, reqwest::StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(
        body["error"].is_string(),
        "507 without a JSON error: {body}"
    );
    // Its temporary bytes go (with the upload task: a bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(data.join("blobs/tmp")).unwrap().count() != 0 {
        assert!(
            Instant::now() < deadline,
            "the refused upload's temp file stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The earlier object is intact, the server serves, and uploads that
    // fit still work.
    assert_eq!(
        sha_of_download(&client, a["uri"].as_str().unwrap()).await,
        hex::encode(Sha256::digest(&first))
    );
    let (status, c) = upload(&client, &base, &token, "c.bin", bytes(1 << 20, 7)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{c}");
    let list: serde_json::Value = client
        .get(format!("{base}/v1/objects"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.bin", "c.bin"]);
    server.kill().unwrap();
    server.wait().unwrap();
    drop(disk);
}

fn dms_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dms"))
}

#[test]
fn a_full_receiver_output_fails_clearly_and_the_state_still_resumes() {
    const GROUP: &str = "239.255.77.5:47701";
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = Tmpfs::mount(&dir.path().join("out"), "1m") else {
        return;
    };
    let object = bytes(4 << 20, 11);
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &object).unwrap();
    let state = dir.path().join("state");
    // A long carousel: both receptions below hear it.
    let mut sender = dms_command()
        .arg("send")
        .arg(&file)
        .args(["--group", GROUP, "--iface", "127.0.0.1", "--rate", "20"])
        .args(["--fec", "raptorq", "--repair", "10", "--carousel", "200"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let receive = |out: &Path, timeout: &str| {
        dms_command()
            .args(["receive", "--group", GROUP, "--iface", "127.0.0.1", "--out"])
            .arg(out)
            .arg("--state")
            .arg(&state)
            .args(["--count", "1", "--timeout", timeout, "--quiet"])
            .output()
            .unwrap()
    };
    // It fails at the first carousel round it completes, then waits for
    // its time-out (the run does not stop at the first failure).
    let first = receive(&out.path, "20");
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(
        !first.status.success(),
        "receive into a full disk succeeded"
    );
    assert!(
        stderr.contains("No space left on device") && stderr.contains("is full"),
        "the error does not name the full disk: {stderr}"
    );
    let objects: Vec<_> = state
        .join("objects")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(objects.len() == 1, "the reception state was not kept");
    // Every decoded block is durable in the kept have-map, so no block's
    // symbols are still spooled: the next run starts from the whole object.
    let spooled: Vec<_> = objects[0]
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spool-"))
        .collect();
    assert!(
        spooled.is_empty(),
        "the kept state lacks decoded blocks: {spooled:?}"
    );
    assert!(
        std::fs::read_dir(&out.path)
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| e.file_name() != "fw.bin"),
        "a partial output appeared under the final name"
    );
    // Room again: the same state directory finishes the reception.
    let roomy = dir.path().join("roomy");
    let second = receive(&roomy, "120");
    let stderr2 = String::from_utf8_lossy(&second.stderr).into_owned();
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(second.status.success(), "second receive: {stderr2}");
    let got = std::fs::read(roomy.join("fw.bin")).unwrap();
    assert_eq!(Sha256::digest(&got), Sha256::digest(&object));
    let broadcast: u64 = stderr2
        .lines()
        .find_map(|l| l.strip_prefix("bytes by source: broadcast "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes line: {stderr2}"));
    eprintln!(
        "second run: {broadcast} bytes from broadcast for a {} byte object",
        object.len()
    );
    assert!(
        broadcast < object.len() as u64,
        "the second run did not resume: {stderr2}"
    );
    drop(out);
}
