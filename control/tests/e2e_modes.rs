//! The four LVS modes end to end in the namespace lab: rvsd on DPDK `net_af_packet` in front
//! of three real HTTP servers and three UDP echo servers in their own namespaces; a real
//! client in its own namespace. Every request must succeed, the scheduler's split must show
//! in the per-server counts, a long-lived connection keeps its server, UDP answers come from
//! the VIP, and in TUN the outer header is checked where the real server unwraps it and a
//! full-size upload works through path-MTU discovery. Needs root.
//!
//! The modes run one after another (a lock), each in its own lab: one busy-polling rvsd at a
//! time on this small machine.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{by_server, client, in_ns, start, start_workers, Setup, VIP};
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// rvsd stops cleanly and reports its counters; nothing of it is left behind.
fn stop(mut setup: Setup) -> Value {
    setup.stop_rvsd();
    let stats = setup.stats();
    assert!(!std::path::Path::new(&format!("/var/run/dpdk/{}", setup.prefix)).exists());
    let client = &stats["ports"][0];
    for reason in [
        "malformed",
        "ip_checksum",
        "no_neighbor",
        "table_full",
        "no_local_port",
        "tx_full",
        "no_real_server",
    ] {
        assert_eq!(client["drops"][reason], 0, "{reason}: {client}");
        assert_eq!(
            stats["ports"][1]["drops"][reason], 0,
            "{reason}: {}",
            stats["ports"][1]
        );
    }
    stats
}

/// The most two servers' counts may differ under rr: one with one worker (IPVS's rr), one per
/// worker with several (each worker runs its own rr over the connections it owns, and no
/// worker knows the others' turn: sharing that would be a lock on the path of every new
/// connection).
fn rr_spread(setup: &Setup) -> u64 {
    setup.workers as u64
}

/// 1000 requests, each on a new connection, rr over three servers: equal within one (per
/// worker).
fn thousand_requests_round_robin(setup: &Setup) {
    let summary = client(
        setup,
        &[
            "http",
            "--url",
            &format!("http://{VIP}/"),
            "--count",
            "1000",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(summary["ok"], 1000, "{summary}");
    let counts = by_server(&summary);
    eprintln!(
        "{}, {} workers: 1000 HTTP requests, rr split {counts:?}",
        setup.mode, setup.workers
    );
    assert_eq!(counts.iter().sum::<u64>(), 1000);
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= rr_spread(setup), "rr split {counts:?}");
}

fn long_lived_connection_keeps_its_server(setup: &Setup) {
    let summary = client(
        setup,
        &["long", "--url", &format!("http://{VIP}/"), "--seconds", "3"],
    );
    assert_eq!(
        summary["servers"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(summary["lines"], 3, "{summary}");
}

fn udp_answers_come_from_the_vip(setup: &Setup) {
    let summary = client(
        setup,
        &["udp", "--addr", VIP, "--port", "9000", "--count", "30"],
    );
    assert_eq!(
        (summary["ok"].as_u64(), summary["from_vip"].as_u64()),
        (Some(30), Some(30)),
        "{summary}"
    );
    let counts = by_server(&summary);
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    let allowed = if setup.workers == 1 {
        0
    } else {
        rr_spread(setup)
    };
    assert!(max - min <= allowed, "{summary}");
}

fn nat_with(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start_workers("n", "nat", workers, |s| s);
    thousand_requests_round_robin(&setup);
    long_lived_connection_keeps_its_server(&setup);
    udp_answers_come_from_the_vip(&setup);
    let stats = stop(setup);
    assert!(
        stats["ports"][0]["connections_created"].as_u64().unwrap() >= 1031,
        "{stats}"
    );
    several_workers_handed_over(&stats, workers);
}

/// With several workers, the lab's kernel fanout put some replies on a worker that does not
/// own their connection: they were handed over, none lost for want of ring room. In every
/// case the established packets of the requests (their data after the handshake, and in NAT
/// and FULLNAT the servers' answers) went by the fast path on real DPDK ports.
fn several_workers_handed_over(stats: &Value, workers: usize) {
    let fast: u64 = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["fast_path"].as_u64().unwrap())
        .sum();
    eprintln!("{workers} workers: {fast} packets by the fast path");
    assert!(fast >= 1000, "fast path: {fast} packets\n{stats}");
    if workers < 2 {
        return;
    }
    let (out, into): (u64, u64) = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["handed_out"].as_u64().unwrap(),
                w["handed_in"].as_u64().unwrap(),
            )
        })
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    eprintln!("{workers} workers: {out} packets handed over");
    assert_eq!(out, into, "{stats}");
    for port in stats["ports"].as_array().unwrap() {
        assert_eq!(port["drops"]["handoff_full"], 0, "{port}");
    }
}

#[test]
fn nat() {
    nat_with(1);
}

#[test]
fn nat_2_workers() {
    nat_with(2);
}

#[test]
fn nat_4_workers() {
    nat_with(4);
}

