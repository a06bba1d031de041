//! The client side of a block-wise download, sans-IO: CoAP URIs, the next
//! request to send, and each answer checked (the block asked for, the
//! same ETag throughout, errors turned into [`FetchError`]).
//!
//! Over UDP each request asks one block of the chosen size; over TCP with
//! BERT agreed, SZX 7 asks as many 1024-byte units as the server sends in
//! one message. A download can start at any offset that is a multiple of
//! the block size (a resumed partial file).

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::block::{BlockOption, SZX_BERT, read_uint, size_of_szx};
use super::code;
use super::option;

/// How a CoAP URI reaches its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `coap://`: UDP (RFC 7252), default port 5683.
    Udp,
    /// `coap+tcp://`: TCP (RFC 8323), default port 5683.
    Tcp,
    /// `coaps+tcp://`: TLS (RFC 8323), default port 5684.
    Tls,
}

/// A parsed CoAP URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoapUri {
    /// The transport of its scheme.
    pub transport: Transport,
    /// The host (an IPv6 literal without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Uri-Path segments, percent-decoded.
    pub path: Vec<Vec<u8>>,
    /// Uri-Query arguments, percent-decoded.
    pub query: Vec<Vec<u8>>,
}

/// Why a download failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Not a CoAP URI we can use.
    #[error("bad CoAP URI {0}")]
    Uri(String),
    /// The server has no such object (4.04).
    #[error("4.04 Not Found: {0}")]
    NotFound(String),
    /// The server answered another error code.
    #[error("server answered {}: {message}", code::dotted(*code))]
    Status {
        /// The response code.
        code: u8,
        /// Its diagnostic payload.
        message: String,
    },
    /// The server is busy: ask again after this many seconds (5.03).
    #[error("server busy (5.03), retry in {0} s")]
    Busy(u32),
    /// The representation changed between blocks.
    #[error("the object changed mid-transfer (ETag {was} became {now})")]
    EtagChanged {
        /// The ETag of the blocks so far (hex).
        was: String,
        /// The ETag now (hex).
        now: String,
    },
    /// An answer that is not the block asked for.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// Parses `coap://`, `coap+tcp://` and `coaps+tcp://` URIs.
pub fn parse_uri(uri: &str) -> Result<CoapUri, FetchError> {
    let bad = || FetchError::Uri(uri.to_owned());
    let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
    let (transport, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "coap" => (Transport::Udp, 5683),
        "coap+tcp" => (Transport::Tcp, 5683),
        "coaps+tcp" => (Transport::Tls, 5684),
        _ => return Err(bad()),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path_query) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let path = path
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = query
        .map(|q| {
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(percent_decode)
                .collect()
        })
        .unwrap_or_default();
    Ok(CoapUri {
        transport,
        host,
        port,
        path,
        query,
    })
}

/// Bytes an answer carried, at their offset in the object.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Where the bytes go.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// The whole object's size, when the server said it (Size2).
    pub size: Option<u64>,
    /// This was the last block.
    pub done: bool,
}

/// One block-wise download's state.
#[derive(Debug)]
pub struct BlockFetch {
    path: Vec<Vec<u8>>,
    query: Vec<Vec<u8>>,
    szx: u8,
    next_offset: u64,
    etag: Option<Vec<u8>>,
    token: u64,
    asked: Option<(u64, u64)>,
}

impl BlockFetch {
    /// A download of `uri`'s resource in blocks of `2^(szx+4)` bytes (SZX 7:
    /// BERT), starting at `offset` (rounded down to a block boundary), whose
    /// ETag must be `etag` when known.
    pub fn new(uri: &CoapUri, szx: u8, offset: u64, etag: Option<Vec<u8>>) -> Self {
        let unit = size_of_szx(szx);
        BlockFetch {
            path: uri.path.clone(),
            query: uri.query.clone(),
            szx: szx.min(SZX_BERT),
            next_offset: offset / unit * unit,
            etag,
            token: rand::random(),
            asked: None,
        }
    }

    /// The offset the next block starts at (where a partial file resumes).
    pub fn offset(&self) -> u64 {
        self.next_offset
    }

    /// The ETag seen so far.
    pub fn etag(&self) -> Option<&[u8]> {
        self.etag.as_deref()
    }

