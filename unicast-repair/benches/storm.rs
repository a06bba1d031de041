//! A repair storm: 10 000 concurrent repair clients (each its own TCP
//! connection, spread over 250 loopback source addresses) against one
//! server process with the default limits. Prints the answers by status
//! (only 200, 429 and 503 are allowed) and the server's peak memory.
//!
//! `cargo bench -p dms-repair --bench storm` (the bench re-runs itself as
//! the server process, so the memory figure is the server's alone).
#![allow(clippy::unwrap_used)] // bench code: a panic is a failed bench

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dms_repair::query::{RepairItem, RepairQuery, format_query};
use dms_repair::{ServiceConfig, router};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const CLIENTS: usize = 10_000;
const SOURCE_ADDRS: u8 = 250;
const LEN: usize = 16 << 20;

fn server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = common::TestSource::new();
    let info = source.add("storm", "storm.bin", &common::bytes(LEN, 9), 1280, 819);
    let app = router(source.clone(), None, ServiceConfig::default());
    let base = rt.block_on(common::serve(app));
    println!("{base} {}", info.content_location);
    // Serve until the parent closes stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::var("DMS_STORM_ROLE").as_deref() == Ok("server") {
        return server();
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` and friends: nothing to list.
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("DMS_STORM_ROLE", "server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (base, location) = line.trim().split_once(' ').unwrap();
    let idle_kib = peak_rss_kib(child.id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let statuses = rt.block_on(async {
        let mut tasks = Vec::with_capacity(CLIENTS);
        for i in 0..CLIENTS {
            let addr = IpAddr::from([127, 0, 1, 1 + (i % usize::from(SOURCE_ADDRS)) as u8]);
            let query = RepairQuery {
                file_uri: location.to_owned(),
                items: vec![RepairItem::More {
                    sbn: (i % 16) as u32,
                    count: 20,
                    first_esi: Some(1000 + i as u32),
                }],
            };
            let url = format!("{base}/repair?{}", format_query(&query));
            tasks.push(tokio::spawn(async move {
                let mut connector = HttpConnector::new();
                connector.set_local_address(Some(addr));
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build(connector);
                let request = client.get(url.parse().unwrap());
                match tokio::time::timeout(Duration::from_secs(120), request).await {
                    Ok(Ok(res)) => {
                        let status = res.status().as_u16();
                        match res.into_body().collect().await {
                            Ok(_) => status.to_string(),
                            Err(e) => format!("body error: {e}"),
                        }
                    }
                    Ok(Err(e)) => format!("error: {e}"),
                    Err(_) => "timeout".to_owned(),
                }
            }));
        }
        let mut counts = BTreeMap::new();
        for t in tasks {
            *counts.entry(t.await.unwrap()).or_insert(0u32) += 1;
        }
        counts
    });
    let elapsed = started.elapsed();
    let peak_kib = peak_rss_kib(child.id());
    drop(child.stdin.take());
    let _ = child.wait();
    println!("storm: {CLIENTS} clients from {SOURCE_ADDRS} addresses in {elapsed:.2?}");
    for (status, n) in &statuses {
        println!("  {status}: {n}");
    }
    println!(
        "  server peak RSS: {} MiB (idle with the object set up: {} MiB)",
        peak_kib / 1024,
        idle_kib / 1024
    );
    let unexpected: u32 = statuses
        .iter()
        .filter(|(s, _)| !matches!(s.as_str(), "200" | "429" | "503"))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(unexpected, 0, "answers other than 200/429/503");
}
