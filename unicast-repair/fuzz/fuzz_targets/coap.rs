//! Arbitrary datagrams into the CoAP-over-UDP endpoint, and arbitrary
//! bytes into a CoAP-over-TCP session (RFC 8323 frames): nothing may
//! panic, every answer must be a well-formed CoAP message, and no block
//! may lie outside the object.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use dms_fec::{BlockSize, FecScheme, Oti};
use dms_repair::coap::tcp::TcpSession;
use dms_repair::coap::udp::UdpEndpoint;
use dms_repair::coap::{CoapConfig, Objects, Served, frame};
use dms_repair::{BlobReader, ObjectInfo, SourceError};
use libfuzzer_sys::fuzz_target;

const SIZE: usize = 5000;

struct Memory;

impl BlobReader for Memory {
    fn len(&self) -> u64 {
        SIZE as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let rest = (SIZE as u64).saturating_sub(offset) as usize;
        let n = buf.len().min(rest);
        buf[..n].fill(0x5a);
        Ok(n)
    }
}

struct One(Arc<Served>);

impl Objects for One {
    fn resolve(&self, id: &str, _from: Option<&[u8; 32]>) -> Result<Option<Arc<Served>>, SourceError> {
        Ok((id == "abc").then(|| self.0.clone()))
    }
}

fn objects() -> &'static One {
    static OBJECTS: OnceLock<One> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let info = ObjectInfo {
            id: "abc".into(),
            name: "fw.bin".into(),
            version: "1".into(),
            content_location: "coap://h/dl/abc/fw.bin".into(),
            content_type: "application/octet-stream".into(),
            size: SIZE as u64,
            sha256: [7; 32],
            created: SystemTime::UNIX_EPOCH,
            oti: Oti::for_object(FecScheme::RaptorQ, SIZE as u64, 1280, BlockSize::default())
                .expect("a valid layout"),
            block_sha256: vec![],
        };
        One(Arc::new(Served::new(info, Arc::new(Memory))))
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let src = SocketAddr::from(([127, 0, 0, 1], 5683));
    let mut udp = UdpEndpoint::new(&CoapConfig::default());
    if let Some(answer) = udp.handle_datagram(now, src, data, objects()) {
        let p = coap_lite::Packet::from_bytes(&answer).expect("answers parse");
        assert!(p.payload.len() <= SIZE.max(1024));
    }
    let (mut tcp, _) = TcpSession::new(&CoapConfig::default(), now);
    let mut out = Vec::new();
    // Split the input in two reads, so frames cut across reads are tried.
    let (a, b) = data.split_at(data.len() / 2);
    if tcp.handle_bytes(now, a, objects(), &mut out).is_ok() {
        let _ = tcp.handle_bytes(now, b, objects(), &mut out);
    }
    let mut rest = &out[..];
    while let Ok(Some((_, n))) = frame::decode(rest, 1 << 24) {
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "the session wrote a frame that does not parse");
});
