//! The writer every decoded byte goes through: it hashes, counts, and
//! stops the decoder as soon as it produces more than the header's target
//! size (so a hostile delta cannot fill the disk).

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// Why the sink refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The decoder produced more than the target size.
    Overrun,
    /// The inner writer failed.
    Inner,
}

/// A hashing, size-capped writer.
pub(crate) struct Sink<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
    pub(crate) refused: Option<Refusal>,
}

impl<W: Write> Sink<W> {
    pub(crate) fn new(inner: W, limit: u64) -> Self {
        Sink {
            inner,
            hasher: Sha256::new(),
            written: 0,
            limit,
            refused: None,
        }
    }

    /// Bytes accepted so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The SHA-256 of the bytes accepted, and the inner writer.
    pub(crate) fn finish(self) -> ([u8; 32], W) {
        (self.hasher.finalize().into(), self.inner)
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.written;
        if buf.len() as u64 > room {
            self.refused = Some(Refusal::Overrun);
            return Err(io::Error::other("delta produces more than its target size"));
        }
        let n = self
            .inner
            .write(buf)
            .inspect_err(|_| self.refused = Some(Refusal::Inner))?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|_| self.refused = Some(Refusal::Inner))
    }
}
