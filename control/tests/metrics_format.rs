//! The metrics text of a realistic state and report, checked by Prometheus's own linter
//! (`promtool check metrics`, Debian package `prometheus`) and read back by a real client
//! library (Python's `prometheus_client.parser`, Debian package
//! `python3-prometheus-client`). Each tool absent is a note on stderr and that check skipped
//! (`scripts/setup.sh` installs both).

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use control::api::metrics::{render, Reloads};
use control::api::{
    Forward, Protocol, Rates, RealServerState, ServiceState, State, Stats, Timeouts,
};
use control::health::{ServerHealth, ServiceHealth};
use control::stats::{gather, PortView, Report};
use dataplane::counters::{DropReason, WorkerCounters};
use dpdk::{LinkStatus, PortStats};

fn stats(n: u64) -> Stats {
    Stats {
        conns: n,
        inpkts: 12 * n,
        outpkts: 10 * n,
        inbytes: 900 * n,
        outbytes: 14_000 * n,
    }
}

fn rates(n: u64) -> Rates {
    Rates {
        cps: n,
        inpps: 12 * n,
        outpps: 10 * n,
        inbps: 900 * n,
        outbps: 14_000 * n,
    }
}

fn rs(last: u8, port: u16, n: u64) -> RealServerState {
    RealServerState {
        address: Ipv4Addr::new(10, 0, 1, last),
        port,
        forward: Forward::Masq,
        weight: u32::from(last),
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: 3 * n as u32,
        inactive_conns: n as u32,
        persistent_conns: 0,
        stats: stats(n),
        rates: rates(n / 10),
    }
}

fn service(protocol: Protocol, port: u16, servers: Vec<RealServerState>) -> ServiceState {
    let mut total = Stats::default();
    let mut rate = Rates::default();
    for r in &servers {
        total.conns += r.stats.conns;
        total.inpkts += r.stats.inpkts;
        total.outpkts += r.stats.outpkts;
        total.inbytes += r.stats.inbytes;
        total.outbytes += r.stats.outbytes;
        rate.cps += r.rates.cps;
        rate.inpps += r.rates.inpps;
        rate.outpps += r.rates.outpps;
        rate.inbps += r.rates.inbps;
        rate.outbps += r.rates.outbps;
    }
    ServiceState {
        protocol,
        address: Ipv4Addr::new(203, 0, 113, 100),
        port,
        scheduler: "wlc".to_owned(),
        flags: Vec::new(),
        persistent: None,
        netmask: Ipv4Addr::BROADCAST,
        stats: total,
        rates: rate,
        real_servers: servers,
    }
}

/// Three services (7 real servers), as `rvsadm` gets them.
fn state() -> State {
    State {
        version: "0.1.0".to_owned(),
        conn_tab_size: 2 << 20,
        services: vec![
            service(
                Protocol::TCP,
                80,
                vec![rs(11, 80, 1000), rs(12, 80, 1200), rs(13, 80, 0)],
            ),
            service(Protocol::TCP, 443, vec![rs(11, 443, 500), rs(12, 443, 510)]),
            service(Protocol::UDP, 53, vec![rs(21, 53, 90), rs(22, 53, 80)]),
        ],
        timeouts: Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        },
        connections: None,
        taken_unix_ms: 1_700_000_000_000,
    }
}

fn health(state: &State) -> Vec<ServiceHealth> {
    state
        .services
        .iter()
        .map(|s| ServiceHealth {
            service: format!("{:?} {}:{}", s.protocol, s.address, s.port),
            quorum: 1,
            live_weight: s.real_servers.iter().map(|r| r.weight).sum(),
            quorum_met: true,
            sorry_server: None,
            real_servers: s
                .real_servers
                .iter()
                .map(|r| ServerHealth {
                    address: format!("{}:{}", r.address, r.port),
                    up: r.weight > 0 && r.active_conns > 0,
                    weight: r.weight,
                    checks: 1,
                    reason: "TCP_CHECK: connected".to_owned(),
                    since_unix: 1_699_990_000,
                })
                .collect(),
        })
        .collect()
}

