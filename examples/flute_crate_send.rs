//! Bench-only program: sends one file to a multicast group with the
//! published `flute` crate (another FLUTE implementation), RaptorQ with a
//! repair overhead, paced at a set rate. `benches/flute_goodput.sh` runs it
//! against `flute_crate_receive` to compare that implementation's goodput
//! with ours.
//!
//! ```text
//! cargo run --release --example flute_crate_send -- FILE \
//!     --group 239.255.1.1:5000 --iface 127.0.0.1 --rate 500 --repair 10 --symbol-size 1400
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use dms_flute::net::{self, Interface, SenderSocketConfig};
use flute::core::{Oti, UDPEndpoint};
use flute::sender::{Config, CreateFromFile, PriorityQueue, Sender, TransferConfig};

/// Send one file over FLUTE with the `flute` crate.
#[derive(Debug, Parser)]
struct Args {
    /// The file to send; its Content-Location is `file:///<file name>`.
    file: PathBuf,
    /// Multicast group and port.
    #[arg(long, default_value = "239.255.1.1:5000")]
    group: SocketAddr,
    /// IPv4 address of the interface to send on.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,
    /// Paced rate in Mbit/s (datagram payload bytes).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// RaptorQ repair symbols, in percent of each block's source symbols.
    #[arg(long, default_value_t = 10.0)]
    repair: f64,
    /// Symbol size in bytes (a multiple of 4).
    #[arg(long, default_value_t = 1400)]
    symbol_size: u16,
    /// Largest source block, in symbols. Default: about 1 MiB (750
    /// symbols of 1400 bytes), more when the file needs it to fit in
    /// RaptorQ's 255 source blocks (752 for 256 MiB, 3008 for 1 GiB).
    #[arg(long)]
    block_symbols: Option<u16>,
    /// Transport Session Identifier.
    #[arg(long, default_value_t = 1)]
    tsi: u64,
    /// Stream the file from disk instead of caching it in memory first
    /// (the `flute` crate's CLI caches by default).
    #[arg(long)]
    no_cache_in_ram: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();

    let socket = net::sender_socket(
        args.group,
        &SenderSocketConfig {
            interface: Interface::V4(args.iface),
            ..SenderSocketConfig::default()
        },
    )
    .context("opening the sender socket")?;

    let file_len = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let block_symbols = match args.block_symbols {
        Some(k) => k,
        None => {
            let needed = file_len.div_ceil(255 * u64::from(args.symbol_size));
            u16::try_from(needed.max(750)).map_err(|_| anyhow!("the file is too large"))?
        }
    };
    let max_repair =
        u16::try_from((f64::from(block_symbols) * args.repair / 100.0).ceil() as u64 + 1)
            .map_err(|_| anyhow!("too many repair symbols per block"))?;
    let oti = Oti::new_raptorq(args.symbol_size, block_symbols, max_repair, 1, 4)
        .map_err(|e| anyhow!("RaptorQ OTI: {e:?}"))?
        .with_parity_symbols_percentage(args.repair)
        .map_err(|e| anyhow!("repair percentage: {e:?}"))?;
    let mut config = Config::default();
    config.set_priority_queue(PriorityQueue::HIGHEST, PriorityQueue::new(1));
    let endpoint = UDPEndpoint::new(None, args.group.ip().to_string(), args.group.port());
    let mut sender = Sender::new(endpoint, args.tsi, &oti, &config);

    let name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no file name", args.file.display()))?;
    let location = url::Url::parse(&format!("file:///{name}"))?;
    let object = CreateFromFile::builder()
        .path(args.file.clone())
        .content_location(Some(location))
        .content_type("application/octet-stream".to_owned())
        .cache_in_ram(!args.no_cache_in_ram)
        .config(TransferConfig::default())
        .build()
        .create()
        .map_err(|e| anyhow!("reading {}: {e:?}", args.file.display()))?;
    sender
        .add_object(PriorityQueue::HIGHEST, object)
        .map_err(|e| anyhow!("adding the object: {e:?}"))?;
    sender
        .publish(SystemTime::now())
        .map_err(|e| anyhow!("publishing the FDT: {e:?}"))?;

    // Pacing: sleep whenever the sender is more than a millisecond ahead
    // of the rate; the `flute` crate loses objects when unpaced.
    let bytes_per_second = args.rate * 1e6 / 8.0;
    let paced_from = Instant::now();
    let (mut sent_bytes, mut packets, mut send_errors) = (0u64, 0u64, 0u64);
    while sender.nb_objects() > 0 {
        let Some(packet) = sender.read(SystemTime::now()) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let due = paced_from + Duration::from_secs_f64(sent_bytes as f64 / bytes_per_second);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        sent_bytes += packet.len() as u64;
        packets += 1;
        if socket.send(&packet).is_err() {
            send_errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "sent {packets} datagrams, {sent_bytes} bytes in {elapsed:.3} s ({:.1} Mbit/s on the wire), {send_errors} send errors",
        sent_bytes as f64 * 8.0 / elapsed / 1e6
    );
    Ok(())
}
