//! The established fast path and the staged burst.
//!
//! A burst is staged first ([`stage`]): every packet is parsed once into a [`Desc`] (is it a
//! plain IPv4 TCP/UDP packet for this port, its flow key, its TCP flags), its key hashed once,
//! the index buckets of the whole burst prefetched, then the connection slots. Then each
//! packet is processed ([`process_staged`]): a packet of an established connection whose
//! rewrite the full path already precomputed (`FastState`, written under the same snapshot
//! generation and ingress port) is rewritten at fixed offsets with one checksum fold per
//! checksum and its deadline stored; everything else takes the full path ([`super::decide`]),
//! which decides exactly as before and, when it forwarded a packet of a connection that was
//! already ESTABLISHED, writes the connection's precomputed rewrite for that direction (the
//! fast path's first packet is a connection's second established one each way: a short
//! connection never pays for a rewrite it would not use).
//!
//! The fast path only ever produces what the full path would: a differential test runs random
//! traffic through both and demands the same bytes, verdicts and counters. Anything it does
//! not cover (IPv4 options, fragments, SYN/FIN/RST, a state other than ESTABLISHED, a synced
//! connection, a changed snapshot, a deadline that would move sooner, a TUN packet that would
//! not fit) is the full path's.

use super::{decide, Verdict, WorkerState, L3};
use crate::conn::{Direction, FastState, TcpState};
use crate::counters::DropReason;
use crate::flow::{Endpoint, FlowKey, ForwardMode};
use crate::forward::tun;
use crate::frame::Frame;
use crate::snapshot::Snapshot;
use crate::wire::front::{self, Front};
use crate::wire::{ethernet, ipv4, tcp};
use std::net::Ipv4Addr;

/// The most packets a staged burst holds (a DPDK burst).
pub const BURST: usize = 32;

/// Where TCP/UDP starts (no IPv4 options on the fast path).
const L4: usize = L3 + ipv4::MIN_HEADER_LEN;

/// What the single parse of a staged packet found.
#[derive(Clone, Copy, Debug)]
pub struct Desc {
    key: FlowKey,
    hash: u64,
    /// The IPv4 total length.
    ip_len: u16,
    tcp_flags: u8,
    /// A plain IPv4 TCP/UDP packet for this port the fast path may take (else: full path).
    fast: bool,
}

const NOT_FAST: Desc = Desc {
    key: FlowKey::new(
        0,
        Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
        Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
    ),
    hash: 0,
    ip_len: 0,
    tcp_flags: 0,
    fast: false,
};

/// A staged burst: one [`Desc`] per packet, in the burst's order.
#[derive(Debug)]
pub struct Staged {
    descs: [Desc; BURST],
    len: usize,
}

impl Default for Staged {
    fn default() -> Self {
        Staged {
            descs: [NOT_FAST; BURST],
            len: 0,
        }
    }
}

impl Staged {
    /// The descriptor of the burst's `i`th packet (a packet past the staged ones gets one
    /// that sends it down the full path).
    #[inline]
    pub fn get(&self, i: usize) -> &Desc {
        if i < self.len {
            &self.descs[i]
        } else {
            &NOT_FAST
        }
    }
}

/// Stages up to [`BURST`] frames received on `in_port` (see the module docs). Above
/// [`super::PREFETCH_MIN_CONNECTIONS`] the buckets and then the slots of the burst's
/// connections are prefetched: the hashes are the ones processing uses, nothing is parsed
/// twice.
#[inline]
pub fn stage<'a, F: Frame + 'a>(
    frames: impl Iterator<Item = &'a F>,
    in_port: usize,
    snapshot: &Snapshot,
    state: &WorkerState,
    staged: &mut Staged,
) {
    let mut n = 0;
    if let Some(port) = snapshot.ports.get(in_port) {
        let mac = port.mac;
        for (desc, frame) in staged.descs.iter_mut().zip(frames) {
            *desc = describe(frame, &mac, state);
            n += 1;
        }
    }
    staged.len = n;
    prefetch(staged, state);
}

