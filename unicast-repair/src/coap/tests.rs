//! The CoAP endpoints without sockets: requests built as bytes, answers
//! read back, a clock passed in.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use dms_fec::{BlockSize, FecScheme, Oti};
use sha2::{Digest, Sha256};

use super::block::{BlockOption, read_uint};
use super::resource::{Objects, Served};
use super::tcp::{Close, TcpSession};
use super::udp::UdpEndpoint;
use super::{CoapConfig, code, frame, option};
use crate::source::{BlobReader, ObjectInfo, SourceError};

struct Memory(Vec<u8>);

impl BlobReader for Memory {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

struct Store(HashMap<String, Arc<Served>>);

impl Objects for Store {
    fn resolve(
        &self,
        id: &str,
        _from: Option<&[u8; 32]>,
    ) -> Result<Option<Arc<Served>>, SourceError> {
        Ok(self.0.get(id).cloned())
    }
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn store(data: &[u8]) -> Store {
    let sha256: [u8; 32] = Sha256::digest(data).into();
    let info = ObjectInfo {
        id: "abc".into(),
        name: "fw.bin".into(),
        version: "1".into(),
        content_location: "https://h/dl/abc/fw.bin".into(),
        content_type: "application/octet-stream".into(),
        size: data.len() as u64,
        sha256,
        created: SystemTime::UNIX_EPOCH,
        oti: Oti::for_object(
            FecScheme::RaptorQ,
            data.len() as u64,
            1280,
            BlockSize::default(),
        )
        .unwrap(),
        block_sha256: vec![],
    };
    let served = Served::new(info, Arc::new(Memory(data.to_vec())));
    Store(HashMap::from([("abc".to_owned(), Arc::new(served))]))
}

fn get(kind: MessageType, mid: u16, path: &[&str], block: Option<BlockOption>) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.message_id = mid;
    p.header.code = MessageClass::Request(RequestType::Get);
    p.set_token(vec![0xde, 0xad, (mid >> 8) as u8, mid as u8]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    if let Some(b) = block {
        p.add_option(CoapOption::Block2, b.encode());
    }
    p
}

fn block2(p: &Packet) -> Option<BlockOption> {
    p.get_first_option(CoapOption::Block2)
        .map(|v| BlockOption::parse(v).unwrap())
}

fn uint_option(p: &Packet, number: u16) -> Option<u32> {
    p.get_first_option(CoapOption::from(number))
        .and_then(|v| read_uint(v))
}

const SRC: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);
const PATH: &[&str] = &["dl", "abc", "fw.bin"];

#[test]
fn a_block_wise_download_over_udp_is_byte_identical_and_resumes_anywhere() {
    let data = bytes(4 << 20);
    let objects = store(&data);
    let mut ep = UdpEndpoint::new(&CoapConfig::default());
    let now = Instant::now();
    let mut got = Vec::new();
    // Resume from block 2000: bytes before it are not asked for.
    let mut num = 2000u32;
    got.resize(2000 * 1024, 0);
    got[..2000 * 1024].copy_from_slice(&data[..2000 * 1024]);
    loop {
        let mid = num as u16;
        let request = get(
            MessageType::Confirmable,
            mid,
            PATH,
            Some(BlockOption {
                num,
                more: false,
                szx: 6,
            }),
        );
        let answer = ep
            .handle_datagram(now, SRC, &request.to_bytes().unwrap(), &objects)
            .unwrap();
        assert!(answer.len() <= 1280);
        let p = Packet::from_bytes(&answer).unwrap();
        assert_eq!(p.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(p.header.message_id, mid);
        assert_eq!(p.get_token(), request.get_token());
        assert_eq!(u8::from(p.header.code), code::CONTENT);
        assert_eq!(uint_option(&p, option::SIZE2), Some(4 << 20));
        assert_eq!(uint_option(&p, option::CONTENT_FORMAT), Some(42));
        assert_eq!(
            uint_option(&p, option::MAX_AGE),
            Some(super::resource::MAX_AGE)
        );
        assert_eq!(
            p.get_first_option(CoapOption::ETag).unwrap(),
            &objects.0["abc"].etag
        );
        let b = block2(&p).unwrap();
        assert_eq!((b.num, b.szx), (num, 6));
        got.extend_from_slice(&p.payload);
        if !b.more {
            break;
        }
        num += 1;
    }
    assert_eq!(num, 4095);
    assert!(got == data, "reassembled object differs");
    assert_eq!(ep.stats().requests, 2096);

    // Every block size from 16 to 512, block 3.
    for szx in 0..6u8 {
        let size = 16usize << szx;
        let request = get(
            MessageType::Confirmable,
            60_000 + u16::from(szx),
            PATH,
            Some(BlockOption {
                num: 3,
                more: false,
                szx,
            }),
        );
        let p = Packet::from_bytes(
            &ep.handle_datagram(now, SRC, &request.to_bytes().unwrap(), &objects)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(p.payload, &data[3 * size..4 * size]);
        assert_eq!(
            block2(&p),
            Some(BlockOption {
                num: 3,
                more: true,
                szx
            })
        );
    }
}

#[test]
fn retransmissions_are_answered_once_and_non_requests_get_non_answers() {
    let data = bytes(10_000);
    let objects = store(&data);
    let mut ep = UdpEndpoint::new(&CoapConfig::default());
    let t0 = Instant::now();
    let request = get(
        MessageType::Confirmable,
        7,
        PATH,
        Some(BlockOption {
            num: 1,
            more: false,
            szx: 6,
        }),
    )
    .to_bytes()
    .unwrap();
    let first = ep.handle_datagram(t0, SRC, &request, &objects).unwrap();
    let again = ep
        .handle_datagram(t0 + Duration::from_secs(2), SRC, &request, &objects)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!((ep.stats().requests, ep.stats().duplicates), (1, 1));
    // After EXCHANGE_LIFETIME the same bytes are a new request.
    ep.handle_datagram(t0 + Duration::from_secs(300), SRC, &request, &objects)
        .unwrap();
    assert_eq!(ep.stats().requests, 2);

    let non = get(MessageType::NonConfirmable, 8, PATH, None)
        .to_bytes()
        .unwrap();
    let p = Packet::from_bytes(&ep.handle_datagram(t0, SRC, &non, &objects).unwrap()).unwrap();
    assert_eq!(p.header.get_type(), MessageType::NonConfirmable);
    assert_ne!(p.header.message_id, 8);
    assert_eq!(p.payload, &data[..1024]);
    assert_eq!(ep.handle_datagram(t0, SRC, &non, &objects), None);
}

#[test]
fn errors_pings_and_resets() {
    let objects = store(&bytes(100));
    let mut ep = UdpEndpoint::new(&CoapConfig::default());
    let now = Instant::now();
    let mut ask = |p: Packet| -> Packet {
        Packet::from_bytes(
            &ep.handle_datagram(now, SRC, &p.to_bytes().unwrap(), &objects)
                .unwrap(),
        )
        .unwrap()
    };
    let code_of = |p: &Packet| u8::from(p.header.code);
    // Small objects come whole, without Block2.
    let p = ask(get(MessageType::Confirmable, 1, PATH, None));
    assert_eq!(
        (code_of(&p), p.payload.len(), block2(&p)),
        (code::CONTENT, 100, None)
    );
    assert_eq!(
        code_of(&ask(get(
            MessageType::Confirmable,
            2,
            &["dl", "nope", "fw.bin"],
            None
        ))),
        code::NOT_FOUND
    );
    assert_eq!(
        code_of(&ask(get(
            MessageType::Confirmable,
            3,
            &["dl", "abc", "other"],
            None
        ))),
        code::NOT_FOUND
    );
    assert_eq!(
        code_of(&ask(get(MessageType::Confirmable, 4, &["x"], None))),
        code::NOT_FOUND
    );
    let mut post = get(MessageType::Confirmable, 5, PATH, None);
    post.header.code = MessageClass::Request(RequestType::Post);
    assert_eq!(code_of(&ask(post)), code::METHOD_NOT_ALLOWED);
    let mut critical = get(MessageType::Confirmable, 6, PATH, None);
    critical.add_option(CoapOption::Unknown(2049), vec![1]);
    let p = ask(critical);
    assert_eq!(code_of(&p), code::BAD_OPTION);
    assert!(String::from_utf8(p.payload).unwrap().contains("2049"));
    let mut elective = get(MessageType::Confirmable, 7, PATH, None);
    elective.add_option(CoapOption::Unknown(2048), vec![1]);
    assert_eq!(code_of(&ask(elective)), code::CONTENT);
    let mut cached = get(MessageType::Confirmable, 8, PATH, None);
    cached.add_option(CoapOption::ETag, objects.0["abc"].etag.to_vec());
    let p = ask(cached);
    assert_eq!((code_of(&p), p.payload.len()), (code::VALID, 0));
    let mut accept = get(MessageType::Confirmable, 9, PATH, None);
    accept.add_option(CoapOption::Accept, vec![50]);
    assert_eq!(code_of(&ask(accept)), code::NOT_ACCEPTABLE);
    let mut proxy = get(MessageType::Confirmable, 10, PATH, None);
    proxy.add_option(CoapOption::ProxyUri, b"coap://x/".to_vec());
    assert_eq!(code_of(&ask(proxy)), code::PROXYING_NOT_SUPPORTED);
    // Huge block numbers: past the end.
    let huge = get(
        MessageType::Confirmable,
        11,
        PATH,
        Some(BlockOption {
            num: super::block::MAX_NUM,
            more: false,
            szx: 6,
        }),
    );
    assert_eq!(code_of(&ask(huge)), code::BAD_OPTION);
    let mut long_block = get(MessageType::Confirmable, 12, PATH, None);
    long_block.add_option(CoapOption::Block2, vec![1, 2, 3, 4]);
    assert_eq!(code_of(&ask(long_block)), code::BAD_OPTION);
    let discovery = ask(get(
        MessageType::Confirmable,
        13,
        &[".well-known", "core"],
        None,
    ));
    assert!(discovery.payload.starts_with(b"</dl>"));

    // A CoAP ping, a CON that does not parse, a response sent to us: RST
    // with the message id. A bad NON, another version, a runt: nothing.
    let rst = |mid: u16| -> Arc<[u8]> { Arc::from(&[0x70, 0, (mid >> 8) as u8, mid as u8][..]) };
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x40, 0, 0x12, 0x34], &objects),
        Some(rst(0x1234))
    );
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x49, 1, 0, 9], &objects),
        Some(rst(9))
    );
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x40, 0x45, 0, 10], &objects),
        Some(rst(10))
    );
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x59, 1, 0, 9], &objects),
        None
    );
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x80, 1, 0, 9], &objects),
        None
    );
    assert_eq!(ep.handle_datagram(now, SRC, &[0x40, 1], &objects), None);
    assert_eq!(
        ep.handle_datagram(now, SRC, &[0x60, 0, 0, 9], &objects),
        None
    );
}

