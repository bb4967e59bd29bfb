//! rvs-gen's own correctness against a forwarder it did not write: dpdk-testpmd over two
//! net_memif links. rvs-gen's accounting must match testpmd's packet for packet (what it sent
//! is what testpmd received, what testpmd forwarded is what arrived), and when testpmd
//! forwards nothing (rxonly), rvs-gen must refuse to report rather than print a rate.
//!
//! Needs root, hugepages and dpdk-testpmd (scripts/setup.sh); skipped with a note otherwise.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dpdk-testpmd serving two memif sockets in a directory of its own; killed (and its
/// runtime directory removed) when dropped, also when a test fails.
struct Testpmd {
    child: Child,
    dir: PathBuf,
    prefix: String,
    log: PathBuf,
}

impl Testpmd {
    fn start(forward_mode: &str, tag: &str) -> Testpmd {
        let prefix = format!("rvs-gentest-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("testpmd.log");
        let vdev = |i: usize, name: &str| {
            format!(
                "--vdev=net_memif{i},role=server,id=0,socket={}/{name}.sock,socket-abstract=no,mac=02:00:00:00:00:0{}",
                dir.display(),
                i + 1
            )
        };
        // stdbuf: testpmd prints its statistics on SIGINT and then re-raises the signal, which
        // would lose a block-buffered log.
        let child = Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd"])
            .args(["--lcores", "0@1,1@1", "--file-prefix", &prefix])
            .args([
                "--socket-mem",
                "128",
                "--socket-limit",
                "128",
                "--huge-unlink",
            ])
            .args(["--no-pci", "--no-telemetry"])
            .arg(vdev(0, "client"))
            .arg(vdev(1, "servers"))
            .args(["--", &format!("--forward-mode={forward_mode}")])
            .args([
                "--nb-cores=1",
                "--stats-period=3600",
                "--total-num-mbufs=8192",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("dpdk-testpmd");
        let t = Testpmd {
            child,
            dir,
            prefix,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(t.dir.join("client.sock").exists() && t.dir.join("servers.sock").exists()) {
            assert!(
                Instant::now() < deadline,
                "testpmd did not open its sockets"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t
    }

    /// Stops testpmd and returns what each port transmitted: [toward the clients, toward the
    /// servers], from the statistics it prints as it stops. Called while rvs-gen still holds
    /// its links (memif's counters reset when the client leaves). Transmitted only: DPDK
    /// 22.11's memif does not count what a server-role port receives.
    fn stop(mut self) -> [u64; 2] {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        self.child.wait().unwrap();
        let text = std::fs::read_to_string(&self.log).unwrap();
        let mut tx = [0u64; 2];
        for block in text.split("Forward statistics for port ").skip(1) {
            let port: usize = block[..1].parse().unwrap();
            let at = block.find("TX-packets:").unwrap() + "TX-packets:".len();
            tx[port] = block[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
        tx
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
    }
}

/// One testpmd and one rvs-gen at a time: they share the machine's two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.contains("\t0\t"))
    });
    let testpmd = Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .output()
        .is_ok_and(|o| o.status.success());
    let huge = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains("hugetlbfs"));
    let cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    if !(root && testpmd && huge && cores) {
        eprintln!("skipped: needs root, dpdk-testpmd, hugepages and 2 cores (scripts/setup.sh)");
    }
    root && testpmd && huge && cores
}

/// Runs rvs-gen against `t`, stops testpmd once rvs-gen has reported (its links still up),
/// and returns rvs-gen's exit code and output, and what testpmd transmitted per port.
fn gen(t: Testpmd, tag: &str, args: &[&str]) -> (i32, String, [u64; 2]) {
    let dev = |i: usize, name: &str| {
        format!(
            "net_memif{i},role=client,id=0,socket={}/{name}.sock,socket-abstract=no,mac=02:00:00:00:01:0{}",
            t.dir.display(),
            i + 1
        )
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvs-gen"))
        .args(["--dut", "passthrough", "--core", "0", "--memory-mb", "128"])
        .args(["--file-prefix", &format!("{}-gen-{tag}", t.prefix)])
        .args([
            "--client-dev",
            &dev(0, "client"),
            "--server-dev",
            &dev(1, "servers"),
        ])
        .args(["--warmup", "0", "--duration", "2", "--flows", "2000"])
        .args(["--linger-ms", "3000"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rvs-gen");
    let mut text = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text += &line;
        text.push('\n');
        if line.starts_with("RESULT ") || line.contains("REFUSED") {
            break;
        }
    }
    let tx = t.stop();
    for line in lines {
        text += &line.unwrap();
        text.push('\n');
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, text, tx)
}

fn result(text: &str, key: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("RESULT ")).unwrap();
    let at = line.find(&format!(" {key}=")).unwrap() + key.len() + 2;
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn every_packet_is_accounted_for_against_testpmd() {
    if !can_run() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (replies, crossings) in [("direct", 1), ("cross", 2)] {
        let t = Testpmd::start("macswap", replies);
        let (code, out, [to_clients, to_servers]) = gen(t, replies, &["--replies", replies]);
        assert_eq!(code, 0, "{out}");
        let built = result(&out, "built");
        assert!(built > 10_000, "{out}");
        // Every client packet crossed testpmd toward the servers, and with `cross` its answer
        // crossed back: testpmd's counts equal rvs-gen's, to the packet.
        assert_eq!(to_servers, built, "{out}");
        assert_eq!(to_clients, if crossings == 2 { built } else { 0 }, "{out}");
        let accounted = format!(
            "{built} client packets built = {built} journeys completed + 0 unaccounted; {} arrivals checked, 0 ignored (ARP), 0 failed",
            built * crossings
        );
        assert!(out.contains(&accounted), "{out}");
    }
}

#[test]
fn a_forwarder_that_loses_packets_gets_no_report() {
    if !can_run() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Testpmd::start("rxonly", "rxonly");
    let args = ["--replies", "direct", "--drain-ms", "100"];
    let (code, out, [to_clients, to_servers]) = gen(t, "rxonly", &args);
    assert_eq!(code, 3, "refused, not reported:\n{out}");
    assert!(out.contains("REFUSED"), "{out}");
    assert!(!out.contains("RESULT"), "{out}");
    assert_eq!((to_clients, to_servers), (0, 0));
    // The window filled and nothing came back: all of it is reported lost.
    assert!(
        out.contains("512 client packets built = 0 journeys completed + 512 unaccounted"),
        "{out}"
    );
}
