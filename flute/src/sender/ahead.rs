//! Repair symbols made off the sender's thread.
//!
//! RaptorQ encoding is most of a sender's work (the sender encodes each
//! block in line, just before its packets). A driver with a spare core can
//! do it ahead instead, sans-IO style: it asks the sender which blocks it
//! will encode next ([`Sender::repair_jobs`], in sending order), makes
//! their repair symbols wherever it likes with [`RepairJob::encode`] (the
//! very code the sender would run) reading a second handle on the object,
//! and hands them back with [`Sender::supply_repair`]. A block that arrives
//! too late is refused and the sender encodes it itself, so a slow helper
//! costs time, never correctness.
//!
//! ```text
//!  driver thread                              helper thread
//!  repair_jobs() ─── jobs in send order ───>  read block, RepairJob::encode
//!  supply_repair(job, symbols) <──────────── (job, symbols)
//!  poll_transmit ... (takes supplied symbols instead of encoding)
//! ```

use std::io::{Read, Seek};

use dms_fec::{BlockEncoder, FecError, Layout, read_block};

use super::{Sender, Toi};

/// One block whose repair symbols the sender will need: what a helper
/// needs to make exactly the symbols the sender would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairJob {
    toi: Toi,
    sbn: u32,
    layout: Layout,
    /// Source symbols of the block.
    k: u32,
    /// Repair symbols sent for it (ESIs K..K+repair).
    repair: u32,
}

impl RepairJob {
    /// The object's TOI.
    pub fn toi(&self) -> Toi {
        self.toi
    }

    /// The source block number.
    pub fn sbn(&self) -> u32 {
        self.sbn
    }

    /// Bytes of the block's repair symbols (repair count × T).
    pub fn repair_bytes(&self) -> usize {
        self.repair as usize * usize::from(self.layout.symbol_size())
    }

    /// Reads the block from `source` (a second handle on the object's
    /// bytes, positioned anywhere) into `buf` and makes its repair
    /// symbols, back to back, as the sender would.
    pub fn encode<R: Read + Seek>(
        &self,
        source: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<u8>, FecError> {
        read_block(source, &self.layout, self.sbn, buf)?;
        let encoder = BlockEncoder::new(&self.layout, self.sbn, buf)?;
        let mut symbols = vec![0u8; self.repair_bytes()];
        encoder.write_repair_symbols(self.k, self.repair, &mut symbols)?;
        Ok(symbols)
    }
}

impl Sender {
    /// The blocks this sender would encode next, in sending order: the rest
    /// of the current round (or the next round when none is under way),
    /// without the block being sent now, blocks whose repair symbols are
    /// kept or supplied already, and blocks with no repair symbols. Later
    /// rounds reuse the first round's symbols, so this covers a session's
    /// encoding.
    pub fn repair_jobs(&self) -> Vec<RepairJob> {
        let order = if self.queue.is_empty() {
            self.round_order()
        } else {
            self.queue.iter().copied().collect()
        };
        order
            .into_iter()
            .filter_map(|(obj, sbn)| self.job(obj, sbn))
            .collect()
    }

    /// The job of the block the next data packet starts, when the sender
    /// would encode it itself: `None` while a block is under way, when the
    /// next block has no repair symbols or has them already, or when
    /// nothing is left. A driver whose helper is making that block can wait
    /// for it rather than have it made twice.
    pub fn next_repair_job(&self) -> Option<RepairJob> {
        if self.current.is_some() {
            return None;
        }
        let (obj, sbn) = match self.queue.iter().find(|(o, _)| self.is_live(*o)) {
            Some(&next) => next,
            None => self.round_order().first().copied()?,
        };
        self.job(obj, sbn)
    }

    /// The job of block `sbn` of object `obj`, if the sender would encode it.
    fn job(&self, obj: usize, sbn: u32) -> Option<RepairJob> {
        self.job_unless_kept(obj, sbn)
            .filter(|_| !self.supplied.contains_key(&(obj, sbn)))
    }

    /// The job of block `sbn` of object `obj`, if it has repair symbols
    /// and the object is live and does not keep them from an earlier round
    /// (supplied ones may still be replaced).
    fn job_unless_kept(&self, obj: usize, sbn: u32) -> Option<RepairJob> {
        let o = self.objects.get(obj).filter(|o| !o.failed)?;
        let k = o.layout.source_symbols(sbn)?;
        let repair = o.repair_count(k);
        let kept = o
            .repair_cache
            .get(sbn as usize)
            .is_some_and(Option::is_some);
        (repair > 0 && !kept).then_some(RepairJob {
            toi: o.toi,
            sbn,
            layout: o.layout,
            k,
            repair,
        })
    }

