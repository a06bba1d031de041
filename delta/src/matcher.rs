//! The match finder of the bsdiff-family method: bsdiff's scan (Colin
//! Percival's `bsdiff.c` 4.3) with its suffix-array search replaced by a
//! hash index of the base.
//!
//! bsdiff walks the target and, at each position, looks for the longest
//! exact match in the base; it starts a new alignment (base offset) only
//! when that match beats the current alignment by more than 8 bytes, and
//! around each switch extends the old alignment forward and the new one
//! backward *approximately* (a byte-wise difference, mostly zeros on a
//! recompiled binary whose addresses moved). Sorting the base's suffixes
//! was most of the time of a delta; here a table of the base's 8-byte
//! words (every `stride`-th position) finds a candidate in one probe, and
//! the current alignment is always tried as a second candidate, so a
//! match the table lost to a collision is rarely missed where it matters.
//! The target is cut into one slice per thread, scanned independently.

/// Bytes hashed per index entry (also the shortest match found).
const WORD: usize = 8;
/// A forward match is not extended further than this: the scan then
/// resumes past it and finds its continuation in the next probe. Bounds
/// the work of one probe in long repeated runs (zeros).
const MAX_EXTEND: usize = 1 << 12;
/// bsdiff's threshold: a new alignment must beat the current one by this.
const SWITCH_MARGIN: isize = 8;

/// One bsdiff control: `diff_len` target bytes as base bytes from
/// `base_start` plus a byte-wise difference, then `extra_len` literal
/// target bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Control {
    /// Where in the base the diff bytes start.
    pub(crate) base_start: usize,
    /// Bytes coded as base + difference.
    pub(crate) diff_len: usize,
    /// Literal bytes after them.
    pub(crate) extra_len: usize,
}

/// A hash index of a base's 8-byte words.
pub(crate) struct Index<'a> {
    base: &'a [u8],
    /// Position + 1 of the last word with this hash (0: none).
    table: Vec<u32>,
    shift: u32,
}

fn word_at(buf: &[u8], at: usize) -> u64 {
    let mut w = [0u8; WORD];
    w.copy_from_slice(&buf[at..at + WORD]);
    u64::from_le_bytes(w)
}

