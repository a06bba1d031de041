//! The FEC schemes dms speaks, identified by their FEC Encoding ID.

use crate::error::OtiError;

/// A fully-specified FEC scheme, as carried in the LCT codepoint and the
/// FDT's `FEC-OTI-FEC-Encoding-ID`.
///
/// Sender and receiver code is generic over the scheme: every type in this
/// crate takes a `FecScheme` (usually via an [`Oti`](crate::Oti)) and behaves
/// accordingly, so a session can carry objects of both schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FecScheme {
    /// Compact No-Code (RFC 5445, FEC Encoding ID 0): source symbols only.
    NoCode,
    /// Raptor (RFC 5053, FEC Encoding ID 1): the 3GPP MBMS download code.
    Raptor,
    /// RaptorQ (RFC 6330, FEC Encoding ID 6).
    RaptorQ,
}

impl FecScheme {
    /// The FEC Encoding ID registered for this scheme.
    pub const fn encoding_id(self) -> u8 {
        match self {
            FecScheme::NoCode => 0,
            FecScheme::Raptor => 1,
            FecScheme::RaptorQ => 6,
        }
    }

    /// The scheme with the given FEC Encoding ID.
    pub fn from_encoding_id(id: u8) -> Result<Self, OtiError> {
        match id {
            0 => Ok(FecScheme::NoCode),
            1 => Ok(FecScheme::Raptor),
            6 => Ok(FecScheme::RaptorQ),
            other => Err(OtiError::UnknownScheme(other)),
        }
    }

    /// Largest number of source symbols in one source block.
    pub const fn max_source_symbols(self) -> u32 {
        match self {
            // ESI is 16 bits.
            FecScheme::NoCode => 1 << 16,
            // J(K) of RFC 5053 §5.7 ends at K = 8192.
            FecScheme::Raptor => 8192,
            // K'max of RFC 6330, table 2.
            FecScheme::RaptorQ => 56_403,
        }
    }

    /// Fewest source symbols in one source block: RFC 5053's J(K) starts
    /// at K = 4, so a Raptor block has at least four.
    pub const fn min_source_symbols(self) -> u32 {
        match self {
            FecScheme::Raptor => 4,
            FecScheme::NoCode | FecScheme::RaptorQ => 1,
        }
    }

    /// Largest number of source blocks in one object.
    pub const fn max_source_blocks(self) -> u32 {
        match self {
            // SBN is 16 bits.
            FecScheme::NoCode => 1 << 16,
            // Z is a 16-bit field of the OTI and 0 is invalid.
            FecScheme::Raptor => (1 << 16) - 1,
            // Z is an 8-bit field of the OTI and 0 is invalid.
            FecScheme::RaptorQ => 255,
        }
    }

    /// Largest encoding symbol id plus one.
    pub const fn esi_limit(self) -> u32 {
        match self {
            FecScheme::NoCode | FecScheme::Raptor => 1 << 16,
            FecScheme::RaptorQ => 1 << 24,
        }
    }

    /// Largest transfer length (bytes) the scheme's OTI can carry.
    pub const fn max_transfer_length(self) -> u64 {
        match self {
            // F is 48 bits; Raptor's 8192 · 65535 symbols bound it further,
            // which the OTI checks.
            FecScheme::NoCode | FecScheme::Raptor => (1 << 48) - 1,
            // RFC 6330 erratum 5548: 946270874880 rounded down to what K'max,
            // Z = 256 and T = 65535 allow; raptorq asserts on it.
            FecScheme::RaptorQ => 942_574_504_275,
        }
    }

    /// Whether the scheme can make repair symbols.
    pub const fn has_repair_symbols(self) -> bool {
        matches!(self, FecScheme::Raptor | FecScheme::RaptorQ)
    }
}

impl std::fmt::Display for FecScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FecScheme::NoCode => f.write_str("nocode"),
            FecScheme::Raptor => f.write_str("raptor"),
            FecScheme::RaptorQ => f.write_str("raptorq"),
        }
    }
}

impl std::str::FromStr for FecScheme {
    type Err = OtiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "nocode" | "no-code" | "0" => Ok(FecScheme::NoCode),
            "raptor" | "1" => Ok(FecScheme::Raptor),
            "raptorq" | "6" => Ok(FecScheme::RaptorQ),
            _ => Err(OtiError::UnknownSchemeName(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_ids_round_trip() {
        for scheme in [FecScheme::NoCode, FecScheme::Raptor, FecScheme::RaptorQ] {
            assert_eq!(
                FecScheme::from_encoding_id(scheme.encoding_id()),
                Ok(scheme)
            );
            assert_eq!(scheme.to_string().parse::<FecScheme>(), Ok(scheme));
        }
        assert_eq!(
            FecScheme::from_encoding_id(2),
            Err(OtiError::UnknownScheme(2))
        );
        assert!("reed-solomon".parse::<FecScheme>().is_err());
    }
}
