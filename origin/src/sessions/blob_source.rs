//! A stored blob as the FLUTE sender's object source: `Read + Seek` over
//! positional reads, so the sender streams each source block from the
//! blob store and never holds an object whole.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use dms_repair::BlobReader;
use md5::{Digest, Md5};

/// A cursor over a [`BlobReader`]. A clone reads the same blob with a
/// position of its own (a second handle for a helper thread, say).
#[derive(Clone)]
pub struct BlobCursor {
    blob: Arc<dyn BlobReader>,
    pos: u64,
}

impl std::fmt::Debug for BlobCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCursor")
            .field("len", &self.blob.len())
            .field("pos", &self.pos)
            .finish()
    }
}

impl BlobCursor {
    /// A cursor at the start of `blob`.
    pub fn new(blob: Box<dyn BlobReader>) -> Self {
        Self {
            blob: Arc::from(blob),
            pos: 0,
        }
    }

    /// The blob's length.
    pub fn len(&self) -> u64 {
        self.blob.len()
    }

    /// True for an empty blob.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// MD5 of the whole blob (the FDT's Content-MD5), read in 1 MiB
    /// pieces; `keep_going` is asked between pieces and `None` is returned
    /// when it says no.
    pub fn md5(&self, keep_going: impl Fn() -> bool) -> io::Result<Option<[u8; 16]>> {
        let mut buf = vec![0u8; 1 << 20];
        let mut md5 = Md5::new();
        let len = self.blob.len();
        let mut pos = 0u64;
        while pos < len {
            if !keep_going() {
                return Ok(None);
            }
            let n = usize::try_from(len - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            self.blob.read_exact_at(&mut buf[..n], pos)?;
            md5.update(&buf[..n]);
            pos += n as u64;
        }
        Ok(Some(md5.finalize().into()))
    }
}

impl Read for BlobCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.blob.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.blob.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    struct Mem(Vec<u8>);

    impl BlobReader for Mem {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let start = usize::try_from(offset).unwrap().min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
    }

    #[test]
    fn reads_seeks_and_hashes_like_a_cursor() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = BlobCursor::new(Box::new(Mem(bytes.clone())));
        assert_eq!(c.seek(SeekFrom::End(0)).unwrap(), 3_000_000);
        assert_eq!(c.seek(SeekFrom::Start(10)).unwrap(), 10);
        let mut four = [0u8; 4];
        c.read_exact(&mut four).unwrap();
        assert_eq!(&four, &bytes[10..14]);
        assert_eq!(c.seek(SeekFrom::Current(-4)).unwrap(), 10);
        assert!(c.seek(SeekFrom::Current(-11)).is_err());
        let mut all = Vec::new();
        c.seek(SeekFrom::Start(0)).unwrap();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(all, bytes);
        let expected: [u8; 16] = Md5::digest(&bytes).into();
        assert_eq!(c.md5(|| true).unwrap(), Some(expected));
        assert_eq!(c.md5(|| false).unwrap(), None);
        // A clone has its own position.
        c.seek(SeekFrom::Start(5)).unwrap();
        let mut clone = c.clone();
        clone.seek(SeekFrom::Start(100)).unwrap();
        c.read_exact(&mut four).unwrap();
        assert_eq!(&four, &bytes[5..9]);
        clone.read_exact(&mut four).unwrap();
        assert_eq!(&four, &bytes[100..104]);
    }
}