#[test]
fn a_client_over_its_rate_gets_5_03_with_max_age() {
    let objects = store(&bytes(100));
    let config = CoapConfig {
        per_client_rate: 1.0,
        per_client_burst: 2.0,
        max_clients: 2,
        ..CoapConfig::default()
    };
    let mut ep = UdpEndpoint::new(&config);
    let t0 = Instant::now();
    let mut ask = |src: SocketAddr, mid: u16, at: Instant| -> Packet {
        let request = get(MessageType::Confirmable, mid, PATH, None)
            .to_bytes()
            .unwrap();
        Packet::from_bytes(&ep.handle_datagram(at, src, &request, &objects).unwrap()).unwrap()
    };
    assert_eq!(u8::from(ask(SRC, 1, t0).header.code), code::CONTENT);
    assert_eq!(u8::from(ask(SRC, 2, t0).header.code), code::CONTENT);
    let busy = ask(SRC, 3, t0);
    assert_eq!(u8::from(busy.header.code), code::SERVICE_UNAVAILABLE);
    assert_eq!(uint_option(&busy, option::MAX_AGE), Some(2));
    assert_eq!(
        u8::from(ask(SRC, 4, t0 + Duration::from_secs(1)).header.code),
        code::CONTENT
    );
    // The table of clients is bounded: a third source is refused while
    // the other two are active.
    let other = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(u8::from(ask(other(1), 1, t0).header.code), code::CONTENT);
    assert_eq!(
        u8::from(ask(other(2), 1, t0).header.code),
        code::SERVICE_UNAVAILABLE
    );
}

