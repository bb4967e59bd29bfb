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
        (name: "loop", device: "net_ring0", addresses: ["198.51.100.1/24"], rx_descriptors: 256, tx_descriptors: 256, kernel: false),
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
        rvsd.log_text().contains(
            "service TCP 198.51.100.100:80 NAT wrr: 2 real servers (198.51.100.11:80 weight 2, \
             198.51.100.12:80 weight 1) (added)"
        ),
        "{}",
        rvsd.log_text()
    );
    assert!(
        rvsd.log_text().contains(
            "reloaded {}: 1 services (1 NAT), 2 real servers: 1 added, 0 removed, 0 changed, \
             0 unchanged"
                .replace("{}", &file.display().to_string())
                .as_str()
        ),
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

    // Ports need a restart: the refusal names the field and where it stands.
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
    let want = format!(
        "reload refused, the running configuration stays: {}:10:",
        file.display()
    );
    let log = rvsd.log_text();
    assert!(
        log.contains(&want) && log.contains("ports[0].rx_descriptors changed (256 -> 512)"),
        "{log}"
    );

    let status = rvsd
        .stop(Duration::from_secs(20))
        .expect("still running, stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", rvsd.log_text());
}

/// The cores are read once, at start: with the control thread pinned outside the workers'
/// cores, a reload is checked against the cores the process may use, not the control thread's
/// own affinity (which once refused every SIGHUP with "core 1 does not exist").
#[test]
fn sighup_applies_a_weight_change_with_the_control_thread_on_another_core() {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let (worker, control) = (cores[cores.len() - 1], cores[0]);
    let tmp = TempDir::new("cli-cores");
    let prefix = format!("rvs-cli-cores-{}", common::run_tag());
    let file = tmp.path("cores.ron");
    let with_weight = |w: u32| {
        ring_config(&prefix).replace(
            "    ports: [",
            &format!(
                r#"    control_core: {control},
    services: [
        (protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, lb_algo: "wrr",
         real_servers: [(address: "198.51.100.11", weight: {w}), (address: "198.51.100.12")]),
    ],
    ports: ["#
            ),
        )
    };
    assert!(with_weight(1).contains(&format!("workers: [{worker}]")));
    std::fs::write(&file, with_weight(1)).unwrap();
    let mut rvsd = Rvsd::start(None, &file, &tmp.path("rvsd.log"));
    assert!(
        rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
        "{}",
        rvsd.log_text()
    );
    std::fs::write(&file, with_weight(3)).unwrap();
    rvsd.signal(1);
    assert!(
        rvsd.wait_for_log("reloaded ", Duration::from_secs(10)),
        "workers [{worker}], control_core {control}:\n{}",
        rvsd.log_text()
    );
    let log = rvsd.log_text();
    assert!(
        log.contains("0 added, 0 removed, 1 changed, 0 unchanged")
            && log.contains("(198.51.100.11:80 weight 3, 198.51.100.12:80 weight 1) (changed)"),
        "{log}"
    );
    let status = rvsd.stop(Duration::from_secs(20)).expect("stops");
    assert_eq!(status.code(), Some(0), "{}", rvsd.log_text());
}

/// A second rvsd with the same `eal.file_prefix` is told that another process holds it (and
/// which), not to look for hugepages; the first one runs on undisturbed.
#[test]
fn a_file_prefix_in_use_is_named() {
    if !common::hugepages_free() {
        // EAL shares nothing without hugepages (--no-shconf), so two processes cannot clash.
        eprintln!("no free hugepages: EAL runs --no-shconf, prefixes cannot clash; skipped");
        return;
    }
    let tmp = TempDir::new("cli-prefix");
    let prefix = format!("rvs-cli-prefix-{}", common::run_tag());
    let file = tmp.path("first.ron");
    std::fs::write(&file, ring_config(&prefix)).unwrap();
    let mut first = Rvsd::start(None, &file, &tmp.path("first.log"));
    assert!(
        first.wait_for_log("rvsd running", Duration::from_secs(60)),
        "{}",
        first.log_text()
    );
    let second = tmp.path("second.ron");
    std::fs::write(
        &second,
        ring_config(&prefix).replace("net_ring0", "net_ring1"),
    )
    .unwrap();
    let (code, _, stderr) = rvsd(&["--config", second.to_str().unwrap()]);
    let pid = first.child.as_ref().unwrap().id();
    assert_eq!(code, 2, "{stderr}");
    let lines = verdict_lines(&stderr, &second);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!(
            ":2:57: eal.file_prefix \"{prefix}\" is in use by another DPDK process (pid {pid} rvsd)"
        )),
        "{}",
        lines[0]
    );
    assert!(!stderr.contains("hugepages"), "{stderr}");
    assert!(
        Path::new(&format!("/var/run/dpdk/{prefix}/config")).exists(),
        "the first one's runtime directory stays"
    );
    let status = first.stop(Duration::from_secs(20)).expect("stops");
    assert_eq!(status.code(), Some(0), "{}", first.log_text());
}

