//! The socket thread: it only drains the socket. Batched receives
//! (`recvmmsg`, and UDP GRO where the kernel offers it, through
//! `quinn-udp`) land in one scratch area; each datagram is copied into a
//! pooled [`Batch`] that goes to the decode thread over a bounded channel
//! and comes back empty to be reused. When every batch is in flight (the
//! decode side lags), datagrams are counted as dropped rather than
//! blocking, so the kernel buffer keeps draining.

use std::io::{self, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use quinn_udp::{RecvMeta, UdpSocketState};

use super::stats::SharedStats;

/// Bytes of datagrams one batch holds.
pub(super) const BATCH_BYTES: usize = 256 << 10;
/// Room for any UDP datagram, or a GRO train of them (the kernel caps one
/// at 64 KiB).
const SLOT_BYTES: usize = 64 << 10;
/// How often the thread looks at the stop flag while the socket is quiet.
const POLL_MS: u16 = 100;
/// How long a partly filled batch may wait for more datagrams while the
/// decode thread is busy with earlier ones.
const LINGER_MS: u16 = 1;

/// Datagrams back to back, handed from the socket thread to the decoder.
#[derive(Debug)]
pub(super) struct Batch {
    data: Vec<u8>,
    /// (start, length) of each datagram in `data`.
    datagrams: Vec<(usize, usize)>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES),
            datagrams: Vec::with_capacity(BATCH_BYTES / 512),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.datagrams.clear();
    }

    fn fits(&self, len: usize) -> bool {
        self.data.len() + len <= BATCH_BYTES
    }

    fn push(&mut self, datagram: &[u8]) {
        self.datagrams.push((self.data.len(), datagram.len()));
        self.data.extend_from_slice(datagram);
    }

    /// The datagrams, in arrival order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.datagrams
            .iter()
            .filter_map(|&(start, len)| self.data.get(start..start + len))
    }
}

/// The socket side of the hand-over: full batches go out, empty ones come
/// back, at most `max_batches` exist.
pub(super) struct SocketLoop {
    pub socket: UdpSocket,
    pub full: SyncSender<Batch>,
    pub empty: Receiver<Batch>,
    pub max_batches: usize,
    pub stats: Arc<SharedStats>,
    /// Batches sent and not yet taken by the decode thread.
    pub queued: Arc<AtomicUsize>,
}

/// Hands datagrams to batches.
struct Batcher<'a> {
    full: &'a SyncSender<Batch>,
    empty: &'a Receiver<Batch>,
    stats: &'a SharedStats,
    queued: &'a AtomicUsize,
    current: Option<Batch>,
    allocated: usize,
    max_batches: usize,
    /// The decode thread is gone: stop.
    closed: bool,
}

impl Batcher<'_> {
    fn take_batch(&mut self) -> Option<Batch> {
        match self.empty.try_recv() {
            Ok(mut batch) => {
                batch.clear();
                Some(batch)
            }
            Err(TryRecvError::Empty) if self.allocated < self.max_batches => {
                self.allocated += 1;
                Some(Batch::new())
            }
            Err(_) => None,
        }
    }

    /// Whether the current batch holds datagrams.
    fn pending(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|b| !b.datagrams.is_empty())
    }

    fn push(&mut self, datagram: &[u8]) {
        if self
            .current
            .as_ref()
            .is_some_and(|b| !b.fits(datagram.len()))
        {
            self.flush();
        }
        if self.current.is_none() {
            self.current = self.take_batch();
        }
        match &mut self.current {
            Some(batch) => batch.push(datagram),
            None => {
                self.stats.dropped_lagging.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&mut self) {
        if let Some(batch) = self.current.take() {
            if batch.datagrams.is_empty() {
                self.current = Some(batch);
                return;
            }
            self.queued.fetch_add(1, Ordering::Relaxed);
            if self.full.send(batch).is_err() {
                // The channel holds every batch there is, so `send` never
                // waits; it fails only when the decode thread has ended.
                self.closed = true;
            }
        }
    }
}

impl SocketLoop {
    /// Runs until `stop` is set or the decode thread ends.
    pub fn run(self, stop: &AtomicBool) -> io::Result<()> {
        let state = UdpSocketState::new((&self.socket).into())?;
        let mut scratch = vec![0u8; quinn_udp::BATCH_SIZE * SLOT_BYTES];
        let mut metas = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
        let mut batcher = Batcher {
            full: &self.full,
            empty: &self.empty,
            stats: &self.stats,
            queued: &self.queued,
            current: None,
            allocated: 0,
            max_batches: self.max_batches.max(2),
            closed: false,
        };
        while !stop.load(Ordering::Relaxed) && !batcher.closed {
            let wait = if batcher.pending() {
                LINGER_MS
            } else {
                POLL_MS
            };
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(wait)) {
                Ok(0) => {
                    batcher.flush();
                    continue;
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            // Drain everything the kernel holds.
            loop {
                let received = {
                    let mut slots = scratch.chunks_mut(SLOT_BYTES);
                    let mut bufs: [IoSliceMut<'_>; quinn_udp::BATCH_SIZE] =
                        std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
                    state.recv((&self.socket).into(), &mut bufs, &mut metas)
                };
                let n = match received {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // E.g. an ICMP error queued on the socket: count it
                        // and go on receiving.
                        self.stats.receive_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("receive error: {e}");
                        break;
                    }
                };
                let (mut datagrams, mut bytes, mut coalesced) = (0, 0, 0);
                for (i, meta) in metas.iter().take(n).enumerate() {
                    let start = i * SLOT_BYTES;
                    let Some(buf) = scratch.get(start..start + meta.len.min(SLOT_BYTES)) else {
                        continue;
                    };
                    // A GRO train: datagrams of `stride` bytes back to
                    // back, the last one possibly shorter.
                    let stride = if meta.stride == 0 {
                        buf.len()
                    } else {
                        meta.stride
                    };
                    let before = datagrams;
                    for datagram in buf.chunks(stride.max(1)) {
                        datagrams += 1;
                        bytes += datagram.len() as u64;
                        batcher.push(datagram);
                    }
                    if datagrams - before > 1 {
                        coalesced += datagrams - before;
                    }
                }
                self.stats.datagrams.fetch_add(datagrams, Ordering::Relaxed);
                self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.stats.coalesced.fetch_add(coalesced, Ordering::Relaxed);
            }
            // An idle decode thread gets the partial batch at once; a busy
            // one lets it fill (up to LINGER_MS), so that a queue of
            // nearly empty batches does not run out while bytes remain.
            if self.queued.load(Ordering::Relaxed) == 0 {
                batcher.flush();
            }
        }
        Ok(())
    }
}