    /// Takes the repair symbols of `job`'s block, made by
    /// [`RepairJob::encode`], so the sender need not encode the block.
    /// Returns `false` (and drops them) when they come too late or are not
    /// needed: the block is being sent or was sent in its last round, its
    /// symbols are kept already, the object was abandoned, or the length is
    /// not the job's.
    pub fn supply_repair(&mut self, job: &RepairJob, symbols: Vec<u8>) -> bool {
        let Some(obj) = self.objects.iter().position(|o| o.toi == job.toi) else {
            return false;
        };
        // Live, with repair symbols (so a non-empty length), none kept.
        let Some(expected) = self.job_unless_kept(obj, job.sbn) else {
            return false;
        };
        let sending = self
            .current
            .is_some_and(|u| u.obj == obj && u.sbn == job.sbn);
        let ahead = self.queue.contains(&(obj, job.sbn))
            || self.objects.get(obj).is_some_and(|o| o.rounds_left > 0);
        if expected.repair_bytes() != symbols.len() || sending || !ahead {
            return false;
        }
        self.supplied_bytes += symbols.len() as u64;
        if let Some(old) = self.supplied.insert((obj, job.sbn), symbols) {
            self.supplied_bytes -= old.len() as u64;
        }
        true
    }

    /// Bytes of supplied repair symbols not yet taken by a block.
    pub fn supplied_bytes(&self) -> u64 {
        self.supplied_bytes
    }

    /// The supplied repair symbols of block `sbn` of object `obj`, taken.
    pub(super) fn take_supplied(&mut self, obj: usize, sbn: u32) -> Option<Vec<u8>> {
        let symbols = self.supplied.remove(&(obj, sbn))?;
        self.supplied_bytes -= symbols.len() as u64;
        Some(symbols)
    }