fn hash(word: u64, shift: u32) -> usize {
    // Fibonacci hashing: the top bits of a multiplication by 2^64/φ.
    (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

impl<'a> Index<'a> {
    /// Indexes every `stride`-th word of `base` into a table with a slot
    /// per word rounded up to a power of two (at most `1 << max_bits`; a
    /// slot keeps the last word that hashed to it), on `threads` threads
    /// (each fills its own part of the table).
    pub(crate) fn new(base: &'a [u8], stride: usize, max_bits: u32, threads: usize) -> Self {
        let stride = stride.max(1);
        let entries = (base.len() / stride).max(1);
        let bits = (usize::BITS - entries.leading_zeros()).clamp(10, max_bits.max(10));
        let shift = u64::BITS - bits;
        let mut table = vec![0u32; 1 << bits];
        let last = base.len().saturating_sub(WORD - 1);
        let parts = threads.clamp(1, 16).next_power_of_two();
        let part_len = table.len() / parts;
        std::thread::scope(|scope| {
            for (n, part) in table.chunks_mut(part_len).enumerate() {
                let lo = n * part_len;
                let mut fill = move || {
                    for pos in (0..last).step_by(stride) {
                        let slot = hash(word_at(base, pos), shift).wrapping_sub(lo);
                        if let Some(entry) = part.get_mut(slot) {
                            // Positions fit: bsdz::encode refuses inputs past 2 GiB.
                            *entry = pos as u32 + 1;
                        }
                    }
                };
                if parts == 1 {
                    fill();
                } else {
                    scope.spawn(fill);
                }
            }
        });
        Index { base, table, shift }
    }

    /// The candidate base position for the word at `target[at..]`.
    fn candidate(&self, target: &[u8], at: usize) -> Option<usize> {
        if at + WORD > target.len() {
            return None;
        }
        let entry = self.table[hash(word_at(target, at), self.shift)];
        (entry != 0).then(|| entry as usize - 1)
    }
}

/// Length of the common prefix of `a` and `b`, at most `max`.
fn common_prefix(a: &[u8], b: &[u8], max: usize) -> usize {
    let n = a.len().min(b.len()).min(max);
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + WORD <= n {
        let x = word_at(a, i) ^ word_at(b, i);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += WORD;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Scans `target[start..end]` against the index; returns the controls
/// that rebuild exactly that slice (the first starts at `start`).
pub(crate) fn scan(index: &Index<'_>, target: &[u8], start: usize, end: usize) -> Vec<Control> {
    let old = index.base;
    let new = &target[..end];
    let old_size = old.len() as isize;
    // Longest exact match at `scan`: the table's candidate or the current
    // alignment, whichever is longer (ties keep the alignment).
    let search = |scan: usize, offset: isize| -> (usize, usize) {
        let mut best = (0usize, 0usize);
        let aligned = scan as isize + offset;
        if (0..old_size).contains(&aligned) {
            let pos = aligned as usize;
            best = (pos, common_prefix(&old[pos..], &new[scan..], MAX_EXTEND));
        }
        if best.1 < MAX_EXTEND
            && let Some(pos) = index.candidate(new, scan)
        {
            let len = common_prefix(&old[pos..], &new[scan..], MAX_EXTEND);
            if len > best.1 {
                best = (pos, len);
            }
        }
        best
    };
    let same =
        |o: isize, n: usize| -> bool { (0..old_size).contains(&o) && old[o as usize] == new[n] };

    let mut controls = Vec::new();
    let (mut scan, mut len, mut pos) = (start, 0usize, 0usize);
    // The first alignment is the identity (clamped to the base).
    let (mut last_scan, mut last_pos) = (start, start.min(old.len()));
    let mut last_offset = last_pos as isize - start as isize;
    while scan < end {
        // Signed as in bsdiff.c: it dips below zero when a byte is
        // uncounted yet, and the later count restores it.
        let mut old_score = 0isize;
        scan += len;
        let mut scsc = scan;
        while scan < end {
            (pos, len) = search(scan, last_offset);
            while scsc < scan + len {
                if same(scsc as isize + last_offset, scsc) {
                    old_score += 1;
                }
                scsc += 1;
            }
            let score = len as isize;
            if (score == old_score && len != 0) || score > old_score + SWITCH_MARGIN {
                break;
            }
            if same(scan as isize + last_offset, scan) {
                old_score -= 1;
            }
            scan += 1;
        }
        if len as isize != old_score || scan >= end {
            let scan_at = scan.min(end);
            // Extend the previous alignment forward, approximately: keep
            // the prefix where matches outnumber mismatches the most.
            let (mut s, mut best, mut len_f) = (0isize, 0isize, 0usize);
            let mut i = 0usize;
            while last_scan + i < scan_at && last_pos + i < old.len() {
                if old[last_pos + i] == new[last_scan + i] {
                    s += 1;
                }
                i += 1;
                if s * 2 - i as isize > best * 2 - len_f as isize {
                    best = s;
                    len_f = i;
                }
            }
            // Extend the new match backward the same way.
            let mut len_b = 0usize;
            if scan_at < end {
                let (mut s, mut best) = (0isize, 0isize);
                let mut i = 1usize;
                while scan_at >= last_scan + i && pos >= i {
                    if old[pos - i] == new[scan_at - i] {
                        s += 1;
                    }
                    if s * 2 - i as isize > best * 2 - len_b as isize {
                        best = s;
                        len_b = i;
                    }
                    i += 1;
                }
            }
            // Where the two extensions overlap, split at the best point.
            if last_scan + len_f > scan_at - len_b {
                let overlap = (last_scan + len_f) - (scan_at - len_b);
                let (mut s, mut best, mut lens) = (0isize, 0isize, 0usize);
                for i in 0..overlap {
                    if new[last_scan + len_f - overlap + i] == old[last_pos + len_f - overlap + i] {
                        s += 1;
                    }
                    if new[scan_at - len_b + i] == old[pos - len_b + i] {
                        s -= 1;
                    }
                    if s > best {
                        best = s;
                        lens = i + 1;
                    }
                }
                len_f = len_f + lens - overlap;
                len_b -= lens;
            }
            let extra_len = (scan_at - len_b) - (last_scan + len_f);
            if len_f + extra_len > 0 {
                controls.push(Control {
                    base_start: last_pos,
                    diff_len: len_f,
                    extra_len,
                });
            }
            last_scan = scan_at - len_b;
            last_pos = pos - len_b;
            last_offset = pos as isize - scan_at as isize;
        }
    }
    controls
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// Rebuilds the slice from controls, as the decoder does.
    fn rebuild(old: &[u8], new: &[u8], start: usize, controls: &[Control]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = start;
        for c in controls {
            for i in 0..c.diff_len {
                let d = new[at + i].wrapping_sub(old[c.base_start + i]);
                out.push(old[c.base_start + i].wrapping_add(d));
            }
            at += c.diff_len;
            out.extend_from_slice(&new[at..at + c.extra_len]);
            at += c.extra_len;
        }
        out
    }

    #[test]
    fn controls_cover_each_slice_exactly() {
        let old: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut new = old.clone();
        new.splice(5000..5000, [1, 2, 3, 4, 5, 6, 7]);
        new.drain(12_000..12_500);
        for (threads, stride) in [(1, 1), (2, 1), (2, 3)] {
            // A stride above one indexes every few base positions.
            let index = Index::new(&old, stride, 20, threads);
            for (start, end) in [(0, new.len()), (0, 9000), (9000, new.len())] {
                let controls = scan(&index, &new, start, end);
                assert_eq!(rebuild(&old, &new, start, &controls), new[start..end]);
                assert!(controls.iter().all(|c| c.diff_len + c.extra_len > 0));
                // Mostly matched: few literal bytes.
                let extra: usize = controls.iter().map(|c| c.extra_len).sum();
                assert!(extra < 100, "extra {extra}");
            }
        }
    }

    #[test]
    fn common_prefix_counts_bytes() {
        assert_eq!(common_prefix(b"abcdefghijk", b"abcdefghijX", 100), 10);
        assert_eq!(common_prefix(b"abc", b"abc", 100), 3);
        assert_eq!(common_prefix(b"abcdefghijk", b"abcdefghijk", 4), 4);
        assert_eq!(common_prefix(b"", b"abc", 4), 0);
    }
}
