//! What the clients send next, and the accounting that lets rvs-gen account for every packet
//! (sans-IO: the DPDK loop in `rvs-gen` asks, sends, and reports what arrived).
//!
//! A packet is *outstanding* from the moment it is built until it arrives where its journey
//! ends: the servers' link when replies do not cross the device (DR, TUN), the clients' link
//! as the real server's answer otherwise. At most `window` packets are outstanding, and the
//! window is smaller than any ring on the way, so no queue can overflow: nothing is dropped
//! for want of room, and any packet still outstanding after the final drain is a loss the
//! device (or the generator) must explain. Flat out means: keep the window full.

use std::collections::VecDeque;

use dataplane::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_SYN};

/// The step number of a data packet on an established flow.
pub const DATA: u8 = 255;

/// What each flow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Open every flow first (TCP: SYN, then ACK; UDP: one datagram), then send data over
    /// them round robin.
    Established,
    /// New connections, one after the other over the flows' tuples (a tuple is reused when
    /// its turn comes again, as a busy client reuses its ports): SYN, then `packets - 2` data
    /// segments, then FIN, each sent when the previous one has arrived (so, with replies
    /// crossing, after the real server's answer: a handshake in order).
    Connections { packets: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Established: the flows are being opened.
    Open,
    /// Running, not yet measured.
    Warmup,
    /// Running and measured.
    Measure,
    /// No new packets; waiting for the outstanding ones.
    Drain,
    Done,
}

/// Totals, all phases included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Client packets built (and sent, or waiting in the send burst).
    pub built: u64,
    /// Packets that arrived and passed their checks, on either link.
    pub arrived: u64,
    /// Client packets whose journey ended.
    pub completed: u64,
    /// Flows opened (Established) or connections completed (Connections).
    pub flows_opened: u64,
    pub connections: u64,
}

/// How long each phase lasts, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// Established: the longest opening may take; a flow that did not open (lost) ends the
    /// run there, into the drain and the loss report.
    pub open_timeout: u64,
    pub warmup: u64,
    pub measure: u64,
    /// The longest wait for packets still in flight at the end.
    pub drain: u64,
}

#[derive(Debug)]
pub struct Traffic {
    script: Script,
    udp: bool,
    flows: u32,
    window: u32,
    outstanding: u32,
    cursor: u32,
    follow: VecDeque<(u32, u8)>,
    phase: Phase,
    phase_end_ns: u64,
    phases: Phases,
    pub totals: Totals,
}

