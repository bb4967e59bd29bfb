//! TCP_CHECK, and the connect HTTP_GET/SSL_GET start from. Also the one place that decides
//! whose fault a socket error is: the local stack's (a [`Outcome::Local`], not held against
//! the server) or the server's (a [`Outcome::Down`]).
//!
//! The rule is when the error comes. The system calls that run before a packet leaves
//! (socket, bind, a non-blocking connect's own return) fail only for local reasons: out of
//! descriptors or buffers, an address that is not ours, no route in our table, a local
//! firewall. Whatever comes later (the connect's result, a read, a write) comes from the
//! network: refused, reset, ARP unanswered (host unreachable), an ICMP from a router.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use rustix::io::Errno;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::TcpStream;

use super::machine::Outcome;

/// What an error found before anything left this host says: the appliance's fault, except
/// the few answers only a peer can give (a loopback peer answers within the call).
pub(super) fn local_error(what: &str, e: &io::Error) -> Outcome {
    match Errno::from_io_error(e) {
        Some(Errno::CONNREFUSED | Errno::CONNRESET | Errno::TIMEDOUT) => remote_error(e),
        _ => Outcome::local(format!("{what}: {e}")),
    }
}

/// What an error that came back from the network says about the server. The appliance's
/// own shortages still count as local whenever they show.
pub(super) fn remote_error(e: &io::Error) -> Outcome {
    let reason = match Errno::from_io_error(e) {
        Some(Errno::CONNREFUSED) => "refused",
        Some(Errno::CONNRESET) => "reset",
        Some(Errno::TIMEDOUT) => "timeout",
        Some(Errno::HOSTUNREACH) => "host unreachable",
        Some(Errno::NETUNREACH) => "network unreachable",
        Some(Errno::PIPE) => "closed",
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
            return Outcome::local(e.to_string())
        }
        _ if e.kind() == io::ErrorKind::UnexpectedEof => "closed",
        _ => return Outcome::down(e.to_string()),
    };
    Outcome::down(reason)
}

/// Connects to `target` from `bind` (None: the kernel picks). No timeout here: the caller
/// bounds the whole check, and dropping this future closes the socket.
pub(super) async fn connect(
    target: SocketAddrV4,
    bind: Option<Ipv4Addr>,
) -> Result<TcpStream, Outcome> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| local_error("socket", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| local_error("socket", &e))?;
    if let Some(ip) = bind {
        socket
            .bind(&SockAddr::from(SocketAddrV4::new(ip, 0)))
            .map_err(|e| local_error("bind", &e))?;
    }
    match socket.connect(&SockAddr::from(target)) {
        Ok(()) => {}
        Err(e) if Errno::from_io_error(&e) == Some(Errno::INPROGRESS) => {}
        Err(e) => return Err(local_error("connect", &e)),
    }
    let stream = TcpStream::from_std(socket.into()).map_err(|e| local_error("register", &e))?;
    // Writable once the handshake is over, either way; SO_ERROR tells which way.
    stream.writable().await.map_err(|e| remote_error(&e))?;
    match stream.take_error() {
        Ok(None) => Ok(stream),
        Ok(Some(e)) | Err(e) => Err(remote_error(&e)),
    }
}

/// TCP_CHECK: the connection is accepted (then closed at once).
pub(super) async fn check(target: SocketAddrV4, bind: Option<Ipv4Addr>) -> Outcome {
    match connect(target, bind).await {
        Ok(_) => Outcome::up("connected"),
        Err(outcome) => outcome,
    }
}
