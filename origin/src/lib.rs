//! The DMS origin server: the object repository (redb catalog and a
//! content-addressed blob store), the management API that DM servers use,
//! download descriptors (OMA DD, FDT), signed manifests, and broadcast
//! sessions (the paced UDP transmitter that drives the FLUTE sender).
//!
//! - [`transmit`]: the paced, batched UDP transmitter that sends a FLUTE
//!   session (`dms send` and the broadcast sessions use it).

pub mod transmit;