impl Traffic {
    /// `flows` tuples, at most `window` packets outstanding.
    pub fn new(
        script: Script,
        udp: bool,
        flows: u32,
        window: u32,
        phases: Phases,
    ) -> Result<Traffic, String> {
        if flows == 0 || window == 0 {
            return Err("flows and window must be at least 1".into());
        }
        if let Script::Connections { packets } = script {
            if udp {
                return Err("new connections are TCP only (a UDP tuple reused within its timeout is the same connection)".into());
            }
            if packets < 2 {
                return Err("a connection has at least 2 packets: SYN and FIN".into());
            }
            if flows <= window {
                return Err(format!(
                    "{flows} flows cannot carry new connections with {window} packets in flight: a tuple would be reused while in use"
                ));
            }
        }
        Ok(Traffic {
            script,
            udp,
            flows,
            window,
            outstanding: 0,
            cursor: 0,
            follow: VecDeque::with_capacity(window as usize),
            phase: match script {
                Script::Established => Phase::Open,
                Script::Connections { .. } => Phase::Warmup,
            },
            phase_end_ns: match script {
                Script::Established => phases.open_timeout,
                Script::Connections { .. } => phases.warmup,
            },
            phases,
            totals: Totals::default(),
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// Room in the window.
    pub fn room(&self) -> u32 {
        self.window - self.outstanding
    }

    /// Moves the phases on at time `now_ns`; returns the new phase when it changed.
    pub fn tick(&mut self, now_ns: u64) -> Option<Phase> {
        let next = match self.phase {
            Phase::Open
                if self.totals.flows_opened == u64::from(self.flows) && self.outstanding == 0 =>
            {
                self.phase_end_ns = now_ns + self.phases.warmup;
                Phase::Warmup
            }
            Phase::Open if now_ns >= self.phase_end_ns => {
                self.phase_end_ns = now_ns + self.phases.drain;
                Phase::Drain
            }
            Phase::Warmup if now_ns >= self.phase_end_ns => {
                self.phase_end_ns = now_ns + self.phases.measure;
                Phase::Measure
            }
            Phase::Measure if now_ns >= self.phase_end_ns => {
                self.phase_end_ns = now_ns + self.phases.drain;
                Phase::Drain
            }
            Phase::Drain if self.outstanding == 0 || now_ns >= self.phase_end_ns => Phase::Done,
            _ => return None,
        };
        self.phase = next;
        Some(next)
    }

    /// The TCP flags of a flow's packet at `step`.
    pub fn flags(&self, step: u8) -> u8 {
        match (self.script, step) {
            (_, 0) => FLAG_SYN,
            (_, DATA) => FLAG_PSH | FLAG_ACK,
            (Script::Established, _) => FLAG_ACK,
            (Script::Connections { packets }, s) if s + 1 == packets => FLAG_FIN | FLAG_ACK,
            (Script::Connections { .. }, _) => FLAG_PSH | FLAG_ACK,
        }
    }

    /// The next client packet to build, as (flow, step), if the window and the phase allow
    /// one. Counts it as outstanding.
    #[inline]
    pub fn next_packet(&mut self) -> Option<(u32, u8)> {
        if self.outstanding >= self.window {
            return None;
        }
        let packet = match self.follow.pop_front() {
            Some(p) => p,
            None => match (self.phase, self.script) {
                (Phase::Drain | Phase::Done, _) => return None,
                (Phase::Open, _) if self.cursor >= self.flows => return None,
                (Phase::Open, _) => {
                    self.cursor += 1;
                    (self.cursor - 1, 0)
                }
                (_, Script::Established) => (self.advance(), DATA),
                (_, Script::Connections { .. }) => (self.advance(), 0),
            },
        };
        self.outstanding += 1;
        self.totals.built += 1;
        Some(packet)
    }

    fn advance(&mut self) -> u32 {
        let flow = self.cursor % self.flows;
        self.cursor = (flow + 1) % self.flows;
        flow
    }

    /// A checked packet arrived (either link).
    #[inline]
    pub fn arrived(&mut self) {
        self.totals.arrived += 1;
    }

    /// The journey of the client packet (`flow`, `step`) ended: frees its place in the window
    /// and queues the flow's next packet, if its script has one.
    #[inline]
    pub fn completed(&mut self, flow: u32, step: u8) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.totals.completed += 1;
        let follow_up = match self.script {
            Script::Established if step == DATA => None,
            Script::Established if step == 0 && !self.udp => Some(1),
            Script::Established => {
                self.totals.flows_opened += 1;
                None
            }
            Script::Connections { packets } if step + 1 < packets => Some(step + 1),
            Script::Connections { .. } => {
                self.totals.connections += 1;
                None
            }
        };
        if let Some(next) = follow_up {
            if !matches!(self.phase, Phase::Drain | Phase::Done) {
                self.follow.push_back((flow, next));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHASES: Phases = Phases {
        open_timeout: 1000,
        warmup: 10,
        measure: 100,
        drain: 50,
    };

    /// Runs the script with every packet arriving at once; returns the (flow, step) sent.
    fn run(traffic: &mut Traffic, now: u64, max: usize) -> Vec<(u32, u8)> {
        let mut sent = Vec::new();
        while let Some(p) = traffic.next_packet() {
            sent.push(p);
            if sent.len() == max {
                break;
            }
        }
        for &(flow, step) in &sent {
            traffic.arrived();
            traffic.completed(flow, step);
        }
        traffic.tick(now);
        sent
    }

    #[test]
    fn established_opens_every_flow_with_syn_then_ack_before_data() {
        let mut t = Traffic::new(Script::Established, false, 3, 8, PHASES).unwrap();
        assert_eq!(run(&mut t, 0, 100), vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(t.phase(), Phase::Open);
        assert_eq!(run(&mut t, 0, 100), vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(
            t.phase(),
            Phase::Warmup,
            "all three open, nothing outstanding"
        );
        assert_eq!(
            run(&mut t, 5, 4),
            vec![(0, DATA), (1, DATA), (2, DATA), (0, DATA)]
        );
        assert_eq!(t.flags(0), FLAG_SYN);
        assert_eq!(t.flags(1), FLAG_ACK);
        assert_eq!(t.flags(DATA), FLAG_PSH | FLAG_ACK);
    }

    #[test]
    fn udp_flows_open_with_one_datagram() {
        let mut t = Traffic::new(Script::Established, true, 2, 8, PHASES).unwrap();
        assert_eq!(run(&mut t, 0, 100), vec![(0, 0), (1, 0)]);
        assert_eq!(t.phase(), Phase::Warmup);
    }

    #[test]
    fn connections_follow_their_script_and_count_when_the_fin_arrives() {
        let mut t = Traffic::new(Script::Connections { packets: 3 }, false, 10, 2, PHASES).unwrap();
        assert_eq!(run(&mut t, 0, 100), vec![(0, 0), (1, 0)]);
        assert_eq!(run(&mut t, 0, 100), vec![(0, 1), (1, 1)]);
        assert_eq!(t.flags(1), FLAG_PSH | FLAG_ACK);
        assert_eq!(t.flags(2), FLAG_FIN | FLAG_ACK);
        assert_eq!(t.totals.connections, 0);
        assert_eq!(run(&mut t, 0, 100), vec![(0, 2), (1, 2)]);
        assert_eq!(t.totals.connections, 2);
        assert_eq!(run(&mut t, 0, 100), vec![(2, 0), (3, 0)], "the next tuples");
    }

    #[test]
    fn the_window_bounds_what_is_outstanding() {
        let mut t = Traffic::new(Script::Established, false, 100, 4, PHASES).unwrap();
        let sent: Vec<_> = std::iter::from_fn(|| t.next_packet()).collect();
        assert_eq!(sent.len(), 4);
        assert_eq!(t.room(), 0);
        t.completed(sent[0].0, sent[0].1);
        assert_eq!(t.room(), 1);
        assert_eq!(t.next_packet(), Some((0, 1)), "the follow-up goes first");
    }

    #[test]
    fn phases_run_to_done_and_a_loss_keeps_drain_until_its_timeout() {
        let mut t = Traffic::new(Script::Connections { packets: 2 }, false, 10, 2, PHASES).unwrap();
        assert_eq!(t.tick(10), Some(Phase::Measure));
        assert_eq!(t.tick(50), None);
        assert_eq!(t.tick(110), Some(Phase::Drain));
        let lost = t.next_packet();
        assert_eq!(lost, None, "nothing new once draining");
        let mut t = Traffic::new(Script::Connections { packets: 2 }, false, 10, 2, PHASES).unwrap();
        assert!(t.next_packet().is_some());
        t.tick(10);
        t.tick(110);
        assert_eq!(t.tick(120), None, "one outstanding: keep draining");
        assert_eq!(t.tick(160), Some(Phase::Done), "until the drain time is up");
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn an_opening_that_loses_a_packet_ends_in_the_drain() {
        let mut t = Traffic::new(Script::Established, false, 2, 8, PHASES).unwrap();
        let (a, b) = (t.next_packet().unwrap(), t.next_packet().unwrap());
        t.completed(a.0, a.1);
        let _lost = b;
        assert_eq!(t.tick(999), None);
        assert_eq!(t.tick(1000), Some(Phase::Drain));
        assert_eq!(t.tick(1050), Some(Phase::Done));
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn refuses_scripts_that_cannot_work() {
        let conns = Script::Connections { packets: 3 };
        assert!(Traffic::new(conns, true, 1000, 8, PHASES).is_err(), "UDP");
        assert!(
            Traffic::new(conns, false, 8, 8, PHASES).is_err(),
            "tuple reuse in flight"
        );
        let syn_only = Script::Connections { packets: 1 };
        assert!(Traffic::new(syn_only, false, 1000, 8, PHASES).is_err());
    }
}
