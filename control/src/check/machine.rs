//! The verdict of one probe over time, without sockets or clocks of its own (sans-IO): given
//! what each check found and when it ended, it says what to report and when to check next.
//! keepalived's rules:
//!
//! - A probe starts Up, or Down with `alpha`; starting says nothing.
//! - A success while Down reports Up at once and clears the retries.
//! - A failure while Up is retried `retry` times, each after `delay_before_retry`, silently;
//!   the failure after the last retry reports Down with its own reason.
//! - A failure while Down stays silent: nothing to confirm, so no retries.
//! - A local error (the appliance's own) is reported and changes nothing: neither the state
//!   nor the retries; the next check comes a `delay_loop` later.
//! - A `misc_dynamic` weight is reported whenever it changes, and on every way up.

use std::time::{Duration, Instant};

use super::{Event, Probe};

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server passed; `weight` is a `misc_dynamic` weight (None: unchanged).
    Up { reason: String, weight: Option<u32> },
    /// The server failed.
    Down { reason: String },
    /// The check could not be made, through no fault of the server.
    Local { reason: String },
}

impl Outcome {
    pub fn up(reason: impl Into<String>) -> Self {
        Outcome::Up {
            reason: reason.into(),
            weight: None,
        }
    }

    pub fn down(reason: impl Into<String>) -> Self {
        Outcome::Down {
            reason: reason.into(),
        }
    }

    pub fn local(reason: impl Into<String>) -> Self {
        Outcome::Local {
            reason: reason.into(),
        }
    }
}

/// What to do after a check: report `event` (if any), check again at `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub event: Option<Event>,
    pub next: Instant,
}

/// One probe's state and timing.
#[derive(Debug, Clone)]
pub struct Machine {
    delay_loop: Duration,
    retry: u32,
    delay_before_retry: Duration,
    warmup: Duration,
    up: bool,
    /// The last `misc_dynamic` weight reported.
    weight: Option<u32>,
    /// Failures retried since the last success or Down.
    retried: u32,
}

