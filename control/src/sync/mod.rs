//! Connection sync between appliances, IPVS's protocol version 1 (`wire`), configured with
//! keepalived's `lvs_sync_daemon` and tied to a VRRP instance as keepalived ties it: while
//! that instance is MASTER this appliance sends the connections its workers note (IPVS's
//! threshold rule, `dataplane::sync`), otherwise it takes the master's connections and hands
//! each to the worker that owns it.

pub mod wire;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::mpsc::{Receiver, SyncSender};

use dataplane::conn::TcpState;
use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::snapshot::Snapshot;
use dataplane::sync::SyncRecord;
use dataplane::wire::checksum;

use crate::config::SyncDaemon;
use wire::{flags, SyncConn};

/// Counters of the sync path (the stats file's `sync`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Master: messages and connections sent.
    pub messages_sent: u64,
    pub conns_sent: u64,
    /// Backup: messages taken, connections handed to their workers.
    pub messages_received: u64,
    pub conns_received: u64,
    /// Refused messages and connections, by reason: malformed (`length`, `version`,
    /// `record`, `option`), `sync_id` (another master's), `unknown_service`, `skipped`
    /// (IPv6, unknown protocol or state, an unknown mandatory option, a forwarding method rvs
    /// does not have), `worker_full` (the owner's queue was full).
    pub refused: Vec<(&'static str, u64)>,
}

/// The sync daemon of one appliance.
pub struct Sync {
    config: SyncDaemon,
    port: usize,
    mac: [u8; 6],
    src: Ipv4Addr,
    /// From the workers (master side).
    from_workers: Receiver<SyncRecord>,
    /// To each worker, by index (backup side).
    to_workers: Vec<SyncSender<SyncRecord>>,
    pending: Vec<SyncConn>,
    ip_id: u16,
    counters: Counters,
    refused: HashMap<&'static str, u64>,
}

impl Sync {
    pub fn new(
        config: SyncDaemon,
        port: usize,
        mac: [u8; 6],
        src: Ipv4Addr,
        from_workers: Receiver<SyncRecord>,
        to_workers: Vec<SyncSender<SyncRecord>>,
    ) -> Self {
        Sync {
            config,
            port,
            mac,
            src,
            from_workers,
            to_workers,
            pending: Vec::new(),
            ip_id: 0,
            counters: Counters::default(),
            refused: HashMap::new(),
        }
    }

    /// The VRRP instance whose state decides the role.
    pub fn instance(&self) -> &str {
        &self.config.vrrp_instance
    }

    pub fn port(&self) -> usize {
        self.port
    }

    /// Master side: the connections the workers noted since the last call, as frames to
    /// send (whole messages of at most `maxlen` bytes; what remains is sent at the next call,
    /// which the control thread makes every turn, so nothing waits longer than a turn).
    pub fn frames_to_send(&mut self) -> Vec<Vec<u8>> {
        while let Ok(r) = self.from_workers.try_recv() {
            self.pending.push(to_wire(&r));
        }
        if self.pending.is_empty() {
            return Vec::new();
        }
        let conns = std::mem::take(&mut self.pending);
        let messages = wire::encode(self.config.id, &conns, self.max_len());
        self.counters.conns_sent += conns.len() as u64;
        self.counters.messages_sent += messages.len() as u64;
        messages.iter().map(|m| self.frame(m)).collect()
    }

    /// Drops what the workers noted without sending it (the appliance is not MASTER).
    pub fn discard(&mut self) {
        while self.from_workers.try_recv().is_ok() {}
    }

    fn max_len(&self) -> usize {
        usize::from(self.config.maxlen)
    }

    /// Backup side: a frame from the slow path. Whether it was a sync datagram (to the
    /// group and port).
    pub fn receive(&mut self, frame: &[u8], snapshot: &Snapshot) -> bool {
        let Some(payload) = self.datagram(frame) else {
            return false;
        };
        let decoded = match wire::decode(payload) {
            Ok(d) => d,
            Err(e) => {
                self.refuse(e.name());
                return true;
            }
        };
        if self.config.id != 0 && decoded.sync_id != self.config.id {
            self.refuse("sync_id");
            return true;
        }
        self.counters.messages_received += 1;
        if let Some(e) = decoded.error {
            self.refuse(e.name());
        }
        for _ in 0..decoded.skipped {
            self.refuse("skipped");
        }
        for c in &decoded.conns {
            let Some(record) = from_wire(c) else {
                self.refuse("skipped");
                continue;
            };
            if snapshot.service(record.protocol, record.vip).is_none() {
                self.refuse("unknown_service");
                continue;
            }
            // A template pins a client network, whose connections any worker may own: every
            // worker keeps it (templates are per worker, as on the master).
            let workers: Vec<usize> = if record.template {
                (0..self.to_workers.len()).collect()
            } else {
                vec![owner(snapshot, &record).min(self.to_workers.len().saturating_sub(1))]
            };
            for w in workers {
                match self.to_workers.get(w).map(|q| q.try_send(record)) {
                    Some(Ok(())) => self.counters.conns_received += 1,
                    _ => self.refuse("worker_full"),
                }
            }
        }
        true
    }

