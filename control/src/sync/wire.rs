//! The IPVS connection sync protocol, version 1 (Linux `ip_vs_sync.c`), IPv4 connections:
//! an 8-byte message header, then 36-byte connection records (each padded to 4 bytes), each
//! with optional options. What FULLNAT needs beyond the kernel's fields, the local address and
//! port rvs uses toward the real server, travels in an option whose type carries the kernel's
//! "optional" bit (0x40), so a kernel backup skips it and keeps the rest.

use std::net::Ipv4Addr;

/// Defaults of `ip_vs_sync.c`: group, port, TTL, the master's message size (1500 - 28).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x51];
pub const PORT: u16 = 8848;
pub const TTL: u8 = 1;
pub const MAX_LEN: usize = 1472;

const HEADER: usize = 8;
const RECORD_V4: usize = 36;
const VERSION: u8 = 1;

/// `IP_VS_CONN_F_*` as synced.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const INACTIVE: u32 = 0x0100;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    /// What a backup keeps of a message's flags (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = 0x1f87;
}

/// Option types.
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
/// The kernel's "optional, skip if unknown" bit (`IPVS_OPT_F_PARAM`).
const OPT_OPTIONAL: u8 = 0x40;
/// rvs's FULLNAT option: local address (4) and local port (2).
pub const OPT_RVS_FULLNAT: u8 = OPT_OPTIONAL | 0x11;
/// rvs's last-hop option: the MAC the master sends the client's replies to (6).
pub const OPT_RVS_LAST_HOP: u8 = OPT_OPTIONAL | 0x12;

/// TCP states as IPVS numbers them (`IP_VS_TCP_S_*`).
pub mod tcp_state {
    pub const NONE: u16 = 0;
    pub const ESTABLISHED: u16 = 1;
    pub const SYN_SENT: u16 = 2;
    pub const SYN_RECV: u16 = 3;
    pub const FIN_WAIT: u16 = 4;
    pub const TIME_WAIT: u16 = 5;
    pub const CLOSE: u16 = 6;
    pub const CLOSE_WAIT: u16 = 7;
    pub const LAST_ACK: u16 = 8;
    pub const LISTEN: u16 = 9;
    pub const SYNACK: u16 = 10;
    /// One past the last.
    pub const COUNT: u16 = 11;
}

/// One connection as the protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` (without HASHED).
    pub flags: u32,
    pub state: u16,
    pub client: (Ipv4Addr, u16),
    pub vip: (Ipv4Addr, u16),
    pub real: (Ipv4Addr, u16),
    pub fwmark: u32,
    /// Seconds left, as the master had it (0: the backup uses its state's timeout).
    pub timeout: u32,
    /// FULLNAT's local address and port (rvs's option).
    pub local: Option<(Ipv4Addr, u16)>,
    /// The client's last hop on the master (rvs's option).
    pub client_mac: Option<[u8; 6]>,
}

/// A message: the master's sync id and its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sync_id: u8,
    pub conns: Vec<SyncConn>,
}

/// Why a message (or what remained of it) was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than its header, or a size field other than the datagram's length.
    Length,
    /// Not version 1 (rvs does not speak the old version 0).
    Version,
    /// A record that runs past the message, or of a record version other than 0.
    Record,
    /// An option that is empty, runs past its record, repeats, or has a wrong length.
    Option,
}

impl Malformed {
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Length => "length",
            Malformed::Version => "version",
            Malformed::Record => "record",
            Malformed::Option => "option",
        }
    }
}

/// A decoded message: its connections, what was skipped (IPv6 records, unknown mandatory
/// options, unknown protocols or states), and the error that cut it short, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub sync_id: u8,
    pub conns: Vec<SyncConn>,
    pub skipped: u32,
    pub error: Option<Malformed>,
}

