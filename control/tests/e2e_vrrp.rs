//! VRRP against the real keepalived (Debian 12's 2.2.7), in the namespace lab: rvsd in
//! NAME-lb (ports 198.51.100.2/24 and 203.0.113.2/24 of its own) and keepalived in NAME-ka
//! (ka0 198.51.100.3/24, ka1 203.0.113.3/24) float the same addresses, as a NAT pair does:
//!
//! - VI_1 (VRID 51) on the client side: the VIP 198.51.100.100 and the client's gateway
//!   198.51.100.1/24;
//! - VI_2 (VRID 52) on the server side: the real servers' gateway 203.0.113.1/24;
//! - both in the sync group G1, on each side.
//!
//! Every advert and ARP frame the appliances send is recorded on the switch's ports, with the
//! kernel's receive time (scripts/lab/vrrp_sniff.py, `lab.sh sniff`); the takeover times are
//! measured there, from the last advert of the master that went to the first advert of the
//! one that took over, and compared with keepalived's formulas (advert_int 1 s):
//! Master_Down_Interval = 3 x advert_int + Skew_Time, Skew_Time = (256 - priority) / 256 s:
//! 3.609 s at priority 100 (the backup hears nothing more), 0.609 s after a priority-0
//! advert (the master said goodbye). keepalived against itself in the same lab measured
//! 3.610 s and 0.610 s (the reference for the figures).
//!
//! The tests:
//! - `rvsd_and_keepalived_v3`, `rvsd_and_keepalived_v2_auth` (multicast; v2 with PASS):
//!   election at start, kill -9 of rvsd, preemption by a restarted rvsd, its SIGTERM,
//!   nopreempt, then keepalived MASTER over a BACKUP rvsd (no ARP answers, `not_master`
//!   drops) and keepalived's crash (the client's ARP entry follows rvsd's GARPs);
//! - `unicast_peers`: the same with unicast_src_ip/unicast_peer;
//! - `fault_by_track_script_and_pulled_cable`: FAULT and back, and pulled cables;
//! - `fault_by_tracked_link`: rvsd's tracked port's cable pulled: FAULT, keepalived takes over;
//! - `sync_group_takeover_with_the_masters_adverts_out_of_phase`: keepalived's sync group
//!   rule when the master's instances advertise at different moments;
//! - `state_master_at_start_waits_as_keepalived`: `state MASTER` below 255 at start.
//!
//! The figures are printed (`cargo test --release -p control --test e2e_vrrp -- --nocapture
//! --test-threads=1`). Needs root and keepalived (`apt-get install -y keepalived`); rvsd runs
//! on ordinary pages (a killed rvsd leaves no hugepage files behind).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    in_ns, log_time, now, repo_root, run, run_tag, workers_field, Lab, Rvsd, TempDir, VIP,
};
use serde_json::Value;

const GATEWAY: &str = "198.51.100.1";
const SERVER_GATEWAY: &str = "203.0.113.1";
const RVSD_CLIENT: &str = "198.51.100.2";
const RVSD_SERVERS: &str = "203.0.113.2";
const KA_CLIENT: &str = "198.51.100.3";
const KA_SERVERS: &str = "203.0.113.3";

/// keepalived's Skew_Time and Master_Down_Interval for advert_int 1 s (v2 and v3 alike).
fn skew(priority: u8) -> f64 {
    f64::from(256 - u32::from(priority)) / 256.0
}

fn master_down(priority: u8) -> f64 {
    3.0 + skew(priority)
}

/// A timer fires at its time, not before (the sniffer sees an advert a little before its
/// receiver does); late by this much at most on this shared two-core machine.
const EARLY: f64 = 0.05;
const LATE: f64 = 0.45;

fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- the VRRP configuration of both sides ---------------------------------------------

/// One side's VRRP: the same words for rvsd's RON and keepalived's configuration.
#[derive(Clone)]
struct Vr {
    version: u8,
    priority: u8,
    /// `state MASTER` (else BACKUP).
    master: bool,
    nopreempt: bool,
    /// VRRP v2 `auth_type PASS`.
    auth: Option<&'static str>,
    /// Adverts to the other side's port addresses instead of 224.0.0.18.
    unicast: bool,
}

impl Vr {
    fn new(version: u8, priority: u8) -> Vr {
        Vr {
            version,
            priority,
            master: false,
            nopreempt: false,
            auth: (version == 2).then_some("secret"),
            unicast: false,
        }
    }

    fn master(mut self) -> Vr {
        self.master = true;
        self
    }

    fn nopreempt(mut self) -> Vr {
        self.nopreempt = true;
        self
    }

    fn unicast(mut self) -> Vr {
        self.unicast = true;
        self
    }

    fn state(&self) -> &'static str {
        if self.master {
            "MASTER"
        } else {
            "BACKUP"
        }
    }

    /// rvsd's `vrrp_instances` and `vrrp_sync_groups`; `vi1_extra` goes into VI_1 (tracks),
    /// `top_extra` beside them (`vrrp_scripts`).
    fn rvsd(&self, vi1_extra: &str, top_extra: &str) -> String {
        let inst = |name: &str,
                    port: &str,
                    vrid: u8,
                    vips: &str,
                    src: &str,
                    peer: &str,
                    extra: &str| {
            let auth = match self.auth {
                Some(p) => format!("Some((auth_type: PASS, auth_pass: {p:?}))"),
                None => "None".to_owned(),
            };
            let unicast = if self.unicast {
                format!("unicast_src_ip: Some({src:?}), unicast_peer: [{peer:?}],")
            } else {
                String::new()
            };
            format!(
                "        (name: {name:?}, state: {}, interface: {port:?}, virtual_router_id: {vrid},\n\
                 \x20        priority: {}, advert_int: 1, version: {}, virtual_ipaddress: [{vips}],\n\
                 \x20        nopreempt: {}, authentication: {auth}, {unicast} {extra}),\n",
                self.state(),
                self.priority,
                self.version,
                self.nopreempt,
            )
        };
        format!(
            "    vrrp_instances: [\n{}{}    ],\n    vrrp_sync_groups: [(name: \"G1\", group: [\"VI_1\", \"VI_2\"])],\n{top_extra}",
            inst(
                "VI_1",
                "client",
                51,
                &format!("\"{VIP}\", \"{GATEWAY}/24\""),
                RVSD_CLIENT,
                KA_CLIENT,
                vi1_extra
            ),
            inst(
                "VI_2",
                "servers",
                52,
                &format!("\"{SERVER_GATEWAY}/24\""),
                RVSD_SERVERS,
                KA_SERVERS,
                ""
            ),
        )
    }

    /// keepalived's configuration on `ifaces` (ka0/ka1 in NAME-ka, or lb2c/lb2s in NAME-lb2):
    /// `own`, its port addresses (unicast source), `peer`, the other side's (unicast peers).
    fn keepalived(&self, ifaces: (&str, &str), own: (&str, &str), peer: (&str, &str)) -> String {
        let inst = |name: &str, iface: &str, vrid: u8, vips: &str, src: &str, peer: &str| {
            let mut s = format!(
                "vrrp_instance {name} {{\n    state {}\n    interface {iface}\n    virtual_router_id {vrid}\n    priority {}\n    advert_int 1\n    version {}\n",
                self.state(),
                self.priority,
                self.version
            );
            if self.nopreempt {
                s += "    nopreempt\n";
            }
            if let Some(p) = self.auth {
                s += &format!("    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n");
            }
            if self.unicast {
                s += &format!(
                    "    unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}\n"
                );
            }
            s += &format!("    virtual_ipaddress {{\n{vips}    }}\n}}\n");
            s
        };
        format!(
            "global_defs {{\n    router_id rvs-lab-peer\n}}\nvrrp_sync_group G1 {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n{}{}",
            inst(
                "VI_1",
                ifaces.0,
                51,
                &format!("        {VIP}\n        {GATEWAY}/24\n"),
                own.0,
                peer.0
            ),
            inst(
                "VI_2",
                ifaces.1,
                52,
                &format!("        {SERVER_GATEWAY}/24\n"),
                own.1,
                peer.1
            ),
        )
    }

    fn keepalived_in_ka(&self) -> String {
        self.keepalived(
            ("ka0", "ka1"),
            (KA_CLIENT, KA_SERVERS),
            (RVSD_CLIENT, RVSD_SERVERS),
        )
    }
}

