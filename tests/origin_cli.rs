//! `dms keygen`, `dms serve`, `dms publish` and `dms objects` as a user
//! runs them, against a real origin over TLS on loopback.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn publish_and_manage_objects_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // keygen writes a key the server then uses; it refuses to overwrite.
    let out = dms(&["keygen", "--data", data_s]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(!dms(&["keygen", "--data", data_s]).status.success());
    let public = std::fs::read_to_string(data.join("origin.pub")).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args([
            "serve",
            "--data",
            data_s,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = ["--server", server.as_str(), "--data", data_s];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dms(&[&["objects", "list"][..], &client[..]].concat())
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let file = dir.path().join("fw.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let published = json(&dms(&[
        &[
            "publish",
            file.to_str().unwrap(),
            "--name",
            "fw.bin",
            "--version",
            "2.0.0",
            "--kind",
            "firmware",
        ][..],
        &client[..],
    ]
    .concat()));
    let id = published["id"].as_str().unwrap().to_owned();
    assert_eq!(published["size"], 100_000);

    let list = json(&dms(&[
        &["objects", "list", "--name", "fw.bin"][..],
        &client[..],
    ]
    .concat()));
    assert_eq!(list["objects"][0]["id"], id.as_str());
    let patched = json(&dms(&[
        &[
            "objects",
            "patch",
            &id,
            "--state",
            "deprecated",
            "--meta",
            "model=X1",
        ][..],
        &client[..],
    ]
    .concat()));
    assert_eq!(patched["state"], "deprecated");
    assert_eq!(patched["metadata"]["model"], "X1");
    let history = json(&dms(
        &[&["objects", "history", "fw.bin"][..], &client[..]].concat()
    ));
    assert_eq!(history["versions"][0]["id"], id.as_str());
    assert!(history["latest"].is_null()); // deprecated: no active version
    let shown = json(&dms(&[&["objects", "show", &id][..], &client[..]].concat()));
    assert_eq!(shown["state"], "deprecated");
    // The server kept the key made by keygen.
    assert_eq!(
        std::fs::read_to_string(data.join("origin.pub")).unwrap(),
        public
    );
    // A wrong token is an error with the server's message.
    let out = dms(&[
        "objects",
        "list",
        "--server",
        &server,
        "--token",
        "nope",
        "--cacert",
        data.join("tls/cert.pem").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid token"));
    json(&dms(
        &[&["objects", "delete", &id][..], &client[..]].concat()
    ));
    let out = dms(&[&["objects", "show", &id][..], &client[..]].concat());
    assert!(!out.status.success());
    assert!(Path::new(&data.join("catalog.redb")).exists());
    child.kill().unwrap();
    child.wait().unwrap();
}