/// [`stage`] for frames of several ports (handed in by other workers): `port_of` says each
/// one's ingress port (`None`: it will not be processed).
#[inline]
pub fn stage_each<'a, F: Frame + 'a>(
    frames: impl Iterator<Item = &'a F>,
    port_of: impl Fn(&F) -> Option<usize>,
    snapshot: &Snapshot,
    state: &WorkerState,
    staged: &mut Staged,
) {
    let mut n = 0;
    for (desc, frame) in staged.descs.iter_mut().zip(frames) {
        *desc = match port_of(frame).and_then(|p| snapshot.ports.get(p)) {
            Some(port) => describe(frame, &port.mac, state),
            None => NOT_FAST,
        };
        n += 1;
    }
    staged.len = n;
    prefetch(staged, state);
}

/// The burst's index buckets, then (once those are on their way) its connection slots, from
/// the hashes staged; nothing below [`super::PREFETCH_MIN_CONNECTIONS`], where the table
/// sits in the core's cache and the passes would only add work.
#[inline(always)]
fn prefetch(staged: &Staged, state: &WorkerState) {
    if state.conns.len() < super::PREFETCH_MIN_CONNECTIONS {
        return;
    }
    let descs = &staged.descs[..staged.len.min(BURST)];
    for d in descs {
        if d.fast {
            state.conns.prefetch_hashed(d.hash);
        }
    }
    for d in descs {
        if d.fast {
            state.conns.prefetch_slot(d.hash);
        }
    }
}

/// The one parse: whether `frame` is a plain IPv4 TCP/UDP packet to `mac` that every check
/// of the full path before the connection lookup would pass (Ethernet, a 20-byte IPv4 header
/// with a right checksum, no fragment, TTL above 1, lengths, ports), with its key and hash.
#[inline(always)]
fn describe<F: Frame>(frame: &F, mac: &[u8; 6], state: &WorkerState) -> Desc {
    let b = frame.bytes();
    let Some(h) = Front::new(b) else {
        return NOT_FAST;
    };
    if h.dst_mac() != mac || h.src_mac_is_multicast() || h.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return NOT_FAST;
    }
    let total_len = usize::from(h.total_len());
    let protocol = h.protocol();
    if h.ver_ihl() != 0x45 || h.is_fragment() || h.ttl() <= 1 || L3 + total_len > b.len() {
        return NOT_FAST;
    }
    let checksum_ok = match frame.rx_ip_checksum() {
        Some(good) => good,
        None => header_sum(h.ip_header()) == 0xffff,
    };
    if !checksum_ok {
        return NOT_FAST;
    }
    let Some(segment) = total_len.checked_sub(ipv4::MIN_HEADER_LEN) else {
        return NOT_FAST;
    };
    let tcp_flags = match protocol {
        ipv4::PROTO_TCP => {
            // The segment holds the whole TCP header, options included (as the full path's
            // parse demands); the rewrite then finds the checksum at its place.
            if segment < tcp::HEADER_LEN {
                return NOT_FAST;
            }
            let t = tcp::Packet::new_unchecked(&b[L4..L4 + tcp::HEADER_LEN]);
            if t.header_len() < tcp::HEADER_LEN || t.header_len() > segment {
                return NOT_FAST;
            }
            t.flags()
        }
        ipv4::PROTO_UDP => {
            let len = usize::from(h.udp_len());
            if segment < 8 || len < 8 || len > segment {
                return NOT_FAST;
            }
            0
        }
        _ => return NOT_FAST,
    };
    let (sport, dport) = (h.src_port(), h.dst_port());
    if sport == 0 || dport == 0 {
        return NOT_FAST;
    }
    let key = FlowKey::new(
        protocol,
        Endpoint::new(h.src_addr(), sport),
        Endpoint::new(h.dst_addr(), dport),
    );
    Desc {
        key,
        hash: state.conns.hash(&key),
        ip_len: total_len as u16,
        tcp_flags,
        fast: true,
    }
}

