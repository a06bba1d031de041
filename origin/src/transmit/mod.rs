//! The broadcast transmitter: drives a sans-IO [`dms_flute::Sender`] over
//! a UDP socket, paced by a [`TokenBucket`] and batched with UDP GSO.
//!
//! ```text
//!            poll_transmit(now, slot)          one sendmsg per batch
//!  Sender ─────────────────────────> Batch ──(TokenBucket)──> GsoSocket ──> group
//!    ^   datagrams written in place   (≤ 64 KiB, equal-size segments)
//!    └── handle_timeout / poll_timeout (FDT repeats)
//!  StopHandle, LiveStats <── other threads        run() ──> TransmitReport
//! ```
//!
//! The sender writes each datagram straight into the batch buffer (no
//! allocation per packet). A batch is sent when it is full (the GSO
//! segment limit, 64 KiB, or the pacing burst), when a packet of another
//! size ends it, or when the sender has nothing more. Pacing meters UDP
//! payload bytes: before a batch goes out the bucket must hold its bytes;
//! the loop sleeps while far ahead and yields only for the last ~100 µs.
//! Batches are at most about a millisecond of the rate, and the bucket
//! makes up for short stalls (the sender encodes blocks in line), so each
//! second carries the set rate within about one percent.
//!
//! ```no_run
//! use std::io::Cursor;
//! use dms_flute::{ObjectSpec, Sender, SenderConfig};
//! use dms_origin::transmit::{TransmitConfig, Transmitter, ntp_expires};
//!
//! let sender = Sender::new(SenderConfig::new(1, ntp_expires(std::time::Duration::from_secs(3600))))?;
//! let mut config = TransmitConfig::new("239.255.1.1:5000".parse()?);
//! config.socket.interface = "127.0.0.1".parse()?;
//! config.rate_bps = 200_000_000;
//! let mut transmitter = Transmitter::new(sender, config)?;
//! transmitter.add_object(ObjectSpec::new("file:///app.bin", Cursor::new(vec![7u8; 1 << 20])))?;
//! let stop = transmitter.stop_handle(); // stop.stop() from another thread ends it
//! let report = transmitter.run()?;
//! println!("{} packets, {:.1} Mbit/s", report.packets, report.mbit_per_sec());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ahead;
mod batch;
mod bucket;
mod error;
mod socket;
mod stats;

use std::io::{Seek, SeekFrom};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dms_fec::Oti;
use dms_flute::net::{SenderSocketConfig, sender_socket};
use dms_flute::sender::ObjectSource;
use dms_flute::{ObjectSpec, Sender, SenderError, Toi};

pub use bucket::TokenBucket;
pub use error::TransmitError;
pub use stats::{LiveStats, ObjectProgress, StopHandle, TransmitReport};

use ahead::{AheadReaders, EncodeAhead};
use batch::{Batch, Commit};
use socket::{GsoSocket, MAX_GSO_BYTES};

/// The pacing loop sleeps until this long before a deadline, then yields.
const SPIN: Duration = Duration::from_micros(100);
/// Longest single sleep, so a stop is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// How a [`Transmitter`] sends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransmitConfig {
    /// Destination: a multicast group (or a unicast address) and port.
    pub group: SocketAddr,
    /// Interface, TTL, loop and send buffer of the socket.
    pub socket: SenderSocketConfig,
    /// Rate of UDP payload in bits per second; 0 sends unpaced (for
    /// measurements only: receivers drop what they cannot keep up with).
    pub rate_bps: u64,
    /// Use UDP GSO where the kernel supports it (default on).
    pub gso: bool,
    /// Most datagrams in one GSO send (default 64, the kernel's limit).
    pub max_segments: usize,
    /// Longest batch, in time at the set rate (default 1 ms): a batch
    /// carries at most this much of the rate.
    pub burst: Duration,
    /// Longest stall made up for (default 8 ms): when the sender pauses
    /// (it encodes each source block in line, a few ms for 1 MiB), the
    /// bucket keeps earning for this long, and the batches after the pause
    /// go out back to back until the rate is caught up. The bucket holds
    /// two batches plus this much of the rate; it bounds how far a second
    /// can exceed the rate (8 ms is 0.8 %).
    pub catch_up: Duration,
    /// Most bytes of repair symbols a helper thread keeps made ahead of
    /// the sender (default 32 MiB, about 300 blocks of 1 MiB at 10 %
    /// repair); 0 encodes on the sending thread only. Only objects given a
    /// second reader ([`Transmitter::encode_ahead_from`]) are encoded
    /// ahead.
    pub encode_ahead_bytes: u64,
}

impl TransmitConfig {
    /// Defaults for sending to `group`: unpaced, GSO on, the socket's
    /// defaults (kernel's interface choice, TTL 1, loop on).
    pub fn new(group: SocketAddr) -> Self {
        TransmitConfig {
            group,
            socket: SenderSocketConfig::default(),
            rate_bps: 0,
            gso: true,
            max_segments: 64,
            burst: Duration::from_millis(1),
            catch_up: Duration::from_millis(8),
            encode_ahead_bytes: 32 << 20,
        }
    }
}

