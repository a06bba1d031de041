//! CoAP over TCP and TLS (RFC 8323), sans-IO: bytes from the connection
//! in, bytes to write out.
//!
//! Each side opens with a CSM (7.01): ours announces our Max-Message-Size
//! and Block-Wise-Transfer (BERT); the peer's must be its first message
//! (§5.3, else the connection is aborted) and bounds the answers we send.
//! Ping (7.02) gets Pong (7.03); Release (7.04) and Abort (7.05) end the
//! connection. There are no message ids: answers carry the request's token.
//! Each connection has a token bucket; past it a request gets 5.03 with
//! Max-Age.

use std::time::Instant;

use coap_lite::Packet;

use super::block::{read_uint, uint};
use super::frame;
use super::resource::{Answer, Carrier, Objects, answer};
use super::{CoapConfig, code, option};
use crate::limit::Bucket;

/// RFC 8323 §5.3.1: the Max-Message-Size assumed before the peer's CSM.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1152;

/// Room kept for the header, token and options of an answer.
const ANSWER_OVERHEAD: usize = 128;

/// Why a connection ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Close {
    /// The peer sent Release or Abort.
    ByPeer,
    /// We abort: the peer broke the protocol (an Abort was written).
    Abort(String),
}

/// One connection's CoAP state.
#[derive(Debug)]
pub struct TcpSession {
    rx: Vec<u8>,
    peer_csm: bool,
    peer_max_message: usize,
    peer_bert: bool,
    max_message: usize,
    bert_max: usize,
    rate: (f64, f64),
    bucket: Bucket,
    /// Requests answered.
    pub requests: u64,
}

impl TcpSession {
    /// A new connection at `now`; `greeting` is our CSM to write first.
    pub fn new(config: &CoapConfig, now: Instant) -> (Self, Vec<u8>) {
        let session = TcpSession {
            rx: Vec::new(),
            peer_csm: false,
            peer_max_message: DEFAULT_MAX_MESSAGE_SIZE,
            peer_bert: false,
            max_message: config.max_message_size as usize,
            bert_max: config.bert_max_bytes,
            rate: (config.per_client_rate, config.per_client_burst),
            bucket: Bucket::full(config.per_client_burst, now),
            requests: 0,
        };
        let mut csm = frame::message(code::CSM, &[]);
        csm.add_option(
            coap_lite::CoapOption::Unknown(option::CSM_MAX_MESSAGE_SIZE),
            uint(config.max_message_size),
        );
        csm.add_option(
            coap_lite::CoapOption::Unknown(option::CSM_BLOCK_WISE_TRANSFER),
            Vec::new(),
        );
        let mut greeting = Vec::new();
        frame::encode(&csm, &mut greeting);
        (session, greeting)
    }

    /// What an answer may carry on this connection.
    pub fn carrier(&self) -> Carrier {
        let room = self.peer_max_message.saturating_sub(ANSWER_OVERHEAD);
        let bert = (room.min(self.bert_max) / 1024) * 1024;
        Carrier {
            whole_max: room.min(self.bert_max.max(1024)),
            default_block: 1024,
            bert_max: (self.peer_bert && bert >= 1024).then_some(bert),
            reliable: true,
        }
    }

    /// Takes bytes read from the connection; appends what to write to
    /// `out`. An `Err` ends the connection (after `out` is written).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        data: &[u8],
        objects: &dyn Objects,
        out: &mut Vec<u8>,
    ) -> Result<(), Close> {
        self.rx.extend_from_slice(data);
        let mut used = 0;
        let result = loop {
            match frame::decode(&self.rx[used..], self.max_message) {
                Ok(None) => break Ok(()),
                Ok(Some((message, n))) => {
                    used += n;
                    if let Err(close) = self.handle_message(now, &message, objects, out) {
                        break Err(close);
                    }
                }
                Err(e) => break Err(self.abort(out, &e)),
            }
        };
        self.rx.drain(..used);
        result
    }

    fn abort(&self, out: &mut Vec<u8>, why: &dyn std::fmt::Display) -> Close {
        let mut abort = frame::message(code::ABORT, &[]);
        abort.payload = why.to_string().into_bytes();
        frame::encode(&abort, out);
        Close::Abort(why.to_string())
    }

    fn handle_message(
        &mut self,
        now: Instant,
        message: &Packet,
        objects: &dyn Objects,
        out: &mut Vec<u8>,
    ) -> Result<(), Close> {
        let message_code = u8::from(message.header.code);
        if !self.peer_csm {
            if message_code != code::CSM {
                return Err(self.abort(out, &"the first message must be a CSM"));
            }
            self.peer_csm = true;
        }
        match message_code {
            code::CSM => {
                for (&number, values) in message.options() {
                    match number {
                        option::CSM_MAX_MESSAGE_SIZE => {
                            let value = values.front().map_or(&[][..], Vec::as_slice);
                            let Some(size) = read_uint(value) else {
                                return Err(self.abort(out, &"bad Max-Message-Size"));
                            };
                            self.peer_max_message = size as usize;
                        }
                        option::CSM_BLOCK_WISE_TRANSFER => self.peer_bert = true,
                        n if n & 1 == 1 => {
                            return Err(
                                self.abort(out, &format!("unknown critical CSM option {n}"))
                            );
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            code::PING => {
                frame::encode(&frame::message(code::PONG, message.get_token()), out);
                Ok(())
            }
            code::RELEASE | code::ABORT => Err(Close::ByPeer),
            code::PONG => Ok(()),
            c if c >> 5 == 7 => Ok(()), // unknown signals: ignored
            code::EMPTY => Ok(()),      // RFC 8323 §3.4: empty messages are ignored
            c if c >> 5 != 0 => Ok(()), // responses: we asked nothing
            _ => {
                let (rate, burst) = self.rate;
                let answer = match self.bucket.take(now, rate, burst) {
                    Ok(()) => {
                        self.requests += 1;
                        answer(message, objects, &self.carrier())
                    }
                    Err(wait) => {
                        Answer::busy(u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX))
                    }
                };
                let mut response = frame::message(code::EMPTY, message.get_token());
                answer.fill(&mut response);
                frame::encode(&response, out);
                Ok(())
            }
        }
    }
}