fn wrr_1_2_3(config: String) -> String {
    config
        .replacen("lb_algo: \"rr\"", "lb_algo: \"wrr\"", 1)
        .replacen(
            "(address: \"203.0.113.11\")",
            "(address: \"203.0.113.11\", weight: 1)",
            1,
        )
        .replacen(
            "(address: \"203.0.113.12\")",
            "(address: \"203.0.113.12\", weight: 2)",
            1,
        )
        .replacen(
            "(address: \"203.0.113.13\")",
            "(address: \"203.0.113.13\", weight: 3)",
            1,
        )
}

/// A reload (SIGHUP) that changes the scheduler and the weights while a connection streams:
/// the connection keeps its server to the end, new connections follow the new weights. The
/// control thread runs on another core than the worker (the reload is checked against the
/// cores rvsd read at start, not the control thread's own).
#[test]
fn nat_connection_survives_a_reload() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let first_core = core_affinity::get_core_ids()
        .and_then(|c| c.first().map(|c| c.id))
        .unwrap_or(0);
    let mut setup = start("n", "nat", |s| {
        s.replace(
            "workers: [",
            &format!("control_core: {first_core}, workers: ["),
        )
    });
    let config = setup.tmp.path("lab.ron");
    let long = std::thread::scope(|scope| {
        let streaming = scope.spawn(|| {
            client(
                &setup,
                &["long", "--url", &format!("http://{VIP}/"), "--seconds", "5"],
            )
        });
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(
            &config,
            wrr_1_2_3(std::fs::read_to_string(&config).unwrap()),
        )
        .unwrap();
        setup.rvsd.signal(1);
        streaming.join().expect("streaming client")
    });
    assert!(
        setup.rvsd.wait_for_log("reloaded ", Duration::from_secs(5)),
        "{}",
        setup.rvsd.log_text()
    );
    assert_eq!(long["lines"], 5, "{long}");
    assert_eq!(
        long["servers"].as_array().map(Vec::len),
        Some(1),
        "kept its server: {long}"
    );
    let summary = client(
        &setup,
        &[
            "http",
            "--url",
            &format!("http://{VIP}/"),
            "--count",
            "600",
            "--timeout",
            "5",
        ],
    );
    let counts = by_server(&summary);
    eprintln!("nat after reload to wrr 1:2:3: 600 HTTP requests, split {counts:?}; streaming connection {long}");
    for (got, share) in counts.iter().zip([1.0, 2.0, 3.0]) {
        assert!(
            (*got as f64 - 100.0 * share).abs() <= 12.0,
            "wrr after reload {counts:?}"
        );
    }
    stop(setup);
}

