//! IPVS's TCP connection states, its transition tables and its per-state timeouts
//! (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, the normal tables, not the `secure_tcp` ones).
//!
//! The state is the load balancer's view of a connection it only partly sees: a packet's flags
//! pick one event (RST, else SYN, else FIN, else ACK), and `next = TABLE[side][event][state]`.
//! Three sides as in IPVS: INPUT (client -> server of a connection whose replies pass through
//! us, NAT and FULLNAT), OUTPUT (server -> client) and INPUT_ONLY (DR and TUN, where only the
//! client's half is seen). A segment carrying none of the four flags changes nothing here
//! (IPVS moves it to CLOSE; a flagless segment is never legitimate, and a forged one should not
//! be able to shorten a connection's life).

use super::Direction;
use crate::flow::ForwardMode;

use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN};

/// A TCP connection's state as IPVS tracks it; the discriminant indexes the timeout table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

impl TcpState {
    pub const COUNT: usize = 11;
    pub const ALL: [TcpState; Self::COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The name `ipvsadm -L -c` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// Which of the three transition tables a packet uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Input = 0,
    Output = 1,
    InputOnly = 2,
}

impl Side {
    /// A connection whose replies bypass us (DR, TUN) has only an input side.
    #[inline]
    pub(super) fn of(direction: Direction, mode: ForwardMode) -> Side {
        match direction {
            Direction::Original if mode.sees_replies() => Side::Input,
            Direction::Original => Side::InputOnly,
            Direction::Reply => Side::Output,
        }
    }
}

/// The event row a segment selects, in IPVS's priority order; `None` if it carries none.
#[inline]
fn event(tcp_flags: u8) -> Option<usize> {
    if tcp_flags & FLAG_RST != 0 {
        Some(RST)
    } else if tcp_flags & FLAG_SYN != 0 {
        Some(SYN)
    } else if tcp_flags & FLAG_FIN != 0 {
        Some(FIN)
    } else if tcp_flags & FLAG_ACK != 0 {
        Some(ACK)
    } else {
        None
    }
}

/// The state after a segment with `tcp_flags` seen on `side` in `state`.
#[inline]
pub(super) fn next_state(state: TcpState, side: Side, tcp_flags: u8) -> TcpState {
    match event(tcp_flags) {
        Some(event) => TRANSITIONS[side as usize][event][state as usize],
        None => state,
    }
}

const SYN: usize = 0;
const FIN: usize = 1;
const ACK: usize = 2;
const RST: usize = 3;

const ES: TcpState = TcpState::Established;
const SS: TcpState = TcpState::SynSent;
const SR: TcpState = TcpState::SynRecv;
const FW: TcpState = TcpState::FinWait;
const TW: TcpState = TcpState::TimeWait;
const CL: TcpState = TcpState::Close;
const CW: TcpState = TcpState::CloseWait;
const LA: TcpState = TcpState::LastAck;
const LI: TcpState = TcpState::Listen;

/// `[side][event][current state] -> next state`, IPVS's `tcp_states`. Columns in `TcpState`
/// order: NONE ES SS SR FW TW CL CW LA LI SYNACK (no transition leads to NONE or SYNACK in
/// these tables). The first client SYN of a connection moves NONE to
/// SYN_RECV: the state is the balancer's, which has received a SYN.
#[rustfmt::skip]
static TRANSITIONS: [[[TcpState; TcpState::COUNT]; 4]; 3] = [
    // INPUT
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// Idle timeouts in seconds: one per TCP state and one for UDP (`ipvsadm --set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by `TcpState as usize`.
    pub tcp: [u32; TcpState::COUNT],
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::ipvs_defaults()
    }
}

impl Timeouts {
    /// The kernel's defaults (`tcp_timeouts` in ip_vs_proto_tcp.c, UDP's NORMAL state).
    pub fn ipvs_defaults() -> Self {
        let mut tcp = [0; TcpState::COUNT];
        for (state, seconds) in [
            (TcpState::None, 2),
            (TcpState::Established, 15 * 60),
            (TcpState::SynSent, 2 * 60),
            (TcpState::SynRecv, 60),
            (TcpState::FinWait, 2 * 60),
            (TcpState::TimeWait, 2 * 60),
            (TcpState::Close, 10),
            (TcpState::CloseWait, 60),
            (TcpState::LastAck, 30),
            (TcpState::Listen, 2 * 60),
            (TcpState::SynAck, 2 * 60),
        ] {
            tcp[state as usize] = seconds;
        }
        Timeouts { tcp, udp: 5 * 60 }
    }

    #[inline]
    pub fn for_state(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }

    /// Like `ipvsadm --set tcp tcpfin udp` (seconds; 0 = leave unchanged): ESTABLISHED,
    /// FIN_WAIT, UDP.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }
}