    fn refuse(&mut self, why: &'static str) {
        *self.refused.entry(why).or_default() += 1;
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        let mut refused: Vec<(&'static str, u64)> =
            self.refused.iter().map(|(k, v)| (*k, *v)).collect();
        refused.sort_unstable();
        c.refused = refused;
        c
    }

    /// The UDP payload of an IPv4 frame to the sync group and port, its checksums right.
    fn datagram<'f>(&self, frame: &'f [u8]) -> Option<&'f [u8]> {
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 17 || ip.len() < ihl + 8 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total > ip.len() || total < ihl + 8 || !checksum::verify(&ip[..ihl]) {
            return None;
        }
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..total];
        if dst != self.config.group || u16::from_be_bytes([udp[2], udp[3]]) != self.config.port {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        if len < 8 || len > udp.len() {
            return None;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        if udp[6..8] != [0, 0] {
            let pseudo = checksum::pseudo_header_sum(src, dst, 17, len as u16);
            if checksum::combine(pseudo, checksum::sum(&udp[..len])) != 0xffff {
                return None;
            }
        }
        Some(&udp[8..len])
    }

    /// A message as an Ethernet frame to the group, from the port's address, with the
    /// configured TTL (the kernel's 1 by default) and a UDP checksum.
    pub(crate) fn frame(&mut self, payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let mut f = vec![0u8; 14 + total];
        let group = self.config.group.octets();
        f[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]);
        f[6..12].copy_from_slice(&self.mac);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        self.ip_id = self.ip_id.wrapping_add(1);
        {
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
            ip[8] = self.config.ttl;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&self.src.octets());
            ip[16..20].copy_from_slice(&group);
            let sum = checksum::checksum(ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        let udp = &mut f[34..];
        udp[0..2].copy_from_slice(&self.config.port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.config.port.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        udp[8..].copy_from_slice(payload);
        let pseudo = checksum::pseudo_header_sum(self.src, self.config.group, 17, udp_len as u16);
        let mut sum = !checksum::combine(pseudo, checksum::sum(udp));
        if sum == 0 {
            sum = 0xffff;
        }
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        f
    }
}

/// The worker a synced connection belongs to: the owner function of the run (NAT: the
/// client's endpoint; FULLNAT: the local port's share); DR and TUN connections, which belong
/// to the worker the NIC gives them, go by the client's endpoint too.
fn owner(snapshot: &Snapshot, r: &SyncRecord) -> usize {
    let Some(steering) = snapshot.steering.as_deref() else {
        return 0;
    };
    match (r.mode, r.local) {
        (ForwardMode::FullNat, Some(local)) => steering
            .local_owner(local)
            .unwrap_or_else(|| steering.client_owner(r.client)),
        _ => steering.client_owner(r.client),
    }
}

fn to_wire(r: &SyncRecord) -> SyncConn {
    if r.template {
        // A persistence template as IPVS writes one: no client port, the service's port.
        return SyncConn {
            protocol: r.protocol,
            flags: flags::TEMPLATE | flags::NO_CPORT,
            state: 0,
            client: (r.client.addr, 0),
            vip: (r.vip.addr, r.vip.port),
            real: (r.real.addr, r.real.port),
            fwmark: 0,
            timeout: r.timeout_s,
            local: None,
            client_mac: None,
        };
    }
    let fwd = match r.mode {
        ForwardMode::Nat | ForwardMode::FullNat => flags::MASQ,
        ForwardMode::Dr => flags::DROUTE,
        ForwardMode::Tun => flags::TUNNEL,
    };
    let active = dataplane::conn::counts_active(r.protocol, r.state);
    SyncConn {
        protocol: r.protocol,
        flags: fwd | if active { 0 } else { flags::INACTIVE },
        state: r.state as u16,
        client: (r.client.addr, r.client.port),
        vip: (r.vip.addr, r.vip.port),
        real: (r.real.addr, r.real.port),
        fwmark: 0,
        timeout: r.timeout_s,
        local: r.local.map(|l| (l.addr, l.port)),
        client_mac: (r.client_mac != [0; 6]).then_some(r.client_mac),
    }
}

/// A received connection (or persistence template) as a worker installs it; `None` for what
/// rvs does not forward (other protocols, bypass and local-node forwarding).
fn from_wire(c: &SyncConn) -> Option<SyncRecord> {
    if !matches!(c.protocol, 6 | 17) {
        return None;
    }
    let ep = |(a, p): (Ipv4Addr, u16)| Endpoint::new(a, p);
    if c.flags & flags::TEMPLATE != 0 {
        return Some(SyncRecord {
            protocol: c.protocol,
            client: Endpoint::new(c.client.0, 0),
            vip: ep(c.vip),
            real: ep(c.real),
            local: None,
            mode: ForwardMode::Nat,
            state: TcpState::None,
            timeout_s: c.timeout,
            client_mac: [0; 6],
            template: true,
        });
    }
    let mode = match (c.flags & flags::FWD_MASK, c.local) {
        (flags::MASQ, Some(_)) => ForwardMode::FullNat,
        (flags::MASQ, None) => ForwardMode::Nat,
        (flags::DROUTE, _) => ForwardMode::Dr,
        (flags::TUNNEL, _) => ForwardMode::Tun,
        _ => return None,
    };
    let state = if c.protocol == 6 {
        *TcpState::ALL.get(usize::from(c.state))?
    } else {
        TcpState::Established
    };
    Some(SyncRecord {
        protocol: c.protocol,
        client: ep(c.client),
        vip: ep(c.vip),
        real: ep(c.real),
        local: c.local.map(ep),
        mode,
        state,
        timeout_s: c.timeout,
        client_mac: c.client_mac.unwrap_or([0; 6]),
        template: false,
    })
}

#[cfg(test)]
mod tests;