    /// Drops the supplied symbols of an abandoned object.
    pub(super) fn drop_supplied(&mut self, obj: usize) {
        self.supplied.retain(|&(o, _), _| o != obj);
        self.supplied_bytes = self.supplied.values().map(|s| s.len() as u64).sum();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::collections::HashMap;
    use std::io::Cursor;
    use std::time::{Duration, Instant};

    use dms_fec::{BlockSize, FecScheme};

    use super::super::tests::{
        Sent, block_sequence, bytes_of, config, decode_fdt, object, pattern, receive, run,
    };
    use super::*;
    use crate::sender::{SenderError, TransmitKind};

    /// A sender with two RaptorQ objects of equal priority (interleaved)
    /// and one of higher priority; returns it with TOI → bytes.
    fn sender(rounds: u32) -> (Sender, HashMap<Toi, Vec<u8>>) {
        let mut cfg = config();
        cfg.carousel_rounds = rounds;
        let mut sender = Sender::new(cfg).unwrap();
        let mut objects = HashMap::new();
        for (i, (len, priority)) in [(40_000, 0), (25_000, 0), (9_000, 7)]
            .into_iter()
            .enumerate()
        {
            let data = pattern(len, i as u8);
            let mut spec = object(&format!("o{i}"), data.clone(), FecScheme::RaptorQ, 256);
            spec.block_size = BlockSize::Bytes(8 * 1024);
            spec.repair_percent = 25;
            spec.priority = priority;
            objects.insert(sender.add_object(spec).unwrap(), data);
        }
        (sender, objects)
    }

    /// Makes every job's symbols from a second copy of the object's bytes
    /// and supplies them; returns how many were taken.
    fn supply_all(sender: &mut Sender, objects: &HashMap<Toi, Vec<u8>>) -> usize {
        let mut buf = Vec::new();
        let mut taken = 0;
        for job in sender.repair_jobs() {
            let mut source = Cursor::new(objects[&job.toi()].clone());
            let symbols = job.encode(&mut source, &mut buf).unwrap();
            assert_eq!(symbols.len(), job.repair_bytes());
            taken += usize::from(sender.supply_repair(&job, symbols));
        }
        taken
    }

    fn data_packets(sent: &[Sent]) -> Vec<&[u8]> {
        sent.iter()
            .filter(|s| s.kind == TransmitKind::Data)
            .map(|s| s.bytes.as_slice())
            .collect()
    }

    #[test]
    fn supplied_symbols_replace_encoding_and_send_the_same_packets() {
        let start = Instant::now();
        let step = Duration::from_micros(1);
        let (mut plain, objects) = sender(1);
        let jobs = plain.repair_jobs();
        let sent_plain = run(&mut plain, start, step);
        // The jobs come in sending order, one per block.
        let order: Vec<(Toi, u32)> = jobs.iter().map(|j| (j.toi(), j.sbn())).collect();
        assert_eq!(order, block_sequence(&sent_plain));

        let (mut ahead, _) = sender(1);
        assert_eq!(supply_all(&mut ahead, &objects), jobs.len());
        let held: usize = jobs.iter().map(RepairJob::repair_bytes).sum();
        assert_eq!(ahead.supplied_bytes(), held as u64);
        assert!(ahead.repair_jobs().is_empty(), "nothing left to encode");
        let sent = run(&mut ahead, start, step);

        assert_eq!(data_packets(&sent), data_packets(&sent_plain));
        assert_eq!(ahead.stats().blocks_encoded, 0);
        assert_eq!(ahead.stats().blocks_supplied, jobs.len() as u64);
        assert_eq!(ahead.supplied_bytes(), 0);
        assert_eq!(receive(bytes_of(&sent)), objects);
    }

    #[test]
    fn supplied_symbols_serve_every_carousel_round() {
        let (mut sender, objects) = sender(3);
        let blocks = supply_all(&mut sender, &objects);
        let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
        assert_eq!(sender.stats().blocks_encoded, 0);
        assert_eq!(sender.stats().blocks_supplied, blocks as u64);
        assert_eq!(block_sequence(&sent).len(), 3 * blocks);
        assert_eq!(receive(bytes_of(&sent)), objects);
    }

    #[test]
    fn late_wrong_or_unneeded_symbols_are_refused() {
        let (mut sender, objects) = sender(1);
        let jobs = sender.repair_jobs();
        let mut buf = Vec::new();
        let encode = |job: &RepairJob, buf: &mut Vec<u8>| {
            job.encode(&mut Cursor::new(objects[&job.toi()].clone()), buf)
                .unwrap()
        };
        // A wrong length.
        let mut short = encode(&jobs[1], &mut buf);
        short.pop();
        assert!(!sender.supply_repair(&jobs[1], short));

        // Send the FDT and the first data packet: block jobs[0] is under way.
        let mut out = vec![0u8; sender.config().max_datagram_size];
        let now = Instant::now();
        while sender.poll_transmit(now, &mut out).unwrap().unwrap().kind == TransmitKind::Fdt {}
        assert!(!sender.supply_repair(&jobs[0], encode(&jobs[0], &mut buf)));
        assert_eq!(sender.repair_jobs(), jobs[1..].to_vec());
        // The rest are taken, and the session still delivers every object.
        for job in &jobs[1..] {
            assert!(sender.supply_repair(job, encode(job, &mut buf)));
        }
        // A job of an object this sender does not have.
        let (mut other, _) = self::sender(1);
        let mut spec = object("x", pattern(5000, 9), FecScheme::RaptorQ, 256);
        spec.repair_percent = 25;
        let toi = other.add_object(spec).unwrap();
        let foreign = other
            .repair_jobs()
            .into_iter()
            .find(|j| j.toi() == toi)
            .unwrap();
        let symbols = foreign
            .encode(&mut Cursor::new(pattern(5000, 9)), &mut buf)
            .unwrap();
        assert!(!sender.supply_repair(&foreign, symbols));

        while sender.poll_transmit(now, &mut out).unwrap().is_some() {}
        assert_eq!(sender.stats().blocks_encoded, 1, "only the block under way");
        assert_eq!(sender.stats().blocks_supplied, jobs.len() as u64 - 1);
        // A block sent in its last round takes nothing any more.
        assert!(!sender.supply_repair(&jobs[2], encode(&jobs[2], &mut buf)));
        assert_eq!(sender.supplied_bytes(), 0);
    }

    #[test]
    fn the_next_job_is_the_block_about_to_start() {
        let (mut sender, objects) = sender(1);
        let jobs = sender.repair_jobs();
        assert_eq!(sender.next_repair_job(), Some(jobs[0]));
        let mut out = vec![0u8; sender.config().max_datagram_size];
        let now = Instant::now();
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        loop {
            let next = sender.next_repair_job();
            let Some(t) = sender.poll_transmit(now, &mut out).unwrap() else {
                break;
            };
            if let (TransmitKind::Data, Some(started)) = (t.kind, next) {
                starts.push(started);
                // Supply the block after each even one: the sender then
                // never names it as its next job.
                let at = jobs.iter().position(|j| *j == started).unwrap();
                if at % 2 == 0 && at + 1 < jobs.len() {
                    let job = jobs[at + 1];
                    let mut source = Cursor::new(objects[&job.toi()].clone());
                    let symbols = job.encode(&mut source, &mut buf).unwrap();
                    assert!(sender.supply_repair(&job, symbols));
                }
            }
        }
        let expected: Vec<RepairJob> = jobs.iter().copied().step_by(2).collect();
        assert_eq!(starts, expected);
        assert_eq!(sender.next_repair_job(), None);
    }

    #[test]
    fn no_code_objects_have_no_jobs() {
        let mut sender = Sender::new(config()).unwrap();
        sender
            .add_object(object("n", pattern(10_000, 1), FecScheme::NoCode, 256))
            .unwrap();
        assert!(sender.repair_jobs().is_empty());
    }

    #[test]
    fn digests_set_after_adding_go_out_in_the_first_fdt() {
        let mut sender = Sender::new(config()).unwrap();
        let toi = sender
            .add_object(object("d", pattern(3000, 2), FecScheme::RaptorQ, 256))
            .unwrap();
        sender
            .set_digests(toi, Some([5; 16]), Some([6; 32]))
            .unwrap();
        assert!(matches!(
            sender.set_digests(toi + 1, None, None),
            Err(SenderError::UnknownObject(t)) if t == toi + 1
        ));
        let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
        let first_fdt: Vec<&[u8]> = sent
            .iter()
            .take_while(|s| s.kind == TransmitKind::Fdt)
            .map(|s| s.bytes.as_slice())
            .collect();
        let fdt = decode_fdt(first_fdt.into_iter());
        let file = fdt.file(toi).unwrap();
        assert_eq!(file.content_md5, Some([5; 16]));
        assert_eq!(file.sha256, Some([6; 32]));
    }
}
