//! CoAP over UDP (RFC 7252), sans-IO: a datagram and `now` in, the
//! datagram to send back (if any) out.
//!
//! - Confirmable requests are answered in a piggybacked ACK, Non-confirmable
//!   ones in a NON with a message id of ours; an empty CON (a "CoAP ping")
//!   and a malformed or unexpected CON get RST; anything else that is
//!   malformed is dropped (counted, never logged per datagram).
//! - Every request's answer is kept for EXCHANGE_LIFETIME (bounded,
//!   [`Dedup`]): a retransmission gets the same bytes, unprocessed.
//! - Each source address has a token bucket; past it, or when the table
//!   of sources is full, `5.03 Service Unavailable` with `Max-Age`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use coap_lite::{MessageType, Packet};

use super::dedup::{Dedup, Seen, request_hash};
use super::resource::{Answer, Carrier, Objects, answer};
use super::{CoapConfig, code};
use crate::limit::{BucketTable, Refusal};

/// What the endpoint counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Requests answered (not counting retransmissions).
    pub requests: u64,
    /// Retransmitted requests answered from the exchange cache (or
    /// ignored, for NON).
    pub duplicates: u64,
    /// Datagrams that were not CoAP (dropped, or answered with RST).
    pub malformed: u64,
    /// Requests refused with 5.03.
    pub busy: u64,
    /// Resets sent.
    pub resets: u64,
}

/// The UDP side of the CoAP server.
#[derive(Debug)]
pub struct UdpEndpoint {
    dedup: Dedup,
    clients: BucketTable<SocketAddr>,
    next_message_id: u16,
    stats: UdpStats,
}

/// Largest datagram answered (RFC 7252 §4.6: fits 1280-byte IPv6 MTU
/// paths with 1024-byte blocks).
const MAX_ANSWER: usize = 1280;

impl UdpEndpoint {
    /// An endpoint with these limits.
    pub fn new(config: &CoapConfig) -> Self {
        UdpEndpoint {
            dedup: Dedup::new(
                config.dedup_entries,
                config.dedup_bytes,
                config.exchange_lifetime,
            ),
            clients: BucketTable::new(
                config.per_client_rate,
                config.per_client_burst,
                config.max_clients,
            ),
            next_message_id: rand::random(),
            stats: UdpStats::default(),
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// Handles one datagram from `src` at `now`; returns what to send back.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        objects: &dyn Objects,
    ) -> Option<Arc<[u8]>> {
        // Version 1 only; other versions are silently ignored (§3).
        if datagram.len() < 4 || datagram[0] >> 6 != 1 {
            self.stats.malformed += 1;
            return None;
        }
        let kind = (datagram[0] >> 4) & 3;
        let message_id = u16::from_be_bytes([datagram[2], datagram[3]]);
        let confirmable = kind == 0;
        let packet = match Packet::from_bytes(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed += 1;
                // A CON that is not understood is rejected with RST (§4.2).
                return confirmable.then(|| self.reset(message_id));
            }
        };
        let request_code = u8::from(packet.header.code);
        match packet.header.get_type() {
            MessageType::Acknowledgement | MessageType::Reset => return None,
            MessageType::Confirmable if request_code == code::EMPTY => {
                // CoAP ping.
                return Some(self.reset(message_id));
            }
            _ => {}
        }
        if request_code == code::EMPTY || request_code >> 5 != 0 {
            // An empty NON, or a response sent to a server.
            self.stats.malformed += 1;
            return confirmable.then(|| self.reset(message_id));
        }
        let key = (src, message_id);
        let hash = request_hash(datagram);
        match self.dedup.check(now, key, hash) {
            Seen::New => {}
            Seen::Again(answer) => {
                self.stats.duplicates += 1;
                return Some(answer);
            }
            Seen::Ignore => {
                self.stats.duplicates += 1;
                return None;
            }
        }
        let answer = match self.clients.check(src, now) {
            Ok(()) => {
                self.stats.requests += 1;
                answer(&packet, objects, &Carrier::UDP)
            }
            Err(refusal) => {
                self.stats.busy += 1;
                let secs = match refusal {
                    Refusal::TooFast(wait) => u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX),
                    Refusal::Busy => 1,
                };
                Answer::busy(secs)
            }
        };
        let mut response = Packet::new();
        if confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = message_id;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.message_id();
        }
        response.set_token(packet.get_token().to_vec());
        answer.fill(&mut response);
        let bytes: Arc<[u8]> = match response.to_bytes_with_limit(MAX_ANSWER) {
            Ok(b) => Arc::from(b),
            Err(_) => {
                // Only a diagnostic could be that long: send the code alone.
                response.payload.clear();
                Arc::from(response.to_bytes_unlimited().unwrap_or_default())
            }
        };
        // NON requests are never retransmitted: remember them without the
        // answer (a duplicate is ignored), and keep memory for CON answers.
        self.dedup
            .insert(now, key, hash, confirmable.then(|| bytes.clone()));
        Some(bytes)
    }

    fn reset(&mut self, message_id: u16) -> Arc<[u8]> {
        self.stats.resets += 1;
        let id = message_id.to_be_bytes();
        // Version 1, type RST (3), no token, code 0.00.
        Arc::from(&[0x70, 0x00, id[0], id[1]][..])
    }

    fn message_id(&mut self) -> u16 {
        self.next_message_id = self.next_message_id.wrapping_add(1);
        self.next_message_id
    }
}