    /// The request for the next block (a new token each time; the caller
    /// sets the UDP type and message id).
    pub fn next_request(&mut self) -> Packet {
        let unit = size_of_szx(self.szx);
        let num = (self.next_offset / unit) as u32;
        self.token = self.token.wrapping_add(1);
        self.asked = Some((self.next_offset, self.token));
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Get);
        p.set_token(self.token.to_be_bytes().to_vec());
        for segment in &self.path {
            p.add_option(CoapOption::UriPath, segment.clone());
        }
        for q in &self.query {
            p.add_option(CoapOption::UriQuery, q.clone());
        }
        p.add_option(
            CoapOption::Block2,
            BlockOption {
                num,
                more: false,
                szx: self.szx,
            }
            .encode(),
        );
        p
    }

    /// True when `response` answers the last request (its token).
    pub fn matches(&self, response: &Packet) -> bool {
        self.asked
            .is_some_and(|(_, token)| response.get_token() == token.to_be_bytes())
    }

    /// Checks the answer to the last request and returns its bytes.
    pub fn handle(&mut self, response: &Packet) -> Result<Chunk, FetchError> {
        let Some((asked_offset, _)) = self.asked else {
            return Err(FetchError::Protocol("an answer to nothing".into()));
        };
        let response_code = u8::from(response.header.code);
        let diagnostic = || String::from_utf8_lossy(&response.payload).into_owned();
        match response_code {
            code::CONTENT => {}
            code::NOT_FOUND => return Err(FetchError::NotFound(diagnostic())),
            code::SERVICE_UNAVAILABLE => {
                let wait = response
                    .get_first_option(CoapOption::MaxAge)
                    .and_then(|v| read_uint(v))
                    .unwrap_or(60);
                return Err(FetchError::Busy(wait));
            }
            c => {
                return Err(FetchError::Status {
                    code: c,
                    message: diagnostic(),
                });
            }
        }
        if let Some(tag) = response.get_first_option(CoapOption::ETag) {
            match &self.etag {
                Some(was) if was != tag => {
                    return Err(FetchError::EtagChanged {
                        was: hex::encode(was),
                        now: hex::encode(tag),
                    });
                }
                Some(_) => {}
                None => self.etag = Some(tag.clone()),
            }
        }
        let size = response
            .get_first_option(CoapOption::Size2)
            .and_then(|v| read_uint(v))
            .map(u64::from);
        let block = match response.get_first_option(CoapOption::Block2) {
            Some(v) => {
                Some(BlockOption::parse(v).map_err(|e| FetchError::Protocol(e.to_string()))?)
            }
            None => None,
        };
        let (offset, done) = match block {
            // The whole body in one answer.
            None => (0, true),
            Some(b) => {
                let offset = u64::from(b.num) * b.size();
                if offset != asked_offset {
                    return Err(FetchError::Protocol(format!(
                        "asked for byte {asked_offset}, got block {} of {} bytes",
                        b.num,
                        b.size()
                    )));
                }
                if b.more {
                    let unit = b.size();
                    let whole = response.payload.len() as u64;
                    if whole == 0
                        || !whole.is_multiple_of(unit)
                        || (b.szx != SZX_BERT && whole != unit)
                    {
                        return Err(FetchError::Protocol(format!(
                            "a {whole}-byte block that is not the last, in blocks of {unit}"
                        )));
                    }
                    // A server may answer with smaller blocks than asked.
                    if b.szx < self.szx {
                        self.szx = b.szx;
                    }
                }
                (offset, !b.more)
            }
        };
        self.next_offset = offset + response.payload.len() as u64;
        if let Some(size) = size
            && self.next_offset > size
        {
            return Err(FetchError::Protocol("more bytes than Size2".into()));
        }
        self.asked = None;
        Ok(Chunk {
            offset,
            data: response.payload.clone(),
            size,
            done,
        })
    }
}

/// The ETag the server gives an object with this SHA-256 (checked from
/// the first block when the manifest is known).
pub fn expected_etag(sha256: &[u8; 32]) -> Vec<u8> {
    super::resource::etag_of(sha256).to_vec()
}

/// Max-Message-Size our CSM announces (room for a 1 MiB BERT answer).
pub const CLIENT_MAX_MESSAGE_SIZE: u32 = (1 << 20) + 1024;

