//! End to end in the namespace lab: rvsd attaches to the appliance's veth ends with DPDK
//! `net_af_packet`; the kernel's own `ping` and `arping` in the client and server namespaces
//! must be answered by rvsd, and rvsd's counters must agree frame for frame with the client
//! interface's counters. Needs root (namespaces); the README's test command runs it as root.

mod common;

use std::time::Duration;

use common::{in_ns, Lab, Rvsd, TempDir};

fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("stats file is JSON")
}

fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a counter: {v}"))
}

#[test]
fn ping_and_arping_are_answered_over_dpdk() {
    let name = format!("e2e{}", common::run_tag());
    let lab = Lab::up(&name);
    let tmp = TempDir::new("e2e");
    let prefix = format!("rvs-e2e-{}", common::run_tag());
    let stats = tmp.path("stats.json");
    let config = tmp.path("lab.ron");
    let source = std::fs::read_to_string(common::repo_root().join("configs/lab.ron"))
        .unwrap()
        .replace("\"rvs-lab\"", &format!("{prefix:?}"))
        .replace(
            "\"/run/rvs/lab-stats.json\"",
            &format!("{:?}", stats.display().to_string()),
        )
        .replace(
            "hugepages: true",
            &format!("hugepages: {}", common::hugepages_free()),
        )
        .replace(
            "workers: [1]",
            &format!("workers: [{}], stats_interval_ms: 200", last_core()),
        );
    std::fs::write(&config, source).unwrap();

    let mut rvsd = Rvsd::start(Some(&lab.ns("lb")), &config, &tmp.path("rvsd.log"));
    assert!(
        rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
        "rvsd did not come up:\n{}",
        rvsd.log_text()
    );
    let client_mac = lab.mac("lb0");
    assert!(
        rvsd.log_text().contains(&format!("mac {client_mac}")),
        "rvsd uses the veth's MAC"
    );

    let tx_before = lab.iface_counter("client", "cl0", "tx_packets");
    let rx_before = lab.iface_counter("client", "cl0", "rx_packets");

    let ping = in_ns(
        &lab.ns("client"),
        "ping",
        &["-c", "5", "-i", "0.2", "-W", "2", "198.51.100.1"],
    );
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success() && text.contains("5 received"),
        "ping:\n{text}"
    );
    assert!(text.contains("ttl=64"), "replies carry rvsd's TTL:\n{text}");

    let arping = in_ns(
        &lab.ns("client"),
        "arping",
        &["-c", "3", "-i", "cl0", "198.51.100.1"],
    );
    let text = String::from_utf8_lossy(&arping.stdout);
    assert!(
        arping.status.success(),
        "arping:\n{text}{}",
        String::from_utf8_lossy(&arping.stderr)
    );
    assert!(text.contains("3 packets received"), "arping:\n{text}");
    assert_eq!(
        text.matches(&format!("from {client_mac} (198.51.100.1)"))
            .count(),
        3,
        "arping:\n{text}"
    );

    // An address rvsd does not own: the client's ARP requests for it go to the control thread
    // (which learns neighbours from ARP), counted as `to_control`.
    let silent = in_ns(
        &lab.ns("client"),
        "ping",
        &["-c", "1", "-W", "1", "198.51.100.99"],
    );
    assert!(!silent.status.success(), "nobody owns 198.51.100.99");

    // The server side, through the lab's bridge.
    let ping = in_ns(
        &lab.ns("rs1"),
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", "203.0.113.1"],
    );
    assert!(
        ping.status.success(),
        "ping from rs1:\n{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Let the kernel's last ARP retry for .99 go out before we count.
    std::thread::sleep(Duration::from_secs(3));
    let tx_sent = lab.iface_counter("client", "cl0", "tx_packets") - tx_before;
    let rx_got = lab.iface_counter("client", "cl0", "rx_packets") - rx_before;

    let status = rvsd
        .stop(Duration::from_secs(20))
        .expect("rvsd stops on SIGTERM");
    let log = rvsd.log_text();
    assert!(status.success(), "rvsd exit status {status}:\n{log}");
    assert!(
        log.contains("stopped: ports closed, DPDK memory released"),
        "{log}"
    );

    let report = json(&stats);
    let client = &report["ports"][0];
    let servers = &report["ports"][1];
    assert_eq!(client["name"], "client");
    assert_eq!(count(&client["icmp_echo_replies"]), 5);
    let not_ours = count(&client["to_control"]);
    assert!(
        not_ours >= 1,
        "the ARP requests for .99 are counted: {client}"
    );
    assert_eq!(count(&client["dropped"]), 0, "nothing dropped: {client}");
    // Every frame the client sent reached rvsd, and every frame rvsd sent reached the client.
    assert_eq!(
        count(&client["rx_packets"]),
        tx_sent,
        "client sent {tx_sent}: {client}"
    );
    assert_eq!(
        count(&client["tx_packets"]),
        rx_got,
        "client received {rx_got}: {client}"
    );
    // What it sent was answers: 5 echoes and the ARP replies (arping's 3, the kernel's own).
    assert!(count(&client["arp_replies"]) >= 3);
    assert_eq!(count(&client["arp_replies"]) + 5, rx_got);
    assert_eq!(
        count(&client["rx_packets"]),
        5 + count(&client["arp_replies"]) + not_ours
    );
    // The device's counters and the worker's agree.
    assert_eq!(client["device"]["rx_packets"], client["rx_packets"]);
    assert_eq!(client["device"]["tx_packets"], client["tx_packets"]);
    assert_eq!(count(&servers["icmp_echo_replies"]), 3);
    assert!(count(&servers["arp_replies"]) >= 1);
    // Per worker and per port: the worker's block adds up to the port's total.
    assert_eq!(
        report["workers"][0]["ports"][0]["rx_packets"],
        client["rx_packets"]
    );

    // Nothing of this instance is left on the machine.
    assert!(
        !std::path::Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
        "runtime dir removed"
    );
    let leftovers: Vec<_> = std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "hugepage files left: {leftovers:?}");
    drop(lab);
    assert!(
        !std::path::Path::new(&format!("/run/netns/{name}-lb")).exists(),
        "lab namespaces removed"
    );
}

fn last_core() -> usize {
    core_affinity::get_core_ids()
        .and_then(|c| c.last().map(|c| c.id))
        .unwrap_or(0)
}
