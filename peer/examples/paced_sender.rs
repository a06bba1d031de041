//! A minimal paced FLUTE sender for trying and measuring the receiver by
//! hand (the real one is `dms send`):
//!
//! ```text
//! cargo run -p dms-peer --example paced_sender -- FILE GROUP RATE_MBIT [REPAIR_PCT]
//! ```
//!
//! Sends FILE as `file:///<name>` (RaptorQ, with `dms:SHA-256`) once from
//! interface 127.0.0.1, paced to RATE_MBIT Mbit/s of datagrams.

use std::fs::File;
use std::io::{self, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dms_flute::net::{Interface, SenderSocketConfig, sender_socket};
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use sha2::{Digest, Sha256};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, group, rate, rest @ ..] = args.as_slice() else {
        return Err("usage: paced_sender FILE GROUP RATE_MBIT [REPAIR_PCT]".into());
    };
    let path = PathBuf::from(file);
    let group: SocketAddr = group.parse()?;
    let rate_bps: f64 = rate.parse::<f64>()? * 1e6 / 8.0;
    let repair: u32 = rest.first().map_or(Ok(10), |r| r.parse())?;

    let mut hasher = Sha256::new();
    io::copy(&mut BufReader::new(File::open(&path)?), &mut hasher)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name is not UTF-8")?;
    let mut spec = ObjectSpec::new(format!("file:///{name}"), File::open(&path)?);
    spec.sha256 = Some(hasher.finalize().into());
    spec.repair_percent = repair;

    let mut sender = Sender::new(SenderConfig::new(1, u32::MAX))?;
    sender.add_object(spec)?;
    let socket = sender_socket(
        group,
        &SenderSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )?;
    // DROP_BURST=FIRST:COUNT skips COUNT datagrams from the FIRST-th on,
    // to see how the receiver copes with a burst loss.
    let burst = std::env::var("DROP_BURST").ok().and_then(|v| {
        let (first, count) = v.split_once(':')?;
        let first: u64 = first.parse().ok()?;
        Some(first..first + count.parse::<u64>().ok()?)
    });
    let mut packets = 0u64;
    let mut buf = vec![0u8; 1500];
    let start = Instant::now();
    let mut bytes = 0u64;
    while !sender.is_finished() {
        // Pacing: never more than 2 ms ahead of the rate line (sleeping
        // per packet would cost more than the packet).
        let due = Duration::from_secs_f64(bytes as f64 / rate_bps);
        if let Some(ahead) = due.checked_sub(start.elapsed())
            && ahead > Duration::from_millis(2)
        {
            std::thread::sleep(ahead);
        }
        match sender.poll_transmit(Instant::now(), &mut buf)? {
            Some(t) => {
                packets += 1;
                let skip = burst.as_ref().is_some_and(|b| b.contains(&packets));
                if let Some(datagram) = buf.get(..t.size).filter(|_| !skip) {
                    // A full send buffer is a loss for FEC to cover.
                    let _ = socket.send(datagram);
                }
                bytes += t.size as u64;
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "sent {} datagrams, {bytes} bytes in {secs:.1} s ({:.0} Mbit/s)",
        sender.stats().packets,
        bytes as f64 * 8.0 / secs / 1e6
    );
    Ok(())
}
