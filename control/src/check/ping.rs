//! PING_CHECK: an ICMP echo request, answered within `connect_timeout`.
//!
//! Every ping from one local address goes through one raw ICMP socket (so needs CAP_NET_RAW)
//! shared by all probes: a raw socket sees every ICMP packet the host receives, so a socket
//! per probe would make each reply read by every probe. Each ping in flight gets its own
//! identifier and sequence number; a reply counts if those, its source and the random cookie
//! it echoes back all match.
//!
//! The raw socket is driven as a tokio `UdpSocket`: that type is only a datagram descriptor
//! with send_to/recv_from, which a raw ICMP socket also is, and it is the way to the reactor
//! that needs no `unsafe` (tokio's safe `AsyncFd` constructors are deprecated as unsound).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::machine::Outcome;
use super::tcp::local_error;

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
/// The receive buffer asked for, so that a burst of replies from thousands of probes is not
/// dropped before the receiving task runs.
const RECV_BUFFER: usize = 1 << 20;

/// The pings of every probe.
pub(super) struct Pinger {
    /// One socket per local address pinged from (None: the kernel picks).
    sockets: Mutex<HashMap<Option<Ipv4Addr>, Arc<IcmpSocket>>>,
    /// The next identifier (high half) and sequence number (low half) to hand out.
    next: AtomicU32,
    cookie: [u8; 8],
}

struct IcmpSocket {
    socket: UdpSocket,
    /// Pings in flight: identifier and sequence -> who was pinged and who waits.
    waiting: Mutex<HashMap<u32, (Ipv4Addr, oneshot::Sender<()>)>>,
}

/// Forgets a ping in flight, answered or not, when its check ends (or is dropped).
struct Waiting<'a> {
    socket: &'a IcmpSocket,
    key: u32,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.socket.waiting).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing holding these locks can panic halfway through a change.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pinger {
    /// `seed`: randomness for the cookie and the first identifier.
    pub(super) fn new(seed: u64) -> Self {
        Pinger {
            sockets: Mutex::new(HashMap::new()),
            next: AtomicU32::new(seed as u32),
            cookie: (seed ^ 0x5256_5350_494e_4721).to_be_bytes(),
        }
    }

    /// One ping to `target` from `bind`; the caller bounds the time.
    pub(super) async fn ping(&self, target: Ipv4Addr, bind: Option<Ipv4Addr>) -> Outcome {
        let socket = match self.socket(bind) {
            Ok(socket) => socket,
            Err(e) => return local_error("ICMP socket", &e),
        };
        let (key, answered) = {
            let mut waiting = lock(&socket.waiting);
            // Keys come round again after 2^32 pings; skip one still waiting.
            let free = (0..16)
                .map(|_| self.next.fetch_add(1, Ordering::Relaxed))
                .find(|key| !waiting.contains_key(key));
            let Some(key) = free else {
                return Outcome::local("too many pings in flight");
            };
            let (tx, rx) = oneshot::channel();
            waiting.insert(key, (target, tx));
            (key, rx)
        };
        let _waiting = Waiting {
            socket: &socket,
            key,
        };
        let packet = echo_request(key, self.cookie);
        let to = SocketAddr::V4(SocketAddrV4::new(target, 0));
        if let Err(e) = socket.socket.send_to(&packet, to).await {
            return local_error("send", &e);
        }
        match answered.await {
            Ok(()) => Outcome::up("echo reply"),
            Err(_) => Outcome::local("ICMP socket closed"),
        }
    }

    /// The socket for `bind`, opened (with its receiving task) on first use. A failure is not
    /// remembered: the next ping tries again.
    fn socket(&self, bind: Option<Ipv4Addr>) -> std::io::Result<Arc<IcmpSocket>> {
        let mut sockets = lock(&self.sockets);
        if let Entry::Occupied(e) = sockets.entry(bind) {
            return Ok(e.get().clone());
        }
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        socket.set_nonblocking(true)?;
        // Best effort: a smaller buffer still works, it only drops sooner under a burst.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        if let Some(ip) = bind {
            socket.bind(&SockAddr::from(SocketAddrV4::new(ip, 0)))?;
        }
        let socket = Arc::new(IcmpSocket {
            socket: UdpSocket::from_std(socket.into())?,
            waiting: Mutex::new(HashMap::new()),
        });
        tokio::spawn(receive(socket.clone(), self.cookie));
        sockets.insert(bind, socket.clone());
        Ok(socket)
    }
}

/// Reads every ICMP packet the socket gets and wakes the ping each reply answers.
async fn receive(socket: Arc<IcmpSocket>, cookie: [u8; 8]) {
    let mut buf = vec![0u8; 2048];
    loop {
        // An error is one the socket held (reported once): nothing to do but read on.
        let Ok((n, _)) = socket.socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some((from, key)) = parse_reply(&buf[..n], cookie) else {
            continue;
        };
        let mut waiting = lock(&socket.waiting);
        if waiting.get(&key).is_some_and(|(target, _)| *target == from) {
            if let Some((_, tx)) = waiting.remove(&key) {
                let _ = tx.send(());
            }
        }
    }
}

/// An echo request: identifier and sequence from `key`, the cookie, padding.
fn echo_request(key: u32, cookie: [u8; 8]) -> Vec<u8> {
    let mut packet = vec![ECHO_REQUEST, 0, 0, 0];
    packet.extend_from_slice(&key.to_be_bytes());
    packet.extend_from_slice(&cookie);
    packet.extend_from_slice(&[0; 8]);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo reply to one of our requests (raw sockets read the IP header too): its source
/// and the key it echoes.
fn parse_reply(packet: &[u8], cookie: [u8; 8]) -> Option<(Ipv4Addr, u32)> {
    let first = *packet.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || packet.get(9) != Some(&1) {
        return None;
    }
    let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let icmp = packet.get(ihl..)?;
    if icmp.len() < 16 || icmp[0] != ECHO_REPLY || icmp[1] != 0 || icmp[8..16] != cookie {
        return None;
    }
    let key = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
    Some((from, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: [u8; 8] = *b"rvscheck";

    /// What the kernel sends back: an IP header, then the request with type 0 and the
    /// checksum fixed.
    fn reply_to(request: &[u8], from: Ipv4Addr) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&from.octets());
        ip.extend_from_slice(&[127, 0, 0, 1]);
        let mut icmp = request.to_vec();
        icmp[0] = ECHO_REPLY;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn requests_carry_a_valid_checksum() {
        let request = echo_request(0x1234_5678, COOKIE);
        assert_eq!(checksum(&request), 0, "a correct checksum sums to zero");
        assert_eq!(&request[4..8], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(checksum(&[0xff]), 0x00ff, "odd lengths are padded");
    }

    #[test]
    fn only_our_replies_count() {
        let from = Ipv4Addr::new(10, 0, 0, 7);
        let request = echo_request(42, COOKIE);
        let reply = reply_to(&request, from);
        assert_eq!(parse_reply(&reply, COOKIE), Some((from, 42)));
        assert_eq!(
            parse_reply(&reply, *b"another!"),
            None,
            "someone else's ping"
        );
        let mut not_a_reply = reply.clone();
        not_a_reply[20] = ECHO_REQUEST;
        assert_eq!(
            parse_reply(&not_a_reply, COOKIE),
            None,
            "our own request on lo"
        );
        assert_eq!(parse_reply(&reply[..30], COOKIE), None, "truncated");
        assert_eq!(parse_reply(&[], COOKIE), None);
    }
}
