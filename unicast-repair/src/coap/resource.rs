//! The download resource, `GET /dl/{id}/{name}` (the HTTP path), shared by
//! CoAP over UDP and over TCP: options checked, the object looked up, the
//! block the client asked for cut out (Block2, RFC 7959; BERT, RFC 8323
//! §6), with `ETag`, `Size2`, `Content-Format` and `Max-Age`.
//!
//! Sans-IO: objects come through [`Objects`], which tests implement in
//! memory; the answer is a value the transports encode.

use std::sync::Arc;

use coap_lite::Packet;

use super::block::{BlockOption, MAX_NUM, SZX_BERT, read_uint, size_of_szx, szx_of_size, uint};
use super::code;
use super::option;
use crate::source::{BlobReader, ObjectInfo, SourceError};

/// An object ready to serve: what it is and its bytes.
pub struct Served {
    /// The object (for a delta: the delta's size, SHA-256 and type).
    pub info: ObjectInfo,
    /// Its bytes.
    pub blob: Arc<dyn BlobReader>,
    /// The CoAP ETag: the first 8 bytes of the SHA-256 (ETags are 1–8
    /// bytes; ids are never reused, so collisions within one URI cannot
    /// happen).
    pub etag: [u8; 8],
    /// The CoAP Content-Format of its MIME type.
    pub content_format: u16,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("id", &self.info.id)
            .field("size", &self.info.size)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// An object with its bytes.
    pub fn new(info: ObjectInfo, blob: Arc<dyn BlobReader>) -> Self {
        let etag = etag_of(&info.sha256);
        let content_format = content_format(&info.content_type);
        Served {
            info,
            blob,
            etag,
            content_format,
        }
    }
}

/// The CoAP ETag of an object with this SHA-256.
pub fn etag_of(sha256: &[u8; 32]) -> [u8; 8] {
    let mut etag = [0u8; 8];
    etag.copy_from_slice(&sha256[..8]);
    etag
}

/// Where the resource finds objects.
pub trait Objects: Send + Sync {
    /// The object with this id, or its delta from the version whose
    /// SHA-256 is `from` when one is stored (else the object itself).
    fn resolve(
        &self,
        id: &str,
        from: Option<&[u8; 32]>,
    ) -> Result<Option<Arc<Served>>, SourceError>;
}

/// The CoAP Content-Format number of a MIME type (RFC 7252 §12.3 and the
/// IANA registry), `application/octet-stream` (42) for types the registry
/// does not number: the bytes are served as they are.
pub fn content_format(mime: &str) -> u16 {
    let base = mime.split(';').next().unwrap_or("").trim();
    match base.to_ascii_lowercase().as_str() {
        "text/plain" => 0,
        "application/link-format" => 40,
        "application/xml" => 41,
        "application/exi" => 47,
        "application/json" => 50,
        "application/cbor" => 60,
        "application/cwt" => 61,
        "application/senml+json" => 110,
        "application/senml+cbor" => 112,
        "application/vnd.oma.lwm2m+tlv" => 11542,
        "application/vnd.oma.lwm2m+json" => 11543,
        _ => 42,
    }
}

/// What the transport can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carrier {
    /// Largest body sent whole (no Block2) when the client did not ask
    /// for blocks.
    pub whole_max: usize,
    /// The block size used when the client did not ask for one (a power
    /// of two, 16 to 1024).
    pub default_block: usize,
    /// Largest BERT payload (a multiple of 1024), when BERT is agreed
    /// (TCP, both CSMs carry Block-Wise-Transfer); `None` over UDP.
    pub bert_max: Option<usize>,
    /// A reliable transport (TCP): SZX 7 is BERT, not reserved.
    pub reliable: bool,
}

impl Carrier {
    /// CoAP over UDP: 1024-byte blocks, no BERT.
    pub const UDP: Carrier = Carrier {
        whole_max: 1024,
        default_block: 1024,
        bert_max: None,
        reliable: false,
    };
}

/// An answer, before the transport adds its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Response code (class << 5 | detail).
    pub code: u8,
    /// Options as (number, value), in any order.
    pub options: Vec<(u16, Vec<u8>)>,
    /// The payload: block bytes, or a diagnostic message for errors.
    pub payload: Vec<u8>,
}

impl Answer {
    /// An error answer with a diagnostic payload (RFC 7252 §5.5.2).
    pub fn error(code: u8, diagnostic: impl Into<String>) -> Self {
        Answer {
            code,
            options: Vec::new(),
            payload: diagnostic.into().into_bytes(),
        }
    }

