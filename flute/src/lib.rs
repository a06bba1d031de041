//! FLUTE/ALC for dms: LCT headers and extensions (RFC 5651), ALC packets
//! (RFC 5775), FDT-Instance XML (RFC 6726 and RFC 3926), and sans-IO sender
//! and receiver state machines that turn objects into packets and packets
//! into events. No sockets and no clocks: the caller passes the time in.
