//! RFC 8323 §3.2 framing of CoAP over TCP and TLS:
//!
//! ```text
//!  0   1   2   3   4   5   6   7
//! +---------------+---------------+-- 0, 1, 2 or 4 bytes --+--------+
//! |  Len (4 bits) |  TKL (4 bits) |    Extended Length     |  Code  |
//! +---------------+---------------+------------------------+--------+
//! | Token (TKL bytes) | Options | 0xFF | Payload                      |
//! ```
//!
//! Len is the length of options, marker and payload: 0–12 as is, 13 → one
//! more byte + 13, 14 → two + 269, 15 → four + 65805. The options and
//! payload are encoded as over UDP, so they are parsed and written with the
//! message crate behind a UDP header made for the purpose.

use coap_lite::{MessageClass, MessageType, Packet};

/// A frame that cannot be read; the connection must be aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// TKL 9 to 15 (reserved).
    #[error("token length {0} (at most 8)")]
    TokenLength(u8),
    /// Larger than the Max-Message-Size we announced.
    #[error("message of {0} bytes is over the limit")]
    TooLarge(u64),
    /// Options or payload marker that do not parse.
    #[error("malformed options")]
    Options,
}

/// Reads the first frame of `buf`: the message and the bytes it took, or
/// `None` when `buf` holds only part of it. `max_message` bounds a frame's
/// whole length, so a peer cannot make us buffer more.
pub fn decode(buf: &[u8], max_message: usize) -> Result<Option<(Packet, usize)>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let tkl = first & 0x0f;
    if tkl > 8 {
        return Err(FrameError::TokenLength(tkl));
    }
    let ext = match first >> 4 {
        13 => 1,
        14 => 2,
        15 => 4,
        _ => 0,
    };
    if buf.len() < 1 + ext {
        return Ok(None);
    }
    let e = &buf[1..1 + ext];
    let len: u64 = match first >> 4 {
        13 => u64::from(e[0]) + 13,
        14 => u64::from(u16::from_be_bytes([e[0], e[1]])) + 269,
        15 => u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]])) + 65805,
        n => u64::from(n),
    };
    let total = (1 + ext + 1 + usize::from(tkl)) as u64 + len;
    if total > max_message as u64 {
        return Err(FrameError::TooLarge(total));
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let code = buf[1 + ext];
    let rest = &buf[2 + ext..total];
    let mut udp = Vec::with_capacity(4 + rest.len());
    udp.extend_from_slice(&[0x40 | tkl, code, 0, 0]);
    udp.extend_from_slice(rest);
    let packet = Packet::from_bytes(&udp).map_err(|_| FrameError::Options)?;
    Ok(Some((packet, total)))
}

/// Appends `packet` (code, token, options, payload; its UDP type and
/// message id are not sent) as one frame to `out`.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    let mut packet = packet.clone();
    // The message crate writes no payload marker for Empty; signals have
    // class 7 and are written as any other code.
    packet.header.set_type(MessageType::Confirmable);
    packet.header.message_id = 0;
    let Ok(udp) = packet.to_bytes_unlimited() else {
        return;
    };
    let tkl = packet.get_token().len();
    let body = &udp[4 + tkl..];
    let len = body.len();
    let code = udp[1];
    let nibble_tkl = tkl as u8;
    if len < 13 {
        out.push((len as u8) << 4 | nibble_tkl);
    } else if len < 269 {
        out.push(13 << 4 | nibble_tkl);
        out.push((len - 13) as u8);
    } else if len < 65805 {
        out.push(14 << 4 | nibble_tkl);
        out.extend_from_slice(&((len - 269) as u16).to_be_bytes());
    } else {
        out.push(15 << 4 | nibble_tkl);
        out.extend_from_slice(&((len - 65805) as u32).to_be_bytes());
    }
    out.push(code);
    out.extend_from_slice(packet.get_token());
    out.extend_from_slice(body);
}

/// A signaling or response message with this code and token.
pub fn message(code: u8, token: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code);
    p.set_token(token.to_vec());
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use coap_lite::CoapOption;

    #[test]
    fn frames_round_trip_at_every_length_class() {
        for len in [0usize, 5, 12, 13, 200, 268, 269, 5000, 65804, 65805, 70_000] {
            let mut p = message(0x45, &[1, 2, 3]);
            p.add_option(CoapOption::ETag, vec![9; 8]);
            p.add_option(CoapOption::Unknown(1000), vec![7; 300]);
            p.payload = vec![0xab; len];
            let mut out = Vec::new();
            encode(&p, &mut out);
            let (q, used) = decode(&out, 1 << 20).unwrap().unwrap();
            assert_eq!(used, out.len());
            assert_eq!(q.payload, p.payload);
            assert_eq!(q.get_token(), &[1, 2, 3]);
            assert_eq!(u8::from(q.header.code), 0x45);
            assert_eq!(
                q.get_first_option(CoapOption::Unknown(1000)).unwrap().len(),
                300
            );
            // Every strict prefix is incomplete, never an error.
            for cut in [0, 1, out.len() / 2, out.len() - 1] {
                assert_eq!(decode(&out[..cut], 1 << 20), Ok(None));
            }
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(
            decode(&[0x09, 0x01], 100).unwrap_err(),
            FrameError::TokenLength(9)
        );
        // Len 15 with a 4 GiB extended length: refused before buffering.
        assert_eq!(
            decode(&[0xf0, 0xff, 0xff, 0xff, 0xff], 8192).unwrap_err(),
            FrameError::TooLarge(1 + 4 + 1 + 0xffff_ffff + 65805)
        );
        // An option running past the frame's end.
        assert_eq!(
            decode(&[0x20, 0x01, 0xb5, 0x61], 100).unwrap_err(),
            FrameError::Options
        );
        // A CSM with no options: two bytes.
        let (csm, used) = decode(&[0x00, 0xe1], 100).unwrap().unwrap();
        assert_eq!((u8::from(csm.header.code), used), (0xe1, 2));
    }
}
