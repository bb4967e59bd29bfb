//! UDP_CHECK: one datagram from a fresh connected socket. With `require_reply` the server
//! must answer within `connect_timeout` (and, if given, with bytes that start the way the
//! configuration says); without it, silence is success and only an ICMP port unreachable,
//! which the kernel hands a connected socket as ECONNREFUSED, is failure.

use std::net::{Ipv4Addr, SocketAddrV4};

use rustix::io::Errno;
use tokio::net::UdpSocket;

use super::machine::Outcome;
use super::tcp::{local_error, remote_error};
use super::Probe;

/// The largest datagram read back; longer replies are cut, which only matters past the
/// expected bytes.
const MAX_REPLY: usize = 64 * 1024;

pub(super) async fn check(probe: &Probe, payload: &[u8], require_reply: Option<&[u8]>) -> Outcome {
    let port_unreachable = |e: &std::io::Error| {
        if Errno::from_io_error(e) == Some(Errno::CONNREFUSED) {
            Some(Outcome::down("port unreachable"))
        } else {
            None
        }
    };
    let local = SocketAddrV4::new(probe.bind.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    // bind, connect and send only reach the local stack: their errors are ours, except a port
    // unreachable already queued on the socket.
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(e) => return local_error("bind", &e),
    };
    if let Err(e) = socket.connect(probe.target).await {
        return local_error("connect", &e);
    }
    if let Err(e) = socket.send(payload).await {
        return port_unreachable(&e).unwrap_or_else(|| local_error("send", &e));
    }
    // On the heap: a probe's task is as big as its largest check.
    let mut buf = vec![0u8; MAX_REPLY];
    match tokio::time::timeout(probe.connect_timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => match require_reply {
            Some(expected) if !buf[..n].starts_with(expected) => Outcome::down("reply mismatch"),
            _ => Outcome::up("reply"),
        },
        Ok(Err(e)) => port_unreachable(&e).unwrap_or_else(|| remote_error(&e)),
        Err(_) if require_reply.is_some() => Outcome::down("no reply"),
        Err(_) => Outcome::up("no port unreachable"),
    }
}
