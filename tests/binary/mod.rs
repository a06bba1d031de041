//! Running the built `dms` binary from end-to-end tests: one-shot commands,
//! a started origin that is killed when the test ends however it ends, and
//! free loopback ports. Each test file uses a part of it.
#![allow(dead_code)] // each test crate uses a different part

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `dms ARGS` to completion.
pub fn dms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .output()
        .unwrap()
}

/// The JSON a successful command printed (its stderr in the failure).
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A port free for both UDP and TCP on loopback.
pub fn free_udp_and_tcp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child even when an assertion fails.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dms ARGS` in the background, its output discarded.
pub fn spawn(args: &[&str]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits (at most 60 s) until `ready` holds.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dms serve --data DATA` on a free port over TLS, once it answers (its
/// token and certificate are then in DATA); returns it and its URL.
pub fn start_origin(data: &Path) -> (Kill, String) {
    start_origin_with(data, &[])
}

/// [`start_origin`] with more `dms serve` flags (`--config FILE`…).
pub fn start_origin_with(data: &Path, extra: &[&str]) -> (Kill, String) {
    let port = free_port();
    let data = data.to_str().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let server = spawn(&[&["serve", "--data", data, "--listen", &listen][..], extra].concat());
    let url = format!("https://127.0.0.1:{port}");
    wait_until("dms serve", || {
        dms(&["session", "list", "--server", &url, "--data", data])
            .status
            .success()
    });
    (server, url)
}

/// Writes `len` bytes of a fixed pattern (`shift` varies it) to
/// `dir/name` and publishes them as `name` `version` with `client`'s
/// `--server`/`--data` arguments; returns the bytes and the object's id.
pub fn publish_pattern(
    dir: &Path,
    client: &[&str],
    name: &str,
    version: &str,
    len: u32,
    shift: u32,
) -> (Vec<u8>, String) {
    let file = dir.join(name);
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> shift) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let publish = [
        "publish",
        file.to_str().unwrap(),
        "--name",
        name,
        "--version",
        version,
    ];
    let published = json(&dms(&[&publish[..], client].concat()));
    (bytes, published["id"].as_str().unwrap().to_owned())
}

/// `dms receive` from `group` on loopback into `out`, quiet, with `extra`
/// flags (not yet run).
pub fn receive(group: &str, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dms"));
    command
        .args(["receive", "--group", group, "--iface", "127.0.0.1"])
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .args(extra);
    command
}

/// `dms session start --objects OBJECTS` on `group` over loopback with
/// `extra` flags and `client`'s `--server`/`--data` arguments; returns the
/// session's JSON.
pub fn start_session(
    client: &[&str],
    objects: &str,
    group: &str,
    extra: &[&str],
) -> serde_json::Value {
    let start = ["session", "start", "--objects", objects, "--group", group];
    json(&dms(&[
        &start[..],
        &["--iface", "127.0.0.1"],
        extra,
        client,
    ]
    .concat()))
}

/// Seconds since the Unix epoch (session start times are given so).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Flips a bit of byte `at` of the stored blob `sha256` under `data` (the
/// catalog keeps the old SHA-256 and block hashes): bit rot, on purpose.
pub fn flip_blob_byte(data: &Path, sha256: &str, at: u64) {
    use std::os::unix::fs::FileExt;
    let path = data.join("blobs").join(&sha256[..2]).join(sha256);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x20;
    file.write_all_at(&b, at).unwrap();
    file.sync_all().unwrap();
}
