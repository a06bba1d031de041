//! Drivers for the published `flute` crate's sender and receiver on real
//! sockets.

use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use flute::core::{Oti, UDPEndpoint};
use flute::receiver::MultiReceiver;
use flute::receiver::writer::ObjectWriterBufferBuilder;
use flute::sender::{
    CarouselRepeatMode, Config, FdtXmlProfile, ObjectDesc, PriorityQueue, Profile, Sender,
    TransferConfig,
};

use super::pacer::Pacer;
use super::{DEADLINE, RATE_MBIT, SYMBOL, TestFile};

/// The `flute` crate's FEC schemes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TheirFec {
    /// Compact No-Code (FEC Encoding ID 0).
    NoCode,
    /// RaptorQ (FEC Encoding ID 6) with this many repair symbols in
    /// percent of each block's source symbols.
    RaptorQ {
        /// Repair overhead in percent.
        repair_percent: u32,
    },
    /// Raptor (FEC Encoding ID 1) with this many repair symbols in percent
    /// and `sub_blocks` sub-blocks (N) per block.
    Raptor {
        /// Repair overhead in percent.
        repair_percent: u32,
        /// N.
        sub_blocks: u8,
    },
}

/// How their sender runs.
#[derive(Debug, Clone, Copy)]
pub struct TheirSendOptions {
    /// FEC scheme.
    pub fec: TheirFec,
    /// FLUTE version: RFC 6726 (v2) or RFC 3926 (v1).
    pub profile: Profile,
    /// Transfers of each object (the carousel margin of no-code FEC).
    pub transfers: u32,
    /// EXT_FTI on every data packet, or only in the FDT.
    pub inband_fti: bool,
    /// The FDT's XML schema: their extended 3GPP one, or TS 26.346 L.6.1.
    pub fdt_profile: FdtXmlProfile,
    /// The first object's TOI (then +1 per object); up to 112 bits.
    pub first_toi: u128,
}

fn endpoint(group: SocketAddr) -> UDPEndpoint {
    UDPEndpoint::new(None, group.ip().to_string(), group.port())
}

/// Their OTI for `fec` with symbol size [`SYMBOL`].
pub fn their_oti(fec: TheirFec, inband_fti: bool) -> Oti {
    let mut oti = match fec {
        TheirFec::NoCode => Oti::new_no_code(SYMBOL, 64),
        TheirFec::RaptorQ { repair_percent } => Oti::new_raptorq(SYMBOL, 512, 512, 1, 4)
            .unwrap()
            .with_parity_symbols_percentage(f64::from(repair_percent))
            .unwrap(),
        TheirFec::Raptor {
            repair_percent,
            sub_blocks,
        } => Oti::new_raptor(SYMBOL, 512, 512, sub_blocks, 4)
            .unwrap()
            .with_parity_symbols_percentage(f64::from(repair_percent))
            .unwrap(),
    };
    oti.inband_fti = inband_fti;
    oti
}

/// Sends `files` in session `tsi` to `group` with their sender, paced,
/// with Content-MD5 in the FDT (repeated every 100 ms), then a few
/// close-session packets. Returns the number of datagrams sent.
pub fn send(
    socket: &UdpSocket,
    group: SocketAddr,
    tsi: u64,
    files: &[TestFile],
    options: TheirSendOptions,
) -> u64 {
    let oti = their_oti(options.fec, options.inband_fti);
    let mut config = Config {
        profile: options.profile,
        fdt_xml_profile: options.fdt_profile,
        toi_initial_value: Some(options.first_toi),
        fdt_carousel_mode: CarouselRepeatMode::DelayBetweenTransfers(Duration::from_millis(100)),
        ..Config::default()
    };
    config.set_priority_queue(
        PriorityQueue::HIGHEST,
        PriorityQueue::new(files.len() as u32),
    );
    let mut sender = Sender::new(endpoint(group), tsi, &oti, &config);
    for file in files {
        let url = url::Url::parse(&file.location()).unwrap();
        let transfer = TransferConfig {
            max_transfer_count: options.transfers,
            ..TransferConfig::default()
        };
        let object = ObjectDesc::create_from_buffer(
            file.data.clone(),
            "application/octet-stream",
            &url,
            true,
            transfer,
        )
        .unwrap();
        sender.add_object(PriorityQueue::HIGHEST, object).unwrap();
    }
    sender.publish(SystemTime::now()).unwrap();

    let mut pacer = Pacer::new(RATE_MBIT);
    let mut sent = 0;
    let deadline = Instant::now() + DEADLINE;
    while sender.nb_objects() > 0 && Instant::now() < deadline {
        match sender.read(SystemTime::now()) {
            Some(packet) => {
                pacer.wait(packet.len());
                // A full socket buffer loses this datagram like the
                // network would; FEC and carousel repeats cover it.
                let _ = socket.send(&packet);
                sent += 1;
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    assert_eq!(
        sender.nb_objects(),
        0,
        "their sender did not finish in time"
    );
    for _ in 0..3 {
        let close = sender.read_close_session(SystemTime::now());
        let _ = socket.send(&close);
        sent += 1;
    }
    sent
}

/// An object their receiver wrote.
#[derive(Debug)]
pub struct TheirObject {
    /// Content-Location.
    pub location: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Every block arrived (and the MD5, if checked, matched).
    pub complete: bool,
    /// Reception failed (MD5 mismatch, interruption).
    pub error: bool,
    /// Content-MD5 from the FDT, base64.
    pub md5: Option<String>,
}

/// Runs their receiver (MD5 check on) on `socket` in a thread until every
/// file of `expected` (Content-Locations) is complete; gives up after
/// [`DEADLINE`].
pub fn spawn_receiver(
    socket: UdpSocket,
    group: SocketAddr,
    expected: Vec<String>,
) -> JoinHandle<Vec<TheirObject>> {
    std::thread::spawn(move || {
        let writer = Rc::new(ObjectWriterBufferBuilder::new(true));
        let mut receiver = MultiReceiver::new(writer.clone(), None, false);
        let endpoint = endpoint(group);
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + DEADLINE;
        let done = |writer: &ObjectWriterBufferBuilder| {
            let objects = writer.objects.borrow();
            expected.iter().all(|location| {
                objects.iter().any(|o| {
                    let o = o.borrow();
                    o.complete && !o.error && &o.meta.content_location == location
                })
            })
        };
        while !done(&writer) && Instant::now() < deadline {
            let now = SystemTime::now();
            match socket.recv(&mut buf) {
                // Packets it rejects show in what completes.
                Ok(n) => drop(receiver.push(&endpoint, &buf[..n], now)),
                Err(_) => receiver.cleanup(now),
            }
        }
        writer
            .objects
            .borrow()
            .iter()
            .map(|o| {
                let o = o.borrow();
                TheirObject {
                    location: o.meta.content_location.clone(),
                    data: o.data.clone(),
                    complete: o.complete,
                    error: o.error,
                    md5: o.meta.md5.clone(),
                }
            })
            .collect()
    })
}

/// Content-MD5 as the FDT carries it.
pub fn md5_base64(md5: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5)
}
