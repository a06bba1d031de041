//! Encoding ahead: a helper thread makes the RaptorQ repair symbols of the
//! blocks the sender will send next, so the sending thread only reads,
//! packs and sends. The sender says which blocks, in which order
//! ([`Sender::repair_jobs`]); the helper reads each from a second handle on
//! the object and encodes it with [`RepairJob::encode`]; the transmitter
//! hands each finished block to the sender ([`Sender::supply_repair`]) just
//! before the sender needs it.
//!
//! ```text
//!  helper thread:  job i ──read──> encode ──> ready queue (≤ budget bytes)
//!  run() loop:     sender holds no supplied block? ── pop ──> supply_repair
//! ```
//!
//! Memory is bounded by the budget (finished blocks waiting) plus one
//! block in the sender. When the sender is about to start a block the
//! helper is making at that moment, the transmitter waits for it (a few
//! milliseconds at most): sending one block while the next is encoded is
//! what doubles the rate. A helper that falls behind skips the blocks the
//! sender has started (it encodes those itself); a wait that times out
//! (the helper starved of CPU) turns the waiting off for the rest of the
//! run.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dms_flute::sender::{ObjectSource, RepairJob};
use dms_flute::{Sender, Toi};

/// Second handles on objects' bytes, by TOI, for the helper.
#[derive(Default)]
pub(super) struct AheadReaders(pub(super) HashMap<Toi, Box<dyn ObjectSource>>);

impl std::fmt::Debug for AheadReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Blocks made, waiting for the sender.
#[derive(Default)]
struct Ready {
    blocks: VecDeque<(RepairJob, Vec<u8>)>,
    /// Bytes in `blocks`.
    bytes: u64,
    /// The block the helper is making now, as (TOI, SBN).
    making: Option<(Toi, u32)>,
    /// The helper has made (or skipped) every job.
    done: bool,
    /// The transmitter is gone: the helper stops.
    closed: bool,
}

/// State shared by the helper and the transmitter.
#[derive(Default)]
struct Shared {
    ready: Mutex<Ready>,
    /// Signalled when the helper may go on (room in the budget, or closed).
    room: Condvar,
    /// Signalled when the helper has made a block (or is done).
    made: Condvar,
    /// Blocks with repair symbols the sender has started since the jobs
    /// were listed (encoded itself or supplied): the helper skips jobs
    /// before this index.
    started: AtomicU64,
}

/// The helper thread and its queue. Dropping it stops the helper.
pub(super) struct EncodeAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The sender's started-block count when the jobs were listed.
    base: u64,
    /// Every job is made and handed over: nothing more to feed.
    finished: bool,
    /// Wait for a block the helper is making (off after a wait times out).
    patient: bool,
}

/// Longest wait for the block the helper is making: a 1 MiB block
/// encodes in about 1 ms here; past this the helper is starved of CPU.
const MAX_WAIT: Duration = Duration::from_millis(20);

