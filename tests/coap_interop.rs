//! The origin's CoAP server against clients we did not write: libcoap's
//! `coap-client` (coap with `-b 1024`, coap+tcp, coaps+tcp on the origin's
//! certificate, coaps over DTLS on the certificate and by pre-shared key) and Python's aiocoap (coap, coap+tcp, and a download
//! resumed from block 2000), each a 4 MiB object, byte-identical. Then
//! `dms fetch` over every scheme through a proxy that cuts the transfer
//! midway: it resumes, completes and verifies against the signed manifest.
//!
//! Needs `DMS_TEST_COAP_CLIENT` (a libcoap coap-client) and
//! `DMS_TEST_AIOCOAP_PYTHON` (a Python with aiocoap), which
//! `.ci/setup.d/50-coap.sh` exports; without them the tests say so and
//! pass, unless `DMS_TEST_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use binary::{dms, free_udp_and_tcp_port, json, start_origin_with};

/// The engine named by `var`, or `None` (after saying why) when absent.
fn engine(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{var} is not set (.ci/setup.d/50-coap.sh sets it)"
            );
            eprintln!("{var} is not set: skipped (run .ci/setup.d/50-coap.sh)");
            None
        }
    }
}

struct Origin {
    _server: binary::Kill,
    _dir: tempfile::TempDir,
    data: PathBuf,
    object: serde_json::Value,
    bytes: Vec<u8>,
    dir: PathBuf,
}

/// An origin serving coap, coap+tcp, coaps+tcp and coaps (DTLS on the
/// origin's certificate), with a 4 MiB object.
fn origin_with_object() -> Origin {
    origin_with_object_and(&[])
}

/// The same, with `extra` flags for `dms serve` (`DIR` in them stands for
/// the test's directory).
fn origin_with_object_and(extra: &[&str]) -> Origin {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_udp_and_tcp_port();
    let tls_port = binary::free_port();
    let dtls_port = free_udp_and_tcp_port();
    let mut args = vec![
        "--coap".to_owned(),
        format!("127.0.0.1:{port}"),
        "--coap-tcp".to_owned(),
        format!("127.0.0.1:{port}"),
        "--coaps-tcp".to_owned(),
        format!("127.0.0.1:{tls_port}"),
        "--coaps".to_owned(),
        format!("127.0.0.1:{dtls_port}"),
    ];
    let dir_text = dir.path().to_str().unwrap();
    args.extend(extra.iter().map(|a| a.replace("DIR", dir_text)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, url) = start_origin_with(&data, &args);
    let bytes: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &bytes).unwrap();
    let object = json(&dms(&[
        "publish",
        file.to_str().unwrap(),
        "--name",
        "fw.bin",
        "--version",
        "2.0.0",
        "--kind",
        "firmware",
        "--server",
        &url,
        "--data",
        data.to_str().unwrap(),
    ]));
    let uris = &object["package_uris"];
    assert_eq!(
        uris["coap"],
        format!(
            "coap://127.0.0.1:{port}/dl/{}/fw.bin",
            object["id"].as_str().unwrap()
        )
    );
    assert!(
        uris["coaps+tcp"]
            .as_str()
            .unwrap()
            .starts_with(&format!("coaps+tcp://127.0.0.1:{tls_port}/dl/"))
    );
    assert_eq!(
        uris["coaps"],
        format!(
            "coaps://127.0.0.1:{dtls_port}/dl/{}/fw.bin",
            object["id"].as_str().unwrap()
        )
    );
    assert_eq!(uris["https"], object["uri"]);
    for uri in uris.as_object().unwrap().values() {
        assert!(uri.as_str().unwrap().len() <= 255);
    }
    let path = dir.path().to_owned();
    Origin {
        _server: server,
        data,
        object,
        bytes,
        dir: path,
        _dir: dir,
    }
}