/// Two workers and two ports (one with its kernel interface), gathered as the daemon does,
/// with VRRP, sync and health filled in.
fn report(state: &State, wan: &str) -> Report {
    let workers = [WorkerCounters::new(2), WorkerCounters::new(2)];
    for (w, counters) in workers.iter().enumerate() {
        let w = w as u64 + 1;
        for (p, port) in counters.ports.iter().enumerate() {
            let p = p as u64 + 1;
            port.rx_packets.add(1000 * w * p);
            port.rx_bytes.add(640_000 * w * p);
            port.tx_packets.add(990 * w * p);
            port.tx_bytes.add(630_000 * w * p);
            port.forwarded.add(980 * w * p);
            port.connections_created.add(10 * w * p);
            port.arp_replies.add(p);
            for (i, r) in DropReason::ALL.iter().enumerate() {
                port.drops[*r as usize].add(w * p + i as u64);
            }
        }
        counters.connections.set(500 * w);
        counters.connections_expired.add(4000 * w);
        counters.handed_out.add(7 * w);
        counters.handed_in.add(9 * w);
        counters.bytes_per_connection.set(112);
    }
    let link = LinkStatus {
        up: true,
        speed_mbps: 25_000,
        full_duplex: true,
    };
    let views = [
        PortView {
            name: wan,
            link,
            device: PortStats {
                rx_packets: 3000,
                rx_missed: 2,
                ..PortStats::default()
            },
            kernel: Some((
                format!("rvs-{wan}"),
                control::kernel::KernelTotals {
                    up: 40,
                    up_dropped: 1,
                    down: 38,
                    down_dropped: 0,
                },
            )),
        },
        PortView {
            name: "lan",
            link,
            device: PortStats::default(),
            kernel: None,
        },
    ];
    let mut report = gather(&views, &[1, 2], &workers);
    report.unix_ms = 1_700_000_000_000;
    report.services = health(state);
    report.health_checks = 1234;
    report.vrrp = vec![
        control::vrrp::InstanceReport {
            name: "VI_1".to_owned(),
            interface: "client".to_owned(),
            vrid: 51,
            addresses: vec!["198.51.100.100".to_owned(), "198.51.100.1".to_owned()],
            state: "MASTER",
            priority: 150,
            since_unix_ms: 1_699_999_000_250,
        },
        control::vrrp::InstanceReport {
            name: "VI_2".to_owned(),
            interface: "lan".to_owned(),
            vrid: 52,
            addresses: vec![],
            state: "BACKUP",
            priority: 100,
            since_unix_ms: 1_699_999_000_000,
        },
    ];
    report.vrrp_counters = Some(control::vrrp::Counters {
        adverts_received: 310,
        adverts_sent: 1500,
        gratuitous_arps_sent: 10,
        refused: vec![("ttl", 1), ("auth", 2)],
    });
    report.sync = Some(control::sync::Counters {
        messages_sent: 120,
        conns_sent: 4000,
        messages_received: 0,
        conns_received: 0,
        refused: vec![("sync_id", 3), ("unknown_service", 0)],
    });
    report
}

/// The samples `render` should write for [`state`] and [`report`], family by family.
const EXPECTED_SAMPLES: usize = {
    let backends = 7;
    let node_ipvs = 3 * backends + 5;
    // keepalived_up, then VI_1's two addresses and VI_2's one sample without.
    let keepalived = 1 + 2 + 1;
    let meta = 2;
    let cells = 2 * 2;
    let datapath = cells * 12 + cells * DropReason::COUNT;
    let ports = 2 + 2 + 6 * 2 + 2 * 2;
    let workers = 13 * 2;
    let sync = 4 + 2;
    let vrrp = 2 + 2 + 3 + 2;
    let health = 1 + 2 * backends + 3 * 3;
    let services = 10 * 3 + 10 * backends + backends;
    let reloads = 2 + 1 + 1;
    node_ipvs
        + keepalived
        + meta
        + datapath
        + ports
        + workers
        + sync
        + vrrp
        + health
        + services
        + reloads
};

fn reloads() -> Reloads {
    Reloads {
        ok: 3,
        refused: 1,
        last_unix_ms: 1_700_000_000_500,
        last_ok: true,
    }
}

