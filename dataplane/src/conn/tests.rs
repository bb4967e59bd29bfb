//! Connection-table tests: IPVS state sequences written by hand from the kernel's tables,
//! both directions' keys per mode, errors, stale ids, expiry and a model-checked random run.

use std::collections::HashMap as StdHashMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::tcp_state::{next_state, Side};
use super::*;

const TCP: u8 = 6;
const UDP: u8 = 17;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const SECOND: u64 = 1000;
/// An arbitrary, large start time: nothing may depend on the clock starting at zero.
const T0: u64 = 1_700_000_000_123;

use Direction::{Original as C2S, Reply as S2C};
use TcpState as S;

fn ep(last: u8, port: u16) -> Endpoint {
    Endpoint::new(Ipv4Addr::new(10, 0, 0, last), port)
}

fn client(n: u32) -> Endpoint {
    let [_, a, b, c] = n.to_be_bytes();
    Endpoint::new(Ipv4Addr::new(192, a, b, c), 1024 + (n % 50_000) as u16)
}

const VIP: Endpoint = Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 80);
const LOCAL_ADDR: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);

/// A connection of `mode` from `client` to the VIP, on real server 10.0.0.1:8080; FULLNAT
/// uses local address 172.16.0.1 and the client's port as its local port.
fn conn(mode: ForwardMode, protocol: u8, client: Endpoint) -> Conn {
    let local = match mode {
        ForwardMode::FullNat => Endpoint::new(LOCAL_ADDR, client.port),
        _ => client,
    };
    Conn {
        protocol,
        client,
        vip: VIP,
        local,
        real: ep(1, 8080),
        mode,
        dest: 3,
        template: crate::conn::NO_TEMPLATE,
        client_port: 0,
        client_mac: [2, 0, 0, 0, 0, 1],
        state: TcpState::None,
        in_pkts: 0,
        synced: false,
    }
}

fn key_of(c: &Conn, direction: Direction) -> FlowKey {
    match direction {
        Direction::Original => FlowKey::new(c.protocol, c.client, c.vip),
        Direction::Reply => FlowKey::new(c.protocol, c.real, c.local),
    }
}

fn table(capacity: usize) -> ConnTable {
    ConnTable::new(capacity, Timeouts::ipvs_defaults())
}

// ---------------------------------------------------------------------------------------------
// TCP states

#[test]
fn state_names_are_ipvs_names() {
    let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK"
        ]
    );
    for (i, s) in TcpState::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
}

/// One packet of a scripted connection and the state IPVS's table gives after it.
type Step = (Direction, u8, TcpState);

/// Inserts a TCP connection of `mode` in NONE, plays `steps` at one second apart, and checks
/// each resulting state and the timeout it armed.
fn play(mode: ForwardMode, steps: &[Step]) -> (ConnTable, ConnId, u64) {
    let mut t = table(4);
    let mut now = T0;
    let id = t.insert(conn(mode, TCP, client(1)), now).unwrap();
    assert_eq!(t.get(id).unwrap().state, S::None);
    assert_eq!(t.expires_at(id), Some(now + 2 * SECOND));
    for (i, &(dir, flags, expected)) in steps.iter().enumerate() {
        now += SECOND;
        let got = t.update(id, dir, flags, now);
        assert_eq!(
            got,
            Some(expected),
            "{mode:?} step {i}: {dir:?} flags {flags:#04x}"
        );
        assert_eq!(t.get(id).unwrap().state, expected);
        let timeout = u64::from(Timeouts::ipvs_defaults().for_state(expected));
        assert_eq!(t.expires_at(id), Some(now + timeout * SECOND), "step {i}");
    }
    (t, id, now)
}

/// Client closes first, through NAT or FULLNAT (both see replies: INPUT and OUTPUT tables).
const CLIENT_CLOSES: &[Step] = &[
    (C2S, SYN, S::SynRecv), // INPUT syn, NONE: the balancer has received a SYN
    (S2C, SYN | ACK, S::SynRecv), // OUTPUT syn, SYN_RECV
    (C2S, ACK, S::Established), // INPUT ack, SYN_RECV
    (C2S, PSH | ACK, S::Established), // data
    (S2C, PSH | ACK, S::Established), // OUTPUT ack, ESTABLISHED
    (C2S, FIN | ACK, S::CloseWait), // INPUT fin, ESTABLISHED
    (S2C, ACK, S::CloseWait), // OUTPUT ack, CLOSE_WAIT
    (S2C, FIN | ACK, S::TimeWait), // OUTPUT fin, CLOSE_WAIT
    (C2S, ACK, S::TimeWait), // INPUT ack, TIME_WAIT
];

/// Server closes first.
const SERVER_CLOSES: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (S2C, SYN | ACK, S::SynRecv),
    (C2S, ACK, S::Established),
    (S2C, FIN | ACK, S::FinWait),  // OUTPUT fin, ESTABLISHED
    (C2S, ACK, S::FinWait),        // INPUT ack, FIN_WAIT
    (C2S, FIN | ACK, S::TimeWait), // INPUT fin, FIN_WAIT
    (S2C, ACK, S::TimeWait),       // OUTPUT ack, TIME_WAIT
];

const CLIENT_RESETS: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (S2C, SYN | ACK, S::SynRecv),
    (C2S, ACK, S::Established),
    (C2S, RST, S::Close), // INPUT rst, ESTABLISHED
    (C2S, ACK, S::Close), // INPUT ack, CLOSE: stays closed
    (S2C, RST, S::Close), // OUTPUT rst, CLOSE
];