#[test]
fn hostile_datagrams_get_an_error_answer_or_silence() {
    let objects = store(&bytes(5000));
    let mut ep = UdpEndpoint::new(&CoapConfig {
        dedup_entries: 64,
        ..CoapConfig::default()
    });
    let now = Instant::now();
    let valid = get(
        MessageType::Confirmable,
        77,
        PATH,
        Some(BlockOption {
            num: 2,
            more: false,
            szx: 6,
        }),
    )
    .to_bytes()
    .unwrap();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // Every truncation of a valid request.
    for cut in 0..valid.len() {
        cases.push(valid[..cut].to_vec());
    }
    // Option deltas and lengths that run past the end, with 1- and 2-byte
    // extensions (options past 269), and the reserved nibble 15.
    for tail in [
        &[0xd0][..],
        &[0xe0, 0x01][..],
        &[0x0d][..],
        &[0x0e, 0xff][..],
        &[0xf0][..],
        &[0x0f][..],
        &[0xe1, 0xff, 0xff, 0x00][..],
        &[0xb5, b'd', b'l'][..],
        &[0xff][..],
    ] {
        let mut d = vec![0x40, 0x01, 0x01, 0x02];
        d.extend_from_slice(tail);
        cases.push(d);
    }
    // Huge block numbers and option numbers past 269.
    let mut far = get(MessageType::Confirmable, 1, PATH, None);
    far.add_option(CoapOption::Unknown(65_000), vec![0; 300]);
    cases.push(far.to_bytes_unlimited().unwrap());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut d: Vec<u8> = (0..len)
            .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect();
        // Half of them look like version-1 requests, so they get past the
        // first checks.
        if x & 1 == 0 && d.len() >= 2 {
            d[0] = 0x40 | (d[0] & 0x3f);
            d[1] = 1;
        }
        cases.push(d);
    }
    for d in &cases {
        if let Some(answer) = ep.handle_datagram(now, SRC, d, &objects) {
            // Whatever comes back is a well-formed CoAP message: RST, ACK
            // or NON with a response code.
            let p = Packet::from_bytes(&answer).unwrap();
            let c = u8::from(p.header.code);
            assert!(
                c == code::EMPTY || c >> 5 == 2 || c >> 5 == 4 || c >> 5 == 5,
                "{c:#x}"
            );
            if c == code::CONTENT {
                // Only requests that really ask for our object get bytes.
                assert!(p.payload.len() <= 1024);
            }
        }
    }
    assert!(ep.stats().malformed > 1000);
}

