//! The rvsd binary as an operator meets it: `--check-config`, a bad config refused with one
//! `FILE:LINE:COLUMN: reason` line, a port that cannot be opened, and a clean stop on
//! SIGINT/SIGTERM that leaves nothing behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Rvsd, TempDir};

/// A minimal valid config: one `net_ring` loopback port (no lab needed).
fn ring_config(prefix: &str) -> String {
    format!(
        r#"(
    eal: (memory_mb: 128, hugepages: {}, file_prefix: {prefix:?}),
    workers: [{}],
    ports: [
        (name: "loop", device: "net_ring0", addresses: ["198.51.100.1/24"], rx_descriptors: 256, tx_descriptors: 256),
    ],
)
"#,
        common::hugepages_free(),
        core_affinity::get_core_ids()
            .and_then(|c| c.last().map(|c| c.id))
            .unwrap_or(0),
    )
}

fn rvsd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::rvsd_binary())
        .args(args)
        .output()
        .expect("run rvsd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stderr lines that are rvsd's own verdict (EAL may log above it).
fn verdict_lines<'a>(stderr: &'a str, file: &Path) -> Vec<&'a str> {
    let prefix = format!("{}:", file.display());
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

fn assert_refused_at(source: &str, want: &str) {
    let tmp = TempDir::new(&format!("cli-{}", want.len()));
    let file = tmp.path("bad.ron");
    std::fs::write(&file, source).unwrap();
    for mode in ["--check-config", "--config"] {
        let (code, _, stderr) = rvsd(&[mode, file.to_str().unwrap()]);
        assert_eq!(code, 2, "{mode}: {stderr}");
        let lines = verdict_lines(&stderr, &file);
        assert_eq!(lines.len(), 1, "{mode}: one line, got:\n{stderr}");
        let rest = &lines[0][file.display().to_string().len() + 1..];
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().expect("LINE");
        let column: usize = parts.next().unwrap().parse().expect("COLUMN");
        assert!(line >= 1 && column >= 1);
        assert!(
            lines[0].contains(want),
            "{mode}: want {want:?} in {:?}",
            lines[0]
        );
    }
}

#[test]
fn check_config_accepts_the_examples_that_fit_this_machine() {
    let tmp = TempDir::new("cli-ok");
    let file = tmp.path("ok.ron");
    std::fs::write(&file, ring_config("rvs-cli-ok")).unwrap();
    let (code, stdout, stderr) = rvsd(&["--check-config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok (1 ports, 1 workers"), "{stdout}");
}

#[test]
fn unknown_field_is_refused_with_its_place() {
    let source = ring_config("x").replace("name: \"loop\",", "name: \"loop\", colour: \"red\",");
    assert_refused_at(&source, ":5:24: Unexpected field named `colour`");
}

#[test]
fn bad_address_is_refused_with_its_place() {
    let source = ring_config("x").replace("198.51.100.1/24", "198.51.100.256/24");
    assert_refused_at(
        &source,
        ":5:58: \"198.51.100.256/24\" is not an IPv4 address",
    );
}

#[test]
fn wrong_type_and_missing_core_are_refused() {
    assert_refused_at(
        &ring_config("x").replace("memory_mb: 128", "memory_mb: -1"),
        ":2:",
    );
    let source = ring_config("x").replacen("workers: [", "workers: [4096, ", 1);
    assert_refused_at(&source, ":3:15: core 4096 does not exist");
}