/// The one's-complement sum of a 20-byte IPv4 header, unrolled (0xffff: checksum right).
#[inline(always)]
fn header_sum(ip: &[u8; 20]) -> u16 {
    let word = |i: usize| u64::from(u32::from_be_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]));
    fold(word(0) + word(4) + word(8) + word(12) + word(16))
}

#[inline(always)]
fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
}

/// `check` after adding the precomputed sum `delta` (RFC 1624 eqn. 3 over all the changed
/// words at once; the same result as one update per word, see `FastState`).
#[inline(always)]
fn apply(check: u16, delta: u16) -> u16 {
    !fold(u64::from(!check) + u64::from(delta))
}

/// Processes a staged packet (`desc` from [`stage`] for this frame): the fast path when it
/// applies, else the full path, which decides as [`super::process`] (`steer`: false for a
/// packet handed in by another worker) does.
#[inline(always)]
pub fn process_staged(
    frame: &mut impl Frame,
    desc: &Desc,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
    steer: bool,
) -> Verdict {
    // A segment with SYN, FIN or RST is the full path's whatever its connection: no lookup.
    let opening_or_closing = desc.key.protocol == ipv4::PROTO_TCP
        && desc.tcp_flags & (tcp::FLAG_SYN | tcp::FLAG_FIN | tcp::FLAG_RST) != 0;
    if desc.fast && !opening_or_closing {
        if let Some(verdict) = established(frame, desc, in_port, snapshot, state, now_ms) {
            return verdict;
        }
    }
    full_path(frame, desc, in_port, snapshot, state, now_ms, steer)
}

/// The full path for a staged packet, out of line: the fast path's loop stays small. It looks
/// the connection up with the hash staged.
#[inline(never)]
fn full_path(
    frame: &mut impl Frame,
    desc: &Desc,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
    steer: bool,
) -> Verdict {
    let hashed = desc.fast.then_some((desc.key, desc.hash));
    decide(frame, in_port, snapshot, state, now_ms, steer, hashed)
}