    /// `5.03 Service Unavailable` with `Max-Age` (when to try again).
    pub fn busy(retry_after_secs: u32) -> Self {
        Answer {
            code: code::SERVICE_UNAVAILABLE,
            options: vec![(option::MAX_AGE, uint(retry_after_secs.max(1)))],
            payload: b"server busy".to_vec(),
        }
    }

    /// Builds the message: `packet`'s header (type, message id) is the
    /// caller's; code, options and payload come from the answer.
    pub fn fill(self, packet: &mut Packet) {
        packet.header.code = coap_lite::MessageClass::from(self.code);
        for (number, value) in self.options {
            packet.add_option(coap_lite::CoapOption::from(number), value);
        }
        packet.payload = self.payload;
    }
}

/// What a GET asked for, its options checked.
#[derive(Debug, Default)]
struct Asked<'p> {
    path: Vec<&'p [u8]>,
    from: Option<[u8; 32]>,
    block2: Option<BlockOption>,
    etags: Vec<&'p [u8]>,
    accept: Option<u16>,
    if_match: Option<Vec<&'p [u8]>>,
    if_none_match: bool,
}

fn scan_options(request: &Packet) -> Result<Asked<'_>, Answer> {
    let mut asked = Asked::default();
    for (&number, values) in request.options() {
        match number {
            option::URI_HOST | option::URI_PORT => {}
            option::URI_PATH => asked.path.extend(values.iter().map(Vec::as_slice)),
            option::URI_QUERY => {
                for value in values {
                    if let Some(hex_sha) = value.strip_prefix(b"from=") {
                        let mut sha = [0u8; 32];
                        hex::decode_to_slice(hex_sha, &mut sha).map_err(|_| {
                            Answer::error(code::BAD_REQUEST, "from must be a hex SHA-256")
                        })?;
                        asked.from = Some(sha);
                    }
                    // Other queries are ignored, as on the HTTP route.
                }
            }
            option::BLOCK2 => {
                let value = values.front().map_or(&[][..], Vec::as_slice);
                asked.block2 = Some(
                    BlockOption::parse(value)
                        .map_err(|e| Answer::error(code::BAD_OPTION, e.to_string()))?,
                );
            }
            option::ETAG => asked.etags.extend(values.iter().map(Vec::as_slice)),
            option::ACCEPT => {
                let value = values.front().map_or(&[][..], Vec::as_slice);
                let accept = read_uint(value)
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| Answer::error(code::BAD_OPTION, "Accept over 2 bytes"))?;
                asked.accept = Some(accept);
            }
            option::IF_MATCH => {
                asked.if_match = Some(values.iter().map(Vec::as_slice).collect());
            }
            option::IF_NONE_MATCH => asked.if_none_match = true,
            option::PROXY_URI | option::PROXY_SCHEME => {
                return Err(Answer::error(
                    code::PROXYING_NOT_SUPPORTED,
                    "this server is no proxy",
                ));
            }
            // A request body's Block1/Size1 on a GET: nothing to assemble.
            option::BLOCK1 | option::SIZE1 => {}
            n if n & 1 == 1 => {
                // RFC 7252 §5.4.1: an unrecognized critical option.
                return Err(Answer::error(
                    code::BAD_OPTION,
                    format!("unrecognized critical option {n}"),
                ));
            }
            _ => {} // elective (Observe, Size2, No-Response…): ignored
        }
    }
    Ok(asked)
}

/// The `.well-known/core` answer (RFC 6690): the one resource type served.
const WELL_KNOWN: &[u8] = b"</dl>;rt=\"dms.download\";title=\"objects: /dl/{id}/{name}\"";

/// Answers one request.
pub fn answer(request: &Packet, objects: &dyn Objects, carrier: &Carrier) -> Answer {
    match answer_inner(request, objects, carrier) {
        Ok(a) | Err(a) => a,
    }
}