/// Decodes one UDP payload.
pub fn decode(payload: &[u8]) -> Result<Decoded, Malformed> {
    if payload.len() < HEADER {
        return Err(Malformed::Length);
    }
    let size = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
    if size != payload.len() {
        return Err(Malformed::Length);
    }
    if payload[0] != 0 || payload[5] != VERSION || payload[6..8] != [0, 0] {
        return Err(Malformed::Version);
    }
    let mut out = Decoded {
        sync_id: payload[1],
        conns: Vec::new(),
        skipped: 0,
        error: None,
    };
    let count = payload[4];
    let mut at = HEADER;
    for _ in 0..count {
        if at + 4 > payload.len() {
            out.error = Some(Malformed::Record);
            break;
        }
        let rec = &payload[at..];
        let ver_size = u16::from_be_bytes([rec[2], rec[3]]);
        let len = usize::from(ver_size & 0x0fff);
        if ver_size >> 12 != 0 || len < 4 || at + len > payload.len() {
            out.error = Some(Malformed::Record);
            break;
        }
        let rec = &rec[..len];
        at += (len + 3) & !3;
        if rec[0] != 0 {
            // IPv6 (or an unknown type): rvs is IPv4 only; the kernel would stop here for an
            // unknown type, an IPv6 record is valid and skipped.
            if rec[0] & 0x01 != 0 && rec[0] & !0x01 == 0 {
                out.skipped += 1;
                continue;
            }
            out.error = Some(Malformed::Record);
            break;
        }
        if len < RECORD_V4 {
            out.error = Some(Malformed::Record);
            break;
        }
        let be16 = |o: usize| u16::from_be_bytes([rec[o], rec[o + 1]]);
        let be32 = |o: usize| u32::from_be_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
        let addr = |o: usize| Ipv4Addr::new(rec[o], rec[o + 1], rec[o + 2], rec[o + 3]);
        let mut conn = SyncConn {
            protocol: rec[1],
            flags: be32(4),
            state: be16(8),
            client: (addr(24), be16(10)),
            vip: (addr(28), be16(12)),
            real: (addr(32), be16(14)),
            fwmark: be32(16),
            timeout: be32(20),
            local: None,
            client_mac: None,
        };
        match options(&rec[RECORD_V4..], &mut conn) {
            Ok(true) => {}
            Ok(false) => {
                out.skipped += 1;
                continue;
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        let known = match conn.protocol {
            6 => conn.flags & flags::TEMPLATE != 0 || conn.state < tcp_state::COUNT,
            17 => conn.flags & flags::TEMPLATE != 0 || conn.state == 0,
            _ => false,
        };
        if !known {
            out.skipped += 1;
            continue;
        }
        out.conns.push(conn);
    }
    Ok(out)
}

/// Reads a record's options; `Ok(false)`: an unknown mandatory option, the record is
/// skipped (the kernel's rule).
fn options(mut opts: &[u8], conn: &mut SyncConn) -> Result<bool, Malformed> {
    let mut seen = 0u32;
    let mut keep = true;
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(Malformed::Option);
        }
        let (kind, len) = (opts[0], usize::from(opts[1]));
        if len == 0 || 2 + len > opts.len() {
            return Err(Malformed::Option);
        }
        let data = &opts[2..2 + len];
        let bit = 1u32 << (kind & 0x1f);
        if seen & bit != 0 {
            return Err(Malformed::Option);
        }
        seen |= bit;
        match kind {
            OPT_SEQ_DATA if len != 24 => return Err(Malformed::Option),
            OPT_SEQ_DATA | OPT_PE_DATA => {}
            OPT_PE_NAME if len > 16 => return Err(Malformed::Option),
            OPT_PE_NAME => {}
            OPT_RVS_FULLNAT if len == 6 => {
                conn.local = Some((
                    Ipv4Addr::new(data[0], data[1], data[2], data[3]),
                    u16::from_be_bytes([data[4], data[5]]),
                ));
            }
            OPT_RVS_FULLNAT => return Err(Malformed::Option),
            OPT_RVS_LAST_HOP if len == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(data);
                conn.client_mac = Some(mac);
            }
            OPT_RVS_LAST_HOP => return Err(Malformed::Option),
            k if k & OPT_OPTIONAL != 0 => {}
            _ => keep = false,
        }
        opts = &opts[2 + len..];
    }
    Ok(keep)
}

/// Builds messages of at most `max_len` bytes (each record whole) from `conns`.
pub fn encode(sync_id: u8, conns: &[SyncConn], max_len: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg = Vec::new();
    let mut count = 0u8;
    for c in conns {
        let rec = record(c);
        let padded = (rec.len() + 3) & !3;
        if !msg.is_empty() && (msg.len() + padded > max_len || count == u8::MAX) {
            out.push(finish(msg, count));
            msg = Vec::new();
            count = 0;
        }
        if msg.is_empty() {
            msg = vec![0, sync_id, 0, 0, 0, VERSION, 0, 0];
        }
        msg.extend_from_slice(&rec);
        msg.resize(msg.len() + padded - rec.len(), 0);
        count += 1;
    }
    if !msg.is_empty() {
        out.push(finish(msg, count));
    }
    out
}

fn finish(mut msg: Vec<u8>, count: u8) -> Vec<u8> {
    let size = msg.len() as u16;
    msg[2..4].copy_from_slice(&size.to_be_bytes());
    msg[4] = count;
    msg
}