fn tcp_request(token: &[u8], path: &[&str], block: Option<BlockOption>) -> Vec<u8> {
    let mut p = frame::message(code::GET, token);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    if let Some(b) = block {
        p.add_option(CoapOption::Block2, b.encode());
    }
    let mut out = Vec::new();
    frame::encode(&p, &mut out);
    out
}

fn frames(mut buf: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some((p, n)) = frame::decode(buf, 1 << 24).unwrap() {
        out.push(p);
        buf = &buf[n..];
    }
    assert!(buf.is_empty());
    out
}

fn csm(max_message: u32, bert: bool) -> Vec<u8> {
    let mut p = frame::message(code::CSM, &[]);
    p.add_option(
        CoapOption::Unknown(option::CSM_MAX_MESSAGE_SIZE),
        super::block::uint(max_message),
    );
    if bert {
        p.add_option(CoapOption::Unknown(option::CSM_BLOCK_WISE_TRANSFER), vec![]);
    }
    let mut out = Vec::new();
    frame::encode(&p, &mut out);
    out
}

#[test]
fn tcp_sessions_exchange_csms_and_serve_bert_blocks() {
    let data = bytes(100_000);
    let objects = store(&data);
    let now = Instant::now();
    let (mut s, greeting) = TcpSession::new(&CoapConfig::default(), now);
    let ours = frames(&greeting);
    assert_eq!(u8::from(ours[0].header.code), code::CSM);
    assert!(
        ours[0]
            .get_first_option(CoapOption::Unknown(option::CSM_BLOCK_WISE_TRANSFER))
            .is_some()
    );

    // The peer's CSM, a ping and a BERT request in one read, split at an
    // awkward place across two reads.
    let mut input = csm(1 << 20, true);
    let mut ping = Vec::new();
    frame::encode(&frame::message(code::PING, &[5]), &mut ping);
    input.extend_from_slice(&ping);
    input.extend_from_slice(&tcp_request(
        &[1, 2],
        PATH,
        Some(BlockOption {
            num: 0,
            more: false,
            szx: 7,
        }),
    ));
    let mut out = Vec::new();
    s.handle_bytes(now, &input[..5], &objects, &mut out)
        .unwrap();
    s.handle_bytes(now, &input[5..], &objects, &mut out)
        .unwrap();
    let answers = frames(&out);
    assert_eq!(u8::from(answers[0].header.code), code::PONG);
    assert_eq!(answers[0].get_token(), &[5]);
    let a = &answers[1];
    assert_eq!(a.get_token(), &[1, 2]);
    assert_eq!(
        block2(a),
        Some(BlockOption {
            num: 0,
            more: true,
            szx: 7
        })
    );
    assert_eq!(a.payload.len(), 64 << 10);
    assert_eq!(a.payload, &data[..64 << 10]);
    // The next BERT block starts at NUM 64 (units of 1024) and is the last.
    let mut out = Vec::new();
    s.handle_bytes(
        now,
        &tcp_request(
            &[3],
            PATH,
            Some(BlockOption {
                num: 64,
                more: false,
                szx: 7,
            }),
        ),
        &objects,
        &mut out,
    )
    .unwrap();
    let a = &frames(&out)[0];
    assert_eq!(
        block2(a),
        Some(BlockOption {
            num: 64,
            more: false,
            szx: 7
        })
    );
    assert_eq!(a.payload, &data[64 << 10..]);
    // A plain 1024-byte block request is served as asked.
    let mut out = Vec::new();
    s.handle_bytes(
        now,
        &tcp_request(
            &[4],
            PATH,
            Some(BlockOption {
                num: 10,
                more: false,
                szx: 6,
            }),
        ),
        &objects,
        &mut out,
    )
    .unwrap();
    assert_eq!(frames(&out)[0].payload, &data[10 * 1024..11 * 1024]);
}

