//! `application/simpleSymbolContainer` (TS 26.346 §9.3.6): a sequence of
//! entries, each
//!
//! ```text
//! | symbol count (16) | FEC Payload ID (32) | count × T bytes of symbols |
//! ```
//!
//! where the symbols carry consecutive ESIs from the payload id's. Every
//! symbol is T bytes: the object's short last source symbol is zero-padded
//! (receivers accept it padded).

use dms_fec::{FecScheme, PAYLOAD_ID_LEN, PayloadId, SymbolError};

/// The media type of symbol repair answers.
pub const CONTENT_TYPE: &str = "application/simpleSymbolContainer";

/// Bytes before the symbols of an entry.
pub const ENTRY_HEADER_LEN: usize = 2 + PAYLOAD_ID_LEN;

/// Why a container is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The body ends inside an entry.
    #[error("container truncated at byte {0}")]
    Truncated(usize),
    /// An entry with no symbols.
    #[error("empty entry at byte {0}")]
    EmptyEntry(usize),
    /// A payload id the scheme cannot carry, or ESIs running past its limit.
    #[error("bad payload id: {0}")]
    PayloadId(#[from] SymbolError),
    /// Symbol size 0.
    #[error("symbol size is 0")]
    ZeroSymbolSize,
}

/// The header of an entry of `count` symbols from `first`; fails if the
/// count is 0 or the ids do not fit the scheme.
pub fn entry_header(
    scheme: FecScheme,
    first: PayloadId,
    count: u16,
) -> Result<[u8; ENTRY_HEADER_LEN], ContainerError> {
    if count == 0 {
        return Err(ContainerError::EmptyEntry(0));
    }
    // The last ESI must fit the scheme too.
    PayloadId::new(first.sbn, first.esi.saturating_add(u32::from(count) - 1)).encode(scheme)?;
    let id = first.encode(scheme)?;
    let c = count.to_be_bytes();
    Ok([c[0], c[1], id[0], id[1], id[2], id[3]])
}

/// Appends one entry: `symbols` holds `symbols.len() / T` symbols (a whole
/// number, at least one, at most 65535) with ESIs from `first.esi`.
pub fn write_entry(
    out: &mut Vec<u8>,
    scheme: FecScheme,
    first: PayloadId,
    symbol_size: u16,
    symbols: &[u8],
) -> Result<(), ContainerError> {
    let t = usize::from(symbol_size);
    if t == 0 {
        return Err(ContainerError::ZeroSymbolSize);
    }
    if !symbols.len().is_multiple_of(t) {
        return Err(ContainerError::Truncated(out.len()));
    }
    let count =
        u16::try_from(symbols.len() / t).map_err(|_| ContainerError::EmptyEntry(out.len()))?;
    out.extend_from_slice(&entry_header(scheme, first, count)?);
    out.extend_from_slice(symbols);
    Ok(())
}

/// Reads the symbols of a container.
#[derive(Debug, Clone)]
pub struct ContainerReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    scheme: FecScheme,
    t: usize,
    /// The current entry: next payload id and symbols left.
    current: Option<(PayloadId, usize)>,
    failed: bool,
}

impl<'a> ContainerReader<'a> {
    /// A reader of `bytes` for an object of this scheme and symbol size.
    pub fn new(bytes: &'a [u8], scheme: FecScheme, symbol_size: u16) -> Self {
        ContainerReader {
            bytes,
            pos: 0,
            scheme,
            t: usize::from(symbol_size),
            current: None,
            failed: false,
        }
    }

    fn next_symbol(&mut self) -> Result<Option<(PayloadId, &'a [u8])>, ContainerError> {
        if self.t == 0 {
            return Err(ContainerError::ZeroSymbolSize);
        }
        if self.current.is_none() {
            if self.pos == self.bytes.len() {
                return Ok(None);
            }
            let head = self
                .bytes
                .get(self.pos..self.pos + ENTRY_HEADER_LEN)
                .ok_or(ContainerError::Truncated(self.pos))?;
            let count = usize::from(u16::from_be_bytes([head[0], head[1]]));
            if count == 0 {
                return Err(ContainerError::EmptyEntry(self.pos));
            }
            let id = PayloadId::decode(self.scheme, &head[2..])?;
            // The last ESI must fit the scheme too.
            PayloadId::new(id.sbn, id.esi + count as u32 - 1).encode(self.scheme)?;
            if self.bytes.len() - self.pos - ENTRY_HEADER_LEN < count * self.t {
                return Err(ContainerError::Truncated(self.pos));
            }
            self.pos += ENTRY_HEADER_LEN;
            self.current = Some((id, count));
        }
        let Some((id, left)) = self.current else {
            return Ok(None);
        };
        // Checked above: the whole entry is in the buffer.
        let symbol = &self.bytes[self.pos..self.pos + self.t];
        self.pos += self.t;
        self.current = (left > 1).then_some((PayloadId::new(id.sbn, id.esi + 1), left - 1));
        Ok(Some((id, symbol)))
    }
}

impl<'a> Iterator for ContainerReader<'a> {
    type Item = Result<(PayloadId, &'a [u8]), ContainerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_symbol() {
            Ok(Some(s)) => Some(Ok(s)),
            Ok(None) => None,
            Err(e) => {
                // Stop after the first error.
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write_entry(
            &mut out,
            FecScheme::RaptorQ,
            PayloadId::new(3, 10),
            4,
            b"aaaabbbb",
        )
        .unwrap();
        write_entry(
            &mut out,
            FecScheme::RaptorQ,
            PayloadId::new(1, 900),
            4,
            b"cccc",
        )
        .unwrap();
        assert_eq!(&out[..6], &[0, 2, 3, 0, 0, 10]);
        let got: Vec<_> = ContainerReader::new(&out, FecScheme::RaptorQ, 4)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            vec![
                (PayloadId::new(3, 10), &b"aaaa"[..]),
                (PayloadId::new(3, 11), &b"bbbb"[..]),
                (PayloadId::new(1, 900), &b"cccc"[..]),
            ]
        );
    }

    #[test]
    fn malformed() {
        let read = |b: &[u8]| {
            ContainerReader::new(b, FecScheme::NoCode, 4)
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.len())
        };
        assert_eq!(read(&[]), Ok(0));
        assert_eq!(read(&[0, 1, 0]), Err(ContainerError::Truncated(0)));
        assert_eq!(
            read(&[0, 0, 0, 0, 0, 0]),
            Err(ContainerError::EmptyEntry(0))
        );
        assert_eq!(
            read(&[0, 2, 0, 0, 0, 0, 1, 2, 3, 4]),
            Err(ContainerError::Truncated(0))
        );
        // No-code ESIs are 16 bits: 0xFFFF + 1 symbol runs past the limit.
        assert!(matches!(
            read(&[0, 2, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(ContainerError::PayloadId(_))
        ));
        assert_eq!(
            ContainerReader::new(&[0, 1, 0, 0, 0, 0], FecScheme::NoCode, 0).next(),
            Some(Err(ContainerError::ZeroSymbolSize))
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), t in 0u16..8) {
            for scheme in [FecScheme::RaptorQ, FecScheme::NoCode] {
                for (_, s) in ContainerReader::new(&bytes, scheme, t).map_while(Result::ok) {
                    prop_assert_eq!(s.len(), usize::from(t));
                }
            }
        }
    }
}