fn answer_inner(
    request: &Packet,
    objects: &dyn Objects,
    carrier: &Carrier,
) -> Result<Answer, Answer> {
    if u8::from(request.header.code) != code::GET {
        return Err(Answer::error(
            code::METHOD_NOT_ALLOWED,
            "only GET is served",
        ));
    }
    let asked = scan_options(request)?;
    let (id, name) = match asked.path.as_slice() {
        [b".well-known", b"core"] => {
            return Ok(Answer {
                code: code::CONTENT,
                options: vec![(option::CONTENT_FORMAT, uint(40))],
                payload: WELL_KNOWN.to_vec(),
            });
        }
        [b"dl", id, name] => (
            std::str::from_utf8(id).map_err(|_| not_found())?,
            std::str::from_utf8(name).map_err(|_| not_found())?,
        ),
        _ => return Err(not_found()),
    };
    let served = objects
        .resolve(id, asked.from.as_ref())
        .map_err(|e| match e {
            SourceError::Damaged(m) => Answer::error(code::SERVICE_UNAVAILABLE, m),
            e => {
                tracing::warn!(error = %e, "CoAP object look-up failed");
                Answer::error(code::INTERNAL_SERVER_ERROR, "internal error")
            }
        })?
        .ok_or_else(not_found)?;
    if crate::download::file_name(&served.info.name) != name {
        return Err(not_found());
    }
    if asked.accept.is_some_and(|a| a != served.content_format) {
        return Err(Answer::error(
            code::NOT_ACCEPTABLE,
            format!("served as Content-Format {}", served.content_format),
        ));
    }
    if let Some(tags) = &asked.if_match
        && !tags.iter().any(|t| t.is_empty() || *t == served.etag)
    {
        return Err(Answer::error(code::PRECONDITION_FAILED, "ETag differs"));
    }
    if asked.if_none_match {
        return Err(Answer::error(
            code::PRECONDITION_FAILED,
            "the object exists",
        ));
    }
    let mut options = vec![
        (option::ETAG, served.etag.to_vec()),
        (option::MAX_AGE, uint(MAX_AGE)),
    ];
    if asked.etags.iter().any(|t| *t == served.etag) {
        // RFC 7252 §5.10.6.1: the client's copy is current.
        return Ok(Answer {
            code: code::VALID,
            options,
            payload: Vec::new(),
        });
    }
    options.push((
        option::CONTENT_FORMAT,
        uint(u32::from(served.content_format)),
    ));
    let size = served.info.size;
    let (offset, len, block) = plan_block(size, asked.block2, carrier)?;
    if let Some(block) = block {
        options.push((option::BLOCK2, block.encode()));
        options.push((option::SIZE2, uint(u32::try_from(size).unwrap_or(u32::MAX))));
    }
    let mut payload = vec![0u8; len];
    served
        .blob
        .read_exact_at(&mut payload, offset)
        .map_err(|e| {
            tracing::warn!(error = %e, id, "CoAP block read failed");
            Answer::error(code::INTERNAL_SERVER_ERROR, "internal error")
        })?;
    Ok(Answer {
        code: code::CONTENT,
        options,
        payload,
    })
}

/// `Max-Age` of downloads: a URI names the same bytes for ever (as the
/// HTTP route's `immutable`), so a year.
pub const MAX_AGE: u32 = 31_536_000;

fn not_found() -> Answer {
    Answer::error(code::NOT_FOUND, "no such object")
}