impl Origin {
    fn uri(&self, scheme: &str) -> String {
        self.object["package_uris"][scheme]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn run(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// aiocoap: the whole resource, or from block START on, one request per
/// 1024-byte block (a resumed download).
const AIOCOAP_GET: &str = r#"
import asyncio, sys
from aiocoap import Context, Message, GET
from aiocoap.optiontypes import BlockOption

async def main(uri, out, start):
    ctx = await Context.create_client_context()
    try:
        if start < 0:
            response = await ctx.request(Message(code=GET, uri=uri)).response
            assert response.code.is_successful(), response.code
            data = response.payload
        else:
            data, num = b"", start
            while True:
                request = Message(code=GET, uri=uri)
                request.opt.block2 = BlockOption.BlockwiseTuple(num, False, 6)
                response = await ctx.request(request, handle_blockwise=False).response
                assert response.code.is_successful(), response.code
                assert response.opt.block2.block_number == num
                data += response.payload
                if not response.opt.block2.more:
                    break
                num += 1
        with open(out, "wb") as f:
            f.write(data)
    finally:
        await ctx.shutdown()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"#;

#[test]
fn libcoap_and_aiocoap_download_a_4_mib_object_byte_identical() {
    let (Some(coap_client), Some(python)) = (
        engine("DMS_TEST_COAP_CLIENT"),
        engine("DMS_TEST_AIOCOAP_PYTHON"),
    ) else {
        return;
    };
    let origin = origin_with_object();
    let cert = origin.data.join("tls/cert.pem");
    let out = |name: &str| origin.dir.join(name);
    let script = origin.dir.join("aiocoap_get.py");
    std::fs::write(&script, AIOCOAP_GET).unwrap();

    // Each block-wise download is one round trip per 1024-byte block, so
    // the clients run side by side (the server serves them all at once).
    let libcoap = |args: &[&str], name: &str, scheme: &str| {
        let mut command = Command::new(&coap_client);
        command
            .args(args)
            .arg("-o")
            .arg(out(name))
            .arg(origin.uri(scheme));
        command
    };
    let aiocoap = |scheme: &str, name: &str, start: &str| {
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .arg(origin.uri(scheme))
            .arg(out(name))
            .arg(start);
        command
    };
    let cert_arg = cert.to_str().unwrap();
    let mut downloads = [
        // libcoap over UDP with 1024-byte blocks, over TCP and over TLS.
        libcoap(&["-b", "1024", "-B", "60"], "libcoap.udp", "coap"),
        libcoap(&["-b", "1024", "-B", "60"], "libcoap.tcp", "coap+tcp"),
        libcoap(
            &["-b", "1024", "-B", "60", "-C", cert_arg],
            "libcoap.tls",
            "coaps+tcp",
        ),
        // libcoap asks block 2000 alone when told to start there (4.3
        // fetches that one block).
        libcoap(&["-b", "2000,1024", "-B", "60"], "libcoap.2000", "coap"),
        // aiocoap: whole over UDP and TCP; resumed from block 2000 over UDP.
        aiocoap("coap", "aiocoap.udp", "-1"),
        aiocoap("coap+tcp", "aiocoap.tcp", "-1"),
        aiocoap("coap", "aiocoap.resumed", "2000"),
    ];
    std::thread::scope(|scope| {
        let runs: Vec<_> = downloads
            .iter_mut()
            .map(|command| scope.spawn(move || run(command)))
            .collect();
        for run in runs {
            run.join().unwrap();
        }
    });

    for name in [
        "libcoap.udp",
        "libcoap.tcp",
        "libcoap.tls",
        "aiocoap.udp",
        "aiocoap.tcp",
    ] {
        assert!(read(&out(name)) == origin.bytes, "{name} differs");
    }
    // Block 2000 alone is the object's bytes at 2000 KiB.
    assert!(read(&out("libcoap.2000")) == origin.bytes[2000 << 10..2001 << 10]);
    let mut resumed = origin.bytes[..2000 << 10].to_vec();
    resumed.extend_from_slice(&read(&out("aiocoap.resumed")));
    assert!(
        resumed == origin.bytes,
        "the download resumed from block 2000 differs"
    );
}

#[test]
fn libcoap_downloads_over_dtls_on_the_certificate_and_by_pre_shared_key() {
    let Some(coap_client) = engine("DMS_TEST_COAP_CLIENT") else {
        return;
    };
    // The origin's certificate, which libcoap verifies (-R: the CA to
    // trust; the self-signed certificate is its own).
    let origin = origin_with_object();
    let cert = origin.data.join("tls/cert.pem");
    // Garbage first, half of it dressed as handshake records (content type
    // 22, DTLS 1.2): the listener drops it or fails those handshakes, and
    // goes on serving.
    let dtls_addr: SocketAddr = origin.uri("coaps")["coaps://".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let garbage = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..2_000 {
        let mut datagram: Vec<u8> = (0..(i % 300) + 1)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if i % 2 == 0 && datagram.len() > 3 {
            datagram[..3].copy_from_slice(&[22, 0xfe, 0xfd]);
        }
        let _ = garbage.send_to(&datagram, dtls_addr);
    }
    let out = origin.dir.join("libcoap.dtls");
    run(Command::new(&coap_client)
        .args(["-b", "1024", "-B", "120", "-R"])
        .arg(&cert)
        .arg("-o")
        .arg(&out)
        .arg(origin.uri("coaps")));
    assert!(read(&out) == origin.bytes, "coaps (certificate) differs");
    drop(origin);

    // Pre-shared keys (LwM2M's PSK mode): the right key downloads, a wrong
    // one gets nothing.
    let keys = tempfile::tempdir().unwrap();
    let table = keys.path().join("psk.txt");
    std::fs::write(
        &table,
        format!("# devices\nsensor-7:{}\n", hex_of(b"0123456789abcdef")),
    )
    .unwrap();
    let origin = origin_with_object_and(&["--coaps-psk", table.to_str().unwrap()]);
    let out = origin.dir.join("libcoap.psk");
    run(Command::new(&coap_client)
        .args([
            "-b",
            "1024",
            "-B",
            "120",
            "-u",
            "sensor-7",
            "-k",
            "0123456789abcdef",
            "-o",
        ])
        .arg(&out)
        .arg(origin.uri("coaps")));
    assert!(read(&out) == origin.bytes, "coaps (PSK) differs");
    let refused = origin.dir.join("libcoap.wrong");
    let _ = Command::new(&coap_client)
        .args(["-B", "10", "-u", "sensor-7", "-k", "not-the-key", "-o"])
        .arg(&refused)
        .arg(origin.uri("coaps"))
        .output()
        .unwrap();
    assert!(read(&refused).is_empty(), "a wrong key got bytes");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TCP proxy to `upstream` that cuts its first connection after
/// `cut_after` bytes towards the client; later connections go through.
fn cutting_tcp_proxy(upstream: SocketAddr, cut_after: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(upstream) else {
                return;
            };
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            let limit = if first { cut_after } else { usize::MAX };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let (mut s_read, mut c_write) = (server, client);
                let mut buf = [0u8; 16384];
                let mut sent = 0usize;
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let n = n.min(limit - sent);
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if sent >= limit {
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Both);
                let _ = s_read.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, connections)
}

/// A UDP relay to `upstream` that goes dark (drops everything, both ways)
/// for `outage` once `after` answers have passed: the path is cut.
fn dark_udp_relay(
    upstream: SocketAddr,
    after: usize,
    outage: Duration,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(upstream).unwrap();
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    let dark_until: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let is_dark = {
        let dark_until = dark_until.clone();
        move || {
            dark_until
                .lock()
                .unwrap()
                .is_some_and(|t| Instant::now() < t)
        }
    };
    for socket in [&front, &back] {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    {
        let (front, back, client, dropped, stop, is_dark) = (
            front.try_clone().unwrap(),
            back.try_clone().unwrap(),
            client.clone(),
            dropped.clone(),
            stop.clone(),
            is_dark.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                *client.lock().unwrap() = Some(from);
                if is_dark() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = back.send(&buf[..n]);
                }
            }
        });
    }
    {
        let (dropped, stop) = (dropped.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut answers = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = back.recv(&mut buf) else { continue };
                answers += 1;
                if answers == after {
                    *dark_until.lock().unwrap() = Some(Instant::now() + outage);
                }
                let to = *client.lock().unwrap();
                if is_dark() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                } else if let Some(to) = to {
                    let _ = front.send_to(&buf[..n], to);
                }
            }
        });
    }
    (addr, dropped, stop)
}

