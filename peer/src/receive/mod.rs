//! Multicast reception: a FLUTE session from a UDP group to files.
//!
//! ```text
//!   group ──> socket thread ──Batch (bounded pool)──> decode thread ──> out_dir/.dms-recv-*.part
//!             recvmmsg / GRO     <──empty batches──    dms_flute::Receiver   │ complete + verified:
//!             (never blocks:                           BlockDecoded at offset│ fsync, rename
//!              drops are counted)                                            └──> out_dir/<name>
//!                                                      ──ReceiveEvent──> caller (progress)
//! ```
//!
//! The socket thread only drains the socket, so a slow disk or a RaptorQ
//! solve never backs the kernel buffer up; if every batch is in flight the
//! datagram is counted in [`ReceiveStats::dropped_lagging`]. The decode
//! thread runs the sans-IO [`dms_flute::Receiver`] and streams each decoded
//! block to a hidden temp file in the output directory, so an object is
//! never whole in memory. An object whose digests match is fsynced and
//! renamed to the name from its `Content-Location` (see [`file_name`]);
//! `gzip`, `deflate` and `zlib` content encodings are undone first, into a
//! second temp file, and the result checked against `dms:SHA-256` and
//! `Content-Length`. A failed object leaves nothing behind.
//!
//! Blocks that decode past a lost one are written at once. The FLUTE
//! receiver holds them too, for its in-order digests, but at most
//! `flute.max_ahead_bytes` of them per object
//! ([`ReceiverConfig::max_ahead_bytes`], 32 MiB by default): past that
//! (a burst lost more than a block's repair margin) it releases them, and
//! the object's SHA-256 (and Content-MD5 when checked) is computed by
//! reading the finished temp file back before the rename — a wrong digest
//! still leaves nothing.
//!
//! # Resuming
//!
//! With [`ReceiveConfig::state`], each object with a description (FDT) and
//! an OTI is persisted as it arrives, in `STATE/objects/<TSI>-<TOI>/`:
//!
//! ```text
//!   meta.json    TSI, TOI, the FDT description (Content-Location, lengths,
//!                type, encoding, MD5/SHA-256, manifest URI), the FEC OTI,
//!                the verified manifest check once given   (atomic writes)
//!   data         the partial file: decoded blocks at their offsets
//!   have.json    {"blocks": [[SBN, CRC-32], …]}: blocks of `data` that were
//!                fsynced before this was written          (atomic writes)
//!   spool-<SBN>  symbols of block SBN while it is not on disk: records
//!                u32 LE length | u32 LE ESI | u32 LE CRC-32(ESI ‖ payload) | payload
//! ```
//!
//! The partial file is fsynced in the background (every 32 MiB, and a
//! second after blocks were last written); `have.json` is rewritten when a
//! flush ends, and only then are the spools of the blocks it lists removed,
//! so every block can be had from one or the other. Spools are appended
//! without fsync: a killed process loses nothing, a power cut at most a
//! tail, which the CRC detects. A receiver started with the same state
//! directory reloads each object: the FDT description and OTI are given to
//! the FLUTE receiver, the blocks of `have.json` are read back, checked
//! against their CRC-32 (and the manifest's block hashes: with
//! [`ReceiveConfig::require_manifest`] they wait for the check) and fed to
//! it as source symbols, and the spooled symbols after them; a damaged block
//! is simply missing. The object is then reported like any other, and
//! packets of the same TSI and TOI (or repair symbols) complete it. When it
//! completes (the partial file is renamed to its final name, so nothing
//! unverified is ever visible there), fails or is abandoned, its state is
//! removed.
//!
//! ```no_run
//! use std::time::Duration;
//! use dms_peer::receive::{MulticastReceiver, ObjectState, ReceiveConfig, ReceiveEvent};
//!
//! let config = ReceiveConfig::new(
//!     "239.255.1.1:5000".parse()?,
//!     "127.0.0.1".parse()?,
//!     "downloads",
//! );
//! let (receiver, events) = MulticastReceiver::start(config)?;
//! while let Ok(event) = events.recv_timeout(Duration::from_secs(60)) {
//!     if let ReceiveEvent::Object(p) = event {
//!         if let ObjectState::Complete { path, .. } = &p.state {
//!             println!("{} -> {}", p.name, path.display());
//!             break;
//!         }
//!     }
//! }
//! let stats = receiver.stop()?;
//! println!("{} datagrams, {} dropped", stats.datagrams, stats.dropped_lagging);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod control;
mod decode;
mod event;
mod loss;
mod name;
mod output;
mod socket;
mod state;
mod stats;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use dms_flute::ReceiverConfig;
pub use dms_flute::net::Interface;
use dms_flute::net::{ReceiverSocketConfig, receiver_socket_from};