/// Which bytes answer: (offset, length, the response's Block2 if any).
pub fn plan_block(
    size: u64,
    asked: Option<BlockOption>,
    carrier: &Carrier,
) -> Result<(u64, usize, Option<BlockOption>), Answer> {
    let Some(asked) = asked else {
        if size <= carrier.whole_max as u64 {
            return Ok((0, size as usize, None));
        }
        let szx = szx_of_size(carrier.default_block);
        let block = size_of_szx(szx);
        return Ok((
            0,
            block as usize,
            Some(BlockOption {
                num: 0,
                more: true,
                szx,
            }),
        ));
    };
    let (szx, unit, per_message) = match (asked.szx, carrier.bert_max) {
        (SZX_BERT, Some(bert)) => (SZX_BERT, 1024u64, bert.max(1024) as u64),
        // UDP: SZX 7 is reserved (RFC 7959 §2.2).
        (SZX_BERT, None) if !carrier.reliable => {
            return Err(Answer::error(code::BAD_OPTION, "SZX 7 is reserved"));
        }
        // TCP without BERT agreed: 1024-byte blocks.
        (SZX_BERT, None) => (6, 1024, 1024),
        // Every size from 16 to 1024 is served as asked (1024 is the
        // largest, so no block is ever renumbered).
        (szx, _) => (szx, size_of_szx(szx), size_of_szx(szx)),
    };
    let offset = u64::from(asked.num) * unit;
    if offset > size || (offset == size && size > 0) {
        return Err(Answer::error(
            code::BAD_OPTION,
            format!("block {} starts past the end ({size} bytes)", asked.num),
        ));
    }
    let len = (size - offset).min(per_message);
    let more = offset + len < size;
    if more && u64::from(asked.num) + len / unit > u64::from(MAX_NUM) {
        return Err(Answer::error(
            code::REQUEST_ENTITY_TOO_LARGE,
            "the object has more blocks than Block2 numbers: use larger blocks",
        ));
    }
    Ok((
        offset,
        len as usize,
        Some(BlockOption {
            num: asked.num,
            more,
            szx,
        }),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    const TCP_BERT: Carrier = Carrier {
        whole_max: 8192,
        default_block: 1024,
        bert_max: Some(4096),
        reliable: true,
    };

    fn b(num: u32, szx: u8) -> Option<BlockOption> {
        Some(BlockOption {
            num,
            more: false,
            szx,
        })
    }

    #[test]
    fn blocks_are_cut_at_the_asked_size() {
        let udp = Carrier::UDP;
        // Small objects go whole; large ones start at block 0 of 1024.
        assert_eq!(plan_block(1000, None, &udp).unwrap(), (0, 1000, None));
        assert_eq!(
            plan_block(5000, None, &udp).unwrap(),
            (
                0,
                1024,
                Some(BlockOption {
                    num: 0,
                    more: true,
                    szx: 6
                })
            )
        );
        // Block 3 of 64 bytes; the last one is short and says no more.
        assert_eq!(
            plan_block(1000, b(3, 2), &udp).unwrap(),
            (
                192,
                64,
                Some(BlockOption {
                    num: 3,
                    more: true,
                    szx: 2
                })
            )
        );
        assert_eq!(
            plan_block(1000, b(15, 2), &udp).unwrap(),
            (
                960,
                40,
                Some(BlockOption {
                    num: 15,
                    more: false,
                    szx: 2
                })
            )
        );
        // Past the end, SZX 7 over UDP: 4.02.
        assert_eq!(
            plan_block(1000, b(16, 2), &udp).unwrap_err().code,
            code::BAD_OPTION
        );
        assert_eq!(
            plan_block(1024, b(1, 6), &udp).unwrap_err().code,
            code::BAD_OPTION
        );
        assert_eq!(
            plan_block(1000, b(0, 7), &udp).unwrap_err().code,
            code::BAD_OPTION
        );
        // The last block number with more to come: 4.13, larger blocks needed.
        assert_eq!(
            plan_block(u64::MAX, b(MAX_NUM, 6), &udp).unwrap_err().code,
            code::REQUEST_ENTITY_TOO_LARGE
        );
        assert_eq!(
            plan_block(1 << 30, b(MAX_NUM, 6), &udp).unwrap().0,
            u64::from(MAX_NUM) * 1024
        );
        // An empty object is one empty block.
        assert_eq!(
            plan_block(0, b(0, 6), &udp).unwrap(),
            (
                0,
                0,
                Some(BlockOption {
                    num: 0,
                    more: false,
                    szx: 6
                })
            )
        );
    }

    #[test]
    fn bert_sends_several_kibibytes_per_message() {
        assert_eq!(
            plan_block(10_000, b(0, 7), &TCP_BERT).unwrap(),
            (
                0,
                4096,
                Some(BlockOption {
                    num: 0,
                    more: true,
                    szx: 7
                })
            )
        );
        // NUM counts 1024-byte units: 8 → byte 8192, the last 1808 bytes.
        assert_eq!(
            plan_block(10_000, b(8, 7), &TCP_BERT).unwrap(),
            (
                8192,
                1808,
                Some(BlockOption {
                    num: 8,
                    more: false,
                    szx: 7
                })
            )
        );
        // Without BERT agreed, SZX 7 over TCP is served as 1024.
        let tcp = Carrier {
            bert_max: None,
            ..TCP_BERT
        };
        assert_eq!(
            plan_block(10_000, b(2, 7), &tcp).unwrap(),
            (
                2048,
                1024,
                Some(BlockOption {
                    num: 2,
                    more: true,
                    szx: 6
                })
            )
        );
        assert_eq!(plan_block(8000, None, &tcp).unwrap(), (0, 8000, None));
    }

    #[test]
    fn content_formats_follow_the_registry() {
        assert_eq!(content_format("application/octet-stream"), 42);
        assert_eq!(content_format("application/JSON; charset=utf-8"), 50);
        assert_eq!(content_format("text/plain"), 0);
        assert_eq!(content_format("application/vnd.dms.delta"), 42);
    }
}