#[test]
fn missing_file_is_one_line() {
    let (code, _, stderr) = rvsd(&["--check-config", "/nonexistent/rvs.ron"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "/nonexistent/rvs.ron: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn port_that_cannot_be_opened_is_placed_and_cleaned_up() {
    let tmp = TempDir::new("cli-port");
    let prefix = format!("rvs-cli-port-{}", common::run_tag());
    let file = tmp.path("port.ron");
    let source =
        ring_config(&prefix).replace("\"net_ring0\"", "\"net_af_packet0,iface=rvsnosuch0\"");
    std::fs::write(&file, &source).unwrap();
    let (code, _, stderr) = rvsd(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    let lines = verdict_lines(&stderr, &file);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(
            ":5:32: port \"loop\": cannot open device \"net_af_packet0,iface=rvsnosuch0\""
        ),
        "{}",
        lines[0]
    );
    assert!(
        !Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
        "runtime dir removed on failure"
    );
}

#[test]
fn stops_cleanly_on_sigint_and_sigterm() {
    for (signal, name) in [(2, "sigint"), (15, "sigterm")] {
        let tmp = TempDir::new(&format!("cli-{name}"));
        let prefix = format!("rvs-cli-{name}-{}", common::run_tag());
        let file = tmp.path("ring.ron");
        std::fs::write(
            &file,
            ring_config(&prefix).replace(
                "ports:",
                &format!(
                    "stats_file: {:?}, ports:",
                    tmp.path("s.json").display().to_string()
                ),
            ),
        )
        .unwrap();
        let mut rvsd = Rvsd::start(None, &file, &tmp.path("rvsd.log"));
        assert!(
            rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
            "{}",
            rvsd.log_text()
        );
        assert!(
            Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
            "EAL runtime dir while running"
        );
        rvsd.signal(10); // SIGUSR1: counters to the log
        assert!(
            rvsd.wait_for_log("counters:", Duration::from_secs(10)),
            "{}",
            rvsd.log_text()
        );
        rvsd.signal(signal);
        let status = rvsd
            .wait(Duration::from_secs(20))
            .expect("rvsd exits after the signal");
        let log = rvsd.log_text();
        assert_eq!(status.code(), Some(0), "{name}: {log}");
        assert!(
            log.contains("stopped: ports closed, DPDK memory released"),
            "{log}"
        );
        assert!(
            !Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
            "runtime dir removed"
        );
        let stats: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path("s.json")).expect("stats written at exit"),
        )
        .unwrap();
        assert_eq!(stats["ports"][0]["name"], "loop");
    }
}

#[test]
fn sighup_reloads_services_and_refuses_what_needs_a_restart() {
    let tmp = TempDir::new("cli-reload");
    let prefix = format!("rvs-cli-reload-{}", common::run_tag());
    let file = tmp.path("reload.ron");
    let base = ring_config(&prefix);
    std::fs::write(&file, &base).unwrap();
    let mut rvsd = Rvsd::start(None, &file, &tmp.path("rvsd.log"));
    assert!(
        rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
        "{}",
        rvsd.log_text()
    );

    // A new service and new timeouts: published without a restart.
    let with_service = base.replace(
        "    ports: [",
        r#"    services: [
        (protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, lb_algo: "wrr",
         real_servers: [(address: "198.51.100.11", weight: 2), (address: "198.51.100.12")]),
    ],
    connections: (udp_timeout: 30),
    ports: ["#,
    );
    std::fs::write(&file, &with_service).unwrap();
    rvsd.signal(1);
    assert!(
        rvsd.wait_for_log("reloaded ", Duration::from_secs(10)),
        "{}",
        rvsd.log_text()
    );
    assert!(
        rvsd.log_text()
            .contains("service TCP 198.51.100.100:80 Nat wrr: 2 real servers"),
        "{}",
        rvsd.log_text()
    );

    // An invalid file: refused with its place, the running configuration stays.
    std::fs::write(
        &file,
        with_service.replace("198.51.100.12", "198.51.100.300"),
    )
    .unwrap();
    rvsd.signal(1);
    let placed = format!(
        "reload refused, the running configuration stays: {}:",
        file.display()
    );
    assert!(
        rvsd.wait_for_log(&placed, Duration::from_secs(10)),
        "{}",
        rvsd.log_text()
    );
    assert!(
        rvsd.log_text().contains("is not an IPv4 address"),
        "{}",
        rvsd.log_text()
    );

    // Ports need a restart.
    std::fs::write(
        &file,
        with_service.replace("rx_descriptors: 256", "rx_descriptors: 512"),
    )
    .unwrap();
    rvsd.signal(1);
    assert!(
        rvsd.wait_for_log("restart rvsd for the rest", Duration::from_secs(10)),
        "{}",
        rvsd.log_text()
    );

    let status = rvsd
        .stop(Duration::from_secs(20))
        .expect("still running, stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", rvsd.log_text());
}
