//! What the sender reports: each datagram ([`Transmit`]) and its counters
//! ([`SenderStats`]).

/// One datagram written by [`Sender::poll_transmit`](super::Sender::poll_transmit).
#[must_use = "the datagram must be sent"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Length of the datagram at the start of the caller's buffer.
    pub size: usize,
    /// What the datagram carries.
    pub kind: TransmitKind,
    /// The packet's TOI (0 for the FDT).
    pub toi: u128,
}

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransmitKind {
    /// A packet of an FDT Instance (TOI 0).
    Fdt,
    /// A source or repair symbol of an object.
    Data,
}

/// Counters of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Datagrams written.
    pub packets: u64,
    /// Bytes written (datagram lengths).
    pub bytes: u64,
    /// FDT datagrams written.
    pub fdt_packets: u64,
    /// Complete FDT Instance transmissions.
    pub fdt_transmissions: u64,
    /// Source blocks run through the RaptorQ encoder (once per block with
    /// repair symbols, however many carousel rounds).
    pub blocks_encoded: u64,
    /// Blocks whose repair symbols the driver made ahead
    /// ([`Sender::supply_repair`](super::Sender::supply_repair)) instead.
    pub blocks_supplied: u64,
    /// Per object, in TOI order.
    pub objects: Vec<ObjectStats>,
}

/// Counters of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectStats {
    /// The object's TOI.
    pub toi: u128,
    /// Datagrams written.
    pub packets: u64,
    /// Bytes written (datagram lengths).
    pub bytes: u64,
    /// Source symbols sent.
    pub source_symbols: u64,
    /// Repair symbols sent.
    pub repair_symbols: u64,
    /// Blocks run through the encoder.
    pub blocks_encoded: u64,
    /// Blocks sent completely (counting each round).
    pub blocks_sent: u64,
    /// Carousel rounds completed.
    pub rounds_completed: u32,
    /// Whether reading the object failed and it was abandoned.
    pub failed: bool,
}

impl SenderStats {
    /// The counters of the object with this TOI.
    pub fn object(&self, toi: u128) -> Option<&ObjectStats> {
        self.objects.iter().find(|o| o.toi == toi)
    }
}
