//! Announce by health (`announce` in the configuration), for an ECMP cluster of rvs nodes:
//! each VIP is put as a /32 address on a port's kernel interface while this node may serve
//! it, and taken off otherwise. A routing daemon on the node (BIRD's `direct` protocol, FRR's
//! `redistribute connected`) turns the address into a route it announces to the routers over
//! the data port; rvs speaks no BGP itself.
//!
//! A VIP is fit while every service of it has its quorum (the health checks) and, when a VRRP
//! instance holds it, while that instance is MASTER. Unfit: the address goes at once. Fit
//! again: it comes back once the VIP has been fit for the hold-down without a break, so a
//! flapping service costs the routers at most one change per hold-down (also at start: a
//! node that just started attracts traffic only after its checks had that long).
//!
//! Sans-IO: [`Announcer::update`] says what to add and remove; rvsd runs `ip` for it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::health::ServiceKey;

/// An address to put on an interface or take off it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add {
        interface: String,
        vip: Ipv4Addr,
    },
    Remove {
        interface: String,
        vip: Ipv4Addr,
        /// Why, for the log.
        why: String,
    },
}

/// Whether a VIP may be served here, and if not why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitness {
    pub vip: Ipv4Addr,
    /// `None`: fit; `Some(reason)`: not.
    pub unfit: Option<String>,
}

/// Whether each VIP of `config` may be served here: every service of it has its quorum
/// (`quorums`, from the health checks; a service not in it has), and the VRRP instance that
/// holds it, if `holder` names one, is MASTER. In the configuration's order.
pub fn fitness(
    config: &Config,
    quorums: &[(ServiceKey, bool)],
    holder: impl Fn(Ipv4Addr) -> Option<(String, bool)>,
) -> Vec<Fitness> {
    // Every 20 ms on the control thread: linear in the services, whatever their number.
    let lost: std::collections::HashSet<ServiceKey> = quorums
        .iter()
        .filter(|(_, met)| !met)
        .map(|(k, _)| *k)
        .collect();
    let mut index: std::collections::HashMap<Ipv4Addr, usize> = Default::default();
    let mut vips: Vec<Fitness> = Vec::new();
    for svc in &config.services {
        let i = *index.entry(svc.vip).or_insert_with(|| {
            vips.push(Fitness {
                vip: svc.vip,
                unfit: None,
            });
            vips.len() - 1
        });
        let lost = lost.contains(&(svc.protocol, svc.vip, svc.port));
        if vips[i].unfit.is_none() && lost {
            vips[i].unfit = Some(format!(
                "service {:?} {}:{} lost its quorum",
                svc.protocol, svc.vip, svc.port
            ));
        }
    }
    for f in vips.iter_mut().filter(|f| f.unfit.is_none()) {
        if let Some((name, false)) = holder(f.vip) {
            f.unfit = Some(format!("VRRP instance {name} is not MASTER"));
        }
    }
    vips
}

#[derive(Debug, Clone)]
struct Vip {
    /// The interface it is on now, if announced.
    on: Option<String>,
    /// Fit without a break since then (`None`: unfit now).
    fit_since: Option<Instant>,
    /// Why it is unfit, while it is.
    unfit: Option<String>,
    /// A failed `ip` command: not tried again before then.
    retry_at: Option<Instant>,
}

/// What the routers are told, per VIP (stats, `rvsadm status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipReport {
    pub vip: String,
    pub announced: bool,
    /// The interface it is on, when announced.
    pub interface: Option<String>,
    /// Why it is not announced: unfit (the reason), or waiting for the hold-down.
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
pub struct Announcer {
    vips: BTreeMap<Ipv4Addr, Vip>,
    /// Set by a clean stop: nothing is announced any more.
    stopping: bool,
}

