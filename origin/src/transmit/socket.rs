//! The sending socket: one `sendmsg` per batch with UDP GSO through
//! `quinn-udp`, which detects GSO support and turns it off after a send
//! that the kernel or the driver refused; then batches go out one datagram
//! at a time.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use quinn_udp::{UdpSockRef, UdpSocketState};

/// Largest UDP payload of one GSO send: the 16-bit IPv4 total length less
/// the IPv4 and UDP headers.
pub(super) const MAX_GSO_BYTES: usize = 65_535 - 20 - 8;

/// How many times a send that found no buffer space is retried.
const RETRIES: u32 = 2_000;

/// A connected UDP socket and its GSO state.
#[derive(Debug)]
pub(super) struct GsoSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    destination: SocketAddr,
    /// GSO allowed by the configuration.
    gso: bool,
}

impl GsoSocket {
    /// Wraps a socket connected to `destination`; `gso` off sends one
    /// datagram per system call.
    pub(super) fn new(socket: UdpSocket, destination: SocketAddr, gso: bool) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // quinn-udp makes the socket non-blocking; the transmitter blocks
        // in the kernel when the send buffer is full instead of spinning.
        socket.set_nonblocking(false)?;
        Ok(GsoSocket {
            socket,
            state,
            destination,
            gso,
        })
    }

    /// Segments one send may carry now (1 without GSO).
    pub(super) fn max_segments(&self) -> usize {
        if self.gso {
            self.state.max_gso_segments().max(1)
        } else {
            1
        }
    }

    /// Sends `contents`: one datagram, or with `segment` several of that
    /// size (the last may be shorter).
    pub(super) fn send(&self, contents: &[u8], segment: Option<usize>) -> io::Result<()> {
        let segment = segment.filter(|s| *s > 0 && *s < contents.len());
        match (segment, self.max_segments()) {
            (Some(size), n) if n > 1 => match self.send_one(contents, Some(size)) {
                // quinn-udp turned GSO off after this refusal: resend the
                // batch one datagram at a time.
                Err(e) if self.max_segments() == 1 => {
                    tracing::info!("UDP GSO refused ({e}); sending one datagram per call");
                    self.send_each(contents, size)
                }
                other => other,
            },
            (Some(size), _) => self.send_each(contents, size),
            (None, _) => self.send_one(contents, None),
        }
    }

    fn send_each(&self, contents: &[u8], size: usize) -> io::Result<()> {
        contents
            .chunks(size)
            .try_for_each(|datagram| self.send_one(datagram, None))
    }

    /// One `sendmsg`, retried while the kernel has no buffer space.
    fn send_one(&self, contents: &[u8], segment_size: Option<usize>) -> io::Result<()> {
        let transmit = quinn_udp::Transmit {
            destination: self.destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        let mut tries = 0;
        loop {
            match self
                .state
                .try_send(UdpSockRef::from(&self.socket), &transmit)
            {
                Ok(()) => return Ok(()),
                // A unicast destination without a listener answers with an
                // ICMP error that the next send reports: not our failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
                Err(e) if is_transient(&e) && tries < RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_micros(20));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Errors that mean "no buffer space right now".
fn is_transient(e: &io::Error) -> bool {
    const ENOBUFS: i32 = 105;
    e.kind() == io::ErrorKind::WouldBlock
        || e.kind() == io::ErrorKind::Interrupted
        || (cfg!(target_os = "linux") && e.raw_os_error() == Some(ENOBUFS))
}
