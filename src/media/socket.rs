//! RTP port allocation: binds a UDP socket on an even port of the configured range (RFC 3550
//! §11: RTP on even ports, RTCP on the next odd one, which we leave free for when RTCP arrives);
//! and `send_and_receive`, which readies a bound socket for a media session.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand::Rng;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

/// A media session's socket, as the receive task watches it: registered with the runtime for
/// readability only.
pub type ReceiveSocket = AsyncFd<Arc<std::net::UdpSocket>>;

/// Binds `ip` on the first free even port of `port_range` (inclusive), trying ports from a
/// random starting point so concurrent calls (and restarted processes) do not all race for the
/// bottom of the range, and so ports are harder to guess for RTP injection.
pub async fn bind(ip: IpAddr, port_range: (u16, u16)) -> io::Result<(UdpSocket, u16)> {
    let (lo, hi) = port_range;
    // Widened so that an odd `lo` of 65535 cannot wrap or saturate into a bogus "even" port.
    let first_even = u32::from(lo) + u32::from(lo % 2);
    if lo > hi || first_even > u32::from(hi) || first_even == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("RTP port range {lo}-{hi} has no even port above 0"),
        ));
    }
    let count = (u32::from(hi) - first_even) / 2 + 1;
    let start = rand::rng().random_range(0..count);
    for i in 0..count {
        let slot = (start + i) % count;
        // slot < count, so the port stays within first_even..=hi and fits a u16.
        let port = (first_even + slot * 2) as u16;
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(sock) => return Ok((sock, port)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free even RTP port in {lo}-{hi} on {ip}; widen the range or lower the call limit"
        ),
    ))
}

/// Splits a bound RTP socket into the plain socket the pacing thread sends from and the same
/// socket registered with the runtime for readability only, for the receive task. Must be
/// called on a tokio runtime.
///
/// Why not keep the tokio `UdpSocket`: it is registered for writability as well, and Linux
/// signals a UDP socket writable again each time a sent datagram's buffer is freed, so every RTP
/// packet sent cost an epoll event (and often a runtime thread woken from `epoll_wait`) on top of
/// its `sendto`: at thousands of streams, as much work as the sending itself. Nobody waits for
/// this socket to be writable (a full send buffer drops the packet), so it is not asked to be.
pub fn send_and_receive(
    socket: UdpSocket,
) -> io::Result<(Arc<std::net::UdpSocket>, ReceiveSocket)> {
    // Stays non-blocking: sends never wait, receives are driven by readiness.
    let socket = Arc::new(socket.into_std()?);
    // SAFETY: `register_with_interest` asks that the descriptor `as_raw_fd` returns stay open and
    // the same for the `AsyncFd`'s whole life. It is the descriptor of the socket this `Arc`
    // owns; the `AsyncFd` keeps one `Arc` until it is dropped, so the socket cannot be closed
    // before, and an `Arc<std::net::UdpSocket>` always reports its one descriptor.
    let receive = unsafe { AsyncFd::register_with_interest(socket.clone(), Interest::READABLE) }?;
    Ok((socket, receive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn binds_even_ports_in_range_until_exhausted() {
        // A small, odd-bounded range high in the ephemeral space: 4 even ports.
        let range = (47101, 47108);
        let mut held = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..4 {
            let (sock, port) = bind(LOOPBACK, range).await.expect("free port");
            assert_eq!(port % 2, 0);
            assert!((range.0..=range.1).contains(&port));
            assert_eq!(sock.local_addr().expect("addr").port(), port);
            ports.push(port);
            held.push(sock);
        }
        ports.sort_unstable();
        assert_eq!(ports, [47102, 47104, 47106, 47108]);
        let err = bind(LOOPBACK, range).await.expect_err("range exhausted");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn empty_ranges_are_rejected() {
        for range in [(10001, 10001), (2000, 1000), (0, 1), (65535, 65535)] {
            let err = bind(LOOPBACK, range).await.expect_err("no even port");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{range:?}");
        }
    }
}
