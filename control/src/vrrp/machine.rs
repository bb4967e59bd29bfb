//! One VRRP instance's state machine (RFC 5798 section 6.4, with keepalived's choices where
//! the RFC leaves room), sans-IO: events and the time in, actions out. No sockets, no clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::Advert;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Before `start`.
    Init,
    Backup,
    Master,
    /// A tracked interface, script or service says this appliance cannot serve.
    Fault,
    /// After `stop`.
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stopped => "STOP",
        }
    }
}

/// What the instance is configured with.
#[derive(Debug, Clone)]
pub struct Params {
    pub version: u8,
    pub vrid: u8,
    /// The configured priority (255: the address owner).
    pub priority: u8,
    /// Hundredths of a second.
    pub interval: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// The address adverts come from: ties between equal priorities go to the higher one.
    pub primary: Ipv4Addr,
    pub addresses: Vec<Ipv4Addr>,
    pub password: Option<[u8; 8]>,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (0: the master leaves).
    Send { priority: u8 },
    /// The state changed (to the one given): notify scripts, the data plane, gratuitous ARPs
    /// when it is MASTER.
    Became(State),
    /// A MASTER reasserting itself: gratuitous ARPs again.
    Garp,
}

#[derive(Debug)]
pub struct Instance {
    pub p: Params,
    state: State,
    /// The priority in force: the configured one moved by weighted tracks.
    priority: u8,
    /// The master's advert interval as last heard (v3 adopts it; v2 requires equality).
    master_interval: u16,
    /// Backup: when the master is declared down. Master: when the next advert goes.
    timer: Option<Instant>,
    /// `preempt_delay`: when the first lower-priority advert was heard in this BACKUP spell
    /// (keepalived starts the delay there, not at start).
    preempt_from: Option<Instant>,
    /// Its down timer ran out while its sync group held it back (keepalived's wantstate
    /// MASTER): the others may move once each of them is due or waiting too.
    waiting: bool,
}

impl Instance {
    pub fn new(p: Params) -> Self {
        Instance {
            priority: p.priority,
            master_interval: p.interval,
            p,
            state: State::Init,
            timer: None,
            preempt_from: None,
            waiting: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// When `tick` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        self.timer
    }

    fn centis(c: u32) -> Duration {
        Duration::from_millis(u64::from(c) * 10)
    }

    /// RFC 5798: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256; v2 (RFC 3768)
    /// uses seconds, which is the same with its whole-second interval of 1 s.
    pub fn skew(&self) -> Duration {
        let prio = u32::from(self.priority);
        let micros = u64::from(256 - prio) * u64::from(self.master_interval) * 10_000 / 256;
        Duration::from_micros(micros)
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        Self::centis(3 * u32::from(self.master_interval)) + self.skew()
    }

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.state = State::Master;
        self.waiting = false;
        self.timer = Some(now + Self::centis(u32::from(self.p.interval)));
        out.push(Action::Send {
            priority: self.priority,
        });
        out.push(Action::Became(State::Master));
    }

    fn become_backup(&mut self, now: Instant, out: &mut Vec<Action>) {
        let was = self.state;
        self.state = State::Backup;
        self.preempt_from = None;
        self.waiting = false;
        self.timer = Some(now + self.master_down_interval());
        if was != State::Backup {
            out.push(Action::Became(State::Backup));
        }
    }

