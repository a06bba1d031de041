//! Drivers for our sans-IO `dms_flute` sender and receiver on real
//! sockets.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dms_fec::FecScheme;
use dms_flute::lct::FluteVersion;
use dms_flute::receiver::{Event, Stats, Verification};
use dms_flute::{ObjectSpec, Receiver, ReceiverConfig, Sender, SenderConfig};

use super::impair::Impairment;
use super::pacer::Pacer;
use super::{DEADLINE, RATE_MBIT, SYMBOL, TestFile, ntp_expires_in_an_hour};

/// An object our receiver completed.
#[derive(Debug)]
pub struct Completed {
    /// Content-Location, if the FDT described the object.
    pub location: Option<String>,
    /// The bytes, as written from `BlockDecoded` events at their offsets.
    pub data: Vec<u8>,
    /// The Content-MD5 check.
    pub md5: Verification,
    /// The Content-MD5 the FDT gave, if it had arrived by completion.
    pub described_md5: Option<[u8; 16]>,
}

/// What our receiver got in one run.
#[derive(Debug)]
pub struct OurReceiverRun {
    /// Objects completed, in order of completion.
    pub completed: Vec<Completed>,
    /// Objects that failed verification, with the reason.
    pub failed: Vec<String>,
    /// FDT Instances applied.
    pub fdt_instances: u64,
    /// The receiver's counters.
    pub stats: Stats,
    /// Datagrams the impairment dropped.
    pub dropped: u64,
}

impl OurReceiverRun {
    /// The completed object at `location`.
    pub fn object(&self, location: &str) -> Option<&Completed> {
        self.completed
            .iter()
            .find(|c| c.location.as_deref() == Some(location))
    }
}

/// Our receiver and what came out of it so far.
#[derive(Debug)]
struct Collector {
    receiver: Receiver,
    buffers: HashMap<(u64, u128), Vec<u8>>,
    completed: Vec<Completed>,
    failed: Vec<String>,
    fdt_instances: u64,
}

impl Collector {
    /// Hands one datagram to the receiver and acts on its events.
    fn handle(&mut self, datagram: &[u8]) {
        // Bad packets are counted in the stats; the test looks at what
        // completed.
        let _ = self.receiver.handle_datagram(Instant::now(), datagram);
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.receiver.poll_event() {
            match event {
                Event::FdtReceived { .. } => self.fdt_instances += 1,
                Event::BlockDecoded {
                    tsi,
                    toi,
                    offset,
                    data,
                    ..
                } => {
                    let out = self.buffers.entry((tsi, toi)).or_default();
                    let offset = usize::try_from(offset).unwrap();
                    if out.len() < offset + data.len() {
                        out.resize(offset + data.len(), 0);
                    }
                    out[offset..offset + data.len()].copy_from_slice(&data);
                }
                Event::ObjectComplete {
                    tsi,
                    toi,
                    info,
                    md5,
                    ..
                } => self.completed.push(Completed {
                    location: info.content_location().map(str::to_owned),
                    data: self.buffers.remove(&(tsi, toi)).unwrap_or_default(),
                    md5,
                    described_md5: info.file.as_ref().and_then(|f| f.content_md5),
                }),
                Event::ObjectFailed { toi, reason, .. } => {
                    self.failed.push(format!("TOI {toi}: {reason}"));
                }
                _ => {}
            }
        }
    }
}

/// Runs our receiver on `socket` in a thread until `expected` objects are
/// complete (or failed), feeding it through `impairment`; gives up after
/// [`DEADLINE`].
pub fn spawn_receiver(
    socket: UdpSocket,
    expected: usize,
    mut impairment: Impairment,
) -> JoinHandle<OurReceiverRun> {
    std::thread::spawn(move || {
        let mut c = Collector {
            receiver: Receiver::new(ReceiverConfig::default()),
            buffers: HashMap::new(),
            completed: Vec::new(),
            failed: Vec::new(),
            fdt_instances: 0,
        };
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + DEADLINE;
        while c.completed.len() + c.failed.len() < expected && Instant::now() < deadline {
            match socket.recv(&mut buf) {
                Ok(n) => impairment.push(&buf[..n], &mut |d| c.handle(d)),
                Err(_) => {
                    // A pause in the stream (read timeout).
                    impairment.flush(&mut |d| c.handle(d));
                    c.receiver.handle_timeout(Instant::now());
                    c.drain_events();
                }
            }
        }
        OurReceiverRun {
            stats: c.receiver.stats().clone(),
            completed: c.completed,
            failed: c.failed,
            fdt_instances: c.fdt_instances,
            dropped: impairment.dropped,
        }
    })
}

/// How our sender runs.
#[derive(Debug, Clone, Copy)]
pub struct OurSendOptions {
    /// FEC scheme.
    pub fec: FecScheme,
    /// FLUTE version in EXT_FDT.
    pub version: FluteVersion,
    /// Carousel rounds (the margin of no-code FEC against loss).
    pub rounds: u32,
    /// RaptorQ or Raptor repair symbols in percent of K.
    pub repair_percent: u32,
    /// Raptor: lay every object out in this many sub-blocks (N) instead of
    /// the planned N = 1.
    pub raptor_sub_blocks: Option<u8>,
    /// EXT_FTI on every data packet, or only in the FDT.
    pub inband_fti: bool,
}

/// Sends `files` in one session `tsi` with our sender, paced, with
/// Content-MD5 in the FDT. Returns the number of datagrams sent.
pub fn send(socket: &UdpSocket, tsi: u64, files: &[TestFile], options: OurSendOptions) -> u64 {
    let mut config = SenderConfig::new(tsi, ntp_expires_in_an_hour());
    config.flute_version = options.version;
    config.carousel_rounds = options.rounds;
    config.inband_fti = options.inband_fti;
    config.fdt_interval = Duration::from_millis(200);
    let mut sender = Sender::new(config).unwrap();
    for file in files {
        let mut spec = ObjectSpec::new(file.location(), Cursor::new(file.data.clone()));
        spec.fec = options.fec;
        spec.symbol_size = SYMBOL;
        spec.repair_percent = options.repair_percent;
        if let Some(n) = options.raptor_sub_blocks {
            let planned = dms_fec::Oti::for_object(
                options.fec,
                file.data.len() as u64,
                SYMBOL,
                dms_fec::BlockSize::default(),
            )
            .unwrap();
            spec.oti = Some(
                dms_fec::Oti::raptor(
                    planned.transfer_length(),
                    planned.symbol_size(),
                    planned.source_blocks(),
                    n.min((planned.symbol_size() / 4) as u8),
                    4,
                )
                .unwrap(),
            );
        }
        spec.content_md5 = Some(file.md5());
        spec.content_type = Some("application/octet-stream".to_owned());
        sender.add_object(spec).unwrap();
    }

    let mut pacer = Pacer::new(RATE_MBIT);
    let mut buf = vec![0u8; sender.config().max_datagram_size];
    let mut sent = 0;
    let deadline = Instant::now() + DEADLINE;
    while !sender.is_finished() && Instant::now() < deadline {
        match sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
            Some(t) => {
                pacer.wait(t.size);
                // A full socket buffer loses this datagram like the
                // network would; FEC and carousel rounds cover it.
                let _ = socket.send(&buf[..t.size]);
                sent += 1;
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    assert!(sender.is_finished(), "our sender did not finish in time");
    sent
}