pub use control::{
    ADOPTED_TOI_BASE, ADOPTED_TSI, AdoptError, AdoptedObject, Control, ManifestCheck, ObjectGaps,
    RepairSymbol,
};
pub use event::{ObjectProgress, ObjectState, ReceiveEvent};
pub use loss::LossModel;
pub use name::{file_name, file_name_or_toi};
pub use output::{OutputError, TEMP_PREFIX};
pub use state::OBJECTS_DIR as STATE_OBJECTS_DIR;
pub use stats::ReceiveStats;

use decode::DecodeLoop;
use socket::{BATCH_BYTES, SocketLoop};
use stats::SharedStats;

/// How a [`MulticastReceiver`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiveConfig {
    /// The multicast group (or unicast address) and port to receive on.
    pub group: SocketAddr,
    /// The interface the group is joined on.
    pub interface: Interface,
    /// Where objects are written (must exist).
    pub out_dir: PathBuf,
    /// Requested socket receive buffer, in bytes (default 8 MiB).
    pub receive_buffer: usize,
    /// Bytes of datagrams that may wait between the socket and the decode
    /// thread (default 64 MiB); beyond that datagrams are dropped and
    /// counted.
    pub queue_bytes: usize,
    /// The FLUTE receiver's limits and TSI filter.
    pub flute: ReceiverConfig,
    /// Loss injected before the FLUTE receiver (tests, demos); none by
    /// default.
    pub loss: Option<LossModel>,
    /// Hold every complete object until its verified manifest is given
    /// ([`Control::set_manifest`]); off by default.
    pub require_manifest: bool,
    /// A directory (created if missing) where the reception state of each
    /// object is kept, so that a receiver started again with it — after
    /// a stop or a kill — resumes with what was received: its partial
    /// file, the blocks on disk and the symbols of the blocks not yet
    /// decoded (see *Resuming* in the [module documentation](self)). On
    /// start, the objects found there are reported
    /// ([`ObjectState::Receiving`], or complete) and continue with
    /// packets of the same session and object, or with repair. None by
    /// default: incomplete objects are then lost when the receiver stops.
    pub state: Option<PathBuf>,
    /// Take datagrams from these sources only (an SDP's
    /// `a=source-filter: incl`, joined source-specifically); empty (the
    /// default): any source.
    pub sources: Vec<std::net::Ipv4Addr>,
}

impl ReceiveConfig {
    /// The defaults for receiving `group` on `interface` into `out_dir`,
    /// every TSI.
    pub fn new(group: SocketAddr, interface: Interface, out_dir: impl Into<PathBuf>) -> Self {
        let mut flute = ReceiverConfig::default();
        // Our SHA-256, when the FDT gives it, is checked on every object;
        // MD5 beside it would cost half the decode thread.
        flute.md5_with_sha256 = false;
        // Blocks decoded ahead of a gap are written (and can be served to
        // peers) at once, not held until the gap is repaired.
        flute.blocks_ahead = true;
        ReceiveConfig {
            group,
            interface,
            out_dir: out_dir.into(),
            receive_buffer: 8 << 20,
            queue_bytes: 64 << 20,
            flute,
            loss: None,
            require_manifest: false,
            state: None,
            sources: Vec::new(),
        }
    }
}

/// Why a receiver could not start or ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The output directory is missing or not a directory.
    #[error("output directory {0}: not a directory")]
    OutDir(PathBuf),
    /// Opening or joining the socket failed.
    #[error("socket for {group}: {source}")]
    Socket {
        /// The group.
        group: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The state directory could not be created.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Starting a thread failed.
    #[error("starting a thread: {0}")]
    Thread(io::Error),
    /// The socket thread failed.
    #[error("receiving: {0}")]
    Receive(io::Error),
    /// A thread panicked.
    #[error("a receiver thread panicked")]
    Panicked,
}

