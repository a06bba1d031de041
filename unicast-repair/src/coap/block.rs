//! The Block2 option value (RFC 7959 §2.2): `NUM (4–20 bits) | M (1) |
//! SZX (3)` as a CoAP uint of 0 to 3 bytes.
//!
//! Parsed here rather than with the message crate's block type, which keeps
//! NUM in 12 bits (block 4095 at most: 4 MiB at 1024 bytes); RFC 7959 allows
//! 20 bits (1 GiB at 1024 bytes).

/// SZX 7: reserved over UDP, BERT (RFC 8323 §6) over TCP.
pub const SZX_BERT: u8 = 7;

/// The largest block number (20 bits).
pub const MAX_NUM: u32 = (1 << 20) - 1;

/// A Block1 or Block2 option value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOption {
    /// Block number (in units of the block size; of 1024 bytes for BERT).
    pub num: u32,
    /// More blocks follow.
    pub more: bool,
    /// Size exponent: the block size is `2^(szx + 4)`; 7 is BERT.
    pub szx: u8,
}

/// A Block option value that is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// More than 3 bytes (RFC 7959 §2.2: a uint of 0 to 3 bytes).
    #[error("Block option of {0} bytes (at most 3)")]
    TooLong(usize),
}

impl BlockOption {
    /// Parses an option value (big-endian uint, 0–3 bytes).
    pub fn parse(value: &[u8]) -> Result<Self, BlockError> {
        if value.len() > 3 {
            return Err(BlockError::TooLong(value.len()));
        }
        let v = value.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b));
        Ok(BlockOption {
            num: v >> 4,
            more: v & 0x8 != 0,
            szx: (v & 0x7) as u8,
        })
    }

    /// The option value in its shortest form (no leading zero bytes).
    /// `num` is masked to 20 bits.
    pub fn encode(&self) -> Vec<u8> {
        let v = (self.num & MAX_NUM) << 4 | u32::from(self.more) << 3 | u32::from(self.szx & 7);
        uint(v)
    }

    /// Block size in bytes (1024 for BERT's unit).
    pub fn size(&self) -> u64 {
        size_of_szx(self.szx)
    }
}

/// The block size of `szx` (BERT's unit, 1024, for 7).
pub fn size_of_szx(szx: u8) -> u64 {
    1 << (szx.min(6) + 4)
}

/// The SZX of a power-of-two block size from 16 to 1024, rounding down.
pub fn szx_of_size(size: usize) -> u8 {
    let size = size.clamp(16, 1024);
    (usize::BITS - 1 - size.leading_zeros()) as u8 - 4
}

/// A CoAP uint option value: big-endian, no leading zero bytes (0 is empty).
pub fn uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    bytes[skip..].to_vec()
}

/// Reads a CoAP uint option value of at most 4 bytes.
pub fn read_uint(value: &[u8]) -> Option<u32> {
    (value.len() <= 4).then(|| value.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn block_values_round_trip_past_block_4095() {
        for (num, more, szx) in [
            (0, false, 0),
            (1, true, 6),
            (4095, true, 6),
            (4096, false, 6),
        ]
        .into_iter()
        .chain([(2000, true, 2), (MAX_NUM, false, 7)])
        {
            let b = BlockOption { num, more, szx };
            let bytes = b.encode();
            assert!(bytes.len() <= 3);
            assert_eq!(BlockOption::parse(&bytes).unwrap(), b);
        }
        // Block 0, size 16, no more: the empty value.
        assert!(
            BlockOption {
                num: 0,
                more: false,
                szx: 0
            }
            .encode()
            .is_empty()
        );
        assert_eq!(
            BlockOption::parse(&[0x01, 0x00, 0x0e]).unwrap(),
            BlockOption {
                num: 4096,
                more: true,
                szx: 6
            }
        );
        assert_eq!(BlockOption::parse(&[0; 4]), Err(BlockError::TooLong(4)));
    }

    #[test]
    fn sizes_and_exponents() {
        assert_eq!(size_of_szx(0), 16);
        assert_eq!(size_of_szx(6), 1024);
        assert_eq!(size_of_szx(7), 1024);
        assert_eq!(szx_of_size(1024), 6);
        assert_eq!(szx_of_size(1000), 5);
        assert_eq!(szx_of_size(4096), 6);
        assert_eq!(szx_of_size(1), 0);
        assert_eq!(uint(0), Vec::<u8>::new());
        assert_eq!(uint(0x1_0000), vec![1, 0, 0]);
        assert_eq!(read_uint(&[1, 0, 0]), Some(0x1_0000));
        assert_eq!(read_uint(&[0; 5]), None);
    }
}
