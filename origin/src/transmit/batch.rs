//! One GSO batch: datagrams written back to back into one buffer by the
//! sender, sent with one system call.
//!
//! UDP GSO wants equal-size segments, of which only the last may be
//! shorter. The sender's data packets of one object all have one size (a
//! no-code object's last symbol may be short), FDT packets another, so the
//! batch closes when a packet of another size comes: a shorter one ends it
//! as its last segment, a longer one is kept back and starts the next
//! batch.

use dms_flute::{Toi, Transmit, TransmitKind};

/// What [`Batch::commit`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commit {
    /// Appended; more may follow.
    Appended,
    /// Appended as the last segment (shorter, or the batch is full): send
    /// the batch now.
    Last,
    /// Longer than the batch's segments: send [`Batch::contents`] (which
    /// leaves it out), then [`Batch::carry`] it into the next batch.
    Overflow,
}

/// A batch being assembled. The buffer is allocated once.
#[derive(Debug)]
pub(super) struct Batch {
    buf: Vec<u8>,
    /// Largest datagram the sender writes.
    slot: usize,
    /// Most segments in one send.
    max_segments: usize,
    /// Bytes of the batch (excluding a held-back packet).
    len: usize,
    /// Size of every segment but possibly the last.
    segment: usize,
    /// Segments in the batch.
    count: usize,
    /// FDT packets in the batch.
    fdt_packets: u64,
    /// Data packets by object, merged when consecutive: (TOI, packets, bytes).
    objects: Vec<(Toi, u64, u64)>,
    /// A longer packet written after the batch, waiting for the next one.
    held: Option<Transmit>,
}

impl Batch {
    /// A batch of at most `max_bytes` bytes (at least one `slot`) and
    /// `max_segments` segments (at least 1).
    pub(super) fn new(slot: usize, max_bytes: usize, max_segments: usize) -> Self {
        Batch {
            buf: vec![0; max_bytes.max(slot)],
            slot,
            max_segments: max_segments.max(1),
            len: 0,
            segment: 0,
            count: 0,
            fdt_packets: 0,
            objects: Vec::new(),
            held: None,
        }
    }

    /// Room for the sender's next datagram, or `None` when the batch is
    /// full and must be sent.
    pub(super) fn slot(&mut self) -> Option<&mut [u8]> {
        if self.held.is_some() || self.count >= self.max_segments {
            return None;
        }
        self.buf.get_mut(self.len..self.len + self.slot)
    }

    /// Accounts for the datagram the sender just wrote into [`Batch::slot`].
    pub(super) fn commit(&mut self, t: Transmit) -> Commit {
        if self.count > 0 && t.size > self.segment {
            self.held = Some(t);
            return Commit::Overflow;
        }
        if self.count == 0 {
            self.segment = t.size;
        }
        self.append(t);
        if t.size < self.segment || self.slot().is_none() {
            Commit::Last
        } else {
            Commit::Appended
        }
    }

    fn append(&mut self, t: Transmit) {
        self.len += t.size;
        self.count += 1;
        match t.kind {
            TransmitKind::Fdt => self.fdt_packets += 1,
            TransmitKind::Data => match self.objects.last_mut() {
                Some((toi, packets, bytes)) if *toi == t.toi => {
                    *packets += 1;
                    *bytes += t.size as u64;
                }
                _ => self.objects.push((t.toi, 1, t.size as u64)),
            },
        }
    }

    /// The batch's datagrams, back to back.
    pub(super) fn contents(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The segment size, when the batch has more than one datagram.
    pub(super) fn segment_size(&self) -> Option<usize> {
        (self.count > 1).then_some(self.segment)
    }

    /// Datagrams in the batch.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// FDT datagrams in the batch.
    pub(super) fn fdt_packets(&self) -> u64 {
        self.fdt_packets
    }

    /// Data datagrams by object: (TOI, packets, bytes).
    pub(super) fn objects(&self) -> &[(Toi, u64, u64)] {
        &self.objects
    }

    /// Empties the batch after it was sent; a held-back packet becomes the
    /// first of the next batch.
    pub(super) fn carry(&mut self) {
        let held = self.held.take();
        let start = self.len;
        self.len = 0;
        self.count = 0;
        self.segment = 0;
        self.fdt_packets = 0;
        self.objects.clear();
        if let Some(t) = held {
            self.buf.copy_within(start..start + t.size, 0);
            self.segment = t.size;
            self.append(t);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn write(batch: &mut Batch, byte: u8, size: usize, kind: TransmitKind, toi: Toi) -> Commit {
        let slot = batch.slot().unwrap();
        slot[..size].fill(byte);
        batch.commit(Transmit { size, kind, toi })
    }

    #[test]
    fn equal_sizes_fill_until_the_segment_limit() {
        let mut batch = Batch::new(100, 10_000, 3);
        assert_eq!(
            write(&mut batch, 1, 80, TransmitKind::Data, 1),
            Commit::Appended
        );
        assert_eq!(
            write(&mut batch, 2, 80, TransmitKind::Data, 1),
            Commit::Appended
        );
        assert_eq!(
            write(&mut batch, 3, 80, TransmitKind::Data, 2),
            Commit::Last
        );
        assert!(batch.slot().is_none());
        assert_eq!(batch.contents().len(), 240);
        assert_eq!(batch.segment_size(), Some(80));
        assert_eq!(batch.objects(), &[(1, 2, 160), (2, 1, 80)]);
        batch.carry();
        assert_eq!(batch.count(), 0);
        assert!(batch.slot().is_some());
    }

    #[test]
    fn a_shorter_packet_ends_the_batch() {
        let mut batch = Batch::new(100, 10_000, 64);
        write(&mut batch, 1, 90, TransmitKind::Data, 1);
        assert_eq!(
            write(&mut batch, 2, 30, TransmitKind::Data, 1),
            Commit::Last
        );
        assert_eq!(batch.contents().len(), 120);
        assert_eq!(batch.segment_size(), Some(90));
    }

    #[test]
    fn a_longer_packet_is_carried_to_the_next_batch() {
        let mut batch = Batch::new(100, 10_000, 64);
        write(&mut batch, 1, 50, TransmitKind::Data, 1);
        write(&mut batch, 2, 50, TransmitKind::Data, 1);
        assert_eq!(
            write(&mut batch, 9, 100, TransmitKind::Fdt, 0),
            Commit::Overflow
        );
        assert!(batch.slot().is_none());
        assert_eq!(batch.contents().len(), 100);
        assert_eq!(batch.fdt_packets(), 0);
        batch.carry();
        assert_eq!(batch.count(), 1);
        assert_eq!(batch.contents(), &[9u8; 100][..]);
        assert_eq!(batch.fdt_packets(), 1);
        assert_eq!(batch.segment_size(), None);
    }

    #[test]
    fn the_byte_limit_bounds_the_batch() {
        let mut batch = Batch::new(100, 250, 64);
        write(&mut batch, 1, 100, TransmitKind::Data, 1);
        assert_eq!(
            write(&mut batch, 1, 100, TransmitKind::Data, 1),
            Commit::Last
        );
        assert!(batch.slot().is_none());
    }
}