const SERVER_RESETS: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (S2C, SYN | ACK, S::SynRecv),
    (C2S, ACK, S::Established),
    (S2C, RST | ACK, S::Close), // RST outranks ACK; OUTPUT rst, ESTABLISHED
];

/// The real server refuses the connection (port closed).
const SERVER_REFUSES: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (S2C, RST | ACK, S::Close), // OUTPUT rst, SYN_RECV
];

/// A client RST while the handshake is open leaves SYN_RECV (IPVS's INPUT rst column).
const CLIENT_RESETS_HANDSHAKE: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (C2S, RST, S::SynRecv), // INPUT rst, SYN_RECV
    (C2S, SYN, S::SynRecv), // retransmitted SYN
];

/// Segments with none of RST/SYN/FIN/ACK change no state (but refresh the timer).
const FLAGLESS: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (C2S, 0, S::SynRecv),
    (C2S, ACK, S::Established),
    (C2S, PSH, S::Established),
    (S2C, 0, S::Established),
];

#[test]
fn nat_and_fullnat_follow_ipvs_input_output_tables() {
    for mode in [ForwardMode::Nat, ForwardMode::FullNat] {
        for script in [
            CLIENT_CLOSES,
            SERVER_CLOSES,
            CLIENT_RESETS,
            SERVER_RESETS,
            SERVER_REFUSES,
            CLIENT_RESETS_HANDSHAKE,
            FLAGLESS,
        ] {
            play(mode, script);
        }
    }
}

/// DR and TUN: rvs sees the client's half only (INPUT_ONLY table).
const DR_CLIENT_CLOSES: &[Step] = &[
    (C2S, SYN, S::SynRecv),           // INPUT_ONLY syn, NONE
    (C2S, ACK, S::Established),       // INPUT_ONLY ack, SYN_RECV
    (C2S, PSH | ACK, S::Established), // data
    (C2S, FIN | ACK, S::FinWait),     // INPUT_ONLY fin, ESTABLISHED (NAT would say CLOSE_WAIT)
    (C2S, ACK, S::FinWait),           // the client acks the server's FIN: INPUT_ONLY ack, FIN_WAIT
];

const DR_RESETS: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (C2S, ACK, S::Established),
    (C2S, RST | ACK, S::Close), // INPUT_ONLY rst, ESTABLISHED
];

const DR_RESETS_HANDSHAKE: &[Step] = &[
    (C2S, SYN, S::SynRecv),
    (C2S, RST, S::SynRecv), // INPUT_ONLY rst, SYN_RECV
];

/// A connection picked up mid-stream (e.g. after a failover): its first segment is an ACK.
const DR_MID_STREAM: &[Step] = &[
    (C2S, ACK, S::Established), // INPUT_ONLY ack, NONE
    (C2S, FIN | ACK, S::FinWait),
    (C2S, FIN | ACK, S::FinWait), // retransmitted FIN: INPUT_ONLY fin, FIN_WAIT
];

#[test]
fn dr_and_tun_follow_ipvs_input_only_table() {
    for mode in [ForwardMode::Dr, ForwardMode::Tun] {
        for script in [
            DR_CLIENT_CLOSES,
            DR_RESETS,
            DR_RESETS_HANDSHAKE,
            DR_MID_STREAM,
        ] {
            play(mode, script);
        }
    }
}

#[test]
fn sides_follow_direction_and_mode() {
    assert_eq!(Side::of(C2S, ForwardMode::Nat), Side::Input);
    assert_eq!(Side::of(C2S, ForwardMode::FullNat), Side::Input);
    assert_eq!(Side::of(C2S, ForwardMode::Dr), Side::InputOnly);
    assert_eq!(Side::of(C2S, ForwardMode::Tun), Side::InputOnly);
    assert_eq!(Side::of(S2C, ForwardMode::Nat), Side::Output);
    // Flag priority: RST, then SYN, then FIN, then ACK.
    let es = S::Established;
    assert_eq!(next_state(es, Side::Input, RST | SYN | FIN | ACK), S::Close);
    assert_eq!(next_state(es, Side::Input, SYN | FIN | ACK), S::Established);
    assert_eq!(next_state(es, Side::Input, FIN | ACK), S::CloseWait);
    assert_eq!(next_state(S::SynRecv, Side::Output, SYN | ACK), S::SynRecv);
}

fn expiry_time(t: &mut ConnTable, id: ConnId, from: u64, step: u64, limit: u64) -> Option<u64> {
    let mut now = from;
    while now <= limit {
        t.expire(now, usize::MAX);
        if t.get(id).is_none() {
            return Some(now);
        }
        now += step;
    }
    None
}

#[test]
fn half_open_expires_after_syn_recv_timeout() {
    for (mode, flags) in [
        (ForwardMode::Nat, SYN),
        (ForwardMode::FullNat, SYN),
        (ForwardMode::Dr, SYN),
        (ForwardMode::Tun, SYN),
    ] {
        let mut t = table(4);
        let id = t.insert(conn(mode, TCP, client(7)), T0).unwrap();
        assert_eq!(t.update(id, C2S, flags, T0), Some(S::SynRecv));
        let gone = expiry_time(&mut t, id, T0, 100, T0 + 120 * SECOND).unwrap();
        assert!(
            (T0 + 60 * SECOND..=T0 + 61 * SECOND).contains(&gone),
            "{mode:?}: gone after {} ms",
            gone - T0
        );
        assert!(t.is_empty());
    }
}