/// The fast path proper: `None` when the packet is the full path's (nothing changed then).
#[inline(always)]
fn established(
    frame: &mut impl Frame,
    desc: &Desc,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
) -> Option<Verdict> {
    let (index, direction) = state.conns.find_hashed(desc.hash, &desc.key)?;
    let (conn, fast, expires_ms) = state.conns.at(index);
    let d = direction as usize;
    if fast.flags & FastState::ready_bit(direction) == 0
        || fast.generation != snapshot.generation as u32
        || usize::from(fast.in_port[d]) != in_port
    {
        return None;
    }
    let timeouts = state.conns.timeouts();
    let seconds = if conn.protocol == ipv4::PROTO_TCP {
        // Only a segment that leaves ESTABLISHED as it is: no SYN, FIN or RST.
        if conn.state != TcpState::Established
            || desc.tcp_flags & (tcp::FLAG_SYN | tcp::FLAG_FIN | tcp::FLAG_RST) != 0
        {
            return None;
        }
        timeouts.for_state(TcpState::Established)
    } else {
        timeouts.udp
    };
    let deadline = now_ms.saturating_add(u64::from(seconds) * crate::conn::TICK_MS);
    if deadline < expires_ms {
        // A shorter timeout since (`--set`): the full path moves the timer.
        return None;
    }
    let (mode, protocol, dest) = (conn.mode, conn.protocol, conn.dest);
    let (new_src, new_dst) = match direction {
        Direction::Original => (conn.local, conn.real),
        Direction::Reply => (conn.vip, conn.client),
    };
    let (ip_delta, l4_delta) = (fast.ip_delta[d], fast.l4_delta[d]);
    let l4_changes = fast.flags & FastState::l4_bit(direction) != 0;
    let (out_port, macs, tunnel) = match direction {
        Direction::Original => {
            let hop = state.hops.get(dest as usize)?;
            if hop.stamp != snapshot.generation.wrapping_add(1) {
                return None;
            }
            (
                usize::from(hop.port),
                hop.macs,
                Some((hop.outer_src, hop.mtu)),
            )
        }
        Direction::Reply => {
            let out = usize::from(conn.client_port);
            let mut macs = [0; 12];
            macs[..6].copy_from_slice(&conn.client_mac);
            macs[6..].copy_from_slice(&snapshot.ports.get(out)?.mac);
            (out, macs, None)
        }
    };
    let ip_len = desc.ip_len;
    let (outer_src, mtu) = tunnel.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    if mode == ForwardMode::Tun && usize::from(ip_len) + tun::OUTER_HEADER_LEN > usize::from(mtu) {
        return None;
    }

    // Decided: from here on the packet is forwarded as the full path would.
    let buf = frame.bytes_mut();
    // What IPVS counts: the IP length as the packet leaves (link-layer padding included).
    let mut length = buf.len() as u64 - L3 as u64;
    let (mut h, rest) = Front::new_mut(buf)?; // `describe` saw these bytes
    h.set_ttl(h.ttl() - 1);
    h.set_ip_checksum(apply(h.ip_checksum(), ip_delta));
    match mode {
        ForwardMode::Nat | ForwardMode::FullNat => {
            h.set_addrs(new_src.addr, new_dst.addr);
            h.set_ports(new_src.port, new_dst.port);
            if l4_changes {
                if protocol == ipv4::PROTO_TCP {
                    // A TCP header of 20 bytes at least is there (`describe`).
                    const AT: usize = front::TCP_CHECKSUM_AFTER;
                    if let Some(c) = rest.get_mut(AT..AT + 2) {
                        let sum = u16::from_be_bytes([c[0], c[1]]);
                        c.copy_from_slice(&apply(sum, l4_delta).to_be_bytes());
                    }
                } else {
                    // 0 is "no checksum" and stays; a computed 0 goes out as 0xffff.
                    let sum = h.udp_checksum();
                    if sum != 0 {
                        h.set_udp_checksum(match apply(sum, l4_delta) {
                            0 => 0xffff,
                            new => new,
                        });
                    }
                }
            }
            h.set_macs(&macs);
        }
        ForwardMode::Dr => h.set_macs(&macs),
        ForwardMode::Tun => {
            let outer_dst = new_dst.addr;
            if tun::encapsulate(frame, L3, usize::from(ip_len), outer_src, outer_dst, mtu).is_err()
            {
                // No headroom: what the full path says too.
                return Some(Verdict::Drop(DropReason::TooBig));
            }
            let b = frame.bytes_mut();
            length = b.len() as u64 - L3 as u64;
            if let Some((mut outer, _)) = Front::new_mut(b) {
                outer.set_macs(&macs);
            }
        }
    }
    state
        .dests
        .count(dest, direction == Direction::Original, length);
    state.conns.extend(index, deadline);
    state.fast_packets += 1;
    if snapshot.sync_master && direction == Direction::Original {
        let id = state.conns.id_at(index);
        state.note_for_sync(id, TcpState::Established, snapshot);
    }
    Some(Verdict::Forward {
        port: out_port,
        created: false,
    })
}

/// The next hop towards one real server (by its dest slot), as the full path found it under
/// the snapshot generation it carries: out port, both MACs, and for TUN the outer source
/// address and the port's MTU.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hop {
    /// The snapshot generation + 1 it was found under (0: never).
    stamp: u64,
    port: u8,
    mtu: u16,
    /// The Ethernet header's first 12 bytes: the next hop's MAC, then the out port's.
    macs: [u8; 12],
    outer_src: Ipv4Addr,
}

impl Hop {
    const NONE: Hop = Hop {
        stamp: 0,
        port: 0,
        mtu: 0,
        macs: [0; 12],
        outer_src: Ipv4Addr::UNSPECIFIED,
    };
}