/// The NTP seconds (the FDT's `Expires`) of `lifetime` from now.
pub fn ntp_expires(lifetime: Duration) -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(lifetime)
        .as_secs();
    // NTP seconds wrap every era (2036); the low 32 bits are the field.
    (unix.wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF) as u32
}

/// A FLUTE session on a socket: paced, batched, stoppable. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct Transmitter {
    sender: Sender,
    socket: GsoSocket,
    config: TransmitConfig,
    stop: StopHandle,
    live: Arc<LiveStats>,
    /// Progress by TOI − 1 (the sender numbers objects 1, 2, …).
    progress: Vec<Arc<ObjectProgress>>,
    /// Second readers of objects, until the helper takes them.
    ahead_readers: AheadReaders,
    /// The encode-ahead helper, once started.
    ahead: Option<EncodeAhead>,
}

impl Transmitter {
    /// Opens the socket for `config.group` and takes over `sender` (which
    /// may already hold objects).
    pub fn new(sender: Sender, config: TransmitConfig) -> Result<Self, TransmitError> {
        if config.max_segments == 0 {
            return Err(TransmitError::InvalidConfig("max_segments is 0".into()));
        }
        let slot = sender.config().max_datagram_size;
        if slot > MAX_GSO_BYTES {
            return Err(TransmitError::InvalidConfig(format!(
                "datagrams of {slot} bytes exceed the UDP maximum of {MAX_GSO_BYTES}"
            )));
        }
        let group = config.group;
        let socket = sender_socket(group, &config.socket)
            .and_then(|s| GsoSocket::new(s, group, config.gso))
            .map_err(|source| TransmitError::Socket { group, source })?;
        let live = Arc::new(LiveStats::default());
        let mut progress = Vec::new();
        for o in &sender.stats().objects {
            let p = Arc::new(ObjectProgress::new(o.toi, String::new(), 0));
            live.push_object(Arc::clone(&p));
            progress.push(p);
        }
        Ok(Transmitter {
            sender,
            socket,
            config,
            stop: StopHandle::default(),
            live,
            progress,
            ahead_readers: AheadReaders::default(),
            ahead: None,
        })
    }

    /// Adds an object to the session (see [`Sender::add_object`]) and
    /// registers its progress.
    pub fn add_object(&mut self, mut spec: ObjectSpec) -> Result<Toi, TransmitError> {
        let location = spec.content_location.clone();
        let expected = self.expected_packets(&mut spec);
        let toi = self.sender.add_object(spec)?;
        let p = Arc::new(ObjectProgress::new(toi, location, expected));
        self.live.push_object(Arc::clone(&p));
        self.progress.push(p);
        Ok(toi)
    }

    /// Lets a helper thread encode object `toi` ahead of the sender (see
    /// [`TransmitConfig::encode_ahead_bytes`]), reading its bytes from
    /// `reader`: a second handle on the same bytes as the object's source.
    pub fn encode_ahead_from(&mut self, toi: Toi, reader: impl ObjectSource + 'static) {
        self.ahead_readers.0.insert(toi, Box::new(reader));
    }

    /// Starts the encode-ahead helper now (for instance while the caller
    /// hashes the objects) rather than when [`Transmitter::run`] starts.
    /// Objects added later are encoded by the sender itself.
    pub fn start_encoding_ahead(&mut self) -> Result<(), TransmitError> {
        if self.ahead.is_some() || self.config.encode_ahead_bytes == 0 {
            return Ok(());
        }
        let readers = std::mem::take(&mut self.ahead_readers.0);
        if readers.is_empty() {
            return Ok(());
        }
        let budget = self.config.encode_ahead_bytes;
        self.ahead = EncodeAhead::start(&self.sender, readers, budget, true)
            .map_err(TransmitError::Thread)?;
        Ok(())
    }

    /// Sets an object's digests in its FDT entry (see
    /// [`Sender::set_digests`]): for a caller that adds a large object
    /// first and hashes it while its blocks are encoded ahead.
    pub fn set_digests(
        &mut self,
        toi: Toi,
        content_md5: Option<[u8; 16]>,
        sha256: Option<[u8; 32]>,
    ) -> Result<(), TransmitError> {
        Ok(self.sender.set_digests(toi, content_md5, sha256)?)
    }

    /// Data packets an object will take over all rounds; 0 if unknown
    /// (the sender then reports the real error).
    fn expected_packets(&self, spec: &mut ObjectSpec) -> u64 {
        let measure = |spec: &mut ObjectSpec| -> std::io::Result<u64> {
            let len = spec.source.seek(SeekFrom::End(0))?;
            spec.source.seek(SeekFrom::Start(0))?;
            Ok(len)
        };
        let Ok(len) = measure(spec) else { return 0 };
        let Ok(oti) = Oti::for_object(spec.fec, len, spec.symbol_size, spec.block_size) else {
            return 0;
        };
        let layout = oti.layout();
        let per_round: u64 = (0..layout.block_count())
            .filter_map(|sbn| layout.source_symbols(sbn))
            .map(|k| {
                let repair = if spec.fec.has_repair_symbols() {
                    (u64::from(k) * u64::from(spec.repair_percent))
                        .div_ceil(100)
                        .min(u64::from(spec.fec.esi_limit().saturating_sub(k)))
                } else {
                    0
                };
                u64::from(k) + repair
            })
            .sum();
        per_round * u64::from(self.sender.config().carousel_rounds)
    }

