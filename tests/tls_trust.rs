//! Every client of ours names why TLS refused the server and what to do,
//! instead of "client error (Connect)": `dms objects` given another CA
//! (unknown issuer, `--cacert`), `dms session` asking for a name the
//! certificate was not issued for, `dms publish` to an origin whose
//! certificate expired, and the UE agent (`dms receive --repair https://…`
//! with no `--cacert`) fetching a session's signed manifest.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use binary::{Kill, dms, free_port, publish_pattern, spawn, start_origin, wait_until};

const GROUP: &str = "239.255.77.3:47733";

/// A self-signed certificate for `host` (PEM) and its key, valid from
/// `from` to `until` (years).
fn certificate(dir: &Path, name: &str, host: &str, from: i32, until: i32) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("dms test {name}"));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

/// `dms serve` with this certificate, once its port accepts; its URL.
fn serve_with_certificate(data: &Path, cert: &str, key: &str) -> (Kill, String) {
    let port = free_port();
    let server = spawn(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("dms serve", || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    });
    (server, format!("https://127.0.0.1:{port}"))
}

/// The stderr of a command that must fail.
fn failure(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "the command succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{err}");
    err
}

#[test]
fn clients_name_the_certificate_problem_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_server, url) = start_origin(&data);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token = token.trim();

    // Another CA than the origin's: unknown issuer.
    let (other_ca, _) = certificate(dir.path(), "other", "127.0.0.1", 2020, 4000);
    let err = failure(&dms(&[
        "objects", "list", "--server", &url, "--token", token, "--cacert", &other_ca,
    ]));
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("--cacert"), "{err}");
    assert!(!err.contains("client error (Connect)\n"), "{err}");

    // A certificate issued for another name.
    let (named, named_key) = certificate(dir.path(), "named", "dms.example", 2020, 4000);
    let (_named_origin, named_url) =
        serve_with_certificate(&dir.path().join("named-data"), &named, &named_key);
    let err = failure(&dms(&[
        "session", "list", "--server", &named_url, "--token", token, "--cacert", &named,
    ]));
    assert!(err.contains("issued for"), "{err}");
    assert!(err.contains("dms.example"), "{err}");

    // A certificate that has expired.
    let (expired, expired_key) = certificate(dir.path(), "expired", "127.0.0.1", 2001, 2002);
    let (_expired_origin, expired_url) =
        serve_with_certificate(&dir.path().join("expired-data"), &expired, &expired_key);
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, b"firmware").unwrap();
    let err = failure(&dms(&[
        "publish",
        file.to_str().unwrap(),
        "--name",
        "fw",
        "--version",
        "1",
        "--server",
        &expired_url,
        "--token",
        token,
        "--cacert",
        &expired,
    ]));
    assert!(err.contains("expired"), "{err}");

    // The UE agent without --cacert: the signed manifest of a broadcast
    // object cannot be fetched, and it says why.
    let client = ["--server", url.as_str(), "--data", data_s];
    let (_, id) = publish_pattern(dir.path(), &client, "app.bin", "1.0.0", 200_000, 5);
    let repair = format!("{url}/repair");
    let origin_key = data.join("origin.pub");
    let ue = binary::receive(GROUP, &dir.path().join("ue"), &[])
        .args(["--timeout", "60", "--count", "1", "--repair", &repair])
        .args(["--origin-key", origin_key.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    binary::start_session(&client, &id, GROUP, &["--rate", "20", "--carousel", "3"]);
    // Bounded by its --timeout.
    let out = ue.wait_with_output().unwrap();
    let err = failure(&out);
    assert!(err.contains("manifest"), "{err}");
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("--cacert"), "{err}");
}