/// Our CSM: Max-Message-Size and Block-Wise-Transfer (we take BERT).
pub fn client_csm() -> Packet {
    let mut csm = super::frame::message(code::CSM, &[]);
    csm.add_option(
        CoapOption::Unknown(option::CSM_MAX_MESSAGE_SIZE),
        super::block::uint(CLIENT_MAX_MESSAGE_SIZE),
    );
    csm.add_option(
        CoapOption::Unknown(option::CSM_BLOCK_WISE_TRANSFER),
        Vec::new(),
    );
    csm
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn uris_parse() {
        let u = parse_uri("coaps+tcp://[::1]:6000/dl/ab%20c/fw.bin?from=00").unwrap();
        assert_eq!(u.transport, Transport::Tls);
        assert_eq!((u.host.as_str(), u.port), ("::1", 6000));
        assert_eq!(
            u.path,
            [b"dl".to_vec(), b"ab c".to_vec(), b"fw.bin".to_vec()]
        );
        assert_eq!(u.query, [b"from=00".to_vec()]);
        let u = parse_uri("coap://h/x").unwrap();
        assert_eq!((u.transport, u.port), (Transport::Udp, 5683));
        assert_eq!(parse_uri("coaps+tcp://h").unwrap().port, 5684);
        for bad in [
            "http://h/x",
            "coap://",
            "coap://h:port/",
            "coap://[::1/x",
            "coap:/h",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }

    fn blk(num: u32, more: bool, szx: u8) -> Option<BlockOption> {
        Some(BlockOption { num, more, szx })
    }

    /// The next request of `f` answered with this block.
    fn reply(
        f: &mut BlockFetch,
        block: Option<BlockOption>,
        etag: &[u8],
        len: usize,
    ) -> Result<Chunk, FetchError> {
        let r = f.next_request();
        let a = answer(&r, block, etag, vec![7; len]);
        assert!(f.matches(&a));
        f.handle(&a)
    }

    fn answer(to: &Packet, block: Option<BlockOption>, etag: &[u8], payload: Vec<u8>) -> Packet {
        let mut p = super::super::frame::message(code::CONTENT, to.get_token());
        p.add_option(CoapOption::ETag, etag.to_vec());
        if let Some(b) = block {
            p.add_option(CoapOption::Block2, b.encode());
        }
        p.add_option(CoapOption::Size2, super::super::block::uint(2500));
        p.payload = payload;
        p
    }

    #[test]
    fn blocks_follow_each_other_and_etag_changes_are_errors() {
        let uri = parse_uri("coap://h/dl/a/b").unwrap();
        // Resuming at byte 1500 of 1024-byte blocks starts at block 1.
        let mut f = BlockFetch::new(&uri, 6, 1500, None);
        assert_eq!(f.offset(), 1024);
        let r = f.next_request();
        assert_eq!(
            BlockOption::parse(r.get_first_option(CoapOption::Block2).unwrap())
                .unwrap()
                .num,
            1
        );
        let a = answer(&r, blk(1, true, 6), b"e1", vec![1; 1024]);
        assert!(f.matches(&a));
        let c = f.handle(&a).unwrap();
        assert_eq!(
            (c.offset, c.data.len(), c.size, c.done),
            (1024, 1024, Some(2500), false)
        );
        assert!(matches!(
            reply(&mut f, blk(2, false, 6), b"e2", 452),
            Err(FetchError::EtagChanged { .. })
        ));
        // The wrong block, a short block that says more: protocol errors.
        assert!(matches!(
            reply(&mut f, blk(3, false, 6), b"e1", 452),
            Err(FetchError::Protocol(_))
        ));
        assert!(matches!(
            reply(&mut f, blk(2, true, 6), b"e1", 452),
            Err(FetchError::Protocol(_))
        ));
        assert!(reply(&mut f, blk(2, false, 6), b"e1", 452).unwrap().done);
        // A server that answers smaller blocks is followed.
        let mut f = BlockFetch::new(&uri, 6, 0, None);
        let r = f.next_request();
        f.handle(&answer(&r, blk(0, true, 4), b"e", vec![0; 256]))
            .unwrap();
        let r = f.next_request();
        let b = BlockOption::parse(r.get_first_option(CoapOption::Block2).unwrap()).unwrap();
        assert_eq!((b.num, b.szx), (1, 4));
        // Errors.
        let mut nf = super::super::frame::message(code::NOT_FOUND, r.get_token());
        nf.payload = b"no such object".to_vec();
        assert_eq!(
            f.handle(&nf),
            Err(FetchError::NotFound("no such object".into()))
        );
        let r = f.next_request();
        let mut busy = super::super::frame::message(code::SERVICE_UNAVAILABLE, r.get_token());
        busy.add_option(CoapOption::MaxAge, vec![3]);
        assert_eq!(f.handle(&busy), Err(FetchError::Busy(3)));
    }

    #[test]
    fn bert_answers_advance_by_their_length() {
        let uri = parse_uri("coap+tcp://h/dl/a/b").unwrap();
        let mut f = BlockFetch::new(&uri, 7, 0, Some(b"e".to_vec()));
        let r = f.next_request();
        let c = f
            .handle(&answer(&r, blk(0, true, 7), b"e", vec![0; 2048]))
            .unwrap();
        assert_eq!(c.data.len(), 2048);
        let r = f.next_request();
        let b = BlockOption::parse(r.get_first_option(CoapOption::Block2).unwrap()).unwrap();
        assert_eq!((b.num, b.szx), (2, 7));
        let c = f
            .handle(&answer(&r, blk(2, false, 7), b"e", vec![0; 452]))
            .unwrap();
        assert!(c.done && c.offset == 2048);
    }
}
