//! Bench-only program: receives files from a multicast group with the
//! published `flute` crate (another FLUTE implementation) into a
//! directory, exits 0 once `--count` objects are complete (MD5-checked
//! when the sender gave Content-MD5) and non-zero on timeout, printing the
//! goodput. `benches/flute_goodput.sh` runs it against `flute_crate_send`.
//!
//! ```text
//! cargo run --release --example flute_crate_receive -- \
//!     --group 239.255.1.1:5000 --iface 127.0.0.1 --out DIR --count 1 --timeout 60
//! ```

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use dms_flute::net::{self, Interface, ReceiverSocketConfig};
use flute::core::UDPEndpoint;
use flute::error::Result as FluteResult;
use flute::receiver::writer::{
    ObjectMetadata, ObjectWriter, ObjectWriterBuilder, ObjectWriterBuilderResult,
    ObjectWriterFSBuilder,
};
use flute::receiver::{Config, MultiReceiver};

/// Receive FLUTE objects with the `flute` crate.
#[derive(Debug, Parser)]
struct Args {
    /// Multicast group and port.
    #[arg(long, default_value = "239.255.1.1:5000")]
    group: SocketAddr,
    /// IPv4 address of the interface to join on.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,
    /// Directory the objects are written to (by Content-Location).
    #[arg(long)]
    out: PathBuf,
    /// Exit once this many objects are complete.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Socket receive buffer in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    receive_buffer: usize,
    /// The `flute` receiver's cache for the blocks being decoded, in MiB.
    /// Its default (10 MB) is too small for a sender interleaving 4 blocks
    /// of 3008 symbols (a 1 GiB object): every block then fails.
    #[arg(long, default_value_t = 64)]
    max_cache_mib: usize,
}

/// What the writers saw, shared with the receive loop.
#[derive(Debug, Default)]
struct Progress {
    complete: Cell<usize>,
    failed: Cell<usize>,
    bytes: Cell<u64>,
}

/// The `flute` crate's file-system writer, counting completions.
#[derive(Debug)]
struct CountingWriterBuilder {
    inner: ObjectWriterFSBuilder,
    progress: Rc<Progress>,
}

#[derive(Debug)]
struct CountingWriter {
    inner: Box<dyn ObjectWriter>,
    progress: Rc<Progress>,
}

impl ObjectWriterBuilder for CountingWriterBuilder {
    fn new_object_writer(
        &self,
        endpoint: &UDPEndpoint,
        tsi: &u64,
        toi: &u128,
        meta: &ObjectMetadata,
        now: SystemTime,
    ) -> ObjectWriterBuilderResult {
        match self.inner.new_object_writer(endpoint, tsi, toi, meta, now) {
            ObjectWriterBuilderResult::StoreObject(inner) => {
                ObjectWriterBuilderResult::StoreObject(Box::new(CountingWriter {
                    inner,
                    progress: self.progress.clone(),
                }))
            }
            other => other,
        }
    }

    fn update_cache_control(
        &self,
        endpoint: &UDPEndpoint,
        tsi: &u64,
        toi: &u128,
        meta: &ObjectMetadata,
        now: SystemTime,
    ) {
        self.inner
            .update_cache_control(endpoint, tsi, toi, meta, now);
    }

    fn fdt_received(
        &self,
        endpoint: &UDPEndpoint,
        tsi: &u64,
        fdt_xml: &str,
        expires: SystemTime,
        meta: &ObjectMetadata,
        transfer_duration: Duration,
        now: SystemTime,
        ext_time: Option<SystemTime>,
    ) {
        self.inner.fdt_received(
            endpoint,
            tsi,
            fdt_xml,
            expires,
            meta,
            transfer_duration,
            now,
            ext_time,
        );
    }
}

impl ObjectWriter for CountingWriter {
    fn open(&self, now: SystemTime) -> FluteResult<()> {
        self.inner.open(now)
    }

    fn write(&self, sbn: u32, data: &[u8], now: SystemTime) -> FluteResult<()> {
        self.progress
            .bytes
            .set(self.progress.bytes.get() + data.len() as u64);
        self.inner.write(sbn, data, now)
    }

    fn complete(&self, now: SystemTime) {
        self.inner.complete(now);
        self.progress.complete.set(self.progress.complete.get() + 1);
    }

    fn error(&self, now: SystemTime) {
        self.inner.error(now);
        self.progress.failed.set(self.progress.failed.get() + 1);
    }

    fn interrupted(&self, now: SystemTime) {
        self.inner.interrupted(now);
        self.progress.failed.set(self.progress.failed.get() + 1);
    }

    fn enable_md5_check(&self) -> bool {
        self.inner.enable_md5_check()
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let socket = net::receiver_socket(
        args.group,
        &ReceiverSocketConfig {
            interface: Interface::V4(args.iface),
            receive_buffer: args.receive_buffer,
        },
    )
    .context("opening the receiver socket")?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;

    let progress = Rc::new(Progress::default());
    let writer = Rc::new(CountingWriterBuilder {
        inner: ObjectWriterFSBuilder::new(&args.out, true)
            .map_err(|e| anyhow!("output directory: {e:?}"))?,
        progress: progress.clone(),
    });
    let config = Config {
        object_max_cache_size: Some(args.max_cache_mib << 20),
        ..Config::default()
    };
    let mut receiver = MultiReceiver::new(writer, Some(config), false);
    let endpoint = UDPEndpoint::new(None, args.group.ip().to_string(), args.group.port());

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut buf = vec![0u8; 65_536];
    let mut first_packet = None;
    let (mut datagrams, mut rejected) = (0u64, 0u64);
    while progress.complete.get() < args.count {
        if Instant::now() >= deadline {
            bail!(
                "timeout: {} of {} objects complete, {} failed, {datagrams} datagrams received",
                progress.complete.get(),
                args.count,
                progress.failed.get()
            );
        }
        match socket.recv(&mut buf) {
            Ok(n) => {
                first_packet.get_or_insert_with(Instant::now);
                datagrams += 1;
                if receiver
                    .push(&endpoint, &buf[..n], SystemTime::now())
                    .is_err()
                {
                    rejected += 1;
                }
            }
            Err(_) => receiver.cleanup(SystemTime::now()),
        }
    }
    let elapsed = first_packet.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let bytes = progress.bytes.get();
    println!(
        "received {} objects, {bytes} bytes in {elapsed:.3} s from the first datagram: goodput {:.1} Mbit/s ({datagrams} datagrams, {rejected} rejected, {} failed)",
        progress.complete.get(),
        bytes as f64 * 8.0 / elapsed.max(1e-9) / 1e6,
        progress.failed.get()
    );
    Ok(())
}