impl Machine {
    pub fn new(probe: &Probe) -> Self {
        Machine {
            delay_loop: probe.delay_loop,
            retry: probe.retry,
            delay_before_retry: probe.delay_before_retry,
            warmup: probe.warmup,
            up: !probe.alpha,
            weight: None,
            retried: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the first check is due: `random` (uniform over u64) picks a point in
    /// [now, now + warmup], so probes started together do not all fire together.
    pub fn first(&self, now: Instant, random: u64) -> Instant {
        let span = self.warmup.as_nanos();
        let nanos = span * u128::from(random) / u128::from(u64::MAX);
        now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Takes the outcome of a check that ended at `now`.
    pub fn outcome(&mut self, outcome: Outcome, now: Instant) -> Step {
        let mut delay = self.delay_loop;
        let event = match outcome {
            Outcome::Up { reason, weight } => {
                self.retried = 0;
                let was_up = std::mem::replace(&mut self.up, true);
                let changed = weight.is_some() && weight != self.weight;
                // exit 0 under misc_dynamic leaves the weight as it was (keepalived's legacy
                // case), so only a reported weight is remembered.
                if weight.is_some() {
                    self.weight = weight;
                }
                match (was_up, weight) {
                    (false, Some(weight)) => Some(Event::Weight { weight, reason }),
                    (false, None) => Some(Event::Up { reason }),
                    (true, Some(weight)) if changed => Some(Event::Weight { weight, reason }),
                    (true, _) => None,
                }
            }
            Outcome::Down { reason } => {
                if !self.up {
                    None
                } else if self.retried < self.retry {
                    self.retried += 1;
                    delay = self.delay_before_retry;
                    None
                } else {
                    self.retried = 0;
                    self.up = false;
                    Some(Event::Down { reason })
                }
            }
            Outcome::Local { reason } => Some(Event::LocalError { reason }),
        };
        Step {
            event,
            next: now + delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::super::ProbeKind;
    use super::*;

    fn probe(retry: u32, alpha: bool) -> Probe {
        Probe {
            kind: ProbeKind::Tcp,
            target: SocketAddrV4::new([127, 0, 0, 1].into(), 80),
            bind: None,
            connect_timeout: Duration::from_secs(1),
            delay_loop: Duration::from_secs(10),
            retry,
            delay_before_retry: Duration::from_secs(2),
            warmup: Duration::from_secs(4),
            alpha,
        }
    }

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn down(reason: &str) -> Event {
        Event::Down {
            reason: reason.into(),
        }
    }

    fn up(reason: &str) -> Event {
        Event::Up {
            reason: reason.into(),
        }
    }

    #[test]
    fn starts_up_or_down_with_alpha() {
        assert!(Machine::new(&probe(0, false)).is_up());
        assert!(!Machine::new(&probe(0, true)).is_up());
    }

    #[test]
    fn the_first_check_is_somewhere_in_the_warmup() {
        let t0 = Instant::now();
        let m = Machine::new(&probe(0, false));
        assert_eq!(m.first(t0, 0), t0);
        assert_eq!(m.first(t0, u64::MAX), at(t0, 4));
        let half = m.first(t0, u64::MAX / 2) - t0;
        assert!(half > Duration::from_millis(1999) && half <= Duration::from_millis(2000));
        let mut no_warmup = probe(0, false);
        no_warmup.warmup = Duration::ZERO;
        assert_eq!(Machine::new(&no_warmup).first(t0, u64::MAX), t0);
    }

    /// Up, then `retry` silent failures a `delay_before_retry` apart, then Down with the last
    /// reason; then a delay_loop rhythm and silence while it stays down.
    #[test]
    fn down_only_after_every_retry_failed() {
        let t0 = Instant::now();
        let mut m = Machine::new(&probe(2, false));
        let s = m.outcome(Outcome::up("connected"), at(t0, 1));
        assert_eq!(
            s,
            Step {
                event: None,
                next: at(t0, 11)
            },
            "already up: quiet"
        );
        let s = m.outcome(Outcome::down("timeout"), at(t0, 12));
        assert_eq!(
            s,
            Step {
                event: None,
                next: at(t0, 14)
            },
            "retry 1"
        );
        let s = m.outcome(Outcome::down("timeout"), at(t0, 15));
        assert_eq!(
            s,
            Step {
                event: None,
                next: at(t0, 17)
            },
            "retry 2"
        );
        assert!(m.is_up());
        let s = m.outcome(Outcome::down("refused"), at(t0, 18));
        assert_eq!(
            s.event,
            Some(down("refused")),
            "the last reason is reported"
        );
        assert_eq!(s.next, at(t0, 28));
        assert!(!m.is_up());
        let s = m.outcome(Outcome::down("refused"), at(t0, 28));
        assert_eq!(
            s,
            Step {
                event: None,
                next: at(t0, 38)
            },
            "down: no retries"
        );
    }

    #[test]
    fn a_success_during_retries_clears_them() {
        let t0 = Instant::now();
        let mut m = Machine::new(&probe(1, false));
        assert_eq!(m.outcome(Outcome::down("timeout"), t0).event, None);
        let s = m.outcome(Outcome::up("connected"), at(t0, 2));
        assert_eq!(
            s,
            Step {
                event: None,
                next: at(t0, 12)
            },
            "never went down"
        );
        assert_eq!(m.outcome(Outcome::down("timeout"), at(t0, 12)).event, None);
        let s = m.outcome(Outcome::down("timeout"), at(t0, 14));
        assert_eq!(s.event, Some(down("timeout")));
    }

    #[test]
    fn up_is_reported_at_once_after_down() {
        let t0 = Instant::now();
        let mut m = Machine::new(&probe(3, true));
        assert_eq!(m.outcome(Outcome::down("refused"), t0).event, None, "alpha");
        let s = m.outcome(Outcome::up("status 200"), at(t0, 10));
        assert_eq!(s.event, Some(up("status 200")));
        assert_eq!(s.next, at(t0, 20));
        assert_eq!(m.outcome(Outcome::up("status 200"), at(t0, 20)).event, None);
    }

    #[test]
    fn a_local_error_changes_nothing() {
        let t0 = Instant::now();
        let mut m = Machine::new(&probe(1, false));
        assert_eq!(m.outcome(Outcome::down("timeout"), t0).event, None);
        let s = m.outcome(Outcome::local("bind: EADDRNOTAVAIL"), at(t0, 2));
        assert_eq!(
            s.event,
            Some(Event::LocalError {
                reason: "bind: EADDRNOTAVAIL".into()
            })
        );
        assert_eq!(s.next, at(t0, 12), "the next round");
        assert!(m.is_up());
        let s = m.outcome(Outcome::down("timeout"), at(t0, 12));
        assert_eq!(s.event, Some(down("timeout")), "the retry still counts");

        let mut alpha = Machine::new(&probe(0, true));
        let s = alpha.outcome(Outcome::local("EMFILE"), t0);
        assert!(matches!(s.event, Some(Event::LocalError { .. })));
        assert!(!alpha.is_up(), "not brought up either");
    }

    #[test]
    fn misc_dynamic_weights() {
        let t0 = Instant::now();
        let mut m = Machine::new(&probe(0, true));
        let w = |w: u32, code: u32| Outcome::Up {
            reason: format!("exit {code}"),
            weight: Some(w),
        };
        let weight = |weight: u32, code: u32| {
            Some(Event::Weight {
                weight,
                reason: format!("exit {code}"),
            })
        };
        assert_eq!(m.outcome(w(10, 12), t0).event, weight(10, 12), "up with 10");
        assert_eq!(m.outcome(w(10, 12), t0).event, None, "unchanged");
        assert_eq!(
            m.outcome(w(5, 7), t0).event,
            weight(5, 7),
            "still up, new weight"
        );
        assert_eq!(
            m.outcome(Outcome::up("exit 0"), t0).event,
            None,
            "exit 0: as it was"
        );
        assert_eq!(m.outcome(w(5, 7), t0).event, None);
        assert_eq!(
            m.outcome(Outcome::down("exit code 1"), t0).event,
            Some(down("exit code 1"))
        );
        assert_eq!(
            m.outcome(w(5, 7), t0).event,
            weight(5, 7),
            "up again: the weight with it"
        );

        let mut legacy = Machine::new(&probe(0, true));
        assert_eq!(
            legacy.outcome(Outcome::up("exit 0"), t0).event,
            Some(up("exit 0"))
        );
    }
}
