//! Measures the transmitter over loopback multicast (a script, not a
//! criterion bench: pacing accuracy is a per-second series, not a time
//! per iteration).
//!
//! 1. Unpaced: datagrams/s and Gbit/s of UDP payload from one thread, with
//!    and without UDP GSO, for no-code (I/O only) and RaptorQ with 10 %
//!    repair (the encoder runs in line), then RaptorQ with a helper thread
//!    encoding ahead, and the ratio of the two.
//! 2. Paced: the rate achieved in each whole second against the set rate.
//!
//! A socket joins the group and is never read, so the kernel does the whole
//! delivery (and drops at the full buffer) without a reader competing for
//! the CPU.
//!
//! ```text
//! cargo bench -p dms-origin --bench transmit            # ~30 s after the build
//! DMS_BENCH_SECS=3 DMS_BENCH_RATES=200,1000 cargo bench -p dms-origin --bench transmit
//! ```
//!
//! Measured on the 2-core development machine (load average 5–6 from other
//! builds), 1472-byte datagrams: unpaced with GSO 0.66–1.13 M datagrams/s
//! (7.5–13 Gbit/s) no-code and 0.30–0.61 M/s (3.5–7 Gbit/s) RaptorQ +10 %
//! with the encoder in line; without GSO 120–180 k/s (1.4–2.1 Gbit/s).
//! Paced at 200 and 1000 Mbit/s every whole second was within 0.35 % of
//! the set rate (mostly within 0.05 %), using 7–15 % of a core.
//! 2026-12-06, idle machine: one RaptorQ round (every block encoded) 4.5–5.5
//! Gbit/s with the encoder in line, 6.4–7.8 Gbit/s with the helper thread
//! encoding ahead: 1.41–1.42x.
#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use dms_fec::FecScheme;
use dms_flute::net::{Interface, ReceiverSocketConfig, receiver_socket};
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use dms_origin::transmit::{TransmitConfig, TransmitReport, Transmitter, ntp_expires};

const OBJECT: usize = 64 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn object() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..OBJECT)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A transmitter of `rounds` × the object to `group`.
fn transmitter(
    group: SocketAddr,
    data: &[u8],
    fec: FecScheme,
    rounds: u32,
    rate_bps: u64,
    gso: bool,
    ahead: bool,
) -> Transmitter {
    let mut sender_config = SenderConfig::new(1, ntp_expires(Duration::from_secs(3600)));
    sender_config.carousel_rounds = rounds;
    let mut config = TransmitConfig::new(group);
    config.socket.interface = Interface::V4(Ipv4Addr::LOCALHOST);
    config.rate_bps = rate_bps;
    config.gso = gso;
    let mut t = Transmitter::new(Sender::new(sender_config).unwrap(), config).unwrap();
    let mut spec = ObjectSpec::new("file:///bench.bin", Cursor::new(data.to_vec()));
    spec.fec = fec;
    spec.repair_percent = 10;
    let toi = t.add_object(spec).unwrap();
    if ahead {
        t.encode_ahead_from(toi, Cursor::new(data.to_vec()));
    }
    t
}

/// CPU seconds (user + system) of this process so far, from
/// /proc/self/stat (Linux; clock ticks of 1/100 s); 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn unpaced(group: SocketAddr, data: &[u8]) {
    println!("unpaced, 1472-byte datagrams, 64 MiB object x rounds, one sending thread:");
    let mut raptorq = Vec::new();
    for (fec, rounds, ahead) in [
        (FecScheme::NoCode, 8, false),
        // One round: every block is encoded (later rounds reuse them).
        (FecScheme::RaptorQ, 1, false),
        (FecScheme::RaptorQ, 1, true),
    ] {
        for gso in [true, false] {
            if ahead && !gso {
                continue;
            }
            let t = transmitter(group, data, fec, rounds, 0, gso, ahead);
            let segments = t.gso_segments();
            let report: TransmitReport = t.run().unwrap();
            println!(
                "  {:<8} gso={:<5} ahead={:<5} max segments/send={:<3} {:>9.0} datagrams/s {:>6.2} Gbit/s  ({} datagrams, {} sends, {} blocks encoded ahead, {:.2} s)",
                format!("{fec:?}"),
                gso,
                ahead,
                segments,
                report.packets_per_sec(),
                report.mbit_per_sec() / 1000.0,
                report.packets,
                report.send_calls,
                report.sender.blocks_supplied,
                report.elapsed.as_secs_f64()
            );
            if fec == FecScheme::RaptorQ && gso {
                raptorq.push(report.mbit_per_sec());
            }
        }
    }
    if let [in_line, ahead] = raptorq[..] {
        println!(
            "  RaptorQ with GSO, encoded ahead / in line: {:.2}x",
            ahead / in_line
        );
    }
}

fn paced(group: SocketAddr, data: &[u8], rate_mbit: u64, fec: FecScheme, seconds: u64) {
    let rate = rate_mbit * 1_000_000;
    // Enough rounds to outlast the measurement; stopped after it.
    let rounds = u32::try_from((rate / 8 * (seconds + 2)) / OBJECT as u64 + 1).unwrap();
    let t = transmitter(group, data, fec, rounds, rate, true, true);
    let stop = t.stop_handle();
    let live = t.live_stats();
    let running = thread::spawn(move || t.run());
    // Skip the first second (the first block is read and encoded), then
    // sample each whole second.
    let start = Instant::now();
    let mut next = start + Duration::from_secs(1);
    thread::sleep(next - Instant::now());
    let mut last = (Instant::now(), live.bytes());
    let cpu_start = cpu_seconds();
    let mut errors = Vec::new();
    for _ in 0..seconds {
        next += Duration::from_secs(1);
        thread::sleep(next.saturating_duration_since(Instant::now()));
        let now = (Instant::now(), live.bytes());
        let mbit = (now.1 - last.1) as f64 * 8.0 / (now.0 - last.0).as_secs_f64() / 1e6;
        errors.push((mbit - rate_mbit as f64) / rate_mbit as f64 * 100.0);
        last = now;
    }
    let cpu = (cpu_seconds() - cpu_start) / seconds as f64 * 100.0;
    stop.stop();
    running.join().unwrap().unwrap();
    let list: Vec<String> = errors.iter().map(|e| format!("{e:+.2}")).collect();
    let worst = errors.iter().fold(0.0f64, |w, e| w.max(e.abs()));
    println!(
        "  set {rate_mbit:>5} Mbit/s {:<8} per-second error % [{}]  worst {worst:.2} %, CPU {cpu:.0} %",
        format!("{fec:?}"),
        list.join(" ")
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then
    // only a smoke check runs.
    let full = std::env::args().any(|a| a == "--bench");
    let group: SocketAddr = "239.255.75.1:47331".parse().unwrap();
    let _sink = receiver_socket(
        group,
        &ReceiverSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    let data = object();
    if !full {
        let report = transmitter(
            group,
            &data[..1 << 20],
            FecScheme::NoCode,
            1,
            0,
            true,
            false,
        )
        .run()
        .unwrap();
        assert!(report.packets > 700);
        return;
    }
    unpaced(group, &data);
    let seconds = env_u64("DMS_BENCH_SECS", 5);
    let rates = std::env::var("DMS_BENCH_RATES").unwrap_or_else(|_| "200,1000".into());
    println!("paced, {seconds} whole seconds after the first:");
    for rate in rates
        .split(',')
        .filter_map(|r| r.trim().parse::<u64>().ok())
    {
        for fec in [FecScheme::NoCode, FecScheme::RaptorQ] {
            paced(group, &data, rate, fec, seconds);
        }
    }
}