/// Operator mistakes refused at load with their place: the same real server twice, a weight
/// beyond ipvsadm's range, a real server that is the VIP.
#[test]
fn operator_mistakes_are_refused_with_their_place() {
    let service = |reals: &str| {
        ring_config("x").replace(
            "    ports: [",
            &format!(
                "    services: [(protocol: TCP, vip: \"198.51.100.100\", port: 80, lb_kind: NAT,\n        real_servers: [{reals}])],\n    ports: ["
            ),
        )
    };
    assert_refused_at(
        &service(r#"(address: "198.51.100.11"), (address: "198.51.100.11", port: 80)"#),
        ":5:62: real server 198.51.100.11:80 is listed twice in this service",
    );
    assert_refused_at(
        &service(r#"(address: "198.51.100.11", weight: 65536)"#),
        ":5:59: weight 65536 is above 65535",
    );
    assert_refused_at(
        &service(r#"(address: "198.51.100.100")"#),
        ":5:34: real server 198.51.100.100 is a VIP",
    );
}

/// A network namespace of this test's own, deleted on drop (also when the test fails).
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    fn ip(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "ip"])
            .args(args)
            .output()
            .expect("run ip");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The port's kernel interface exists while rvsd runs, with the port's MAC, MTU and address,
/// and goes away with it; a name already taken is refused at the port, before anything runs.
#[test]
fn the_kernel_interface_comes_and_goes_with_rvsd() {
    let tag = common::run_tag();
    let ns = Netns::new(format!("rvs-cli-k-{tag}"));
    let tmp = TempDir::new("cli-kernel");
    let prefix = format!("rvs-cli-k-{tag}");
    let file = tmp.path("kernel.ron");
    // A veth of the namespace's own under the port, so that the port has a MAC to give.
    assert!(
        ns.ip(&["link", "add", "rvs-a", "type", "veth", "peer", "name", "rvs-b"])
            .0
    );
    assert!(ns.ip(&["link", "set", "rvs-a", "up"]).0);
    let source = ring_config(&prefix)
        .replace("\"net_ring0\"", "\"net_af_packet0,iface=rvs-a\"")
        .replace("kernel: false", "mtu: 1400, kernel: true")
        .replacen(
            "    ],\n)",
            "    ],\n    routes: [(destination: \"203.0.113.0/24\", via: \"198.51.100.254\", port: \"loop\")],\n)",
            1,
        );
    assert!(source.contains("routes: [("), "{source}");
    std::fs::write(&file, &source).unwrap();
    let mut rvsd = Rvsd::start(Some(&ns.0), &file, &tmp.path("rvsd.log"));
    assert!(
        rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
        "{}",
        rvsd.log_text()
    );
    let (ok, link) = ns.ip(&["-o", "link", "show", "rvs-loop"]);
    assert!(ok, "{}", rvsd.log_text());
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    let mac = rvsd
        .log_text()
        .lines()
        .find_map(|l| l.split_once("): mac ").map(|(_, m)| m[..17].to_owned()))
        .expect("the port's MAC in the log");
    assert!(
        link.contains(&format!("link/ether {mac}")),
        "{link}\n{}",
        rvsd.log_text()
    );
    let (_, addr) = ns.ip(&["-o", "-4", "addr", "show", "rvs-loop"]);
    assert!(addr.contains("inet 198.51.100.1/24"), "{addr}");
    let (_, route) = ns.ip(&["route", "show", "203.0.113.0/24"]);
    assert!(
        route.contains("via 198.51.100.254 dev rvs-loop"),
        "the file's route through the port: {route}"
    );
    // A reload that drops the route takes it off the interface.
    let without: String = source
        .lines()
        .filter(|l| !l.contains("routes: ["))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, &without).unwrap();
    rvsd.signal(1);
    assert!(
        rvsd.wait_for_log("reloaded ", Duration::from_secs(10)),
        "{}",
        rvsd.log_text()
    );
    let (_, route) = ns.ip(&["route", "show", "203.0.113.0/24"]);
    assert!(
        route.trim().is_empty(),
        "route left after the reload: {route}"
    );
    std::fs::write(&file, &source).unwrap();
    assert!(rvsd
        .stop(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    let (still, _) = ns.ip(&["link", "show", "rvs-loop"]);
    assert!(!still, "the interface left with rvsd");

    // Taken: refused where the port says so.
    assert!(
        ns.ip(&["link", "add", "rvs-loop", "type", "veth", "peer", "name", "rvs-peer"])
            .0
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(common::rvsd_binary())
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run rvsd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines = verdict_lines(&stderr, &file);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(":5:")
            && lines[0].contains(
                "kernel interface \"rvs-loop\": a network interface of that name already exists"
            ),
        "{}",
        lines[0]
    );
}

/// A checker's mistakes are refused where they stand, by the daemon as by --check-config.
#[test]
fn checker_mistakes_are_refused_with_their_place() {
    let service = |checks: &str| {
        ring_config("x").replace(
            "    ports: [",
            &format!(
                "    services: [(protocol: TCP, vip: \"198.51.100.100\", port: 80, lb_kind: NAT,\n        real_servers: [(address: \"198.51.100.11\", checks: [{checks}])])],\n    ports: ["
            ),
        )
    };
    assert_refused_at(&service("HTTP_GET(url: [(path: \"health\")])"), ":5:");
    assert_refused_at(
        &service("HTTP_GET(url: [(path: \"health\")])"),
        "must start with /",
    );
    assert_refused_at(
        &service("TCP_CHECK(delay_loop: 0)"),
        "delay_loop 0 is out of range",
    );
    assert_refused_at(
        &service("TCP_CHECK(retyr: 2)"),
        "Unexpected field named `retyr`",
    );
    assert_refused_at(
        &service("MISC_CHECK(misc_path: \" \")"),
        "misc_path names no program",
    );
    assert_refused_at(
        &service("HTTP_GET(url: [(path: \"/\", digest: \"xyz\")])"),
        "digest",
    );
}