#[test]
fn tcp_sessions_abort_on_protocol_errors_and_respect_the_peer_size() {
    let objects = store(&bytes(100_000));
    let now = Instant::now();
    // A request before the CSM: Abort.
    let (mut s, _) = TcpSession::new(&CoapConfig::default(), now);
    let mut out = Vec::new();
    let r = s.handle_bytes(now, &tcp_request(&[1], PATH, None), &objects, &mut out);
    assert!(matches!(r, Err(Close::Abort(_))));
    assert_eq!(u8::from(frames(&out)[0].header.code), code::ABORT);
    // A frame larger than our Max-Message-Size: Abort before buffering it.
    let (mut s, _) = TcpSession::new(&CoapConfig::default(), now);
    let mut out = Vec::new();
    s.handle_bytes(now, &csm(1152, false), &objects, &mut out)
        .unwrap();
    let r = s.handle_bytes(
        now,
        &[0xf0, 0x00, 0x10, 0x00, 0x00, 0x01],
        &objects,
        &mut out,
    );
    assert!(matches!(r, Err(Close::Abort(_))));
    // A peer with the default 1152-byte limit and no BERT gets 1024-byte
    // blocks even when it asks SZX 7.
    let (mut s, _) = TcpSession::new(&CoapConfig::default(), now);
    let mut out = Vec::new();
    s.handle_bytes(now, &csm(1152, false), &objects, &mut out)
        .unwrap();
    s.handle_bytes(
        now,
        &tcp_request(
            &[1],
            PATH,
            Some(BlockOption {
                num: 0,
                more: false,
                szx: 7,
            }),
        ),
        &objects,
        &mut out,
    )
    .unwrap();
    let a = &frames(&out)[0];
    assert_eq!(a.payload.len(), 1024);
    assert_eq!(block2(a).unwrap().szx, 6);
    assert!(out.len() <= 1152);
    // Release ends the connection quietly.
    let mut release = Vec::new();
    frame::encode(&frame::message(code::RELEASE, &[]), &mut release);
    assert_eq!(
        s.handle_bytes(now, &release, &objects, &mut out),
        Err(Close::ByPeer)
    );
}
