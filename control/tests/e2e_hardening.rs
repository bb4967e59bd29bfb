//! What an operator's bad day does to rvsd, end to end in the namespace lab: restarts in a row
//! in FULLNAT, a spoofed SYN flood against a small connection table, and established clients
//! of a restarted rvsd. Real clients, real Linux real servers, rvsd on DPDK `net_af_packet`.
//! Needs root.
//!
//! One lab at a time (a lock): one busy-polling rvsd on this small machine.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{by_server, client, client_any, in_ns, start, start_workers, Setup, VIP};
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Resident memory of the running rvsd, in KiB.
fn rss_kib(setup: &Setup) -> u64 {
    let pid = setup.rvsd.child.as_ref().expect("rvsd runs").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// FULLNAT right after a restart, and after three restarts in a row: 300 new connections at
/// once, every one answered without a stall, rr even to one. Linux real servers hold a closed
/// connection's (local address, port) in TIME_WAIT for 60 s; rvsd must not offer it again so
/// soon, also when it starts afresh.
#[test]
fn fullnat_restarts_reuse_no_local_port_too_soon() {
    fullnat_restarts(1);
}

/// The same with two workers: each walks its own share of the pairs.
#[test]
fn fullnat_restarts_with_2_workers() {
    fullnat_restarts(2);
}

fn fullnat_restarts(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut setup = start_workers("h", "fullnat", workers, |s| s);
    let url = format!("http://{VIP}/");
    for run in 0..5 {
        if run > 0 {
            setup.restart();
        }
        let t0 = Instant::now();
        let summary = client(
            &setup,
            &["http", "--url", &url, "--count", "300", "--timeout", "5"],
        );
        let took = t0.elapsed();
        let counts = by_server(&summary);
        eprintln!(
            "fullnat, {workers} workers, start {}: 300 connections in {:.1} s, rr split {counts:?}",
            run + 1,
            took.as_secs_f64()
        );
        assert_eq!(summary["ok"], 300, "start {}: {summary}", run + 1);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        // rr is exact per worker: within one per worker overall.
        assert!(
            max - min <= workers as u64,
            "start {}: rr split {counts:?}",
            run + 1
        );
        // A reused pair costs the client a reset and a SYN retransmission 1 s later.
        assert!(
            took < Duration::from_secs(30),
            "start {}: 300 connections took {took:?} (stalls)",
            run + 1
        );
    }
}

/// A spoofed SYN flood (100,000 SYNs a second for 6 s from 100,000 spoofed flows, against
/// `connections.capacity: 4096`) from the client namespace while a real client opens 200
/// connections and a long-lived one streams: at least 99% of the new ones succeed during the
/// flood, the long-lived one is untouched, rvsd's
/// memory stays flat, and the table was full (evictions counted, no `table_full` drop).
#[test]
fn a_syn_flood_does_not_lock_new_clients_out() {
    syn_flood(1);
}

/// The same with two workers (4096 connections each): the flood's SYNs and the servers'
/// answers are handed between them, each table evicts its own half-open connections.
#[test]
fn a_syn_flood_does_not_lock_new_clients_out_with_2_workers() {
    syn_flood(2);
}

fn syn_flood(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut setup = start_workers("s", "nat", workers, |s| {
        s.replace("capacity: 1048576", "capacity: 4096")
    });
    let url = format!("http://{VIP}/");
    let lb_mac = setup.lab.mac("lb0");
    let started = setup.tmp.path("flood-started");
    let synflood = common::repo_root().join("scripts/lab/synflood.py");
    let (long, flood, legit, rss_before, rss_during) = std::thread::scope(|scope| {
        let long = scope.spawn(|| {
            client(
                &setup,
                &["long", "--url", &url, "--seconds", "15", "--timeout", "10"],
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        let rss_before = rss_kib(&setup);
        let flood = scope.spawn(|| {
            in_ns(
                &setup.lab.ns("client"),
                "python3",
                &[
                    synflood.to_str().unwrap(),
                    "--iface",
                    "cl0",
                    "--dst-mac",
                    &lb_mac,
                    "--vip",
                    VIP,
                    "--flows",
                    "100000",
                    "--count",
                    "600000",
                    "--rate",
                    "100000",
                    "--seconds",
                    "6",
                    "--started-file",
                    started.to_str().unwrap(),
                ],
            )
        });
        assert!(
            wait_for_file(&started, Duration::from_secs(30)),
            "the flood did not start"
        );
        let flood_start = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        let legit = client_any(
            &setup,
            &["http", "--url", &url, "--count", "200", "--timeout", "5"],
        );
        let legit_done = flood_start.elapsed();
        let rss_during = rss_kib(&setup);
        (
            long.join().expect("long-lived client"),
            flood.join().expect("flood"),
            (legit, legit_done),
            rss_before,
            rss_during,
        )
    });
    let flood_report: Value = serde_json::from_slice(&flood.stdout).unwrap_or_else(|e| {
        panic!(
            "synflood.py: {e}: {}{}",
            String::from_utf8_lossy(&flood.stdout),
            String::from_utf8_lossy(&flood.stderr)
        )
    });
    let ((legit, _), legit_done) = legit;
    let rss_after = rss_kib(&setup);
    setup.stop_rvsd();
    let stats = setup.stats();
    let evicted: u64 = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["connections_evicted"].as_u64().unwrap())
        .sum();
    let client_port = &stats["ports"][0];
    eprintln!(
        "SYN flood, {workers} workers: {flood_report}; legit {}/{} ok ({:?}); long-lived {}; rvsd \
         RSS {rss_before} -> {rss_during} -> {rss_after} KiB; evicted {evicted}, rx {} on the \
         client port, drops {}",
        legit["ok"],
        legit["requests"],
        legit["errors"],
        long["lines"],
        client_port["rx_packets"],
        client_port["drops"]
    );
    assert!(
        flood_report["sent"].as_u64().unwrap() >= 10 * 4096,
        "{flood_report}"
    );
    assert!(
        legit_done.as_secs_f64() < flood_report["seconds"].as_f64().unwrap(),
        "the new connections were made during the flood: done {legit_done:?} after it began; \
         {flood_report}"
    );
    assert!(
        legit["ok"].as_u64().unwrap() >= 198,
        "at least 99% of 200 during the flood: {legit}"
    );
    assert_eq!(long["lines"], 15, "{long}");
    assert_eq!(long["servers"].as_array().map(Vec::len), Some(1), "{long}");
    assert!(evicted > 0, "the tables were full: {}", stats["workers"]);
    assert_eq!(client_port["drops"]["table_full"], 0, "{client_port}");
    assert!(
        rss_after <= rss_before + 4096,
        "memory flat: {rss_before} -> {rss_after} KiB"
    );
}

/// An established client of a restarted rvsd hears of it at its next packet: a reset from the
/// VIP within a second, not a hang until its own timeout.
#[test]
fn a_restarted_rvsd_resets_its_old_clients_at_once() {
    restart_resets(1);
}

/// The same with two workers: only the worker that owns the client's flow may say it has no
/// connection, and it does.
#[test]
fn a_restarted_rvsd_resets_its_old_clients_at_once_with_2_workers() {
    restart_resets(2);
}

fn restart_resets(workers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut setup = start_workers("r", "nat", workers, |s| s);
    let url = format!("http://{VIP}/");
    let ready = setup.tmp.path("keepalive-ready");
    let go = setup.tmp.path("keepalive-go");
    let client_ns = setup.lab.ns("client");
    let script = common::repo_root().join("scripts/lab/client.py");
    let out = std::thread::scope(|scope| {
        let kept = scope.spawn(|| {
            in_ns(
                &client_ns,
                "python3",
                &[
                    script.to_str().unwrap(),
                    "keepalive",
                    "--url",
                    &url,
                    "--ready-file",
                    ready.to_str().unwrap(),
                    "--go-file",
                    go.to_str().unwrap(),
                    "--timeout",
                    "20",
                ],
            )
        });
        assert!(
            wait_for_file(&ready, Duration::from_secs(20)),
            "first request not answered"
        );
        setup.restart();
        std::fs::write(&go, "go").unwrap();
        kept.join().expect("keepalive client")
    });
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client.py keepalive: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("a client of the previous rvsd, at its next request: {summary}");
    assert_eq!(summary["second"], "reset", "{summary}");
    assert!(
        summary["seconds"].as_f64().unwrap() < 1.0,
        "reset within a second: {summary}"
    );
    setup.stop_rvsd();
    let stats = setup.stats();
    assert!(
        stats["ports"][0]["resets_sent"].as_u64().unwrap() >= 1,
        "{}",
        stats["ports"][0]
    );
}

/// A real server whose MAC changes (a new NIC, a moved VM) is followed as soon as it sends any
/// ARP: here it asks for its gateway (rvsd) before its first ping, and rvsd, which answers
/// that request, also learns the new MAC from it; the next connections reach it.
#[test]
fn a_real_server_that_changes_its_mac_is_followed_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut setup = start("m", "nat", |s| s);
    let url = format!("http://{VIP}/");
    let before = client(&setup, &["http", "--url", &url, "--count", "30"]);
    assert_eq!(by_server(&before), [10, 10, 10], "{before}");
    let rs1 = setup.lab.ns("rs1");
    let new_mac = "02:00:00:00:99:11";
    for args in [
        vec!["link", "set", "dev", "eth0", "address", new_mac],
        vec!["neigh", "flush", "dev", "eth0"],
    ] {
        let out = in_ns(&rs1, "ip", &args);
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }
    let t0 = Instant::now();
    let ping = in_ns(&rs1, "ping", &["-c", "1", "-W", "2", "203.0.113.1"]);
    assert!(ping.status.success(), "{ping:?}");
    let after = client(
        &setup,
        &["http", "--url", &url, "--count", "30", "--timeout", "2"],
    );
    let took = t0.elapsed();
    eprintln!(
        "rs1 moved to {new_mac}: 30 requests {:?} within {took:?}",
        by_server(&after)
    );
    assert_eq!(by_server(&after), [10, 10, 10], "{after}");
    assert!(
        setup
            .rvsd
            .log_text()
            .contains(&format!("neighbor 203.0.113.11 is at {new_mac}")),
        "{}",
        setup.rvsd.log_text()
    );
    setup.stop_rvsd();
}