impl std::fmt::Debug for EncodeAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeAhead")
            .field("base", &self.base)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Supplies the first waiting block the sender takes (dropping those it
/// has passed); whether one was taken.
fn supply_next(shared: &Shared, ready: &mut Ready, sender: &mut Sender) -> bool {
    while let Some((job, symbols)) = ready.blocks.pop_front() {
        ready.bytes -= symbols.len() as u64;
        shared.room.notify_one();
        if sender.supply_repair(&job, symbols) {
            return true;
        }
    }
    false
}

/// Blocks the sender has started that had repair symbols.
fn started(sender: &Sender) -> u64 {
    sender.stats().blocks_encoded + sender.stats().blocks_supplied
}

impl EncodeAhead {
    /// Starts a helper for the sender's upcoming blocks, reading objects
    /// from `readers` (by TOI; blocks of other objects are left to the
    /// sender) and keeping at most `budget` bytes of finished symbols
    /// waiting (at least one block). With `idle`, the helper runs only on
    /// spare CPU. `None` when there is nothing to do.
    pub(super) fn start(
        sender: &Sender,
        readers: HashMap<Toi, Box<dyn ObjectSource>>,
        budget: u64,
        idle: bool,
    ) -> std::io::Result<Option<Self>> {
        let jobs: Vec<RepairJob> = sender
            .repair_jobs()
            .into_iter()
            .filter(|j| readers.contains_key(&j.toi()))
            .collect();
        if jobs.is_empty() {
            return Ok(None);
        }
        let shared = Arc::new(Shared::default());
        let helper = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dms-encode-ahead".into())
            .spawn(move || {
                if idle {
                    run_when_idle();
                }
                make_blocks(&helper, jobs, readers, budget)
            })?;
        Ok(Some(EncodeAhead {
            shared,
            thread: Some(thread),
            base: started(sender),
            finished: false,
            patient: true,
        }))
    }

    /// Hands the sender its next block's symbols when it holds none (call
    /// before each `poll_transmit`; cheap when there is nothing to do).
    /// When the sender is about to start the block the helper is making,
    /// waits for it.
    pub(super) fn feed(&mut self, sender: &mut Sender) {
        if self.finished || sender.supplied_bytes() > 0 {
            return;
        }
        self.shared
            .started
            .store(started(sender).saturating_sub(self.base), Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        let mut ready = shared.lock();
        if supply_next(&shared, &mut ready, sender) {
            return;
        }
        let next = sender.next_repair_job().map(|j| (j.toi(), j.sbn()));
        if self.patient && next.is_some() && ready.making == next {
            let deadline = Instant::now() + MAX_WAIT;
            while ready.making == next && !ready.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::debug!("encode-ahead helper too slow: no more waiting for it");
                    self.patient = false;
                    break;
                }
                ready = shared
                    .made
                    .wait_timeout(ready, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if supply_next(&shared, &mut ready, sender) {
                return;
            }
        }
        self.finished = ready.done && ready.blocks.is_empty();
    }
}

impl Drop for EncodeAhead {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            // The helper checks `closed` between blocks: at most one
            // block's encoding to wait for.
            let _ = thread.join();
        }
    }
}

/// Lowers the calling thread to idle priority (best effort): whatever
/// must happen before the first packet (hashing the objects) and the
/// sending thread come first; the helper only uses a core they leave.
fn run_when_idle() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        tracing::debug!("encode-ahead thread keeps its priority: {e:?}");
    }
}

