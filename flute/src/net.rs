//! Socket helpers shared by the I/O layers that drive the sans-IO
//! [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver): the origin's
//! paced transmitter and the UE agent's receiver. Behind the `net` feature,
//! outside the sans-IO core.
//!
//! They only open and configure sockets (multicast group, interface, TTL,
//! loop, buffer sizes); sending, pacing and batching belong to the caller.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The interface a multicast group is sent on or joined on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// Let the kernel choose (the route to the group).
    Any,
    /// An IPv4 interface, named by one of its addresses (`127.0.0.1`).
    V4(Ipv4Addr),
    /// An interface index (IPv6 groups name interfaces this way).
    Index(u32),
}

impl FromStr for Interface {
    type Err = io::Error;

    /// Parses an IPv4 address, an interface index, an interface name
    /// (`eth0`), or `any`/empty for the kernel's choice.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.eq_ignore_ascii_case("any") {
            return Ok(Self::Any);
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Self::V4(v4));
        }
        if let Ok(index) = s.parse::<u32>() {
            return Ok(Self::Index(index));
        }
        if s.parse::<Ipv6Addr>().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {s:?}: name IPv6 interfaces by name or index, not address"),
            ));
        }
        nix::net::if_::if_nametoindex(s)
            .map(Self::Index)
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("interface {s:?}: {e}")))
    }
}

impl Interface {
    /// The IPv4 address to use for this interface with IPv4 sockets.
    fn ipv4(self) -> io::Result<Ipv4Addr> {
        match self {
            Self::Any => Ok(Ipv4Addr::UNSPECIFIED),
            Self::V4(addr) => Ok(addr),
            Self::Index(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPv4 multicast needs the interface's IPv4 address",
            )),
        }
    }

    /// The interface index to use with IPv6 sockets (0 = any).
    fn index(self) -> io::Result<u32> {
        match self {
            Self::Any => Ok(0),
            Self::Index(index) => Ok(index),
            Self::V4(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPv6 multicast needs an interface name or index",
            )),
        }
    }
}

/// How a multicast sender socket is set up.
#[derive(Clone, Debug)]
pub struct SenderSocketConfig {
    /// Interface the group is sent on.
    pub interface: Interface,
    /// Multicast TTL (IPv4) or hop limit (IPv6). 1 keeps packets on the link.
    pub ttl: u32,
    /// Whether this host's own receivers see the packets.
    pub multicast_loop: bool,
    /// Requested socket send buffer in bytes.
    pub send_buffer: usize,
}

impl Default for SenderSocketConfig {
    fn default() -> Self {
        Self {
            interface: Interface::Any,
            ttl: 1,
            multicast_loop: true,
            send_buffer: 4 << 20,
        }
    }
}

/// Opens a UDP socket that sends to `group` (a multicast group, or a unicast
/// address for tests and relays), bound to an ephemeral port, and connects it
/// to the group so plain `send` calls go there.
pub fn sender_socket(group: SocketAddr, config: &SenderSocketConfig) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    // The send buffer is a hint: the kernel caps it at wmem_max, which
    // costs only some batching headroom.
    set_send_buffer(&socket, config.send_buffer);
    match group.ip() {
        IpAddr::V4(addr) => {
            if addr.is_multicast() {
                socket.set_multicast_if_v4(&config.interface.ipv4()?)?;
                socket.set_multicast_loop_v4(config.multicast_loop)?;
                socket.set_multicast_ttl_v4(config.ttl)?;
            }
            socket.bind(&SockAddr::from(SocketAddr::new(
                Ipv4Addr::UNSPECIFIED.into(),
                0,
            )))?;
        }
        IpAddr::V6(addr) => {
            if addr.is_multicast() {
                socket.set_multicast_if_v6(config.interface.index()?)?;
                socket.set_multicast_loop_v6(config.multicast_loop)?;
                socket.set_multicast_hops_v6(config.ttl)?;
            }
            socket.bind(&SockAddr::from(SocketAddr::new(
                Ipv6Addr::UNSPECIFIED.into(),
                0,
            )))?;
        }
    }
    socket.connect(&SockAddr::from(group))?;
    Ok(socket.into())
}

/// How a multicast receiver socket is set up.
#[derive(Clone, Debug)]
pub struct ReceiverSocketConfig {
    /// Interface the group is joined on.
    pub interface: Interface,
    /// Requested socket receive buffer in bytes. Bursts at Gbit/s rates
    /// overflow the default; see [`receiver_socket`] for how it is set.
    pub receive_buffer: usize,
}

impl Default for ReceiverSocketConfig {
    fn default() -> Self {
        Self {
            interface: Interface::Any,
            receive_buffer: 8 << 20,
        }
    }
}