/// `uri` with its authority replaced by `addr`.
fn via(uri: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap();
    let path = &rest[rest.find('/').unwrap()..];
    format!("{scheme}://{addr}{path}")
}

#[test]
fn dms_fetch_over_every_scheme_resumes_a_cut_transfer_and_verifies() {
    let origin = origin_with_object();
    let key = origin.data.join("origin.pub");
    let cert = origin.data.join("tls/cert.pem");
    let manifest = origin.object["manifest_uri"].as_str().unwrap().to_owned();
    let fetch = |uri: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "fetch",
            uri,
            "--out",
            out.to_str().unwrap(),
            "--origin-key",
            key.to_str().unwrap(),
            "--manifest",
            &manifest,
            "--cacert",
            cert.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        dms(&args)
    };
    let addr_of = |uri: &str| -> SocketAddr {
        let rest = uri.split_once("://").unwrap().1;
        rest[..rest.find('/').unwrap()].parse().unwrap()
    };
    // TCP-based schemes through a proxy that cuts the first connection
    // after 1.5 MiB: dms fetch reconnects and resumes.
    for scheme in ["https", "coap+tcp", "coaps+tcp"] {
        let uri = origin.uri(scheme);
        let (proxy, connections) = cutting_tcp_proxy(addr_of(&uri), 3 << 19);
        let out = origin.dir.join(format!("fetched.{scheme}"));
        let run = fetch(&via(&uri, proxy), &out, &[]);
        assert!(
            run.status.success(),
            "{scheme}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            read(&out) == origin.bytes,
            "{scheme}: the fetched object differs"
        );
        assert!(
            connections.load(Ordering::SeqCst) >= 2,
            "{scheme}: the transfer was not cut"
        );
        assert!(!origin.dir.join(format!("fetched.{scheme}.part")).exists());
    }
    // HTTPS needs the TLS name of the certificate: 127.0.0.1 is in it, and
    // the proxy is on 127.0.0.1 too, so the URI through it verifies.

    // UDP through a relay that goes dark for 3 s after 1000 answers: the
    // Confirmable requests are retransmitted until the path is back.
    let uri = origin.uri("coap");
    let (relay, dropped, stop) = dark_udp_relay(addr_of(&uri), 1000, Duration::from_secs(3));
    let out = origin.dir.join("fetched.coap");
    let run = fetch(&via(&uri, relay), &out, &[]);
    stop.store(true, Ordering::Relaxed);
    assert!(
        run.status.success(),
        "coap: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        read(&out) == origin.bytes,
        "coap: the fetched object differs"
    );
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the relay dropped nothing"
    );

    // A run that gives up during an outage leaves FILE.part; the next run
    // resumes from its last block.
    let (relay, _, stop) = dark_udp_relay(addr_of(&uri), 2000, Duration::from_secs(30));
    let out = origin.dir.join("fetched2.coap");
    let cut = fetch(
        &via(&uri, relay),
        &out,
        &["--timeout", "1", "--attempts", "0"],
    );
    stop.store(true, Ordering::Relaxed);
    assert!(!cut.status.success());
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    let part = origin.dir.join("fetched2.coap.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept >= 1000 << 10, "{kept} bytes kept");
    let resumed = fetch(&uri, &out, &[]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains(&format!("{} resumed", kept / 1024 * 1024)),
        "{stderr}"
    );
    assert!(read(&out) == origin.bytes);

    // Clear errors: an unknown object, a manifest of another object.
    let missing = uri.replace(
        origin.object["id"].as_str().unwrap(),
        "00000000000000000000000000000000",
    );
    let run = dms(&[
        "fetch",
        &missing,
        "--out",
        origin.dir.join("x").to_str().unwrap(),
        "--quiet",
        "--timeout",
        "10",
    ]);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("4.04"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = fetch(&missing, &origin.dir.join("y"), &[]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("the manifest is of object"));
}