/// Runs `cmd` with `input` on its stdin: its status, stdout and stderr; `None` if the
/// program is not there.
fn run(cmd: &mut Command, input: &str) -> Option<(std::process::ExitStatus, String, String)> {
    let mut child = match cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{cmd:?}: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    Some((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A Python with `prometheus_client` (Debian's, not a pyenv one without it).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import prometheus_client.parser"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Parses stdin with `text_string_to_metric_families`; prints one JSON object: the families
/// (name, type) and every sample (name, labels, value).
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
samples = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append([f.name, f.type])
    for s in f.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps({"families": families, "samples": samples}))
"#;

fn value(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s[0] == name
                && s[1].as_object().unwrap().len() == labels.len()
                && labels.iter().all(|(k, v)| s[1][*k] == *v)
        })
        .map(|s| s[2].as_f64().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}");
    found[0]
}

#[test]
fn promtool_accepts_it_and_a_client_library_reads_it_back() {
    let state = state();
    let text = render(&state, &report(&state, "wan"), &reloads());
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(sample_lines, EXPECTED_SAMPLES);
    let type_lines = text.lines().filter(|l| l.starts_with("# TYPE ")).count();

    match run(Command::new("promtool").args(["check", "metrics"]), &text) {
        None => eprintln!("NOTE: promtool not found (Debian package prometheus): check skipped"),
        Some((status, out, err)) => {
            assert!(
                status.success() && out.trim().is_empty() && err.trim().is_empty(),
                "promtool check metrics: {status}\n{out}{err}"
            );
        }
    }

    let Some(python) = python() else {
        eprintln!(
            "NOTE: no python3 with prometheus_client (Debian package python3-prometheus-client): \
             parse check skipped"
        );
        return;
    };
    let (status, out, err) = run(Command::new(python).args(["-c", PARSE]), &text).unwrap();
    assert!(status.success(), "{python}: {status}\n{err}");
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let families = parsed["families"].as_array().unwrap();
    let samples = parsed["samples"].as_array().unwrap();
    // Every sample in its typed family: none read as untyped singletons.
    assert_eq!(families.len(), type_lines);
    assert!(families
        .iter()
        .all(|f| f[1] == "counter" || f[1] == "gauge"));
    assert_eq!(samples.len(), EXPECTED_SAMPLES);

    // Counter families lose `_total` in the client's model; their samples keep it.
    assert!(families
        .iter()
        .any(|f| f[0] == "node_ipvs_connections" && f[1] == "counter"));
    let conns = state.services.iter().map(|s| s.stats.conns).sum::<u64>();
    assert_eq!(conns, 3380);
    assert_eq!(value(samples, "node_ipvs_connections_total", &[]), 3380.0);
    assert_eq!(
        value(samples, "node_ipvs_outgoing_bytes_total", &[]),
        (14_000 * conns) as f64
    );
    assert_eq!(
        value(
            samples,
            "node_ipvs_backend_connections_active",
            &[
                ("local_address", "203.0.113.100"),
                ("local_mark", ""),
                ("local_port", "80"),
                ("proto", "TCP"),
                ("remote_address", "10.0.1.12"),
                ("remote_port", "80"),
            ]
        ),
        3600.0
    );
    assert_eq!(
        value(
            samples,
            "keepalived_vrrp_state",
            &[
                ("iname", "VI_2"),
                ("intf", "lan"),
                ("ip_address", ""),
                ("vrid", "52")
            ]
        ),
        1.0
    );
    // Worker 2 (core 2), port 2 (lan): reason i counted 2 * 2 + i; no_service is 11.
    assert_eq!(DropReason::NoService as usize, 11);
    assert_eq!(
        value(
            samples,
            "rvs_drops_total",
            &[("worker", "2"), ("port", "lan"), ("reason", "no_service")]
        ),
        15.0
    );
    assert_eq!(
        value(
            samples,
            "rvs_drops_total",
            &[("worker", "2"), ("port", "lan"), ("reason", "malformed")]
        ),
        4.0
    );
    assert_eq!(
        value(
            samples,
            "rvs_rx_bytes_total",
            &[("worker", "1"), ("port", "wan")]
        ),
        640_000.0
    );
    assert_eq!(
        value(
            samples,
            "rvs_service_rate_cps",
            &[
                ("local_address", "203.0.113.100"),
                ("local_port", "53"),
                ("proto", "UDP")
            ]
        ),
        17.0
    );
    assert_eq!(
        value(samples, "rvs_last_reload_timestamp_seconds", &[]),
        1_700_000_000.5
    );
    assert_eq!(
        value(samples, "rvs_reloads_total", &[("result", "refused")]),
        1.0
    );

    // Label values that need escaping come back as they were.
    let odd = "wan \"a\"\\b\nc";
    let text = render(&state, &report(&state, odd), &reloads());
    if let Some((status, out, err)) =
        run(Command::new("promtool").args(["check", "metrics"]), &text)
    {
        assert!(status.success(), "promtool: {out}{err}");
    }
    let (status, out, err) = run(Command::new(python).args(["-c", PARSE]), &text).unwrap();
    assert!(status.success(), "{python}: {status}\n{err}");
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let samples = parsed["samples"].as_array().unwrap();
    assert_eq!(samples.len(), EXPECTED_SAMPLES);
    assert_eq!(value(samples, "rvs_port_up", &[("port", odd)]), 1.0);
    assert_eq!(
        value(
            samples,
            "rvs_kernel_packets_total",
            &[
                ("port", odd),
                ("interface", &format!("rvs-{odd}")),
                ("direction", "up")
            ]
        ),
        40.0
    );
}
