//! Object downloads over CoAP for constrained devices (LwM2M Firmware
//! Update, Object 5, pulls its Package URI `/5/0/1` this way):
//! `GET /dl/{id}/{name}`, the HTTP path, block-wise (RFC 7959 Block2 at
//! the size the client asks; BERT over TCP) over RFC 7252 UDP and RFC 8323
//! TCP or TLS and RFC 7252 over DTLS 1.2 (`coaps://`), from the same [`ObjectSource`](crate::ObjectSource) as the
//! HTTPS download.
//!
//! ```text
//!  datagram ──> udp::UdpEndpoint ──┐ (dedup by message id, per-client
//!  (DTLS: dtls decrypts first)     │
//!                                  │  token buckets, 5.03 + Max-Age)
//!  TCP/TLS bytes ──> tcp::TcpSession ─┤ (RFC 8323 frames, CSM, Ping/Pong)
//!                                  ▼
//!                  resource::answer (options, Block2/BERT, ETag, Size2)
//!                                  │
//!                  resource::Objects ──> SourceObjects (ObjectSource, cached)
//! ```
//!
//! Everything above the sockets is sans-IO: [`udp::UdpEndpoint`] takes
//! datagrams and `now` and returns the datagram to send;
//! [`tcp::TcpSession`] takes bytes and returns bytes. [`net`] owns the
//! sockets. The message format (options, the UDP header) is the
//! `coap-lite` crate's; Block option values are parsed here (its type
//! holds block numbers of 12 bits, RFC 7959 allows 20), and so is the
//! RFC 8323 framing, which it does not have.

pub mod block;
pub mod client;
pub mod dedup;
pub mod dtls;
pub mod fetch;
pub mod frame;
pub mod net;
pub mod objects;
pub mod resource;
pub mod tcp;
pub mod udp;

pub use dtls::{DtlsIdentity, parse_psk_table};
pub use net::{CoapListen, CoapServers, start};
pub use objects::SourceObjects;
pub use resource::{Objects, Served};

use std::time::Duration;

/// Response and request codes (class << 5 | detail).
pub mod code {
    /// 0.00 Empty.
    pub const EMPTY: u8 = 0x00;
    /// 0.01 GET.
    pub const GET: u8 = 0x01;
    /// 2.03 Valid.
    pub const VALID: u8 = 0x43;
    /// 2.05 Content.
    pub const CONTENT: u8 = 0x45;
    /// 4.00 Bad Request.
    pub const BAD_REQUEST: u8 = 0x80;
    /// 4.02 Bad Option.
    pub const BAD_OPTION: u8 = 0x82;
    /// 4.04 Not Found.
    pub const NOT_FOUND: u8 = 0x84;
    /// 4.05 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: u8 = 0x85;
    /// 4.06 Not Acceptable.
    pub const NOT_ACCEPTABLE: u8 = 0x86;
    /// 4.12 Precondition Failed.
    pub const PRECONDITION_FAILED: u8 = 0x8C;
    /// 4.13 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: u8 = 0x8D;
    /// 5.00 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: u8 = 0xA0;
    /// 5.03 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: u8 = 0xA3;
    /// 5.05 Proxying Not Supported.
    pub const PROXYING_NOT_SUPPORTED: u8 = 0xA5;
    /// 7.01 CSM (RFC 8323 signaling).
    pub const CSM: u8 = 0xE1;
    /// 7.02 Ping.
    pub const PING: u8 = 0xE2;
    /// 7.03 Pong.
    pub const PONG: u8 = 0xE3;
    /// 7.04 Release.
    pub const RELEASE: u8 = 0xE4;
    /// 7.05 Abort.
    pub const ABORT: u8 = 0xE5;

    /// `c.dd` notation of a code.
    pub fn dotted(code: u8) -> String {
        format!("{}.{:02}", code >> 5, code & 0x1f)
    }
}

/// Option numbers (RFC 7252 §12.2, RFC 7959, RFC 8323 signaling).
pub mod option {
    /// If-Match.
    pub const IF_MATCH: u16 = 1;
    /// Uri-Host.
    pub const URI_HOST: u16 = 3;
    /// ETag.
    pub const ETAG: u16 = 4;
    /// If-None-Match.
    pub const IF_NONE_MATCH: u16 = 5;
    /// Uri-Port.
    pub const URI_PORT: u16 = 7;
    /// Uri-Path.
    pub const URI_PATH: u16 = 11;
    /// Content-Format.
    pub const CONTENT_FORMAT: u16 = 12;
    /// Max-Age.
    pub const MAX_AGE: u16 = 14;
    /// Uri-Query.
    pub const URI_QUERY: u16 = 15;
    /// Accept.
    pub const ACCEPT: u16 = 17;
    /// Block2.
    pub const BLOCK2: u16 = 23;
    /// Block1.
    pub const BLOCK1: u16 = 27;
    /// Size2.
    pub const SIZE2: u16 = 28;
    /// Proxy-Uri.
    pub const PROXY_URI: u16 = 35;
    /// Proxy-Scheme.
    pub const PROXY_SCHEME: u16 = 39;
    /// Size1.
    pub const SIZE1: u16 = 60;
    /// CSM's Max-Message-Size (RFC 8323 §5.3.1).
    pub const CSM_MAX_MESSAGE_SIZE: u16 = 2;
    /// CSM's Block-Wise-Transfer (RFC 8323 §5.3.2): BERT is understood.
    pub const CSM_BLOCK_WISE_TRANSFER: u16 = 4;
}

/// Limits and settings of the CoAP servers.
#[derive(Clone, Debug)]
pub struct CoapConfig {
    /// Sustained requests per second per client (a UDP source address, a
    /// TCP connection); over it a request gets 5.03 with Max-Age.
    pub per_client_rate: f64,
    /// Requests a client may make at once before the rate applies.
    pub per_client_burst: f64,
    /// Most UDP clients tracked at once; new ones past it get 5.03.
    pub max_clients: usize,
    /// Most answers kept for retransmitted requests (deduplication).
    pub dedup_entries: usize,
    /// Most bytes of answers kept for retransmitted requests.
    pub dedup_bytes: usize,
    /// How long an answer is kept for a retransmission
    /// (EXCHANGE_LIFETIME, RFC 7252 §4.8.2: 247 s).
    pub exchange_lifetime: Duration,
    /// Most TCP/TLS connections at once (new ones past it are aborted).
    pub max_connections: usize,
    /// Largest message accepted over TCP (our CSM's Max-Message-Size).
    pub max_message_size: u32,
    /// Largest BERT payload sent in one message (a multiple of 1024).
    pub bert_max_bytes: usize,
    /// How long a TCP connection may stay silent before it is closed.
    pub idle_timeout: Duration,
}

impl Default for CoapConfig {
    fn default() -> Self {
        CoapConfig {
            // A device pulling 1 KiB blocks one at a time makes a request
            // per round trip: this is far above what one device needs and
            // bounds what one source can take.
            per_client_rate: 20_000.0,
            per_client_burst: 20_000.0,
            max_clients: 100_000,
            dedup_entries: 65_536,
            dedup_bytes: 16 << 20,
            exchange_lifetime: Duration::from_secs(247),
            max_connections: 4096,
            max_message_size: 8192,
            bert_max_bytes: 64 << 10,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests;