impl Announcer {
    /// Brings the announced set in line: `interface` and `hold_down` from the configuration
    /// (`None`: no announcing, every VIP goes), `fitness` of every VIP configured now.
    /// Returns the changes to make, in order; [`Announcer::done`] and
    /// [`Announcer::failed`] report how each went.
    pub fn update(
        &mut self,
        interface: Option<(&str, Duration)>,
        fitness: &[Fitness],
        now: Instant,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        // VIPs no longer configured.
        let configured: std::collections::HashSet<Ipv4Addr> =
            fitness.iter().map(|f| f.vip).collect();
        let gone: Vec<Ipv4Addr> = self
            .vips
            .keys()
            .filter(|v| !configured.contains(*v))
            .copied()
            .collect();
        for vip in gone {
            if let Some(Vip { on: Some(i), .. }) = self.vips.remove(&vip) {
                changes.push(Change::Remove {
                    interface: i,
                    vip,
                    why: "no service has this VIP any more".into(),
                });
            }
        }
        for f in fitness {
            let v = self.vips.entry(f.vip).or_insert(Vip {
                on: None,
                fit_since: None,
                unfit: None,
                retry_at: None,
            });
            match (&f.unfit, v.fit_since) {
                (None, None) => v.fit_since = Some(now),
                (Some(_), _) => v.fit_since = None,
                (None, Some(_)) => {}
            }
            v.unfit.clone_from(&f.unfit);
            let wanted = match interface {
                None => None,
                Some(_) if self.stopping => None,
                Some((name, hold_down)) => v
                    .fit_since
                    .filter(|since| {
                        // Held already: stays; otherwise after the hold-down.
                        v.on.is_some() || now.saturating_duration_since(*since) >= hold_down
                    })
                    .map(|_| name),
            };
            if v.on.as_deref() == wanted {
                continue;
            }
            if let Some(old) = v.on.clone() {
                let why = if self.stopping {
                    "rvsd is stopping".to_owned()
                } else if let Some(u) = &v.unfit {
                    u.clone()
                } else if interface.is_none() {
                    "announce is no longer configured".to_owned()
                } else {
                    "announce moved to another port".to_owned()
                };
                changes.push(Change::Remove {
                    interface: old,
                    vip: f.vip,
                    why,
                });
                v.on = None;
            }
            if let Some(name) = wanted {
                if v.retry_at.is_some_and(|at| now < at) {
                    continue;
                }
                changes.push(Change::Add {
                    interface: name.to_owned(),
                    vip: f.vip,
                });
            }
        }
        changes
    }

    /// `change` was made.
    pub fn done(&mut self, change: &Change) {
        match change {
            Change::Add { interface, vip } => {
                if let Some(v) = self.vips.get_mut(vip) {
                    v.on = Some(interface.clone());
                    v.retry_at = None;
                }
            }
            Change::Remove { .. } => {}
        }
    }

    /// `change` failed: an address not added is tried again a second later; one not removed
    /// is forgotten (the interface is gone, or it was never there).
    pub fn failed(&mut self, change: &Change, now: Instant) {
        if let Change::Add { vip, .. } = change {
            if let Some(v) = self.vips.get_mut(vip) {
                v.retry_at = Some(now + Duration::from_secs(1));
            }
        }
    }

    /// A clean stop: every VIP goes and none comes back.
    pub fn stop(&mut self, now: Instant) -> Vec<Change> {
        self.stopping = true;
        let fitness: Vec<Fitness> = self
            .vips
            .iter()
            .map(|(vip, v)| Fitness {
                vip: *vip,
                unfit: v.unfit.clone(),
            })
            .collect();
        self.update(Some(("", Duration::ZERO)), &fitness, now)
    }

    /// Whether some VIP is announced.
    pub fn any(&self) -> bool {
        self.vips.values().any(|v| v.on.is_some())
    }

    /// When the next VIP's hold-down ends (the control thread wakes then).
    pub fn deadline(&self, hold_down: Duration) -> Option<Instant> {
        self.vips
            .values()
            .filter(|v| v.on.is_none())
            .filter_map(|v| v.fit_since.map(|s| s + hold_down))
            .min()
    }

