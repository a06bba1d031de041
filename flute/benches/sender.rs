//! Throughput of `Sender::poll_transmit`: one 64 MiB object, RaptorQ,
//! T = 1400, 10 % repair, in-band EXT_FTI, 1472-byte datagram limit. Each
//! iteration is a whole session (FDT, every block read from memory, encoded
//! once and packetized). Reported as datagram bytes per second; the packet
//! count and datagram size are printed once so packets/s can be derived.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dms_fec::FecScheme;
use dms_flute::{ObjectSpec, Sender, SenderConfig};

const OBJECT_BYTES: usize = 64 << 20;

fn session(data: &Arc<[u8]>) -> (u64, u64, usize) {
    let mut sender = Sender::new(SenderConfig::new(1, 0)).unwrap_or_else(|e| panic!("{e}"));
    let mut spec = ObjectSpec::new("bench.bin", Cursor::new(Arc::clone(data)));
    spec.fec = FecScheme::RaptorQ;
    spec.symbol_size = 1400;
    spec.repair_percent = 10;
    sender.add_object(spec).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; sender.config().max_datagram_size];
    let now = Instant::now();
    let (mut packets, mut bytes, mut largest) = (0u64, 0u64, 0usize);
    while let Some(t) = sender
        .poll_transmit(now, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"))
    {
        packets += 1;
        bytes += t.size as u64;
        largest = largest.max(t.size);
    }
    (packets, bytes, largest)
}

fn bench(c: &mut Criterion) {
    let data: Arc<[u8]> = (0..OBJECT_BYTES)
        .map(|i| (i as u8) ^ (i >> 11) as u8)
        .collect();
    let (packets, bytes, largest) = session(&data);
    eprintln!(
        "one session: {packets} datagrams, {bytes} bytes, largest datagram {largest} bytes \
         (T = 1400 + LCT header with EXT_FTI + 4-byte FEC Payload ID)"
    );
    let mut group = c.benchmark_group("sender");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("poll_transmit_64MiB_raptorq_T1400_10pct", |b| {
        b.iter(|| session(&data))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