/// The helper's loop: each job in order, skipping those the sender has
/// started, waiting while the budget is full.
fn make_blocks(
    shared: &Shared,
    jobs: Vec<RepairJob>,
    mut readers: HashMap<Toi, Box<dyn ObjectSource>>,
    budget: u64,
) {
    let mut buf = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let passed = || (i as u64) < shared.started.load(Ordering::Relaxed);
        if passed() {
            continue;
        }
        {
            let mut ready = shared.lock();
            while !ready.closed
                && !ready.blocks.is_empty()
                && ready.bytes + job.repair_bytes() as u64 > budget
            {
                ready = shared
                    .room
                    .wait(ready)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if ready.closed {
                return;
            }
            if passed() {
                continue;
            }
            ready.making = Some((job.toi(), job.sbn()));
        }
        // A block that fails to read or encode is left to the sender,
        // which reports the error for its object.
        let made = readers
            .get_mut(&job.toi())
            .and_then(|reader| job.encode(reader, &mut buf).ok());
        let mut ready = shared.lock();
        ready.making = None;
        if let Some(symbols) = made {
            ready.bytes += symbols.len() as u64;
            ready.blocks.push_back((*job, symbols));
        }
        shared.made.notify_all();
    }
    let mut ready = shared.lock();
    ready.done = true;
    shared.made.notify_all();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::io::{Cursor, Read, Seek, SeekFrom};
    use std::time::{Duration, Instant};

    use dms_fec::{BlockSize, FecScheme};
    use dms_flute::{ObjectSpec, SenderConfig};

    use super::*;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    /// A sender with two interleaved RaptorQ objects of 12 blocks each.
    fn sender() -> (Sender, Vec<(Toi, Vec<u8>)>) {
        let mut sender = Sender::new(SenderConfig::new(5, 3_913_056_000)).unwrap();
        let mut objects = Vec::new();
        for seed in 0..2 {
            let data = bytes(12 * 4096 - 100, seed);
            let mut spec = ObjectSpec::new(format!("o{seed}"), Cursor::new(data.clone()));
            spec.fec = FecScheme::RaptorQ;
            spec.symbol_size = 128;
            spec.block_size = BlockSize::Bytes(4096);
            spec.repair_percent = 30;
            objects.push((sender.add_object(spec).unwrap(), data));
        }
        (sender, objects)
    }

    /// Every datagram, with `ahead` fed before each as the transmitter does.
    fn drive(sender: &mut Sender, mut ahead: Option<&mut EncodeAhead>) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; sender.config().max_datagram_size];
        let mut out = Vec::new();
        let now = Instant::now();
        loop {
            if let Some(a) = ahead.as_deref_mut() {
                a.feed(sender);
            }
            let Some(t) = sender.poll_transmit(now, &mut buf).unwrap() else {
                break;
            };
            out.push(buf[..t.size].to_vec());
        }
        out
    }

    /// A gate the test opens when it is done: until then a [`Held`]
    /// reader blocks, so the helper cannot make a block in time however
    /// fast or loaded the machine is.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    /// Reads like a cursor once its gate is open: a helper that falls behind.
    struct Held(Cursor<Vec<u8>>, Arc<Gate>);

    impl Read for Held {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let mut open = self.1.open.lock().unwrap();
            while !*open {
                open = self.1.opened.wait(open).unwrap();
            }
            drop(open);
            self.0.read(buf)
        }
    }

    impl Seek for Held {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.0.seek(to)
        }
    }

    fn readers(
        objects: &[(Toi, Vec<u8>)],
        gate: Option<&Arc<Gate>>,
    ) -> HashMap<Toi, Box<dyn ObjectSource>> {
        objects
            .iter()
            .map(|(toi, data)| {
                let cursor = Cursor::new(data.clone());
                let reader: Box<dyn ObjectSource> = match gate {
                    Some(gate) => Box::new(Held(cursor, Arc::clone(gate))),
                    None => Box::new(cursor),
                };
                (*toi, reader)
            })
            .collect()
    }

    /// Waits until the helper has made every block (or `limit` passes).
    fn wait_done(ahead: &EncodeAhead, limit: Duration) {
        let start = Instant::now();
        while !ahead.shared.lock().done && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn blocks_made_ahead_send_the_same_datagrams() {
        let (mut plain, _) = sender();
        let expected = drive(&mut plain, None);
        let (mut s, objects) = sender();
        let mut ahead = EncodeAhead::start(&s, readers(&objects, None), 64 << 20, false)
            .unwrap()
            .unwrap();
        wait_done(&ahead, Duration::from_secs(30));
        assert_eq!(drive(&mut s, Some(&mut ahead)), expected);
        assert_eq!(s.stats().blocks_encoded, 0);
        assert_eq!(s.stats().blocks_supplied, 24);
    }

    #[test]
    fn a_budget_of_one_block_keeps_one_block_waiting() {
        let (mut plain, _) = sender();
        let expected = drive(&mut plain, None);
        let (mut s, objects) = sender();
        let mut ahead = EncodeAhead::start(&s, readers(&objects, None), 1, false)
            .unwrap()
            .unwrap();
        let start = Instant::now();
        while ahead.shared.lock().blocks.is_empty() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Time for a second block, which the budget holds back.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            ahead.shared.lock().blocks.len(),
            1,
            "one block past the budget"
        );
        assert_eq!(drive(&mut s, Some(&mut ahead)), expected);
        assert_eq!(
            s.stats().blocks_encoded + s.stats().blocks_supplied,
            24,
            "each block encoded once"
        );
    }

    #[test]
    fn a_helper_that_falls_behind_changes_nothing_sent() {
        let (mut plain, _) = sender();
        let expected = drive(&mut plain, None);
        let (mut s, objects) = sender();
        let gate = Arc::new(Gate::default());
        let mut ahead = EncodeAhead::start(&s, readers(&objects, Some(&gate)), 64 << 20, false)
            .unwrap()
            .unwrap();
        assert_eq!(drive(&mut s, Some(&mut ahead)), expected);
        assert_eq!(s.stats().blocks_encoded, 24, "the sender made every block");
        assert_eq!(s.stats().blocks_supplied, 0);
        gate.open();
        drop(ahead); // stops the helper promptly
    }

    #[test]
    fn objects_without_a_reader_are_left_to_the_sender() {
        let (s, _) = sender();
        assert!(
            EncodeAhead::start(&s, HashMap::new(), 1 << 20, true)
                .unwrap()
                .is_none()
        );
    }
}