    /// Startup (RFC 5798 6.4.1, keepalived 2.2.7's `vrrp_init_state`): the address owner
    /// becomes MASTER at once, everyone else BACKUP for a whole Master_Down_Interval, whatever
    /// its `state` (keepalived shortens that wait only for a sync group in a corner rvs does
    /// not copy): a restarted appliance never grabs the addresses after one lost advert.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.master_interval = self.p.interval;
        if self.priority == 255 {
            self.become_master(now, &mut out);
        } else {
            self.become_backup(now, &mut out);
        }
        out
    }

    /// Whether the BACKUP's down timer has run out (a sync group holds a member back until
    /// all of them are due).
    pub fn due(&self, now: Instant) -> bool {
        self.state == State::Backup && self.timer.is_some_and(|t| now >= t)
    }

    /// Holds a BACKUP whose timer ran out for another down interval (its sync group is not
    /// ready to move).
    pub fn hold(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.timer = Some(now + self.master_down_interval());
            self.waiting = true;
        }
    }

    /// Due, or held back by its group after its timer ran out.
    pub fn ready_for_master(&self, now: Instant) -> bool {
        self.due(now) || (self.state == State::Backup && self.waiting)
    }

    /// The timer fired (or not yet: then nothing happens).
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, self.timer) {
            (State::Backup, Some(at)) if now >= at => self.become_master(now, &mut out),
            (State::Master, Some(at)) if now >= at => {
                self.timer = Some(now + Self::centis(u32::from(self.p.interval)));
                out.push(Action::Send {
                    priority: self.priority,
                });
            }
            _ => {}
        }
        out
    }

    /// An advert for this instance's VRID from `src`, already checked for what the packet
    /// alone decides (and authentication, version, interval by the caller).
    pub fn advert(&mut self, now: Instant, src: Ipv4Addr, a: &Advert) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Backup => {
                if a.priority == 0 {
                    // The master left: take over after the skew time only.
                    self.timer = Some(now + self.skew());
                    return out;
                }
                let accept = if a.priority >= self.priority {
                    self.preempt_from = None;
                    true
                } else if !self.p.preempt {
                    true
                } else {
                    // preempt_delay runs from the first lower advert heard.
                    let from = *self.preempt_from.get_or_insert(now);
                    now < from + self.p.preempt_delay
                };
                if accept {
                    self.waiting = false;
                    if self.p.version == 3 {
                        self.master_interval = a.interval;
                    }
                    self.timer = Some(now + self.master_down_interval());
                }
                // A lower priority master with preemption on: discarded; the down timer
                // runs out and this instance takes over.
            }
            State::Master => {
                if a.priority == 0 {
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    self.timer = Some(now + Self::centis(u32::from(self.p.interval)));
                } else if a.priority > self.priority
                    || (a.priority == self.priority && u32::from(src) > u32::from(self.p.primary))
                {
                    if self.p.version == 3 {
                        self.master_interval = a.interval;
                    }
                    self.become_backup(now, &mut out);
                } else {
                    // A lower priority peer thinks it is master: assert ourselves at once
                    // with an advert and gratuitous ARPs (keepalived does), so that it steps
                    // down and the neighbours point at us again.
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    out.push(Action::Garp);
                    self.timer = Some(now + Self::centis(u32::from(self.p.interval)));
                }
            }
            State::Init | State::Fault | State::Stopped => {}
        }
        out
    }

    /// A track went bad (`true`) or good again. A master in FAULT says goodbye with
    /// priority 0 (twice, as keepalived) so a backup takes over after its skew time.
    pub fn fault(&mut self, now: Instant, faulty: bool) -> Vec<Action> {
        let mut out = Vec::new();
        match (faulty, self.state) {
            (true, State::Master) => {
                out.push(Action::Send { priority: 0 });
                out.push(Action::Send { priority: 0 });
                self.state = State::Fault;
                self.timer = None;
                out.push(Action::Became(State::Fault));
            }
            (true, State::Backup | State::Init) => {
                self.state = State::Fault;
                self.timer = None;
                out.push(Action::Became(State::Fault));
            }
            (false, State::Fault) => {
                self.master_interval = self.p.interval;
                if self.priority == 255 {
                    self.become_master(now, &mut out);
                } else {
                    self.become_backup(now, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// A weighted track moved the priority (1..=254 unless configured 255).
    pub fn set_priority(&mut self, priority: u8) {
        self.priority = priority;
    }

    /// Forced by its sync group: another member became MASTER.
    pub fn force_master(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Backup {
            self.become_master(now, &mut out);
        }
        out
    }

    /// Forced by its sync group: another member stepped down to BACKUP.
    pub fn force_backup(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            self.become_backup(now, &mut out);
        }
        out
    }

    /// A clean stop: a master sends priority 0 so that a backup takes over after its skew.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Send { priority: 0 });
        }
        self.state = State::Stopped;
        self.timer = None;
        out.push(Action::Became(State::Stopped));
        out
    }

    /// The advert this instance sends with `priority`.
    pub fn advert_of(&self, priority: u8) -> Advert {
        Advert {
            version: self.p.version,
            vrid: self.p.vrid,
            priority,
            interval: self.p.interval,
            addresses: self.p.addresses.clone(),
            password: self.p.password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(priority: u8) -> Params {
        Params {
            version: 3,
            vrid: 51,
            priority,
            interval: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary: Ipv4Addr::new(198, 51, 100, 2),
            addresses: vec![Ipv4Addr::new(198, 51, 100, 100)],
            password: None,
        }
    }

    fn from(priority: u8) -> Advert {
        Advert {
            version: 3,
            vrid: 51,
            priority,
            interval: 100,
            addresses: vec![Ipv4Addr::new(198, 51, 100, 100)],
            password: None,
        }
    }

    const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
    const LOWER_PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    #[test]
    fn the_rfc_timers_for_priority_100_and_one_second() {
        let i = Instance::new(params(100));
        // (256 - 100) * 1 s / 256 = 0.609375 s; 3 s + that.
        assert_eq!(i.skew(), Duration::from_micros(609_375));
        assert_eq!(i.master_down_interval(), Duration::from_micros(3_609_375));
    }

    #[test]
    fn a_silent_link_makes_a_backup_master_after_the_down_interval() {
        let t0 = Instant::now();
        let mut i = Instance::new(params(100));
        assert_eq!(i.start(t0), vec![Action::Became(State::Backup)]);
        assert!(i.tick(t0 + Duration::from_millis(3_609)).is_empty());
        let out = i.tick(t0 + Duration::from_millis(3_610));
        assert_eq!(
            out,
            vec![
                Action::Send { priority: 100 },
                Action::Became(State::Master)
            ]
        );
        // Then an advert every interval.
        assert!(i.tick(t0 + Duration::from_millis(4_600)).is_empty());
        assert_eq!(
            i.tick(t0 + Duration::from_millis(4_610)),
            vec![Action::Send { priority: 100 }]
        );
    }

    #[test]
    fn the_owner_starts_master_and_state_master_waits_like_a_backup() {
        let t0 = Instant::now();
        let mut owner = Instance::new(params(255));
        assert_eq!(
            owner.start(t0),
            vec![
                Action::Send { priority: 255 },
                Action::Became(State::Master)
            ]
        );
        // Below 255 an instance starts BACKUP for the whole down interval (3 s + 106/256 s
        // at priority 150), `state MASTER` or not: keepalived 2.2.7, measured in the lab.
        let mut m = Instance::new(params(150));
        assert_eq!(m.start(t0), vec![Action::Became(State::Backup)]);
        assert!(m.tick(t0 + Duration::from_millis(3_410)).is_empty());
        assert_eq!(
            m.tick(t0 + Duration::from_millis(3_415))[1],
            Action::Became(State::Master)
        );
    }

    #[test]
    fn a_backup_follows_a_master_and_takes_over_at_its_farewell_after_the_skew() {
        let t0 = Instant::now();
        let mut i = Instance::new(params(100));
        i.start(t0);
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_secs(1);
            assert!(i.advert(t, PEER, &from(150)).is_empty());
            assert!(i.tick(t).is_empty());
        }
        assert_eq!(i.state(), State::Backup);
        i.advert(t, PEER, &from(0));
        assert!(i.tick(t + Duration::from_millis(609)).is_empty());
        assert_eq!(
            i.tick(t + Duration::from_millis(610))[1],
            Action::Became(State::Master)
        );
    }

    #[test]
    fn preemption_and_nopreempt() {
        let t0 = Instant::now();
        // Preempt: a lower master is ignored and the backup takes over at its timer.
        let mut i = Instance::new(params(150));
        i.start(t0);
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_secs(1);
            i.advert(t, PEER, &from(100));
        }
        assert!(i.tick(t0 + Duration::from_millis(3_400)).is_empty());
        assert!(i.tick(t0 + Duration::from_millis(3_420)).len() == 2);
        assert_eq!(i.state(), State::Master);
        // nopreempt: a lower master keeps the role.
        let mut p = params(150);
        p.preempt = false;
        let mut n = Instance::new(p);
        n.start(t0);
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_secs(1);
            n.advert(t, PEER, &from(100));
            assert!(n.tick(t).is_empty());
        }
        assert_eq!(n.state(), State::Backup);
        // preempt_delay: a lower master is followed for that long after it is first heard,
        // then the down timer runs out.
        let mut p = params(150);
        p.preempt_delay = Duration::from_secs(5);
        let mut d = Instance::new(p);
        d.start(t0);
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_secs(1);
            d.advert(t, PEER, &from(100));
            assert!(d.tick(t).is_empty());
        }
        // Heard first at 1 s: followed up to 6 s (the last at 5 s sets the timer to 5 + 3.414
        // s), discarded from then on.
        for _ in 0..2 {
            t += Duration::from_secs(1);
            d.advert(t, PEER, &from(100));
            assert!(d.tick(t).is_empty(), "{:?}", t - t0);
        }
        assert!(d.tick(t0 + Duration::from_millis(8_400)).is_empty());
        assert_eq!(
            d.tick(t0 + Duration::from_millis(8_420))[1],
            Action::Became(State::Master)
        );
    }

    #[test]
    fn a_master_yields_to_higher_priority_and_to_a_higher_address_on_a_tie() {
        let t0 = Instant::now();
        let mut i = Instance::new(params(255));
        i.start(t0);
        assert_eq!(
            i.advert(t0, PEER, &from(254)),
            vec![Action::Send { priority: 255 }, Action::Garp]
        );
        let mut m = Instance::new(params(100));
        m.start(t0);
        m.tick(t0 + Duration::from_secs(4));
        assert_eq!(m.state(), State::Master);
        // Equal priority from a lower address: we stay and assert.
        assert_eq!(
            m.advert(t0 + Duration::from_secs(4), LOWER_PEER, &from(100)),
            vec![Action::Send { priority: 100 }, Action::Garp]
        );
        // Equal priority from a higher address: we yield.
        assert_eq!(
            m.advert(t0 + Duration::from_secs(5), PEER, &from(100)),
            vec![Action::Became(State::Backup)]
        );
        // A farewell to a master makes it advertise at once.
        let mut o = Instance::new(params(255));
        o.start(t0);
        assert_eq!(
            o.advert(t0, PEER, &from(0)),
            vec![Action::Send { priority: 255 }]
        );
    }

    #[test]
    fn fault_and_stop_say_goodbye_with_priority_zero() {
        let t0 = Instant::now();
        let mut i = Instance::new(params(255));
        i.start(t0);
        assert_eq!(
            i.fault(t0, true),
            vec![
                Action::Send { priority: 0 },
                Action::Send { priority: 0 },
                Action::Became(State::Fault)
            ]
        );
        // In FAULT adverts change nothing and no timer runs.
        assert!(i.advert(t0, PEER, &from(1)).is_empty());
        assert_eq!(i.deadline(), None);
        assert_eq!(
            i.fault(t0, false),
            vec![
                Action::Send { priority: 255 },
                Action::Became(State::Master)
            ]
        );
        assert_eq!(
            i.stop(),
            vec![Action::Send { priority: 0 }, Action::Became(State::Stopped)]
        );
        let mut b = Instance::new(params(100));
        b.start(t0);
        assert_eq!(b.stop(), vec![Action::Became(State::Stopped)]);
    }

    #[test]
    fn v3_adopts_the_masters_interval() {
        let t0 = Instant::now();
        let mut i = Instance::new(params(100));
        i.start(t0);
        let mut fast = from(200);
        fast.interval = 10;
        i.advert(t0, PEER, &fast);
        // 3 * 0.1 s + 156/256 * 0.1 s.
        assert_eq!(i.master_down_interval(), Duration::from_micros(360_937));
        assert!(i.tick(t0 + Duration::from_millis(361)).len() == 2);
    }
}