    pub fn report(&self) -> Vec<VipReport> {
        self.vips
            .iter()
            .map(|(vip, v)| VipReport {
                vip: vip.to_string(),
                announced: v.on.is_some(),
                interface: v.on.clone(),
                reason: match (&v.on, &v.unfit) {
                    (Some(_), _) => None,
                    (None, Some(u)) => Some(u.clone()),
                    (None, None) if self.stopping => Some("rvsd is stopping".into()),
                    (None, None) => Some("fit, in its hold-down".into()),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
    const HOLD: Duration = Duration::from_secs(3);

    fn fit(unfit: Option<&str>) -> Vec<Fitness> {
        vec![Fitness {
            vip: VIP,
            unfit: unfit.map(str::to_owned),
        }]
    }

    fn add() -> Change {
        Change::Add {
            interface: "rvs-lan".into(),
            vip: VIP,
        }
    }

    /// Announced once fit for the hold-down (also at start); withdrawn at once when unfit;
    /// back only after a whole hold-down of fitness, a flap within it starting it again.
    #[test]
    fn hold_down_against_flapping() {
        let mut a = Announcer::default();
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let on = Some(("rvs-lan", HOLD));
        assert!(a.update(on, &fit(None), at(0.0)).is_empty());
        assert_eq!(a.deadline(HOLD), Some(at(3.0)));
        assert!(a.update(on, &fit(None), at(2.9)).is_empty());
        let c = a.update(on, &fit(None), at(3.0));
        assert_eq!(c, vec![add()]);
        a.done(&c[0]);
        assert!(a.any());
        assert!(a.update(on, &fit(None), at(10.0)).is_empty());
        let c = a.update(
            on,
            &fit(Some("TCP 203.0.113.200:80 lost its quorum")),
            at(11.0),
        );
        assert_eq!(
            c,
            vec![Change::Remove {
                interface: "rvs-lan".into(),
                vip: VIP,
                why: "TCP 203.0.113.200:80 lost its quorum".into()
            }]
        );
        // Flapping: fit at 12, unfit at 13, fit at 14: nothing before 17.
        assert!(a.update(on, &fit(None), at(12.0)).is_empty());
        assert!(a.update(on, &fit(Some("x")), at(13.0)).is_empty());
        assert!(a.update(on, &fit(None), at(14.0)).is_empty());
        assert!(a.update(on, &fit(None), at(16.9)).is_empty());
        assert_eq!(
            a.report()[0].reason.as_deref(),
            Some("fit, in its hold-down")
        );
        assert_eq!(a.update(on, &fit(None), at(17.0)), vec![add()]);
    }

    /// A failed `ip` is retried a second later; a clean stop withdraws everything for good;
    /// a VIP that leaves the configuration goes.
    #[test]
    fn retries_stop_and_removal() {
        let mut a = Announcer::default();
        let t0 = Instant::now();
        let on = Some(("rvs-lan", Duration::ZERO));
        let c = a.update(on, &fit(None), t0);
        a.failed(&c[0], t0);
        assert!(a
            .update(on, &fit(None), t0 + Duration::from_millis(500))
            .is_empty());
        let c = a.update(on, &fit(None), t0 + Duration::from_secs(1));
        assert_eq!(c, vec![add()]);
        a.done(&c[0]);
        let c = a.update(on, &[], t0 + Duration::from_secs(2));
        assert!(matches!(&c[..], [Change::Remove { why, .. }] if why.contains("no service")));
        let c = a.update(on, &fit(None), t0 + Duration::from_secs(3));
        a.done(&c[0]);
        let c = a.stop(t0 + Duration::from_secs(4));
        assert!(matches!(&c[..], [Change::Remove { why, .. }] if why == "rvsd is stopping"));
        assert!(!a.any());
        assert!(a
            .update(on, &fit(None), t0 + Duration::from_secs(9))
            .is_empty());
    }

    /// A VIP is unfit when any of its services lost its quorum, or when the VRRP instance
    /// holding it is not MASTER; another VIP is not affected.
    #[test]
    fn fitness_by_quorum_and_vrrp() {
        use crate::config::Protocol::{TCP, UDP};
        let text = r#"(
    workers: [0],
    ports: [(name: "lan", device: "net_ring0", addresses: ["198.51.100.11/24"])],
    announce: (port: "lan"),
    services: [
        (protocol: TCP, vip: "203.0.113.200", port: 80, lb_kind: DR, real_servers: [(address: "198.51.100.21")]),
        (protocol: UDP, vip: "203.0.113.200", port: 53, lb_kind: DR, real_servers: [(address: "198.51.100.21")]),
        (protocol: TCP, vip: "203.0.113.201", port: 80, lb_kind: DR, real_servers: [(address: "198.51.100.21")]),
    ],
)"#;
        let c =
            crate::config::parse_with_cores(std::path::Path::new("t.ron"), text.to_owned(), &[0])
                .unwrap()
                .config;
        let v200: Ipv4Addr = "203.0.113.200".parse().unwrap();
        let v201: Ipv4Addr = "203.0.113.201".parse().unwrap();
        let all_met = [
            ((TCP, v200, 80), true),
            ((UDP, v200, 53), true),
            ((TCP, v201, 80), true),
        ];
        let f = fitness(&c, &all_met, |_| None);
        assert_eq!(
            f.iter()
                .map(|f| (f.vip, f.unfit.is_none()))
                .collect::<Vec<_>>(),
            [(v200, true), (v201, true)]
        );
        let mut udp_lost = all_met;
        udp_lost[1].1 = false;
        let f = fitness(&c, &udp_lost, |_| None);
        assert_eq!(
            f[0].unfit.as_deref(),
            Some("service UDP 203.0.113.200:53 lost its quorum")
        );
        assert_eq!(f[1].unfit, None);
        let f = fitness(&c, &all_met, |v| {
            (v == v201).then(|| ("VI_1".to_owned(), false))
        });
        assert_eq!(f[0].unfit, None);
        assert_eq!(
            f[1].unfit.as_deref(),
            Some("VRRP instance VI_1 is not MASTER")
        );
        let f = fitness(&c, &all_met, |_| Some(("VI_1".to_owned(), true)));
        assert!(f.iter().all(|f| f.unfit.is_none()));
    }

    /// announce moved to another port: off the old interface, on the new one.
    #[test]
    fn moves_with_the_configuration() {
        let mut a = Announcer::default();
        let t0 = Instant::now();
        let c = a.update(Some(("rvs-a", Duration::ZERO)), &fit(None), t0);
        a.done(&c[0]);
        let c = a.update(Some(("rvs-b", Duration::ZERO)), &fit(None), t0);
        assert_eq!(c.len(), 2);
        assert!(matches!(&c[0], Change::Remove { interface, .. } if interface == "rvs-a"));
        assert!(matches!(&c[1], Change::Add { interface, .. } if interface == "rvs-b"));
        a.done(&c[1]);
        let c = a.update(None, &fit(None), t0);
        assert!(matches!(&c[..], [Change::Remove { why, .. }] if why.contains("no longer")));
    }
}