    /// A handle that stops [`Transmitter::run`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Live counters, readable from another thread while
    /// [`Transmitter::run`] runs.
    pub fn live_stats(&self) -> Arc<LiveStats> {
        Arc::clone(&self.live)
    }

    /// The FLUTE sender.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Datagrams one send may carry (1 without GSO).
    pub fn gso_segments(&self) -> usize {
        self.socket.max_segments().min(self.config.max_segments)
    }

    /// Sends until the sender has sent everything (all carousel rounds) or
    /// the stop handle is used. An object whose source fails to read is
    /// abandoned by the sender and the others go on; socket errors end
    /// the run.
    pub fn run(mut self) -> Result<TransmitReport, TransmitError> {
        self.start_encoding_ahead()?;
        let slot = self.sender.config().max_datagram_size;
        let start = Instant::now();
        let mut max_bytes = MAX_GSO_BYTES;
        let mut bucket = None;
        if self.config.rate_bps > 0 {
            let bytes_in = |d: Duration| {
                u64::try_from(u128::from(self.config.rate_bps / 8) * d.as_nanos() / 1_000_000_000)
                    .unwrap_or(u64::MAX)
            };
            max_bytes = usize::try_from(bytes_in(self.config.burst))
                .unwrap_or(usize::MAX)
                .clamp(slot, MAX_GSO_BYTES);
            let capacity = (2 * max_bytes as u64).saturating_add(bytes_in(self.config.catch_up));
            bucket = Some(TokenBucket::new(self.config.rate_bps, capacity, start));
        }
        let mut batch = Batch::new(slot, max_bytes, self.gso_segments());
        let mut last_send = start;
        let mut drained = false;
        while !self.stop.is_stopped() {
            let now = Instant::now();
            let mut commit = Commit::Appended;
            while commit == Commit::Appended {
                let Some(buf) = batch.slot() else { break };
                if let Some(ahead) = self.ahead.as_mut() {
                    ahead.feed(&mut self.sender);
                }
                match self.sender.poll_transmit(now, buf) {
                    Ok(Some(t)) => commit = batch.commit(t),
                    Ok(None) => {
                        drained = true;
                        break;
                    }
                    Err(e @ (SenderError::Read { .. } | SenderError::Encode { .. })) => {
                        tracing::warn!("object abandoned: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if batch.count() > 0 {
                if let Some(bucket) = bucket.as_mut() {
                    let bytes = batch.contents().len() as u64;
                    while let Err(at) = bucket.try_take(Instant::now(), bytes) {
                        if !wait_until(at, &self.stop) {
                            break;
                        }
                    }
                    if self.stop.is_stopped() {
                        break;
                    }
                }
                self.send(&batch)?;
                last_send = Instant::now();
                batch.carry();
                // The held-back packet is now the batch; the next round
                // appends to it.
                continue;
            }
            if drained {
                match self.sender.poll_timeout() {
                    _ if self.sender.is_finished() => break,
                    None => break,
                    Some(at) => {
                        drained = false;
                        wait_until(at, &self.stop);
                    }
                }
            }
        }
        let stopped = self.stop.is_stopped() && !self.sender.is_finished();
        Ok(TransmitReport {
            packets: self.live.packets(),
            bytes: self.live.bytes(),
            send_calls: self.live.send_calls(),
            elapsed: last_send - start,
            stopped,
            gso_segments: self.gso_segments(),
            sender: self.sender.stats().clone(),
        })
    }

    /// Sends a batch and counts it.
    fn send(&mut self, batch: &Batch) -> Result<(), TransmitError> {
        let contents = batch.contents();
        self.socket
            .send(contents, batch.segment_size())
            .map_err(|source| TransmitError::Send {
                group: self.config.group,
                source,
            })?;
        self.live.add(
            batch.count() as u64,
            contents.len() as u64,
            batch.fdt_packets(),
        );
        for &(toi, packets, bytes) in batch.objects() {
            let index = usize::try_from(toi.saturating_sub(1)).unwrap_or(usize::MAX);
            match self.progress.get(index) {
                Some(p) if p.toi() == toi => p.add(packets, bytes),
                _ => {
                    if let Some(p) = self.progress.iter().find(|p| p.toi() == toi) {
                        p.add(packets, bytes);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sleeps until `deadline`: in slices while far from it, yielding for the
/// last [`SPIN`]. Returns `false` if stopped first.
fn wait_until(deadline: Instant, stop: &StopHandle) -> bool {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        if stop.is_stopped() {
            return false;
        }
        let left = deadline - now;
        if left > SPIN {
            std::thread::sleep((left - SPIN).min(MAX_SLEEP));
        } else {
            std::thread::yield_now();
        }
    }
}
