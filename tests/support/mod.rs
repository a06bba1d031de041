//! Shared code of the interoperability tests against the published `flute`
//! crate: test files, loopback multicast sockets, pacing, seeded
//! impairment, and drivers for both implementations' senders and
//! receivers (each on a real socket).

pub mod impair;
pub mod ours;
pub mod pacer;
pub mod theirs;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dms_flute::net::{self, Interface, ReceiverSocketConfig, SenderSocketConfig};
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Symbol size T used by both sides (a multiple of RaptorQ's alignment 4).
pub const SYMBOL: u16 = 1400;
/// Longest a test waits for anything; only reached when it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Paced send rate in Mbit/s: fast enough to keep the tests short, slow
/// enough for a loaded 2-core machine to keep up with on loopback.
pub const RATE_MBIT: f64 = 120.0;

/// One file of a session.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// File name; the Content-Location is `file:///<name>`.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl TestFile {
    /// A file of `len` seeded pseudo-random bytes.
    pub fn random(name: &str, len: usize, seed: u64) -> Self {
        let mut data = vec![0u8; len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut data);
        TestFile {
            name: name.to_owned(),
            data,
        }
    }

    /// The FDT Content-Location.
    pub fn location(&self) -> String {
        format!("file:///{}", self.name)
    }

    /// The MD5 digest of the bytes.
    pub fn md5(&self) -> [u8; 16] {
        Md5::digest(&self.data).into()
    }
}

/// The edge cases of the issue in one session: 1 byte, T−1, T+1 and
/// `big` bytes (several MiB, not a multiple of T).
pub fn edge_case_files(big: usize, seed: u64) -> Vec<TestFile> {
    let t = usize::from(SYMBOL);
    vec![
        TestFile::random("one-byte.bin", 1, seed),
        TestFile::random("t-minus-one.bin", t - 1, seed + 1),
        TestFile::random("t-plus-one.bin", t + 1, seed + 2),
        TestFile::random("big.bin", big, seed + 3),
    ]
}

/// As [`edge_case_files`] for Raptor, whose objects need at least four
/// symbols of Al = 4 bytes: 16 bytes instead of 1 (either sender makes T
/// smaller for objects of fewer than four symbols; ours takes 13 bytes as
/// four symbols of 4, the last one short, theirs wants four whole ones).
pub fn raptor_edge_case_files(big: usize, seed: u64) -> Vec<TestFile> {
    let mut files = edge_case_files(big, seed);
    files[0] = TestFile::random("sixteen-bytes.bin", 16, seed);
    files
}

/// The group `239.255.77.1:port`.
pub fn group(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(239, 255, 77, 1).into(), port)
}

/// A receiver socket joined to `group` on 127.0.0.1 (made before the
/// sender starts, so no packet is missed) and a sender socket sending to
/// it through 127.0.0.1 with multicast loop on.
pub fn sockets(group: SocketAddr) -> (UdpSocket, UdpSocket) {
    let receiver = net::receiver_socket(
        group,
        &ReceiverSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            receive_buffer: 16 << 20,
        },
    )
    .unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let sender = net::sender_socket(
        group,
        &SenderSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..SenderSocketConfig::default()
        },
    )
    .unwrap();
    (sender, receiver)
}

/// The FDT `Expires` an hour from now, in NTP seconds.
pub fn ntp_expires_in_an_hour() -> u32 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // NTP seconds wrap at 2^32 (era 1 starts in 2036).
    ((unix + NTP_UNIX_OFFSET + 3600) & 0xffff_ffff) as u32
}