#[test]
fn closed_connections_expire_after_the_shorter_timeout() {
    // ESTABLISHED's 900 s timer is moved forward by the RST: CLOSE's 10 s applies.
    let (mut t, id, now) = play(ForwardMode::Nat, CLIENT_RESETS);
    let gone = expiry_time(&mut t, id, now, 100, now + 900 * SECOND).unwrap();
    assert!((now + 10 * SECOND..=now + 11 * SECOND).contains(&gone));

    let (mut t, id, now) = play(ForwardMode::Nat, CLIENT_CLOSES);
    let gone = expiry_time(&mut t, id, now, 100, now + 900 * SECOND).unwrap();
    assert!((now + 120 * SECOND..=now + 121 * SECOND).contains(&gone));
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[test]
fn ipvs_default_timeouts() {
    let t = Timeouts::ipvs_defaults();
    let expected = [
        (S::None, 2),
        (S::Established, 900),
        (S::SynSent, 120),
        (S::SynRecv, 60),
        (S::FinWait, 120),
        (S::TimeWait, 120),
        (S::Close, 10),
        (S::CloseWait, 60),
        (S::LastAck, 30),
        (S::Listen, 120),
        (S::SynAck, 120),
    ];
    for (state, seconds) in expected {
        assert_eq!(t.for_state(state), seconds, "{}", state.name());
    }
    assert_eq!(t.udp, 300);
    assert_eq!(Timeouts::default(), t);
}

#[test]
fn set_like_ipvsadm() {
    let mut t = Timeouts::ipvs_defaults();
    t.set(7200, 120, 300); // ipvsadm --set 7200 120 300
    assert_eq!(t.for_state(S::Established), 7200);
    assert_eq!(t.for_state(S::FinWait), 120);
    assert_eq!(t.udp, 300);
    t.set(0, 30, 0); // 0 leaves a value as it is
    assert_eq!(t.for_state(S::Established), 7200);
    assert_eq!(t.for_state(S::FinWait), 30);
    assert_eq!(t.udp, 300);
    // Only those three: TIME_WAIT and the rest keep their defaults.
    let defaults = Timeouts::ipvs_defaults();
    for state in TcpState::ALL {
        if state != S::Established && state != S::FinWait {
            assert_eq!(t.for_state(state), defaults.for_state(state));
        }
    }
}

#[test]
fn set_timeouts_applies_from_the_next_packet() {
    let (mut t, id, now) = play(ForwardMode::Nat, &CLIENT_CLOSES[..3]);
    assert_eq!(t.expires_at(id), Some(now + 900 * SECOND));
    let mut timeouts = *t.timeouts();
    timeouts.set(7200, 120, 300);
    t.set_timeouts(timeouts);
    assert_eq!(t.timeouts().for_state(S::Established), 7200);
    assert_eq!(t.expires_at(id), Some(now + 900 * SECOND));
    t.update(id, C2S, ACK, now + SECOND);
    assert_eq!(t.expires_at(id), Some(now + SECOND + 7200 * SECOND));
    // 7200 s is past the wheel's 4096 s span: it parks, and still goes on time.
    let from = now + SECOND;
    let gone = expiry_time(&mut t, id, from, SECOND, from + 8000 * SECOND).unwrap();
    assert!((from + 7200 * SECOND..=from + 7201 * SECOND).contains(&gone));
}

// ---------------------------------------------------------------------------------------------
// Keys and ids

#[test]
fn nat_indexes_both_directions() {
    let mut t = table(8);
    let c = conn(ForwardMode::Nat, TCP, client(1));
    let id = t.insert(c, T0).unwrap();
    assert_eq!(t.len(), 1);
    let original = FlowKey::new(TCP, c.client, VIP);
    let reply = FlowKey::new(TCP, ep(1, 8080), c.client);
    assert_eq!(t.lookup(&original), Some((id, C2S)));
    assert_eq!(t.lookup(&reply), Some((id, S2C)));
    assert_eq!(t.get(id), Some(&c));
    assert!(!t.reply_key_free(&reply));
    // Another protocol is another flow.
    assert_eq!(t.lookup(&FlowKey::new(UDP, c.client, VIP)), None);
}

#[test]
fn fullnat_reply_key_is_real_to_local() {
    let mut t = table(8);
    let c = conn(ForwardMode::FullNat, TCP, client(1));
    let id = t.insert(c, T0).unwrap();
    let reply = FlowKey::new(TCP, ep(1, 8080), Endpoint::new(LOCAL_ADDR, c.client.port));
    assert_eq!(t.lookup(&reply), Some((id, S2C)));
    assert_eq!(t.lookup(&FlowKey::new(TCP, c.client, VIP)), Some((id, C2S)));
    // The real server answering the client itself is not this connection.
    assert_eq!(t.lookup(&FlowKey::new(TCP, ep(1, 8080), c.client)), None);
    assert!(!t.reply_key_free(&reply));
    let next_port = FlowKey::new(
        TCP,
        ep(1, 8080),
        Endpoint::new(LOCAL_ADDR, c.client.port + 1),
    );
    assert!(t.reply_key_free(&next_port));
    t.remove(id).unwrap();
    assert!(t.reply_key_free(&reply));
}

#[test]
fn dr_and_tun_have_no_reply_key() {
    for mode in [ForwardMode::Dr, ForwardMode::Tun] {
        let mut t = table(8);
        let c = conn(mode, TCP, client(1));
        let id = t.insert(c, T0).unwrap();
        assert_eq!(t.lookup(&key_of(&c, C2S)), Some((id, C2S)));
        assert_eq!(t.lookup(&key_of(&c, S2C)), None);
        assert!(t.reply_key_free(&key_of(&c, S2C)));
        // So another DR connection may reuse what would have been its reply key.
        assert!(t.insert(conn(mode, TCP, client(2)), T0).is_ok());
    }
}

#[test]
fn exists_when_either_key_is_taken() {
    let mut t = table(8);
    let a = conn(ForwardMode::Nat, TCP, client(1));
    t.insert(a, T0).unwrap();
    // Same original key.
    assert_eq!(t.insert(a, T0), Err(InsertError::Exists));
    // Different client, same reply key: a FULLNAT connection that picked a taken local port.
    let mut b = conn(ForwardMode::FullNat, TCP, client(2));
    b.local = a.client;
    assert_eq!(t.insert(b, T0), Err(InsertError::Exists));
    // A reply key equal to its own original key cannot be indexed twice.
    let mut c = conn(ForwardMode::Nat, TCP, client(3));
    c.real = c.client;
    c.local = c.vip;
    assert_eq!(t.insert(c, T0), Err(InsertError::Exists));
    assert_eq!(t.len(), 1);
    t.check_invariants(T0);
}

#[test]
fn full_at_capacity() {
    let mut t = table(3);
    for n in 0..3 {
        t.insert(conn(ForwardMode::Nat, TCP, client(n)), T0)
            .unwrap();
    }
    let extra = conn(ForwardMode::Nat, TCP, client(10));
    assert_eq!(t.insert(extra, T0), Err(InsertError::Full));
    assert_eq!(t.len(), 3);
    let (id, _) = t
        .lookup(&key_of(&conn(ForwardMode::Nat, TCP, client(1)), C2S))
        .unwrap();
    t.remove(id).unwrap();
    assert!(t.insert(extra, T0).is_ok());

    let mut none = table(0);
    assert_eq!(none.insert(extra, T0), Err(InsertError::Full));
    assert_eq!(none.expire(T0, 10), 0);
    assert_eq!(none.iter().count(), 0);
}

#[test]
fn stale_ids_answer_none() {
    let mut t = table(1);
    let a = conn(ForwardMode::Nat, TCP, client(1));
    let id = t.insert(a, T0).unwrap();
    assert_eq!(t.remove(id), Some(a));
    assert_eq!(t.get(id), None);
    assert_eq!(t.remove(id), None);
    assert_eq!(t.update(id, C2S, SYN, T0), None);
    assert_eq!(t.expires_at(id), None);
    assert_eq!(t.lookup(&key_of(&a, C2S)), None);
    assert_eq!(t.lookup(&key_of(&a, S2C)), None);
    // The slot is reused; the old id still does not reach the new connection.
    let b = conn(ForwardMode::Nat, TCP, client(2));
    let id2 = t.insert(b, T0).unwrap();
    assert_ne!(id, id2);
    assert_eq!(t.get(id), None);
    assert_eq!(t.update(id, C2S, RST, T0), None);
    assert_eq!(t.get(id2), Some(&b));
    // An expired connection's id goes stale too.
    t.update(id2, C2S, SYN, T0);
    t.expire(T0 + 61 * SECOND, usize::MAX);
    assert_eq!(t.get(id2), None);
    assert!(t.is_empty());
}

#[test]
fn udp_stays_established_with_udp_timeout() {
    let mut t = table(4);
    let mut c = conn(ForwardMode::FullNat, UDP, client(1));
    c.state = S::SynSent; // whatever the caller says
    let id = t.insert(c, T0).unwrap();
    assert_eq!(t.get(id).unwrap().state, S::Established);
    assert_eq!(t.expires_at(id), Some(T0 + 300 * SECOND));
    assert_eq!(t.update(id, S2C, 0, T0 + SECOND), Some(S::Established));
    assert_eq!(
        t.update(id, C2S, RST, T0 + 2 * SECOND),
        Some(S::Established)
    );
    assert_eq!(t.expires_at(id), Some(T0 + 302 * SECOND));
}

#[test]
fn iter_lists_live_connections() {
    let mut t = table(16);
    let ids: Vec<_> = (0..10)
        .map(|n| t.insert(conn(ForwardMode::Dr, UDP, client(n)), T0).unwrap())
        .collect();
    for id in &ids[..4] {
        t.remove(*id);
    }
    let mut listed: Vec<_> = t.iter().map(|(id, c)| (id, c.client)).collect();
    listed.sort_by_key(|(_, client)| *client);
    let expected: Vec<_> = ids[4..]
        .iter()
        .map(|id| (*id, t.get(*id).unwrap().client))
        .collect();
    assert_eq!(listed, expected);
}

// ---------------------------------------------------------------------------------------------
// Expiry

#[test]
fn refreshed_connection_survives_idle_one_expires() {
    for protocol in [TCP, UDP] {
        let mut t = table(4);
        let busy = t
            .insert(conn(ForwardMode::Nat, protocol, client(1)), T0)
            .unwrap();
        let idle = t
            .insert(conn(ForwardMode::Nat, protocol, client(2)), T0)
            .unwrap();
        for id in [busy, idle] {
            t.update(id, C2S, SYN, T0);
            t.update(id, S2C, SYN | ACK, T0);
            t.update(id, C2S, ACK, T0);
        }
        let timeout = if protocol == TCP { 900 } else { 300 } * SECOND;
        // A packet on `busy` every 30 s, expiry every 100 ms, for ten minutes and until the
        // idle one is gone.
        let mut now = T0;
        let mut idle_gone = None;
        while now <= T0 + 600 * SECOND || idle_gone.is_none() {
            assert!(now <= T0 + 2 * timeout, "idle connection never expired");
            assert_eq!(t.update(busy, C2S, ACK, now), Some(S::Established));
            for _ in 0..300 {
                t.expire(now, 64);
                assert!(t.get(busy).is_some(), "busy connection expired at {now}");
                if idle_gone.is_none() && t.get(idle).is_none() {
                    idle_gone = Some(now);
                }
                now += 100;
            }
        }
        // The idle one went within a second after its timeout.
        let gone = idle_gone.unwrap();
        assert!(
            (T0 + timeout..=T0 + timeout + SECOND).contains(&gone),
            "idle went at {}",
            gone - T0
        );
        // And not before its timeout.
        let mut t2 = table(1);
        let id = t2
            .insert(conn(ForwardMode::Nat, protocol, client(3)), T0)
            .unwrap();
        t2.update(id, C2S, ACK, T0);
        t2.expire(T0 + timeout - 1, usize::MAX);
        assert!(t2.get(id).is_some());
        t2.expire(T0 + timeout + SECOND, usize::MAX);
        assert!(t2.get(id).is_none());
    }
}

#[test]
fn expire_respects_budget_and_resumes() {
    let mut t = table(100);
    for n in 0..100 {
        let id = t
            .insert(conn(ForwardMode::Nat, UDP, client(n)), T0 + u64::from(n))
            .unwrap();
        assert_eq!(
            t.update(id, C2S, 0, T0 + u64::from(n)),
            Some(S::Established)
        );
    }
    assert_eq!(t.expire(T0 + 299 * SECOND, usize::MAX), 0);
    let now = T0 + 302 * SECOND;
    let mut calls = 0;
    while !t.is_empty() {
        let removed = t.expire(now, 7);
        assert!((1..=7).contains(&removed), "call {calls} removed {removed}");
        calls += 1;
        t.check_invariants(now);
    }
    assert_eq!(calls, 100_usize.div_ceil(7));
    assert_eq!(t.expire(now, 0), 0);
}

#[test]
fn lazily_refreshed_entries_are_rearmed_not_removed() {
    let mut t = table(10);
    let ids: Vec<_> = (0..10)
        .map(|n| {
            t.insert(conn(ForwardMode::Nat, UDP, client(n)), T0)
                .unwrap()
        })
        .collect();
    // Refreshing only writes the deadline: the wheel meets each entry at the old one.
    for id in &ids {
        t.update(*id, C2S, 0, T0 + 200 * SECOND);
    }
    t.check_invariants(T0 + 200 * SECOND);
    // At T0 + 300 s each is visited once, found alive and re-armed: budget 3 per call.
    let now = T0 + 301 * SECOND;
    let mut calls = 0;
    loop {
        assert_eq!(t.expire(now, 3), 0);
        calls += 1;
        t.check_invariants(now);
        if calls > 4 {
            break;
        }
    }
    assert_eq!(t.len(), 10);
    let gone = T0 + 501 * SECOND;
    assert_eq!(t.expire(gone, usize::MAX), 10);
}

#[test]
fn long_pauses_and_large_clocks() {
    let mut t = table(8);
    // A clock near the end of u64 saturates instead of overflowing.
    let id = t
        .insert(conn(ForwardMode::Nat, UDP, client(1)), u64::MAX - 5)
        .unwrap();
    assert_eq!(t.expires_at(id), Some(u64::MAX));
    assert_eq!(t.update(id, C2S, 0, u64::MAX), Some(S::Established));
    assert_eq!(t.expire(u64::MAX, usize::MAX), 0);
    t.check_invariants(u64::MAX);

    // Expiry not called for hours: one call walks at most one turn of the wheel.
    let mut t = table(8);
    let short = t
        .insert(conn(ForwardMode::Nat, UDP, client(1)), T0)
        .unwrap();
    let long = t
        .insert(conn(ForwardMode::Nat, TCP, client(2)), T0)
        .unwrap();
    let mut timeouts = *t.timeouts();
    timeouts.set(7200, 0, 0);
    t.set_timeouts(timeouts);
    t.update(long, C2S, ACK, T0); // NONE -> ESTABLISHED, 7200 s
    let later = T0 + 3 * 3600 * SECOND - 500;
    t.update(long, C2S, ACK, later - 7100 * SECOND);
    assert_eq!(t.expire(later, usize::MAX), 1);
    assert!(t.get(short).is_none());
    assert!(t.get(long).is_some());
    t.check_invariants(later);
    let gone = expiry_time(&mut t, long, later, SECOND, later + 200 * SECOND).unwrap();
    assert!(gone <= later + 101 * SECOND);

    // Time going backwards neither panics nor removes anything live.
    let mut t = table(2);
    let id = t
        .insert(conn(ForwardMode::Nat, UDP, client(1)), T0)
        .unwrap();
    assert_eq!(t.expire(T0 - 10 * SECOND, usize::MAX), 0);
    assert_eq!(t.update(id, C2S, 0, T0 - 20 * SECOND), Some(S::Established));
    assert_eq!(t.expire(T0, usize::MAX), 0);
    t.check_invariants(T0);
}

// ---------------------------------------------------------------------------------------------
// Memory

#[test]
fn filling_to_capacity_does_not_reallocate() {
    let capacity = 10_000;
    let mut t = table(capacity);
    let before = t.index_allocation();
    for n in 0..capacity as u32 {
        let mode = [ForwardMode::Nat, ForwardMode::FullNat][n as usize % 2];
        t.insert(conn(mode, TCP, client(n)), T0).unwrap();
    }
    assert_eq!(t.len(), capacity);
    assert_eq!(t.index_allocation(), before);
    assert!(before.0 >= 2 * capacity);
}

#[test]
fn churn_at_capacity_does_not_reallocate() {
    // Just under a power of two of index buckets: a full table fills the index to its
    // designed worst, half of its entries (2000 keys in 512 buckets of 8).
    let capacity = 1000;
    let mut t = table(capacity);
    let before = t.index_allocation();
    let mut rng = Rng(42);
    let mut live: Vec<ConnId> = Vec::new();
    let (mut next_client, mut inserts) = (0, 0);
    for round in 0..200_000 {
        if live.len() == capacity || (!live.is_empty() && rng.below(3) == 0) {
            let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
            t.remove(victim).unwrap();
        } else {
            let mode = [ForwardMode::Nat, ForwardMode::FullNat][rng.below(2) as usize];
            next_client += 1;
            inserts += 1;
            live.push(t.insert(conn(mode, TCP, client(next_client)), T0).unwrap());
        }
        if round % 20_000 == 0 {
            t.check_invariants(T0);
        }
    }
    t.check_invariants(T0);
    assert_eq!(t.index_allocation(), before, "index reallocated");
    assert!(inserts > 100_000);
}

#[test]
fn bytes_per_connection_is_accounted() {
    // The connection (44), its deadline, wheel links and generation (20), the fast path's
    // precomputed rewrite (16).
    assert!(
        ConnTable::slot_size() <= 80,
        "slot is {}",
        ConnTable::slot_size()
    );
    // The index: 64-byte buckets of 8 entries, at most half of them used, a power of two of
    // them. 2^17 slots need 2^18 keys: 2^16 buckets, 32 bytes per slot, no rounding slack.
    let capacity = 1 << 17;
    let t = table(capacity);
    let (keys, index) = t.index_allocation();
    assert_eq!(keys, 2 * capacity);
    assert_eq!(index, 64 << 16);
    // Plus 8 bytes a slot for the embryonic ring (a connection handle each).
    let expected = (ConnTable::slot_size() * capacity + index + 8 * capacity).div_ceil(capacity);
    assert_eq!(t.bytes_per_connection(), expected);
    assert_eq!(t.bytes_per_connection(), 120);
    // At worst (just past a power of two), the index doubles: 64 bytes per slot.
    let t = table(capacity + 1);
    assert_eq!(t.index_allocation().1, 2 * index);
    assert!(t.bytes_per_connection() <= 152 + 1);
}

// ---------------------------------------------------------------------------------------------
// Random runs against a model

/// splitmix64: a seeded, dependency-free generator for reproducible runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy)]
struct Model {
    conn: Conn,
    expires_ms: u64,
}

/// The table as a std `HashMap` of ids and one of keys, with deadlines computed from the
/// returned states.
#[derive(Default)]
struct Reference {
    conns: StdHashMap<ConnId, Model>,
    keys: StdHashMap<FlowKey, (ConnId, Direction)>,
    ids: Vec<ConnId>,
}

impl Reference {
    fn keys_of(conn: &Conn) -> Vec<(FlowKey, Direction)> {
        let mut keys = vec![(key_of(conn, C2S), C2S)];
        if conn.mode.sees_replies() {
            keys.push((key_of(conn, S2C), S2C));
        }
        keys
    }

    fn remove(&mut self, id: ConnId) {
        let model = self.conns.remove(&id).unwrap();
        for (key, _) in Self::keys_of(&model.conn) {
            self.keys.remove(&key);
        }
        self.ids.retain(|x| *x != id);
    }
}

fn random_conn(rng: &mut Rng, clients: u32) -> Conn {
    let mode = [
        ForwardMode::Nat,
        ForwardMode::FullNat,
        ForwardMode::Dr,
        ForwardMode::Tun,
    ][rng.below(4) as usize];
    let protocol = if rng.below(3) == 0 { UDP } else { TCP };
    let mut c = conn(mode, protocol, client(rng.below(u64::from(clients)) as u32));
    c.real = ep(1 + rng.below(4) as u8, 8080);
    if mode == ForwardMode::FullNat {
        c.local = Endpoint::new(LOCAL_ADDR, 1024 + rng.below(3000) as u16);
    }
    c
}

fn expected_insert(model: &Reference, capacity: usize, conn: &Conn) -> Result<(), InsertError> {
    if model.conns.len() == capacity {
        return Err(InsertError::Full);
    }
    let keys = Reference::keys_of(conn);
    if keys.iter().any(|(k, _)| model.keys.contains_key(k))
        || (keys.len() == 2 && keys[0].0 == keys[1].0)
    {
        return Err(InsertError::Exists);
    }
    Ok(())
}

fn timeout_ms(t: &ConnTable, c: &Conn) -> u64 {
    let s = if c.protocol == TCP {
        t.timeouts().for_state(c.state)
    } else {
        t.timeouts().udp
    };
    u64::from(s) * SECOND
}

#[test]
fn random_run_matches_a_model() {
    let capacity = 2_000;
    let mut t = table(capacity);
    let mut model = Reference::default();
    let mut rng = Rng(0x5eed);
    let mut now = T0;
    let (mut inserts, mut expired) = (0, 0);
    let flag_choices = [SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK, 0];
    let mut stale: Vec<ConnId> = Vec::new();
    let mut op = 0u64;
    while inserts < 100_000 {
        op += 1;
        now += rng.below(40);
        match rng.below(20) {
            0..=10 => {
                let mut c = random_conn(&mut rng, 30_000);
                let expected = expected_insert(&model, capacity, &c);
                let got = t.insert(c, now);
                inserts += 1;
                match (expected, got) {
                    (Ok(()), Ok(id)) => {
                        if c.protocol != TCP {
                            c.state = S::Established;
                        }
                        assert_eq!(t.get(id), Some(&c));
                        let expires_ms = now + timeout_ms(&t, &c);
                        assert_eq!(t.expires_at(id), Some(expires_ms));
                        for (key, dir) in Reference::keys_of(&c) {
                            model.keys.insert(key, (id, dir));
                        }
                        model.conns.insert(
                            id,
                            Model {
                                conn: c,
                                expires_ms,
                            },
                        );
                        model.ids.push(id);
                    }
                    (expected, got) => assert_eq!(expected, got.map(|_| ()), "op {op}"),
                }
            }
            11..=14 if !model.ids.is_empty() => {
                let id = model.ids[rng.below(model.ids.len() as u64) as usize];
                let dir = if rng.below(2) == 0 { C2S } else { S2C };
                let flags = flag_choices[rng.below(flag_choices.len() as u64) as usize];
                let m = model.conns.get_mut(&id).unwrap();
                if m.conn.protocol == TCP {
                    m.conn.state = next_state(m.conn.state, Side::of(dir, m.conn.mode), flags);
                }
                m.expires_ms = now + timeout_ms(&t, &m.conn);
                let m = *m;
                assert_eq!(t.update(id, dir, flags, now), Some(m.conn.state));
                assert_eq!(t.expires_at(id), Some(m.expires_ms));
            }
            15 if !model.ids.is_empty() => {
                let id = model.ids[rng.below(model.ids.len() as u64) as usize];
                assert_eq!(t.remove(id), Some(model.conns[&id].conn));
                model.remove(id);
                stale.push(id);
            }
            16 => {
                // Whole seconds and no budget limit: exactly the model's expired set goes.
                now = now.div_ceil(SECOND) * SECOND + rng.below(5) * SECOND;
                let due: Vec<ConnId> = model
                    .conns
                    .iter()
                    .filter(|(_, m)| m.expires_ms <= now)
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(t.expire(now, usize::MAX), due.len(), "op {op}");
                expired += due.len();
                for id in due {
                    model.remove(id);
                    stale.push(id);
                }
            }
            17 => {
                // A small budget at any time: only expired connections may go.
                let removed = t.expire(now, rng.below(8) as usize);
                let gone: Vec<ConnId> = model
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| t.get(*id).is_none())
                    .collect();
                assert_eq!(removed, gone.len());
                for id in gone {
                    assert!(
                        model.conns[&id].expires_ms <= now,
                        "removed before its deadline"
                    );
                    model.remove(id);
                    stale.push(id);
                }
                expired += removed;
            }
            _ => {
                // Stale ids stay dead; keys agree with the model.
                if let Some(id) = stale.get(rng.below(stale.len() as u64) as usize) {
                    assert_eq!(t.get(*id), None);
                    assert_eq!(t.update(*id, C2S, ACK, now), None);
                    assert_eq!(t.remove(*id), None);
                }
                let probe = random_conn(&mut rng, 30_000);
                for (key, _) in Reference::keys_of(&probe) {
                    assert_eq!(t.lookup(&key), model.keys.get(&key).copied());
                    assert_eq!(t.reply_key_free(&key), !model.keys.contains_key(&key));
                }
            }
        }
        assert_eq!(t.len(), model.conns.len(), "op {op}");
        if op / 5_000 * 5_000 == op {
            t.check_invariants(now);
        }
    }
    t.check_invariants(now);
    assert!(expired > 10_000, "the run should expire plenty ({expired})");
    // Everything goes eventually.
    let end = now + 4000 * SECOND;
    let left = t.len();
    assert_eq!(t.expire(end, usize::MAX), left);
    assert!(t.is_empty());
    t.check_invariants(end);
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        mode: u8,
        udp: bool,
        client: u8,
        real: u8,
        local: u8,
    },
    Update {
        which: u8,
        reply: bool,
        flags: u8,
    },
    Remove {
        which: u8,
    },
    Expire {
        budget: u8,
    },
    Advance {
        ms: u32,
    },
    Back {
        ms: u16,
    },
    SetTimeouts {
        tcp: u16,
        fin: u8,
        udp: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, any::<bool>(), 0..16u8, 0..3u8, 0..4u8).prop_map(
            |(mode, udp, client, real, local)| Op::Insert {
                mode,
                udp,
                client,
                real,
                local
            }
        ),
        (any::<u8>(), any::<bool>(), any::<u8>()).prop_map(|(which, reply, flags)| Op::Update {
            which,
            reply,
            flags
        }),
        any::<u8>().prop_map(|which| Op::Remove { which }),
        any::<u8>().prop_map(|budget| Op::Expire { budget: budget % 6 }),
        (0..5_000_000u32).prop_map(|ms| Op::Advance { ms }),
        any::<u16>().prop_map(|ms| Op::Back { ms }),
        (any::<u16>(), any::<u8>(), any::<u16>()).prop_map(|(tcp, fin, udp)| Op::SetTimeouts {
            tcp,
            fin,
            udp
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any sequence, including stale ids, clocks that jump or go back and zero timeouts,
    /// keeps the table consistent and never panics.
    #[test]
    fn any_sequence_keeps_invariants(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = table(8);
        let mut ids: Vec<ConnId> = Vec::new();
        let mut now = T0;
        let mut latest = T0;
        for op in ops {
            latest = latest.max(now);
            match op {
                Op::Insert { mode, udp, client: n, real, local } => {
                    let mode = [ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Dr, ForwardMode::Tun][mode as usize];
                    let mut c = conn(mode, if udp { UDP } else { TCP }, client(u32::from(n)));
                    c.real = ep(real, 8080);
                    if mode == ForwardMode::FullNat {
                        c.local = Endpoint::new(LOCAL_ADDR, 1024 + u16::from(local));
                    }
                    if let Ok(id) = t.insert(c, now) {
                        ids.push(id);
                    }
                }
                Op::Update { which, reply, flags } => {
                    if let Some(id) = ids.get(usize::from(which) % ids.len().max(1)) {
                        let dir = if reply { S2C } else { C2S };
                        let got = t.update(*id, dir, flags, now);
                        prop_assert_eq!(got.is_some(), t.get(*id).is_some());
                    }
                }
                Op::Remove { which } => {
                    if let Some(id) = ids.get(usize::from(which) % ids.len().max(1)) {
                        let live = t.get(*id).copied();
                        prop_assert_eq!(t.remove(*id), live);
                    }
                }
                Op::Expire { budget } => {
                    let before = t.len();
                    let removed = t.expire(now, usize::from(budget));
                    prop_assert!(removed <= usize::from(budget));
                    prop_assert_eq!(t.len(), before - removed);
                }
                Op::Advance { ms } => now += u64::from(ms),
                Op::Back { ms } => now = now.saturating_sub(u64::from(ms)),
                Op::SetTimeouts { tcp, fin, udp } => {
                    let mut timeouts = *t.timeouts();
                    timeouts.tcp[usize::from(fin) % TcpState::COUNT] = u32::from(tcp % 5000);
                    timeouts.udp = u32::from(udp);
                    t.set_timeouts(timeouts);
                }
            }
            t.check_invariants(latest.max(now));
            prop_assert_eq!(t.iter().count(), t.len());
        }
        // Whatever happened, everything expires once the clock passes every deadline.
        let end = latest + 70_000 * SECOND;
        t.expire(end, usize::MAX);
        prop_assert!(t.is_empty());
    }
}

/// A full table gives the slot of its oldest embryonic connection to a new one; established
/// connections are never evicted; under pressure a new SYN_RECV gets the short timeout.
#[test]
fn a_full_table_evicts_the_oldest_embryonic_connection() {
    let mut t = table(8);
    // Two established, six embryonic.
    let mut established = Vec::new();
    for n in 0..2 {
        let id = t
            .insert(conn(ForwardMode::Nat, TCP, client(n)), T0)
            .unwrap();
        t.update(id, Direction::Original, SYN, T0);
        t.update(id, Direction::Reply, SYN | ACK, T0);
        assert_eq!(
            t.update(id, Direction::Original, ACK, T0),
            Some(TcpState::Established)
        );
        established.push(id);
    }
    let mut embryos = Vec::new();
    for n in 2..8 {
        let id = t
            .insert(conn(ForwardMode::Nat, TCP, client(n)), T0 + n as u64)
            .unwrap();
        assert_eq!(
            t.update(id, Direction::Original, SYN, T0),
            Some(TcpState::SynRecv)
        );
        embryos.push(id);
    }
    // Above 6 of 8 (the high-water mark) a SYN_RECV gets 5 s, not 60.
    assert_eq!(t.expires_at(embryos[5]), Some(T0 + 5000));
    assert_eq!(t.expires_at(embryos[3]), Some(T0 + 60_000));
    assert_eq!(
        t.insert(conn(ForwardMode::Nat, TCP, client(100)), T0),
        Err(InsertError::Full)
    );
    for (i, victim) in embryos.iter().enumerate() {
        let gone = t
            .evict_embryonic()
            .expect("an embryonic connection to evict");
        assert_eq!(gone.client, client(2 + i as u32), "oldest first");
        assert_eq!(t.get(*victim), None);
        let id = t
            .insert(conn(ForwardMode::Nat, TCP, client(200 + i as u32)), T0)
            .unwrap();
        t.update(id, Direction::Original, SYN, T0);
        t.check_invariants(T0);
    }
    assert_eq!(t.evictions(), 6);
    // The newcomers are embryonic in turn, oldest first; then nothing but the established.
    for i in 0..6 {
        assert_eq!(t.evict_embryonic().unwrap().client, client(200 + i));
    }
    assert_eq!(t.evict_embryonic(), None, "established connections stay");
    for id in established {
        assert_eq!(t.get(id).unwrap().state, TcpState::Established);
    }
    t.check_invariants(T0);
}