fn nat_weighted_round_robin_1_2_3_with(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start_workers("n", "nat", workers, wrr_1_2_3);
    let summary = client(
        &setup,
        &[
            "http",
            "--url",
            &format!("http://{VIP}/"),
            "--count",
            "1200",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(summary["ok"], 1200, "{summary}");
    let counts = by_server(&summary);
    eprintln!("nat, {workers} workers: 1200 HTTP requests, wrr 1:2:3 split {counts:?}");
    for (got, share) in counts.iter().zip([1.0, 2.0, 3.0]) {
        let want = 1200.0 * share / 6.0;
        assert!(
            (*got as f64 - want).abs() <= 0.02 * 1200.0,
            "wrr 1:2:3 split {counts:?}"
        );
    }
    let stats = stop(setup);
    several_workers_handed_over(&stats, workers);
}

#[test]
fn nat_weighted_round_robin_1_2_3() {
    nat_weighted_round_robin_1_2_3_with(1);
}

#[test]
fn nat_weighted_round_robin_1_2_3_with_4_workers() {
    nat_weighted_round_robin_1_2_3_with(4);
}

/// Persistence in the lab (`ipvsadm -p 5` on both services, rr): 100 TCP connections and
/// 100 UDP flows from one client each land on one server while the template lives; once the
/// UDP flows are gone (1 s idle) and the template has expired (5 s after the last flow
/// began), rr decides again and the client moves to the next server.
#[test]
fn nat_persistence_pins_a_client_until_its_template_expires() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start("n", "nat", |s| {
        s.replace(
            "lb_algo: \"rr\",",
            "lb_algo: \"rr\", persistence_timeout: 5,",
        )
        .replace("udp_timeout: 300", "udp_timeout: 1")
    });
    let one_server = |summary: &Value, n: u64| -> usize {
        let counts = by_server(summary);
        let used: Vec<usize> = (0..3).filter(|i| counts[*i] > 0).collect();
        assert_eq!(used.len(), 1, "one server: {counts:?} {summary}");
        assert_eq!(counts[used[0]], n, "{summary}");
        used[0]
    };
    let url = format!("http://{VIP}/");
    let tcp = client(&setup, &["http", "--url", &url, "--count", "100"]);
    let tcp_server = one_server(&tcp, 100);
    let udp = |n: &str| {
        client(
            &setup,
            &["udp", "--addr", VIP, "--port", "9000", "--count", n],
        )
    };
    let first = one_server(&udp("100"), 100);
    // The TCP template still lives (its connections linger in TIME_WAIT): same server.
    let again = client(&setup, &["http", "--url", &url, "--count", "10"]);
    assert_eq!(one_server(&again, 10), tcp_server);
    std::thread::sleep(Duration::from_secs(8));
    let second = one_server(&udp("30"), 30);
    eprintln!(
        "nat persistence: 110 TCP connections on rs{}; 100 UDP flows on rs{}, after expiry 30 on rs{}",
        tcp_server + 1,
        first + 1,
        second + 1
    );
    assert_ne!(first, second, "after expiry rr moved the client on");
    let stats = stop(setup);
    assert_eq!(stats["ports"][0]["drops"]["templates_full"], 0);
}

fn fullnat_with(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start_workers("f", "fullnat", workers, |s| s);
    thousand_requests_round_robin(&setup);
    long_lived_connection_keeps_its_server(&setup);
    udp_answers_come_from_the_vip(&setup);
    // The real servers' own sockets: their peers are rvsd's local addresses, never the client
    // (the servers close first, so the closed connections linger in TIME_WAIT with the peer).
    let mut peers = String::new();
    for rs in ["rs1", "rs2", "rs3"] {
        let ss = in_ns(&setup.lab.ns(rs), "ss", &["-Htan", "sport", "= :80"]);
        peers.push_str(&String::from_utf8_lossy(&ss.stdout));
    }
    assert!(
        peers.contains("203.0.113.201:") && peers.contains("203.0.113.202:"),
        "peers:\n{peers}"
    );
    assert!(
        !peers.contains("198.51.100.10"),
        "a real server saw the client:\n{peers}"
    );
    let stats = stop(setup);
    several_workers_handed_over(&stats, workers);
}

#[test]
fn fullnat() {
    fullnat_with(1);
}

#[test]
fn fullnat_2_workers() {
    fullnat_with(2);
}

#[test]
fn fullnat_4_workers() {
    fullnat_with(4);
}

fn dr_with(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start_workers("d", "dr", workers, |s| s);
    thousand_requests_round_robin(&setup);
    long_lived_connection_keeps_its_server(&setup);
    udp_answers_come_from_the_vip(&setup);
    let stats = stop(setup);
    // Replies went around rvsd: it sent (almost) nothing towards the client, only ARP.
    let client = &stats["ports"][0];
    assert!(
        client["tx_packets"].as_u64().unwrap() < 20,
        "DR replies must not pass rvsd: {client}"
    );
    several_workers_handed_over(&stats, workers);
}

#[test]
fn dr() {
    dr_with(1);
}

#[test]
fn dr_2_workers() {
    dr_with(2);
}

#[test]
fn dr_4_workers() {
    dr_with(4);
}

fn tun_with(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = start_workers("t", "tun", workers, |s| s);
    thousand_requests_round_robin(&setup);
    long_lived_connection_keeps_its_server(&setup);
    udp_answers_come_from_the_vip(&setup);
    // curl gets the page.
    let curl = in_ns(
        &setup.lab.ns("client"),
        "curl",
        &["-sS", "--max-time", "5", &format!("http://{VIP}/")],
    );
    assert!(
        curl.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(
        String::from_utf8_lossy(&curl.stdout).starts_with("rs"),
        "curl got {:?}",
        curl.stdout
    );
    // A full-size upload: 1500-byte segments do not fit the tunnel, rvsd answers
    // fragmentation-needed and the client's path-MTU discovery lowers its segment size.
    let upload = client(
        &setup,
        &[
            "upload",
            "--url",
            &format!("http://{VIP}/upload"),
            "--bytes",
            "300000",
        ],
    );
    assert_eq!(upload["ok"], true, "{upload}");
    assert_eq!(upload["sha256"], upload["sent_sha256"]);
    // The outer header, as each real server's decapsulator saw it.
    for (i, rs) in ["rs1", "rs2", "rs3"].iter().enumerate() {
        let path = setup.lab.state_dir().join(format!("tun-{rs}.json"));
        let seen: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let text = seen.to_string();
        assert!(
            seen["decapsulated"].as_u64().unwrap_or(0) > 0,
            "{rs}: {text}"
        );
        assert_eq!(seen["bad"], 0, "{rs}: {text}");
        let outer = &seen["first"][0];
        assert_eq!(outer["src"], "203.0.113.1", "{rs}: {text}");
        assert_eq!(
            outer["dst"],
            format!("203.0.113.{}", 11 + i),
            "{rs}: {text}"
        );
        assert_eq!(outer["protocol"], 4, "{rs}: {text}");
        assert_eq!(outer["ttl"], 64, "{rs}: {text}");
    }
    let stats = stop(setup);
    assert!(
        stats["ports"][0]["icmp_errors_sent"].as_u64().unwrap() >= 1,
        "frag-needed sent: {stats}"
    );
    several_workers_handed_over(&stats, workers);
}

#[test]
fn tun() {
    tun_with(1);
}

#[test]
fn tun_2_workers() {
    tun_with(2);
}

#[test]
fn tun_4_workers() {
    tun_with(4);
}