/// Opens a UDP socket bound to `group`'s port that has joined `group` (if it
/// is a multicast address) on the configured interface.
///
/// The socket is bound to the group address itself, so it only sees that
/// group's datagrams, and with `SO_REUSEADDR`/`SO_REUSEPORT` so several
/// receivers on one host can join one group. The receive buffer is set with
/// `SO_RCVBUFFORCE` when the process may (it passes `rmem_max`), else with
/// `SO_RCVBUF`; use [`receive_buffer_size`] to see what was granted.
pub fn receiver_socket(group: SocketAddr, config: &ReceiverSocketConfig) -> io::Result<UdpSocket> {
    receiver_socket_from(group, &[], config)
}

/// [`receiver_socket`] taking only datagrams from `sources` (RFC 4570
/// source filters: a source-specific join, `IP_ADD_SOURCE_MEMBERSHIP`,
/// per source) when `group` is an IPv4 multicast group and `sources` is
/// not empty; any source otherwise.
pub fn receiver_socket_from(
    group: SocketAddr,
    sources: &[Ipv4Addr],
    config: &ReceiverSocketConfig,
) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    set_receive_buffer(&socket, config.receive_buffer);
    match group.ip() {
        IpAddr::V4(addr) if addr.is_multicast() => {
            socket.bind(&SockAddr::from(group))?;
            if sources.is_empty() {
                socket.join_multicast_v4(&addr, &config.interface.ipv4()?)?;
            }
            for source in sources {
                socket.join_ssm_v4(source, &addr, &config.interface.ipv4()?)?;
            }
        }
        IpAddr::V6(addr) if addr.is_multicast() => {
            socket.set_only_v6(true)?;
            socket.bind(&SockAddr::from(group))?;
            socket.join_multicast_v6(&addr, config.interface.index()?)?;
        }
        _ => socket.bind(&SockAddr::from(group))?,
    }
    Ok(socket.into())
}

/// The receive buffer the kernel granted a socket, in bytes (Linux reports
/// twice the requested size, its bookkeeping included).
pub fn receive_buffer_size(socket: &UdpSocket) -> io::Result<usize> {
    socket2::SockRef::from(socket).recv_buffer_size()
}

fn set_receive_buffer(socket: &Socket, bytes: usize) {
    if nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBufForce, &bytes).is_err()
        && let Err(e) = socket.set_recv_buffer_size(bytes)
    {
        tracing::debug!("receive buffer of {bytes} bytes refused: {e}");
    }
}

fn set_send_buffer(socket: &Socket, bytes: usize) {
    if nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::SndBufForce, &bytes).is_err()
        && let Err(e) = socket.set_send_buffer_size(bytes)
    {
        tracing::debug!("send buffer of {bytes} bytes refused: {e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use std::time::Duration;

    #[test]
    fn interface_parses_addresses_indexes_and_names() {
        assert_eq!(
            "127.0.0.1".parse::<Interface>().unwrap(),
            Interface::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!("3".parse::<Interface>().unwrap(), Interface::Index(3));
        assert_eq!("any".parse::<Interface>().unwrap(), Interface::Any);
        assert!(matches!(
            "lo".parse::<Interface>().unwrap(),
            Interface::Index(i) if i > 0
        ));
        assert!("::1".parse::<Interface>().is_err());
        assert!("no-such-interface0".parse::<Interface>().is_err());
    }

    #[test]
    fn loopback_multicast_reaches_a_joined_receiver() {
        let group: SocketAddr = "239.255.42.1:47101".parse().unwrap();
        let receiver = receiver_socket(
            group,
            &ReceiverSocketConfig {
                interface: Interface::V4(Ipv4Addr::LOCALHOST),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(receive_buffer_size(&receiver).unwrap() > 0);
        receiver
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let sender = sender_socket(
            group,
            &SenderSocketConfig {
                interface: Interface::V4(Ipv4Addr::LOCALHOST),
                ..Default::default()
            },
        )
        .unwrap();
        // A loaded machine may drop a datagram: send a bounded number until
        // one arrives.
        let mut buf = [0u8; 64];
        let mut received = None;
        for _ in 0..100 {
            sender.send(b"hello group").unwrap();
            if let Ok(n) = receiver.recv(&mut buf) {
                received = Some(n);
                break;
            }
        }
        assert_eq!(&buf[..received.unwrap()], b"hello group");
    }

    #[test]
    fn ipv4_group_with_an_interface_index_is_refused() {
        let group: SocketAddr = "239.255.42.2:47102".parse().unwrap();
        let err = sender_socket(
            group,
            &SenderSocketConfig {
                interface: Interface::Index(1),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