/// A running receiver: a socket thread and a decode thread. Dropping it
/// stops both (as [`MulticastReceiver::stop`] does, discarding errors);
/// objects still incomplete are abandoned and their temp files removed —
/// unless [`ReceiveConfig::state`] is set, where they are kept (flushed)
/// for the next receiver started with it.
#[derive(Debug)]
pub struct MulticastReceiver {
    stop: Arc<AtomicBool>,
    stats: Arc<SharedStats>,
    socket_thread: Option<JoinHandle<io::Result<()>>>,
    decode_thread: Option<JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
    control: Control,
}

impl MulticastReceiver {
    /// Opens the socket, joins the group and starts receiving. Events come
    /// out of the returned channel in the order they happened.
    pub fn start(
        config: ReceiveConfig,
    ) -> Result<(Self, mpsc::Receiver<ReceiveEvent>), ReceiveError> {
        if !config.out_dir.is_dir() {
            return Err(ReceiveError::OutDir(config.out_dir));
        }
        if let Some(path) = &config.state {
            std::fs::create_dir_all(path.join(STATE_OBJECTS_DIR)).map_err(|source| {
                ReceiveError::StateDir {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        let socket_config = ReceiverSocketConfig {
            interface: config.interface,
            receive_buffer: config.receive_buffer,
        };
        let socket = receiver_socket_from(config.group, &config.sources, &socket_config).map_err(
            |source| ReceiveError::Socket {
                group: config.group,
                source,
            },
        )?;
        let local_addr = socket.local_addr().ok();
        let max_batches = (config.queue_bytes / BATCH_BYTES).max(2);
        let (full_tx, full_rx) = mpsc::sync_channel(max_batches);
        let (empty_tx, empty_rx) = mpsc::channel();
        let (events_tx, events_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SharedStats::default());

        let queued = Arc::new(AtomicUsize::new(0));
        let max_fdt_size = config.flute.max_fdt_size;
        let tsi_filter = config.flute.tsi;
        let (command_tx, command_rx) = mpsc::channel();
        let mut decoder = DecodeLoop::new(
            dms_flute::Receiver::new(config.flute),
            config.out_dir,
            events_tx,
            Arc::clone(&stats),
            max_fdt_size,
            command_rx,
        );
        decoder.require_manifest = config.require_manifest;
        decoder.state = config.state;
        decoder.tsi_filter = tsi_filter;
        decoder.dropper = config.loss.map(loss::Dropper::new);
        let decode_thread = std::thread::Builder::new()
            .name("dms-recv-decode".into())
            .spawn({
                let queued = Arc::clone(&queued);
                move || decoder.run(full_rx, empty_tx, &queued)
            })
            .map_err(ReceiveError::Thread)?;

        let socket_loop = SocketLoop {
            socket,
            full: full_tx,
            empty: empty_rx,
            max_batches,
            stats: Arc::clone(&stats),
            queued,
        };
        let thread_stop = Arc::clone(&stop);
        let socket_thread = std::thread::Builder::new()
            .name("dms-recv-socket".into())
            .spawn(move || socket_loop.run(&thread_stop))
            .map_err(ReceiveError::Thread)?;

        let receiver = MulticastReceiver {
            stop,
            stats,
            socket_thread: Some(socket_thread),
            decode_thread: Some(decode_thread),
            local_addr,
            control: Control { tx: command_tx },
        };
        Ok((receiver, events_rx))
    }

    /// The counters now.
    pub fn stats(&self) -> ReceiveStats {
        self.stats.snapshot()
    }

    /// A handle to ask for gaps, feed repair symbols and give manifests.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops receiving, lets the decode thread finish what was already
    /// received, and returns the final counters.
    pub fn stop(mut self) -> Result<ReceiveStats, ReceiveError> {
        self.shutdown()?;
        Ok(self.stats.snapshot())
    }

    fn shutdown(&mut self) -> Result<(), ReceiveError> {
        self.stop.store(true, Ordering::Relaxed);
        let socket = self.socket_thread.take().map(JoinHandle::join);
        // The socket thread's end closes the batch channel, which ends the
        // decode thread.
        let decode = self.decode_thread.take().map(JoinHandle::join);
        match (socket, decode) {
            (Some(Err(_)), _) | (_, Some(Err(_))) => Err(ReceiveError::Panicked),
            (Some(Ok(Err(e))), _) => Err(ReceiveError::Receive(e)),
            _ => Ok(()),
        }
    }
}

impl Drop for MulticastReceiver {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("receiver stopped with an error: {e}");
        }
    }
}