// --- what the sniffer recorded ------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(dead_code)] // all shown in failure messages
struct Advert {
    t: f64,
    /// The sender's interface: lb0/lb1 (rvsd), ka0/ka1 (keepalived), lb2c/lb2s.
    from: String,
    vrid: u64,
    prio: u64,
    version: u64,
    src: String,
    dst: String,
    ttl: u64,
    tos: u64,
    int_cs: u64,
    cksum_ok: bool,
    addrs: Vec<String>,
    auth: String,
    dst_mac: String,
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // all shown in failure messages
struct Arp {
    t: f64,
    from: String,
    op: u64,
    sender_mac: String,
    sender_ip: String,
    target_ip: String,
    garp: bool,
}

struct Sniffed {
    adverts: Vec<Advert>,
    arps: Vec<Arp>,
}

impl Sniffed {
    /// Adverts of `from` for `vrid` in (after, before), in time order.
    fn of(&self, from: &str, vrid: u64, after: f64, before: f64) -> Vec<&Advert> {
        self.adverts
            .iter()
            .filter(|a| a.from == from && a.vrid == vrid && a.t > after && a.t < before)
            .collect()
    }

    fn first(&self, from: &str, vrid: u64, after: f64, live: bool) -> Option<&Advert> {
        self.of(from, vrid, after, f64::INFINITY)
            .into_iter()
            .find(|a| !live || a.prio > 0)
    }

    /// The last live (priority > 0) advert of `from` for `vrid` before `before`.
    fn last_live(&self, from: &str, vrid: u64, before: f64) -> Option<&Advert> {
        self.of(from, vrid, 0.0, before)
            .into_iter()
            .rfind(|a| a.prio > 0)
    }