fn record(c: &SyncConn) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_V4 + 8);
    r.push(0);
    r.push(c.protocol);
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
    r.extend_from_slice(&c.state.to_be_bytes());
    r.extend_from_slice(&c.client.1.to_be_bytes());
    r.extend_from_slice(&c.vip.1.to_be_bytes());
    r.extend_from_slice(&c.real.1.to_be_bytes());
    r.extend_from_slice(&c.fwmark.to_be_bytes());
    r.extend_from_slice(&c.timeout.to_be_bytes());
    r.extend_from_slice(&c.client.0.octets());
    r.extend_from_slice(&c.vip.0.octets());
    r.extend_from_slice(&c.real.0.octets());
    if let Some((addr, port)) = c.local {
        r.extend_from_slice(&[OPT_RVS_FULLNAT, 6]);
        r.extend_from_slice(&addr.octets());
        r.extend_from_slice(&port.to_be_bytes());
    }
    if let Some(mac) = c.client_mac {
        r.extend_from_slice(&[OPT_RVS_LAST_HOP, 6]);
        r.extend_from_slice(&mac);
    }
    let len = r.len() as u16;
    r[2..4].copy_from_slice(&len.to_be_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as a Linux master writes it, built from `ip_vs_sync.c`'s layout by hand: two
    /// TCP connections (one ESTABLISHED NAT, one FIN_WAIT DR with the SEQ option) and a
    /// persistence template, with the kernel's padding.
    fn kernel_message() -> Vec<u8> {
        let mut m = vec![
            0x00, // reserved (v0's nr_conns)
            0x07, // syncid
            0x00, 0x00, // size, filled below
            0x03, // nr_conns
            0x01, // version
            0x00, 0x00, // spare
        ];
        // 1: TCP NAT ESTABLISHED, 198.51.100.10:40000 -> 198.51.100.100:80 -> 203.0.113.11:8080
        m.extend_from_slice(&[
            0x00, 0x06, 0x00, 0x24, // type, protocol, ver_size = 36
            0x00, 0x00, 0x01, 0x00, // flags: MASQ | INACTIVE (0x0100)
            0x00, 0x01, // state ESTABLISHED
            0x9c, 0x40, 0x00, 0x50, 0x1f, 0x90, // cport 40000, vport 80, dport 8080
            0x00, 0x00, 0x00, 0x00, // fwmark
            0x00, 0x00, 0x03, 0x84, // timeout 900 s
            198, 51, 100, 10, 198, 51, 100, 100, 203, 0, 113, 11,
        ]);
        // 2: TCP DR FIN_WAIT with SEQ data (26 bytes of option): 62 bytes, padded to 64.
        m.extend_from_slice(&[
            0x00, 0x06, 0x00, 0x3e, // ver_size = 62
            0x00, 0x00, 0x06, 0x03, // flags: DROUTE | SEQ_MASK
            0x00, 0x04, // FIN_WAIT
            0x9c, 0x41, 0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x78, // 120 s
            198, 51, 100, 11, 198, 51, 100, 100, 203, 0, 113, 12,
        ]);
        m.extend_from_slice(&[0x01, 24]);
        m.extend_from_slice(&[0x11; 24]);
        m.extend_from_slice(&[0, 0]); // padding
                                      // 3: a persistence template (NO_CPORT | TEMPLATE), UDP, 360 s.
        m.extend_from_slice(&[
            0x00, 0x11, 0x00, 0x24, 0x00, 0x00, 0x18, 0x00, // TEMPLATE | NO_CPORT
            0x00, 0x00, // state
            0x00, 0x00, 0x00, 0x35, 0x00, 0x35, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x68,
            198, 51, 100, 0, 198, 51, 100, 100, 203, 0, 113, 13,
        ]);
        let size = m.len() as u16;
        m[2..4].copy_from_slice(&size.to_be_bytes());
        m
    }

    #[test]
    fn a_kernel_message_decodes() {
        let d = decode(&kernel_message()).unwrap();
        assert_eq!(d.sync_id, 7);
        assert_eq!(d.error, None);
        assert_eq!(d.skipped, 0);
        assert_eq!(d.conns.len(), 3);
        let nat = d.conns[0];
        assert_eq!(nat.protocol, 6);
        assert_eq!(nat.flags & flags::FWD_MASK, flags::MASQ);
        assert_eq!(nat.state, tcp_state::ESTABLISHED);
        assert_eq!(nat.client, (Ipv4Addr::new(198, 51, 100, 10), 40000));
        assert_eq!(nat.vip, (Ipv4Addr::new(198, 51, 100, 100), 80));
        assert_eq!(nat.real, (Ipv4Addr::new(203, 0, 113, 11), 8080));
        assert_eq!(nat.timeout, 900);
        assert_eq!(nat.local, None);
        let dr = d.conns[1];
        assert_eq!(dr.flags & flags::FWD_MASK, flags::DROUTE);
        assert_eq!(dr.state, tcp_state::FIN_WAIT);
        assert_eq!(dr.timeout, 120);
        let tpl = d.conns[2];
        assert!(tpl.flags & flags::TEMPLATE != 0);
        assert_eq!(tpl.protocol, 17);
        assert_eq!(tpl.timeout, 360);
    }

    #[test]
    fn what_rvs_sends_parses_back_the_same_and_fits_the_size() {
        let conns: Vec<SyncConn> = (0..100)
            .map(|i| SyncConn {
                protocol: 6,
                flags: flags::MASQ,
                state: tcp_state::ESTABLISHED,
                client: (Ipv4Addr::new(198, 51, 100, 10), 40000 + i),
                vip: (Ipv4Addr::new(198, 51, 100, 100), 80),
                real: (Ipv4Addr::new(203, 0, 113, 11), 8080),
                fwmark: 0,
                timeout: 900,
                local: (i % 2 == 0).then_some((Ipv4Addr::new(203, 0, 113, 201), 1024 + i)),
                client_mac: (i % 4 == 0).then_some([2, 0, 0, 0, 0, i as u8]),
            })
            .collect();
        let msgs = encode(3, &conns, MAX_LEN);
        assert!(msgs.iter().all(|m| m.len() <= MAX_LEN));
        // 36 bytes plain, 44 with an option, 52 with both: 8 + 9 x (52 + 36 + 44 + 36) =
        // 1520 is too many, 8 + 8 x 168 + 52 + 36 + 44 = 1484 too, 8 + 8 x 168 + 52 + 36 =
        // 1440 fits.
        assert_eq!(msgs[0].len(), 8 + 8 * 168 + 52 + 36);
        let back: Vec<SyncConn> = msgs
            .iter()
            .flat_map(|m| {
                let d = decode(m).unwrap();
                assert_eq!((d.sync_id, d.error, d.skipped), (3, None, 0));
                d.conns
            })
            .collect();
        assert_eq!(back, conns);
    }

    /// A kernel backup's reading of rvs's FULLNAT record: its optional bit makes the kernel
    /// skip the option and keep the connection (`ip_vs_proc_sync_conn` ignores unknown
    /// types with `IPVS_OPT_F_PARAM`); an unknown mandatory option drops the connection only.
    #[test]
    fn options_optional_mandatory_and_broken() {
        let base = SyncConn {
            protocol: 6,
            flags: 0,
            state: tcp_state::ESTABLISHED,
            client: (Ipv4Addr::new(198, 51, 100, 10), 1),
            vip: (Ipv4Addr::new(198, 51, 100, 100), 80),
            real: (Ipv4Addr::new(203, 0, 113, 11), 80),
            fwmark: 0,
            timeout: 0,
            local: Some((Ipv4Addr::new(203, 0, 113, 201), 5000)),
            client_mac: None,
        };
        let msg = encode(0, &[base], MAX_LEN).remove(0);
        assert_eq!(msg[8 + 36], 0x51, "type with the optional bit 0x40");
        let mut mandatory = msg.clone();
        mandatory[8 + 36] = 0x11;
        let d = decode(&mandatory).unwrap();
        assert_eq!((d.conns.len(), d.skipped, d.error), (0, 1, None));
        let mut unknown_optional = msg.clone();
        unknown_optional[8 + 36] = 0x55;
        let d = decode(&unknown_optional).unwrap();
        assert_eq!(d.conns.len(), 1);
        assert_eq!(d.conns[0].local, None);
        let mut empty = msg.clone();
        empty[8 + 37] = 0;
        assert_eq!(decode(&empty).unwrap().error, Some(Malformed::Option));
        let mut past = msg.clone();
        past[8 + 37] = 9;
        assert_eq!(decode(&past).unwrap().error, Some(Malformed::Option));
        // Header troubles.
        assert_eq!(decode(&msg[..7]), Err(Malformed::Length));
        assert_eq!(decode(&msg[..msg.len() - 4]), Err(Malformed::Length));
        let mut v0 = msg.clone();
        v0[5] = 0;
        assert_eq!(decode(&v0), Err(Malformed::Version));
        let mut count = msg.clone();
        count[4] = 2;
        assert_eq!(decode(&count).unwrap().error, Some(Malformed::Record));
        let mut state = msg.clone();
        state[8 + 9] = 99;
        let d = decode(&state).unwrap();
        assert_eq!((d.conns.len(), d.skipped), (0, 1));
    }
}