/// RFC 1624's `~m + m'` for every word that `rewrite_addr`/`rewrite_port` replace when
/// `old` becomes `new`: an address's two words when the address changes, a port's word when it
/// changes. (address sum, port sum, whether any word changes).
fn changed_words(old: Endpoint, new: Endpoint) -> (u64, u64, bool) {
    let word = |o: u16, n: u16| u64::from(!o) + u64::from(n);
    let (o, n) = (u32::from(old.addr), u32::from(new.addr));
    let addr = if o != n {
        word((o >> 16) as u16, (n >> 16) as u16) + word(o as u16, n as u16)
    } else {
        0
    };
    let port = if old.port != new.port {
        word(old.port, new.port)
    } else {
        0
    };
    (addr, port, o != n || old.port != new.port)
}

impl WorkerState {
    /// Called by the full path after it forwarded a packet of connection `id` travelling
    /// `direction`, received on `in_port`, under `snapshot`: precomputes that direction's
    /// rewrite (and the next hop of its real server) so that the connection's next packets
    /// take the fast path, as long as the snapshot stays. Out of line: once per connection,
    /// direction and snapshot.
    #[inline(never)]
    pub(super) fn prepare_fast(
        &mut self,
        id: crate::conn::ConnId,
        direction: Direction,
        in_port: usize,
        snapshot: &Snapshot,
    ) {
        let Some(conn) = self.conns.get(id).copied() else {
            return;
        };
        if conn.synced || in_port > usize::from(u8::MAX) {
            return;
        }
        if direction == Direction::Original {
            let Some(hop) = self.hops.get_mut(conn.dest as usize) else {
                return;
            };
            let Some((port, dst_mac)) = snapshot.next_hop(conn.real.addr) else {
                return;
            };
            let Some(out) = snapshot.ports.get(port) else {
                return;
            };
            let outer_src = match (conn.mode, out.primary) {
                (ForwardMode::Tun, None) => return,
                (_, primary) => primary.unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            if port > usize::from(u8::MAX) {
                return;
            }
            let mut macs = [0; 12];
            macs[..6].copy_from_slice(&dst_mac);
            macs[6..].copy_from_slice(&out.mac);
            *hop = Hop {
                stamp: snapshot.generation.wrapping_add(1),
                port: port as u8,
                mtu: out.mtu,
                macs,
                outer_src,
            };
        }
        let (old, new) = match direction {
            Direction::Original => ((conn.client, conn.vip), (conn.local, conn.real)),
            Direction::Reply => ((conn.real, conn.local), (conn.vip, conn.client)),
        };
        // The TTL's word: `~(ttl, p) + (ttl - 1, p)` is 0xfeff whatever the TTL, so the IPv4
        // header always has a word that changes.
        let (mut ip, mut l4, mut l4_changes) = (0xfeff_u64, 0u64, false);
        if conn.mode.sees_replies() {
            for (o, n) in [(old.0, new.0), (old.1, new.1)] {
                let (addr, port, changes) = changed_words(o, n);
                ip += addr;
                l4 += addr + port;
                l4_changes |= changes;
            }
        }
        let (ip_delta, l4_delta) = (fold(ip), fold(l4));
        let generation = snapshot.generation as u32;
        let Some(fast) = self.conns.fast_mut(id) else {
            return;
        };
        if fast.generation != generation {
            *fast = FastState {
                generation,
                ..FastState::default()
            };
        }
        let d = direction as usize;
        fast.flags |= FastState::ready_bit(direction);
        if l4_changes {
            fast.flags |= FastState::l4_bit(direction);
        } else {
            fast.flags &= !FastState::l4_bit(direction);
        }
        fast.in_port[d] = in_port as u8;
        fast.ip_delta[d] = ip_delta;
        fast.l4_delta[d] = l4_delta;
    }

    /// Sizes the next-hop cache to the dest table (on a new snapshot; never per packet).
    pub(super) fn size_hops(&mut self) {
        let n = self.dests.loads().len();
        if self.hops.len() < n {
            self.hops.resize(n, Hop::NONE);
        }
    }
}

#[cfg(test)]
mod tests;