    fn garps(&self, from: &str, ip: &str, after: f64, before: f64) -> Vec<&Arp> {
        self.arps
            .iter()
            .filter(|a| {
                a.from == from && a.garp && a.sender_ip == ip && a.t > after && a.t < before
            })
            .collect()
    }
}

fn sniffed(lab: &Lab) -> Sniffed {
    let text =
        std::fs::read_to_string(lab.state_dir().join("vrrp-sniff.jsonl")).unwrap_or_default();
    let mut out = Sniffed {
        adverts: Vec::new(),
        arps: Vec::new(),
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue; // a line being written
        };
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let t = v["t"].as_f64().unwrap_or(0.0);
        match v["kind"].as_str() {
            Some("vrrp") => out.adverts.push(Advert {
                t,
                from: s("from"),
                vrid: n("vrid"),
                prio: n("prio"),
                version: n("version"),
                src: s("src"),
                dst: s("dst"),
                ttl: n("ttl"),
                tos: n("tos"),
                int_cs: n("int_cs"),
                cksum_ok: v["cksum_ok"].as_bool().unwrap_or(false),
                addrs: v["addrs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                auth: s("auth"),
                dst_mac: s("dst_mac"),
            }),
            Some("arp") => out.arps.push(Arp {
                t,
                from: s("from"),
                op: n("op"),
                sender_mac: s("sender_mac"),
                sender_ip: s("sender_ip"),
                target_ip: s("target_ip"),
                garp: v["garp"].as_bool().unwrap_or(false),
            }),
            _ => {}
        }
    }
    out
}

/// Waits for the first advert (live: priority > 0) of `from` for `vrid` after `after`.
fn wait_advert(lab: &Lab, from: &str, vrid: u64, after: f64, timeout: Duration) -> Option<Advert> {
    wait_until(timeout, || {
        sniffed(lab).first(from, vrid, after, true).cloned()
    })
}

fn describe(adverts: &[&Advert], since: f64) -> String {
    adverts
        .iter()
        .map(|a| {
            format!(
                "{:+.3} {} vrid {} prio {}",
                a.t - since,
                a.from,
                a.vrid,
                a.prio
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// --- the lab: rvsd, keepalived, the sniffer -----------------------------------------------

/// The lab with its VRRP peers and the sniffer running; rvsd (re)started on demand.
/// Dropped in order: rvsd stops, then the lab goes down (keepalived and the sniffer with it).
struct VrrpLab {
    rvsd: Option<Rvsd>,
    lab: Lab,
    tmp: TempDir,
    base: String,
    starts: usize,
}

fn lab_cmd(args: &[&str]) -> String {
    let out = run(Command::new(repo_root().join("scripts/lab.sh")).args(args));
    assert!(
        out.status.success(),
        "lab.sh {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keepalived_installed() -> bool {
    Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
}

impl VrrpLab {
    fn up(tag: &str) -> VrrpLab {
        assert!(
            keepalived_installed(),
            "keepalived is not installed: apt-get install -y keepalived"
        );
        let run = run_tag();
        let lab = Lab::up(&format!("e2e{run}{tag}"));
        lab.lab_sh("servers", "start");
        lab.lab_sh("mode", "nat");
        lab_cmd(&["peers", &lab.name]);
        lab_cmd(&["sniff", &lab.name, "start"]);
        let tmp = TempDir::new(&format!("vrrp-{tag}"));
        let prefix = format!("rvs-e2e-{tag}-{run}");
        // NAT's file, with the appliance's own port addresses: what floats is VRRP's. Ordinary
        // pages (a killed rvsd leaves no hugepage files behind).
        let base = std::fs::read_to_string(repo_root().join("configs/lab-nat.ron"))
            .unwrap()
            .replace("\"rvs-lab\"", &format!("{prefix:?}"))
            .replace("hugepages: true", "hugepages: false")
            .replace(
                "workers: [1]",
                &format!("{}, stats_interval_ms: 200", workers_field(1)),
            )
            .replace(
                "addresses: [\"198.51.100.1/24\"]",
                &format!("addresses: [\"{RVSD_CLIENT}/24\"]"),
            )
            .replace(
                "addresses: [\"203.0.113.1/24\"]",
                &format!("addresses: [\"{RVSD_SERVERS}/24\"]"),
            );
        assert!(base.contains(RVSD_CLIENT) && base.contains(RVSD_SERVERS));
        VrrpLab {
            rvsd: None,
            lab,
            tmp,
            base,
            starts: 0,
        }
    }

    fn stats_path(&self) -> PathBuf {
        self.tmp.path(&format!("stats-{}.json", self.starts))
    }

    /// Starts rvsd with `vrrp` (from [`Vr::rvsd`]) in the file; returns the time of its
    /// first VRRP log line (the instances' start).
    fn start_rvsd(&mut self, vrrp: &str) -> f64 {
        assert!(self.rvsd.is_none(), "rvsd is running");
        self.starts += 1;
        let n = self.starts;
        let config = self
            .base
            .replace(
                "\"/run/rvs/lab-stats.json\"",
                &format!("{:?}", self.stats_path().display().to_string()),
            )
            .replace("    stats_file:", &format!("{vrrp}    stats_file:"));
        let path = self.tmp.path(&format!("lab-{n}.ron"));
        std::fs::write(&path, &config).unwrap();
        let log = self.tmp.path(&format!("rvsd-{n}.log"));
        let mut rvsd = Rvsd::start(Some(&self.lab.ns("lb")), &path, &log);
        assert!(
            rvsd.wait_for_log("(VI_2) Entering", Duration::from_secs(60)),
            "rvsd did not start:\n{config}\n{}",
            rvsd.log_text()
        );
        let resolved = wait_until(Duration::from_secs(10), || {
            (rvsd.log_text().matches("neighbor 203.0.113.1").count() >= 3).then_some(())
        });
        assert!(
            resolved.is_some(),
            "real servers not resolved:\n{}",
            rvsd.log_text()
        );
        let text = rvsd.log_text();
        let started = text
            .lines()
            .find(|l| l.contains("(VI_1) Entering"))
            .and_then(log_time)
            .expect("a VRRP line");
        self.rvsd = Some(rvsd);
        started
    }

    fn rvsd_log(&self) -> String {
        self.rvsd.as_ref().map(|r| r.log_text()).unwrap_or_default()
    }

    /// All rvsd logs and keepalived's, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.starts {
            let log = self.tmp.path(&format!("rvsd-{n}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let vrrp: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("vrrp") || l.contains("VRRP") || l.contains("stopp"))
                .collect();
            s += &format!("--- rvsd start {n} (VRRP lines):\n{}\n", vrrp.join("\n"));
        }
        s += &format!("--- keepalived:\n{}", self.keepalived_log());
        s
    }

    /// SIGKILL: a crash (`ip netns exec` execs rvsd in place: the child is rvsd).
    fn kill_rvsd(&mut self) {
        let mut rvsd = self.rvsd.take().expect("rvsd runs");
        let mut child = rvsd.child.take().expect("its process");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; it must exit 0.
    fn stop_rvsd(&mut self) {
        let mut rvsd = self.rvsd.take().expect("rvsd runs");
        let status = rvsd.stop(Duration::from_secs(20)).expect("rvsd stops");
        assert!(status.success(), "rvsd exit {status}:\n{}", rvsd.log_text());
    }

    fn stats(&self) -> Value {
        wait_until(Duration::from_secs(2), || {
            serde_json::from_str(&std::fs::read_to_string(self.stats_path()).ok()?).ok()
        })
        .expect("rvsd's stats file")
    }

    /// rvsd's state of an instance, from its stats file.
    fn rvsd_state(&self, inst: &str) -> String {
        let stats = self.stats();
        stats["vrrp"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"] == inst))
            .and_then(|v| v["state"].as_str())
            .unwrap_or("?")
            .to_owned()
    }

    fn start_keepalived(&mut self, conf: &str) {
        self.start_keepalived_in(conf, "ka");
    }

    fn start_keepalived_in(&mut self, conf: &str, role: &str) {
        let path = self.tmp.path(&format!("keepalived-{role}.conf"));
        std::fs::write(&path, conf).unwrap();
        lab_cmd(&[
            "keepalived",
            &self.lab.name,
            "start",
            path.to_str().unwrap(),
            role,
        ]);
    }

    fn keepalived(&self, action: &str) {
        lab_cmd(&["keepalived", &self.lab.name, action]);
    }

    fn keepalived_log(&self) -> String {
        self.keepalived_log_of("ka")
    }

    /// keepalived's log since its last start.
    fn keepalived_log_of(&self, role: &str) -> String {
        let text =
            std::fs::read_to_string(self.lab.state_dir().join(format!("keepalived-{role}.log")))
                .unwrap_or_default();
        match text.rfind("start: keepalived") {
            Some(i) => text[i..].to_owned(),
            None => text,
        }
    }

    /// keepalived's last state of `inst` (from its log since its last start).
    fn keepalived_state(&self, inst: &str) -> Option<String> {
        let log = self.keepalived_log();
        let needle = format!("({inst}) Entering ");
        log.lines()
            .filter_map(|l| l.split_once(&needle).map(|(_, s)| s))
            .next_back()
            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
    }

    /// What keepalived said about adverts it refused (none is expected).
    fn keepalived_complaints(&self) -> Vec<String> {
        let words = [
            "invalid",
            "mismatch",
            "not present",
            "unexpected",
            "wrong",
            "too short",
            "too long",
            "checksum",
            "bogus",
            "discard",
        ];
        self.keepalived_log()
            .lines()
            .filter(|l| {
                let l = l.to_lowercase();
                words.iter().any(|w| l.contains(w))
            })
            .map(String::from)
            .collect()
    }

    /// rvsd's refused adverts by reason (non-zero ones).
    fn rvsd_refused(&self) -> Vec<(String, u64)> {
        let stats = self.stats();
        stats["vrrp_counters"]["refused"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| Some((r[0].as_str()?.to_owned(), r[1].as_u64()?)))
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mac(&self, role: &str, iface: &str) -> String {
        let out = in_ns(
            &self.lab.ns(role),
            "ip",
            &["-br", "link", "show", "dev", iface],
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .to_owned()
    }

    /// The client's neighbour entry for `ip`: its MAC, if it has one.
    fn client_neigh(&self, ip: &str) -> Option<String> {
        let out = in_ns(
            &self.lab.ns("client"),
            "ip",
            &["neigh", "show", ip, "dev", "cl0"],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(String::from)
    }

    fn client_ping(&self, ip: &str) -> bool {
        in_ns(&self.lab.ns("client"), "ping", &["-c", "1", "-W", "1", ip])
            .status
            .success()
    }

    /// client.py http to the VIP: (summary, all ok).
    fn client_http(&self, count: u32, timeout: u32) -> (Value, bool) {
        let script = repo_root().join("scripts/lab/client.py");
        let out = in_ns(
            &self.lab.ns("client"),
            "python3",
            &[
                script.to_str().unwrap(),
                "http",
                "--url",
                &format!("http://{VIP}/"),
                "--count",
                &count.to_string(),
                "--timeout",
                &timeout.to_string(),
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = serde_json::from_str(&text).unwrap_or(Value::Null);
        (summary, out.status.success())
    }
}

// --- the checks shared by the scenarios ----------------------------------------------------

/// Adverts as keepalived sends them: to the group (or the peer), TTL 255, TOS 0xc0, the
/// version, 1 s, the instance's addresses, a right checksum, v2's password.
fn check_wire(vr: &Vr, adverts: &[&Advert], who: &str) {
    assert!(!adverts.is_empty(), "{who}: no adverts");
    for a in adverts {
        let want_dst = if vr.unicast {
            if a.vrid == 51 {
                [KA_CLIENT, RVSD_CLIENT]
            } else {
                [KA_SERVERS, RVSD_SERVERS]
            }
        } else {
            ["224.0.0.18", "224.0.0.18"]
        };
        assert!(want_dst.contains(&a.dst.as_str()), "{who}: dst {a:?}");
        if !vr.unicast {
            assert_eq!(a.dst_mac, "01:00:5e:00:00:12", "{who}: {a:?}");
        }
        assert_eq!(a.ttl, 255, "{who}: {a:?}");
        assert_eq!(a.tos, 0xc0, "{who}: {a:?}");
        assert_eq!(a.version, u64::from(vr.version), "{who}: {a:?}");
        assert_eq!(a.int_cs, 100, "{who}: {a:?}");
        assert!(a.cksum_ok, "{who}: checksum {a:?}");
        let want: Vec<String> = if a.vrid == 51 {
            vec![VIP.into(), GATEWAY.into()]
        } else {
            vec![SERVER_GATEWAY.into()]
        };
        let mut got = a.addrs.clone();
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{who}: addresses {a:?}");
        if vr.version == 2 {
            assert_eq!(a.auth, vr.auth.unwrap_or(""), "{who}: password {a:?}");
        }
    }
}

/// Both sides accepted every advert of the other: keepalived logged no complaint and rvsd
/// refused nothing but its own frames.
fn check_no_refusals(v: &VrrpLab, what: &str) {
    let complaints = v.keepalived_complaints();
    assert!(
        complaints.is_empty(),
        "{what}: keepalived refused rvsd's adverts:\n{}",
        complaints.join("\n")
    );
    if v.rvsd.is_some() {
        let refused = v.rvsd_refused();
        assert!(
            refused.iter().all(|(r, _)| r == "from_self"),
            "{what}: rvsd refused keepalived's adverts: {refused:?}\n{}",
            v.logs()
        );
    }
}

/// A takeover: the first live advert of `new` for `vrid` after `after`, and the last live
/// advert of `old` before it; returns (gap, the new master's first advert time).
fn takeover(v: &VrrpLab, old: &str, new: &str, vrid: u64, after: f64, what: &str) -> (f64, f64) {
    let first =
        wait_advert(&v.lab, new, vrid, after, Duration::from_secs(12)).unwrap_or_else(|| {
            let s = sniffed(&v.lab);
            panic!(
                "{what}: {new} sent no advert for VRID {vrid} within 12 s; adverts since: {}\n{}",
                describe(&s.of(new, vrid, after - 5.0, f64::INFINITY), after),
                v.logs()
            )
        });
    let s = sniffed(&v.lab);
    let last = s
        .last_live(old, vrid, first.t)
        .unwrap_or_else(|| panic!("{what}: no advert of {old} before {new}'s"));
    (first.t - last.t, first.t)
}

fn assert_near(what: &str, got: f64, want: f64, v: &VrrpLab) {
    assert!(
        got >= want - EARLY && got <= want + LATE,
        "{what}: {got:.3} s, expected {want:.3} s (-{EARLY}/+{LATE})\n{}",
        v.logs()
    );
}

// --- the scenarios ------------------------------------------------------------------------

/// (a) election at start, (b) kill -9 of rvsd, (e) preemption by a restarted rvsd, (c) its
/// clean stop, (e) nopreempt, (d) keepalived MASTER with rvsd BACKUP, then its crash. rvsd
/// has priority 150, keepalived 100.
fn rvsd_and_keepalived(version: u8) {
    let tag = format!("vr{version}");
    let mut v = VrrpLab::up(&tag);
    let rvsd_vr = Vr::new(version, 150);
    let ka_vr = Vr::new(version, 100);
    let lb0 = v.lab.mac("lb0");
    let ka0 = v.mac("ka", "ka0");
    let mut lines = Vec::new();

    // (a) Both start BACKUP, rvsd (150) first, keepalived (100) right after: rvsd's down
    // timer (3 + 106/256 s) runs out first, keepalived hears it and stays BACKUP.
    let t0 = now();
    let started = v.start_rvsd(&rvsd_vr.rvsd("", ""));
    v.start_keepalived(&ka_vr.keepalived_in_ka());
    let first = wait_advert(&v.lab, "lb0", 51, t0, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("rvsd never advertised:\n{}", v.logs()));
    assert!(
        v.rvsd
            .as_mut()
            .unwrap()
            .wait_for_log("(VI_2) Entering MASTER STATE", Duration::from_secs(2)),
        "{}",
        v.rvsd_log()
    );
    let election = first.t - started;
    assert_near("election (priority 150)", election, master_down(150), &v);
    std::thread::sleep(Duration::from_millis(2500));
    let s = sniffed(&v.lab);
    assert!(
        s.of("ka0", 51, t0, f64::INFINITY).is_empty()
            && s.of("ka1", 52, t0, f64::INFINITY).is_empty(),
        "keepalived advertised while rvsd is MASTER: {}\n{}",
        describe(&s.of("ka0", 51, t0, f64::INFINITY), t0),
        v.logs()
    );
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    assert_eq!(
        v.keepalived_state("VI_2").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    assert_eq!(v.rvsd_state("VI_1"), "MASTER");
    check_wire(&rvsd_vr, &s.of("lb0", 51, t0, f64::INFINITY), "rvsd VI_1");
    check_wire(&rvsd_vr, &s.of("lb1", 52, t0, f64::INFINITY), "rvsd VI_2");
    // Gratuitous ARPs for every address as it became MASTER (garp_master_repeat 5).
    for (port, ip) in [("lb0", VIP), ("lb0", GATEWAY), ("lb1", SERVER_GATEWAY)] {
        let garps = s.garps(port, ip, first.t - 0.05, first.t + 0.5);
        assert_eq!(garps.len(), 5, "GARPs for {ip} on {port}: {garps:?}");
    }
    let (summary, ok) = v.client_http(6, 2);
    assert!(
        ok,
        "the client through the VIP: {summary}\n{}",
        v.rvsd_log()
    );
    assert_eq!(v.client_neigh(VIP).as_deref(), Some(lb0.as_str()));
    lines.push(format!(
        "(a) election: rvsd MASTER {election:.3} s after its start (expected its \
         Master_Down_Interval, 3 + 106/256 = {:.3} s), keepalived BACKUP; 6 of 6 HTTP requests \
         through the VIP",
        master_down(150)
    ));

    // (b) kill -9 rvsd: keepalived takes over after its Master_Down_Interval.
    let k = now();
    v.kill_rvsd();
    let (gap1, ka_first) = takeover(&v, "lb0", "ka0", 51, k, "(b) kill -9 rvsd");
    let (gap2, _) = takeover(&v, "lb1", "ka1", 52, k, "(b) kill -9 rvsd");
    assert_near(
        "(b) VI_1 takeover after kill -9",
        gap1,
        master_down(100),
        &v,
    );
    assert_near(
        "(b) VI_2 takeover after kill -9",
        gap2,
        master_down(100),
        &v,
    );
    let after_kill = ka_first - k;
    lines.push(format!(
        "(b) kill -9 rvsd: keepalived's first advert {gap1:.3} s (VI_1) / {gap2:.3} s (VI_2) \
         after rvsd's last (expected 3 + 156/256 = {:.3} s), {after_kill:.3} s after the kill",
        master_down(100)
    ));

    // (e) rvsd again (150): it discards keepalived's lower adverts and takes over when its
    // down timer runs out; keepalived steps down at its first advert.
    std::thread::sleep(Duration::from_millis(1200));
    let t1 = now();
    let started = v.start_rvsd(&rvsd_vr.rvsd("", ""));
    let (_, rvsd_first) = takeover(&v, "ka0", "lb0", 51, t1, "(e) preemption");
    let preempt = rvsd_first - started;
    assert_near("(e) preemption after start", preempt, master_down(150), &v);
    std::thread::sleep(Duration::from_millis(1500));
    let s = sniffed(&v.lab);
    let late = s.of("ka0", 51, rvsd_first + 0.1, f64::INFINITY);
    assert!(
        late.is_empty(),
        "keepalived still advertising after rvsd preempted: {}",
        describe(&late, rvsd_first)
    );
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    check_wire(
        &ka_vr,
        &s.of("ka0", 51, t0, f64::INFINITY),
        "keepalived VI_1",
    );
    lines.push(format!(
        "(e) preemption: rvsd (150) restarted under keepalived (100) MASTER {preempt:.3} s \
         after its start; keepalived BACKUP at rvsd's first advert"
    ));

    // (c) SIGTERM: one priority-0 advert per instance, keepalived takes over after its skew.
    let k = now();
    v.stop_rvsd();
    let s = sniffed(&v.lab);
    let bye1: Vec<&Advert> = s
        .of("lb0", 51, k, f64::INFINITY)
        .into_iter()
        .filter(|a| a.prio == 0)
        .collect();
    let bye2: Vec<&Advert> = s
        .of("lb1", 52, k, f64::INFINITY)
        .into_iter()
        .filter(|a| a.prio == 0)
        .collect();
    assert_eq!(
        (bye1.len(), bye2.len()),
        (1, 1),
        "priority-0 adverts at the stop:\n{}",
        v.logs()
    );
    let ka_first = wait_advert(&v.lab, "ka0", 51, k, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("(c) keepalived did not take over:\n{}", v.logs()));
    let ka_first2 = wait_advert(&v.lab, "ka1", 52, k, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("(c) keepalived VI_2 did not take over:\n{}", v.logs()));
    let gap1 = ka_first.t - bye1[0].t;
    let gap2 = ka_first2.t - bye2[0].t;
    assert_near("(c) VI_1 takeover after priority 0", gap1, skew(100), &v);
    assert_near("(c) VI_2 takeover after priority 0", gap2, skew(100), &v);
    lines.push(format!(
        "(c) SIGTERM rvsd: one priority-0 advert per instance; keepalived's first advert \
         {gap1:.3} s / {gap2:.3} s after it (expected the skew, 156/256 = {:.3} s)",
        skew(100)
    ));

    // (e) nopreempt: rvsd (150, BACKUP, nopreempt) stays BACKUP under keepalived (100).
    let t2 = now();
    v.start_rvsd(&Vr::new(version, 150).nopreempt().rvsd("", ""));
    std::thread::sleep(Duration::from_secs_f64(master_down(150) + 1.5));
    let s = sniffed(&v.lab);
    assert!(
        s.of("lb0", 51, t2, f64::INFINITY).is_empty(),
        "rvsd with nopreempt advertised: {}\n{}",
        describe(&s.of("lb0", 51, t2, f64::INFINITY), t2),
        v.logs()
    );
    assert_eq!(v.rvsd_state("VI_1"), "BACKUP");
    assert_eq!(v.rvsd_state("VI_2"), "BACKUP");
    assert_eq!(v.keepalived_state("VI_1").as_deref(), Some("MASTER"));
    check_no_refusals(&v, "nopreempt");
    lines.push(format!(
        "(e) nopreempt: rvsd (150) stayed BACKUP {:.1} s under keepalived (100)",
        now() - t2
    ));

    // (d) keepalived MASTER, rvsd BACKUP: rvsd answers no ARP for the floating addresses and
    // drops what reaches it for them (not_master).
    let t3 = now();
    let _ = in_ns(&v.lab.ns("client"), "ip", &["neigh", "flush", "dev", "cl0"]);
    assert!(v.client_ping(VIP), "keepalived answers for the VIP");
    assert!(v.client_ping(GATEWAY), "keepalived answers for the gateway");
    assert_eq!(v.client_neigh(VIP).as_deref(), Some(ka0.as_str()));
    std::thread::sleep(Duration::from_millis(300));
    let s = sniffed(&v.lab);
    let answered: Vec<&Arp> = s
        .arps
        .iter()
        .filter(|a| {
            a.from == "lb0"
                && a.t > t3
                && a.op == 2
                && (a.sender_ip == VIP || a.sender_ip == GATEWAY)
        })
        .collect();
    assert!(
        answered.is_empty(),
        "rvsd (BACKUP) answered ARP: {answered:?}"
    );
    let before = v.stats()["ports"][0]["drops"]["not_master"]
        .as_u64()
        .unwrap_or(0);
    let _ = in_ns(
        &v.lab.ns("client"),
        "ip",
        &[
            "neigh",
            "replace",
            VIP,
            "lladdr",
            &lb0,
            "dev",
            "cl0",
            "nud",
            "permanent",
        ],
    );
    let (summary, ok) = v.client_http(2, 1);
    let _ = in_ns(
        &v.lab.ns("client"),
        "ip",
        &["neigh", "del", VIP, "dev", "cl0"],
    );
    assert!(!ok, "rvsd (BACKUP) served the VIP: {summary}");
    let dropped = wait_until(Duration::from_secs(2), || {
        let n = v.stats()["ports"][0]["drops"]["not_master"]
            .as_u64()
            .unwrap_or(0);
        (n > before).then_some(n - before)
    })
    .unwrap_or_else(|| panic!("no not_master drop: {}", v.stats()["ports"][0]));
    assert!(v.client_ping(VIP));
    assert_eq!(v.client_neigh(VIP).as_deref(), Some(ka0.as_str()));
    lines.push(format!(
        "(d) rvsd BACKUP: no ARP answer for the VIP or the gateway; {dropped} packets to the VIP \
         sent to its MAC dropped as not_master"
    ));

    // ... and keepalived crashes: rvsd takes over after its Master_Down_Interval, its
    // gratuitous ARPs move the client's entry for the VIP to its MAC.
    let k = now();
    v.keepalived("kill");
    let flipped = wait_until(Duration::from_secs(10), || {
        (v.client_neigh(VIP).as_deref() == Some(lb0.as_str())).then(now)
    });
    let (gap1, rvsd_first) = takeover(&v, "ka0", "lb0", 51, k, "(d) kill -9 keepalived");
    let (gap2, _) = takeover(&v, "ka1", "lb1", 52, k, "(d) kill -9 keepalived");
    let flipped = flipped.unwrap_or_else(|| {
        panic!(
            "the client's ARP entry for the VIP stayed: {:?}\n{}",
            v.client_neigh(VIP),
            v.logs()
        )
    });
    assert_near(
        "(d) VI_1 takeover after kill -9 keepalived",
        gap1,
        master_down(150),
        &v,
    );
    assert_near(
        "(d) VI_2 takeover after kill -9 keepalived",
        gap2,
        master_down(150),
        &v,
    );
    let s = sniffed(&v.lab);
    let garp = s.garps("lb0", VIP, rvsd_first - 0.05, f64::INFINITY);
    assert!(!garp.is_empty(), "no GARP for the VIP");
    assert!(
        flipped - rvsd_first < 0.5,
        "the client's entry moved {:.3} s after rvsd's first advert",
        flipped - rvsd_first
    );
    let (summary, ok) = v.client_http(6, 2);
    assert!(
        ok,
        "the client through the VIP after the takeover: {summary}\n{}",
        v.rvsd_log()
    );
    check_no_refusals(&v, "end");
    let c = &v.stats()["vrrp_counters"];
    lines.push(format!(
        "(d) kill -9 keepalived: rvsd's first advert {gap1:.3} s (VI_1) / {gap2:.3} s (VI_2) \
         after keepalived's last (expected 3 + 106/256 = {:.3} s); GARP {:.3} s after it; the \
         client's ARP entry for the VIP on rvsd's MAC {:.3} s after keepalived's last advert \
         (polled every ~20 ms); 6 of 6 HTTP requests through the VIP; rvsd's counters: {c}",
        master_down(150),
        garp[0].t - rvsd_first,
        flipped - (rvsd_first - gap1),
    ));
    for l in &lines {
        println!(
            "VRRP v{version} multicast{}: {l}",
            if version == 2 { " PASS auth" } else { "" }
        );
    }
}

#[test]
fn rvsd_and_keepalived_v3() {
    rvsd_and_keepalived(3);
}

#[test]
fn rvsd_and_keepalived_v2_auth() {
    rvsd_and_keepalived(2);
}

/// (f) unicast_peer, VRRP v3: election, SIGTERM (priority 0 to the peer), preemption back,
/// kill -9.
#[test]
fn unicast_peers() {
    let mut v = VrrpLab::up("vru");
    let rvsd_vr = Vr::new(3, 150).unicast();
    let ka_vr = Vr::new(3, 100).unicast();
    let mut lines = Vec::new();
    let t0 = now();
    let started = v.start_rvsd(&rvsd_vr.rvsd("", ""));
    v.start_keepalived(&ka_vr.keepalived_in_ka());
    let first = wait_advert(&v.lab, "lb0", 51, t0, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("rvsd never advertised:\n{}", v.logs()));
    let election = first.t - started;
    assert_near("unicast election", election, master_down(150), &v);
    std::thread::sleep(Duration::from_millis(2500));
    let s = sniffed(&v.lab);
    assert!(
        s.of("ka0", 51, t0, f64::INFINITY).is_empty(),
        "{}",
        v.logs()
    );
    assert_eq!(v.keepalived_state("VI_1").as_deref(), Some("BACKUP"));
    check_wire(
        &rvsd_vr,
        &s.of("lb0", 51, t0, f64::INFINITY),
        "rvsd VI_1 unicast",
    );
    check_wire(
        &rvsd_vr,
        &s.of("lb1", 52, t0, f64::INFINITY),
        "rvsd VI_2 unicast",
    );
    let (summary, ok) = v.client_http(3, 2);
    assert!(ok, "{summary}");
    lines.push(format!(
        "election: rvsd MASTER {election:.3} s after its start, keepalived BACKUP"
    ));

    let k = now();
    v.stop_rvsd();
    let s = sniffed(&v.lab);
    let bye: Vec<&Advert> = s
        .of("lb0", 51, k, f64::INFINITY)
        .into_iter()
        .filter(|a| a.prio == 0)
        .collect();
    assert_eq!(bye.len(), 1, "{}", v.logs());
    assert_eq!(bye[0].dst, KA_CLIENT);
    let ka_first = wait_advert(&v.lab, "ka0", 51, k, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("keepalived did not take over:\n{}", v.logs()));
    let gap = ka_first.t - bye[0].t;
    assert_near("unicast takeover after priority 0", gap, skew(100), &v);
    lines.push(format!("SIGTERM rvsd: keepalived's first advert {gap:.3} s after the priority-0 one (expected {:.3} s)", skew(100)));

    std::thread::sleep(Duration::from_millis(1200));
    let t1 = now();
    let started = v.start_rvsd(&rvsd_vr.rvsd("", ""));
    let (_, rvsd_first) = takeover(&v, "ka0", "lb0", 51, t1, "unicast preemption");
    let preempt = rvsd_first - started;
    assert_near("unicast preemption", preempt, master_down(150), &v);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    check_wire(
        &ka_vr,
        &sniffed(&v.lab).of("ka0", 51, t0, f64::INFINITY),
        "keepalived VI_1 unicast",
    );
    check_no_refusals(&v, "unicast");
    lines.push(format!(
        "preemption: rvsd MASTER again {preempt:.3} s after its start"
    ));

    let k = now();
    v.kill_rvsd();
    let (gap, _) = takeover(&v, "lb0", "ka0", 51, k, "unicast kill -9");
    assert_near("unicast takeover after kill -9", gap, master_down(100), &v);
    let s = sniffed(&v.lab);
    assert!(
        s.adverts
            .iter()
            .filter(|a| a.t > t0 && a.from.starts_with("lb"))
            .all(|a| a.dst != "224.0.0.18"),
        "rvsd sent to the group in unicast mode"
    );
    lines.push(format!(
        "kill -9 rvsd: keepalived's first advert {gap:.3} s after rvsd's last (expected {:.3} s)",
        master_down(100)
    ));
    for l in &lines {
        println!("VRRP v3 unicast: {l}");
    }
}

/// (g) A tracked instance's fault: rvsd (150) MASTER, VI_1 tracking a script; the script
/// fails: rvsd goes FAULT (the group with it), says goodbye with priority 0 and keepalived
/// (100) takes over after its skew; the script passes again: rvsd back to BACKUP, then
/// MASTER when its down timer runs out (keepalived's lower adverts do not hold it). Then
/// rvsd's cables pulled (rvsd cannot see it here, see `fault_by_tracked_link`): keepalived
/// takes over after its Master_Down_Interval; plugged back, keepalived yields at rvsd's
/// first advert.
#[test]
fn fault_by_track_script_and_pulled_cable() {
    let mut v = VrrpLab::up("vrg");
    let flag = v.tmp.path("fail");
    let rvsd_vr = Vr::new(3, 150);
    let ka_vr = Vr::new(3, 100);
    let mut lines = Vec::new();
    v.start_keepalived(&ka_vr.keepalived_in_ka());
    let t0 = now();
    let script = format!(
        "    vrrp_scripts: [(name: \"chk\", script: \"/usr/bin/test ! -e {}\", interval: 1, fall: 1, rise: 1)],\n",
        flag.display()
    );
    v.start_rvsd(&rvsd_vr.rvsd("track_script: [\"chk\"],", &script));
    assert!(
        v.rvsd
            .as_mut()
            .unwrap()
            .wait_for_log("(VI_1) Entering MASTER STATE", Duration::from_secs(8)),
        "{}",
        v.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );

    let k = now();
    std::fs::write(&flag, "").unwrap();
    let ka_first = wait_advert(&v.lab, "ka0", 51, k, Duration::from_secs(8)).unwrap_or_else(|| {
        panic!(
            "keepalived did not take over at rvsd's fault:\n{}",
            v.logs()
        )
    });
    let s = sniffed(&v.lab);
    let bye: Vec<&Advert> = s
        .of("lb0", 51, k, f64::INFINITY)
        .into_iter()
        .filter(|a| a.prio == 0)
        .collect();
    assert!(
        !bye.is_empty(),
        "no priority-0 advert at the fault: {}",
        describe(&s.of("lb0", 51, k, f64::INFINITY), k)
    );
    let gap = ka_first.t - bye[0].t;
    assert_near("fault: takeover after priority 0", gap, skew(100), &v);
    assert_eq!(v.rvsd_state("VI_1"), "FAULT");
    assert_eq!(v.rvsd_state("VI_2"), "FAULT");
    let fault_at = v
        .rvsd_log()
        .lines()
        .filter(|l| l.contains("(VI_1) Entering FAULT STATE"))
        .filter_map(log_time)
        .find(|t| *t > k)
        .unwrap_or(f64::NAN);
    lines.push(format!(
        "track_script fails: rvsd FAULT {:.3} s after (script every 1 s), {} priority-0 advert(s) \
         on VI_1; keepalived's first advert {gap:.3} s after the first (expected {:.3} s)",
        fault_at - k,
        bye.len(),
        skew(100)
    ));

    let k = now();
    std::fs::remove_file(&flag).unwrap();
    let (_, rvsd_first) = takeover(&v, "ka0", "lb0", 51, k, "back from FAULT");
    let backup_at = v
        .rvsd_log()
        .lines()
        .filter(|l| l.contains("(VI_1) Entering BACKUP STATE"))
        .filter_map(log_time)
        .next_back()
        .unwrap_or(f64::NAN);
    assert_near(
        "back from FAULT: BACKUP to MASTER",
        rvsd_first - backup_at,
        master_down(150),
        &v,
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    lines.push(format!(
        "track_script passes: rvsd BACKUP {:.3} s after, MASTER {:.3} s later (expected its \
         Master_Down_Interval, 3 + 106/256 = {:.3} s); keepalived BACKUP",
        backup_at - k,
        rvsd_first - backup_at,
        master_down(150)
    ));

    // Both of rvsd's cables (with one, keepalived's sync group waits: its other member
    // still hears rvsd).
    let k = now();
    lab_cmd(&["lb-link", &v.lab.name, "down", "both"]);
    let (gap, _) = takeover(&v, "lb0", "ka0", 51, k, "pulled cable");
    assert_near(
        "pulled cable: keepalived's takeover",
        gap,
        master_down(100),
        &v,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let seen = v.rvsd_state("VI_1");
    assert_eq!(
        seen,
        "FAULT",
        "rvsd sees its ports' carrier go: {}",
        v.logs()
    );
    let k = now();
    lab_cmd(&["lb-link", &v.lab.name, "up", "both"]);
    // rvsd leaves FAULT for BACKUP, hears keepalived's lower priority, lets its down timer
    // run out and takes over (preemption); keepalived yields at rvsd's first advert.
    let rvsd_back = wait_advert(&v.lab, "lb0", 51, k, Duration::from_secs(4))
        .unwrap_or_else(|| panic!("no advert of rvsd after the cable came back:\n{}", v.logs()));
    std::thread::sleep(Duration::from_millis(2500));
    let s = sniffed(&v.lab);
    let ka_after: Vec<&Advert> = s.of("ka0", 51, k, f64::INFINITY);
    let late = s.of("ka0", 51, rvsd_back.t + 0.1, f64::INFINITY);
    assert!(
        late.is_empty(),
        "keepalived still MASTER after rvsd's advert: {}\n{}",
        describe(&late, k),
        v.logs()
    );
    assert_eq!(
        v.keepalived_state("VI_1").as_deref(),
        Some("BACKUP"),
        "{}",
        v.logs()
    );
    let garps = s.garps("lb0", VIP, k, f64::INFINITY).len();
    check_no_refusals(&v, "pulled cable");
    lines.push(format!(
        "rvsd's cables pulled: keepalived MASTER {gap:.3} s after rvsd's last advert \
         (expected {:.3} s); rvsd saw {seen} (its ports' carrier gone); cables \
         back: rvsd's first advert {:.3} s after, keepalived BACKUP at it ({} advert(s) of \
         keepalived after the cables came back: {}); {garps} GARPs of rvsd for the VIP since",
        master_down(100),
        rvsd_back.t - k,
        ka_after.len(),
        describe(&ka_after, k),
    ));
    let _ = t0;
    for l in &lines {
        println!("VRRP v3 faults: {l}");
    }
}

/// (g) rvsd's tracked link pulled (the servers' port, tracked by VI_1) puts rvsd in FAULT and
/// keepalived takes over. (DPDK 22.11's net_af_packet says its link is up whatever the
/// interface's carrier; rvsd reads the carrier of the interface such a port sits on.)
#[test]
fn fault_by_tracked_link() {
    let mut v = VrrpLab::up("vrl");
    v.start_keepalived(&Vr::new(3, 100).keepalived_in_ka());
    v.start_rvsd(&Vr::new(3, 150).rvsd("track_interface: [\"servers\"],", ""));
    assert!(
        v.rvsd
            .as_mut()
            .unwrap()
            .wait_for_log("(VI_1) Entering MASTER STATE", Duration::from_secs(8)),
        "{}",
        v.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let k = now();
    lab_cmd(&["lb-link", &v.lab.name, "down", "servers"]);
    let (gap, _) = takeover(&v, "lb0", "ka0", 51, k, "tracked link");
    assert_eq!(v.rvsd_state("VI_1"), "FAULT", "{}", v.logs());
    println!("VRRP v3 tracked link pulled: keepalived's first advert {gap:.3} s after rvsd's last live one");
    lab_cmd(&["lb-link", &v.lab.name, "up", "servers"]);
}

/// (d) with the master's instances out of phase: keepalived without a sync group, VI_1 at
/// priority 200 (MASTER after 3 + 56/256 s) and VI_2 at 120 (after 3 + 136/256 s), so that
/// its VI_2 adverts come 0.31 s after its VI_1 adverts; rvsd (100) BACKUP with both in its
/// sync group. keepalived crashes: keepalived's rule (vrrp_sync.c) has the first
/// member to time out wait, wanting MASTER, and the group goes MASTER when the last one
/// times out: the later instance's last advert + 3.609 s.
#[test]
fn sync_group_takeover_with_the_masters_adverts_out_of_phase() {
    let mut v = VrrpLab::up("vrp");
    let ka = Vr::new(3, 200)
        .keepalived_in_ka()
        .replace(
            "vrrp_sync_group G1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n",
            "",
        )
        .replace(
            "virtual_router_id 52\n    priority 200",
            "virtual_router_id 52\n    priority 120",
        );
    assert!(
        ka.contains("priority 120") && !ka.contains("vrrp_sync_group"),
        "{ka}"
    );
    v.start_keepalived(&ka);
    let t0 = now();
    wait_advert(&v.lab, "ka1", 52, t0, Duration::from_secs(8))
        .unwrap_or_else(|| panic!("keepalived's VI_2 not MASTER:\n{}", v.logs()));
    v.start_rvsd(&Vr::new(3, 100).rvsd("", ""));
    std::thread::sleep(Duration::from_millis(2500));
    let s = sniffed(&v.lab);
    let a1 = s
        .last_live("ka0", 51, f64::INFINITY)
        .expect("VI_1 adverts")
        .t;
    let a2 = s
        .last_live("ka1", 52, f64::INFINITY)
        .expect("VI_2 adverts")
        .t;
    let phase = (a2 - a1).rem_euclid(1.0);
    assert!(
        (0.05..0.95).contains(&phase),
        "keepalived's instances advertise in phase ({phase:.3} s): nothing to test"
    );
    assert_eq!(v.rvsd_state("VI_1"), "BACKUP");
    assert_eq!(v.rvsd_state("VI_2"), "BACKUP");

    let k = now();
    v.keepalived("kill");
    let got = wait_advert(&v.lab, "lb0", 51, k, Duration::from_secs(12));
    let s = sniffed(&v.lab);
    let last1 = s.last_live("ka0", 51, f64::INFINITY).unwrap().t;
    let last2 = s.last_live("ka1", 52, f64::INFINITY).unwrap().t;
    let want = last1.max(last2) + master_down(100);
    let Some(first) = got else {
        panic!(
            "rvsd did not take over within 12 s of keepalived's crash (keepalived's rule: at \
             the later instance's last advert + {:.3} s = {:+.3} s after the kill); VI_1's \
             last advert {:+.3} s, VI_2's {:+.3} s after the kill; rvsd's state: VI_1 {}, \
             VI_2 {}; its adverts since: {}\n{}",
            master_down(100),
            want - k,
            last1 - k,
            last2 - k,
            v.rvsd_state("VI_1"),
            v.rvsd_state("VI_2"),
            describe(&s.of("lb0", 51, k, f64::INFINITY), k),
            v.logs()
        )
    };
    let late = first.t - want;
    assert!(
        (-EARLY..=LATE).contains(&late),
        "rvsd took over {late:+.3} s from keepalived's time\n{}",
        v.logs()
    );
    println!(
        "VRRP v3 sync group, the master's instances {phase:.3} s out of phase: rvsd MASTER \
         {:.3} s after the later instance's last advert (expected {:.3} s)",
        first.t - last1.max(last2),
        master_down(100)
    );
}

/// `state MASTER` below priority 255, alone on the link: keepalived 2.2.7 still waits its
/// full Master_Down_Interval before its first advert (vrrp_scheduler.c, vrrp_init_state: the
/// short wait of one advert_int + the smallest skew is only for a member that wants MASTER in
/// a sync group that is BACKUP); measured here on keepalived itself first, then on rvsd with
/// the same words.
#[test]
fn state_master_at_start_waits_as_keepalived() {
    let mut v = VrrpLab::up("vrs");
    let vr = Vr::new(3, 150).master();
    let t0 = now();
    v.start_keepalived(&vr.keepalived_in_ka());
    let ka = wait_advert(&v.lab, "ka0", 51, t0, Duration::from_secs(8))
        .unwrap_or_else(|| panic!("keepalived alone never advertised:\n{}", v.logs()));
    // From before `lab.sh keepalived start`: keepalived's own start is a little later.
    let ka_time = ka.t - t0;
    v.keepalived("stop");
    std::thread::sleep(Duration::from_millis(500));
    let started = v.start_rvsd(&vr.rvsd("", ""));
    let first = wait_advert(&v.lab, "lb0", 51, started - 0.5, Duration::from_secs(8))
        .unwrap_or_else(|| panic!("rvsd alone never advertised:\n{}", v.logs()));
    let rvsd_time = first.t - started;
    println!(
        "VRRP v3 state MASTER, priority 150, alone: keepalived 2.2.7's first advert {ka_time:.3} s \
         after it was started, rvsd's {rvsd_time:.3} s after its VRRP start (keepalived: its \
         Master_Down_Interval, 3 + 106/256 = {:.3} s)",
        master_down(150)
    );
    assert_near(
        "keepalived, state MASTER at start",
        ka_time,
        master_down(150),
        &v,
    );
    assert_near(
        "rvsd, state MASTER at start",
        rvsd_time,
        master_down(150),
        &v,
    );
}
