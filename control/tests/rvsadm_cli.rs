//! `rvsadm` as a user runs it: the built binary renders ipvsadm's tables from a state file
//! (`--from`, what `rvsadm dump` writes) byte for byte, and says in words when rvsd cannot
//! be reached. No daemon, no DPDK.
//!
//! The expected texts follow ipvsadm 1.26's printf formats (ipvsadm.c: print_title,
//! print_service_entry, print_largenum, list_conn/print_conn, list_timeout).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use control::api::{
    Connection, Forward, Protocol, Rates, RealServerState, ServiceState, State, Stats, Timeouts,
};

/// A directory of this test's own, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvsadm-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn server(addr: &str, port: u16, forward: Forward, weight: u32) -> RealServerState {
    RealServerState {
        address: ip(addr),
        port,
        forward,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: 0,
        inactive_conns: 0,
        persistent_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

/// Two TCP services and a UDP one, in configuration order (ipvsadm sorts them).
fn state() -> State {
    let mut web = ServiceState {
        protocol: Protocol::TCP,
        address: ip("192.0.2.1"),
        port: 80,
        scheduler: "wrr".into(),
        flags: vec![],
        persistent: None,
        netmask: Ipv4Addr::BROADCAST,
        stats: Stats {
            conns: 123_456_789,
            inpkts: 2_000_000_000,
            outpkts: 1_500_000_000,
            inbytes: 250_000_000_000,
            outbytes: 999,
        },
        rates: Rates {
            cps: 120,
            inpps: 45_000,
            outpps: 40_000,
            inbps: 300_000_000,
            outbps: 1_200_000_000,
        },
        real_servers: vec![],
    };
    let mut a = server("10.0.0.11", 8080, Forward::FullNat, 10);
    a.active_conns = 5;
    a.inactive_conns = 2;
    a.stats = Stats {
        conns: 61_728_394,
        inpkts: 1_000_000_000,
        outpkts: 750_000_000,
        inbytes: 125_000_000_000,
        outbytes: 500,
    };
    a.rates = Rates {
        cps: 60,
        inpps: 22_500,
        outpps: 20_000,
        inbps: 150_000_000,
        outbps: 600_000_000,
    };
    web.real_servers = vec![a, server("10.0.0.10", 80, Forward::Route, 20)];

    let mut tls = web.clone();
    tls.port = 443;
    tls.scheduler = "sh".into();
    tls.flags = vec!["sh-port".into()];
    tls.persistent = Some(600);
    tls.netmask = ip("255.255.255.0");
    tls.stats = Stats::default();
    tls.rates = Rates::default();
    tls.real_servers = vec![server("10.0.0.12", 443, Forward::Masq, 1)];

    let mut dns = web.clone();
    dns.protocol = Protocol::UDP;
    dns.address = ip("192.0.2.53");
    dns.port = 53;
    dns.scheduler = "rr".into();
    dns.stats = Stats::default();
    dns.rates = Rates::default();
    dns.real_servers = vec![server("10.0.1.1", 53, Forward::Tunnel, 1)];

    let conn = |state: &str, ms, source: &str, virtual_: &str, destination: &str| Connection {
        protocol: if virtual_.ends_with(":53") {
            Protocol::UDP
        } else {
            Protocol::TCP
        },
        state: state.into(),
        expires_ms: ms,
        source: source.parse::<SocketAddrV4>().unwrap(),
        virtual_: virtual_.parse().unwrap(),
        destination: destination.parse().unwrap(),
        local: None,
        template: false,
    };
    State {
        version: "0.1.0".into(),
        conn_tab_size: 1_048_576,
        services: vec![dns, tls, web],
        timeouts: Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        },
        connections: Some(vec![
            conn(
                "ESTABLISHED",
                754_321,
                "203.0.113.9:51234",
                "192.0.2.1:80",
                "10.0.0.11:8080",
            ),
            conn(
                "UDP",
                42_000,
                "203.0.113.10:33333",
                "192.0.2.53:53",
                "10.0.1.1:53",
            ),
            conn(
                "FIN_WAIT",
                119_999,
                "203.0.113.9:51235",
                "192.0.2.1:443",
                "10.0.0.12:443",
            ),
        ]),
        taken_unix_ms: 1_700_000_000_000,
    }
}

/// Writes the state as `rvsadm dump` does.
fn dump(dir: &Path) -> PathBuf {
    let file = dir.join("state.json");
    std::fs::write(&file, serde_json::to_string_pretty(&state()).unwrap()).unwrap();
    file
}

fn rvsadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(args)
        .output()
        .expect("rvsadm runs")
}

/// Runs `rvsadm --from FILE ARGS` and checks stdout byte for byte, an empty stderr, exit 0.
fn renders(file: &Path, args: &[&str], expected: &str) {
    let mut all = vec!["--from", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = rvsadm(&all);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, expected, "rvsadm {args:?}; stderr: {stderr}");
    assert_eq!(stderr, "", "rvsadm {args:?}");
    assert_eq!(out.status.code(), Some(0), "rvsadm {args:?}");
}

#[test]
fn list_numeric() {
    let dir = scratch("list");
    let file = dump(&dir);
    let expected = concat!(
        "IP Virtual Server version 1.2.1 (size=1048576)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.0.2.1:80 wrr\n",
        "  -> 10.0.0.10:80                 Route   20     0          0         \n",
        "  -> 10.0.0.11:8080               FullNat 10     5          2         \n",
        "TCP  192.0.2.1:443 sh (sh-port) persistent 600 mask 255.255.255.0\n",
        "  -> 10.0.0.12:443                Masq    1      0          0         \n",
        "UDP  192.0.2.53:53 rr\n",
        "  -> 10.0.1.1:53                  Tunnel  1      0          0         \n",
    );
    renders(&file, &["-L", "-n"], expected);
    renders(&file, &["-Ln"], expected);
    // The one service -t names, without the version line.
    renders(
        &file,
        &["-l", "-n", "-t", "192.0.2.1:443"],
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.0.2.1:443 sh (sh-port) persistent 600 mask 255.255.255.0\n",
            "  -> 10.0.0.12:443                Masq    1      0          0         \n",
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stats_and_exact() {
    let dir = scratch("stats");
    let file = dump(&dir);
    renders(
        &file,
        &["-L", "-n", "--stats"],
        concat!(
            "IP Virtual Server version 1.2.1 (size=1048576)\n",
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                  123456K    2000M    1500M     250G      999\n",
            "  -> 10.0.0.10:80                        0        0        0        0        0\n",
            "  -> 10.0.0.11:8080               61728394    1000M  750000K     125G      500\n",
            "TCP  192.0.2.1:443                       0        0        0        0        0\n",
            "  -> 10.0.0.12:443                       0        0        0        0        0\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
        ),
    );
    renders(
        &file,
        &["-L", "-n", "--stats", "--exact", "-t", "192.0.2.1:80"],
        concat!(
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                 123456789 2000000000 1500000000 250000000000      999\n",
            "  -> 10.0.0.10:80                        0        0        0        0        0\n",
            "  -> 10.0.0.11:8080               61728394 1000000000 750000000 125000000000      500\n",
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate() {
    let dir = scratch("rate");
    let file = dump(&dir);
    renders(
        &file,
        &["-L", "-n", "--rate"],
        concat!(
            "IP Virtual Server version 1.2.1 (size=1048576)\n",
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                      120    45000    40000  300000K    1200M\n",
            "  -> 10.0.0.10:80                        0        0        0        0        0\n",
            "  -> 10.0.0.11:8080                     60    22500    20000  150000K  600000K\n",
            "TCP  192.0.2.1:443                       0        0        0        0        0\n",
            "  -> 10.0.0.12:443                       0        0        0        0        0\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connections() {
    let dir = scratch("conns");
    let file = dump(&dir);
    renders(
        &file,
        &["-L", "-n", "-c"],
        concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination\n",
            "TCP 12:34  ESTABLISHED 203.0.113.9:51234  192.0.2.1:80       10.0.0.11:8080\n",
            "UDP 00:42  UDP         203.0.113.10:33333 192.0.2.53:53      10.0.1.1:53\n",
            "TCP 01:59  FIN_WAIT    203.0.113.9:51235  192.0.2.1:443      10.0.0.12:443\n",
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_and_timeout() {
    let dir = scratch("save");
    let file = dump(&dir);
    let rules = concat!(
        "-A -t 192.0.2.1:80 -s wrr\n",
        "-a -t 192.0.2.1:80 -r 10.0.0.10:80 -g -w 20\n",
        "-a -t 192.0.2.1:80 -r 10.0.0.11:8080 --fullnat -w 10\n",
        "-A -t 192.0.2.1:443 -s sh -p 600 -M 255.255.255.0 -b sh-port\n",
        "-a -t 192.0.2.1:443 -r 10.0.0.12:443 -m -w 1\n",
        "-A -u 192.0.2.53:53 -s rr\n",
        "-a -u 192.0.2.53:53 -r 10.0.1.1:53 -i -w 1\n",
    );
    renders(&file, &["-S", "-n"], rules);
    renders(&file, &["--save", "--numeric"], rules);
    renders(
        &file,
        &["-L", "--timeout"],
        "Timeout (tcp tcpfin udp): 900 120 300\n",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_daemon_is_said_in_words() {
    let dir = scratch("nodaemon");
    let socket = dir.join("rvsd.sock");
    let out = rvsadm(&["--socket", socket.to_str().unwrap(), "-L", "-n"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "cannot connect to {}: No such file or directory (is rvsd running?)\n",
            socket.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_and_their_exit_codes() {
    let dir = scratch("errors");
    let file = dump(&dir);
    let from = file.to_str().unwrap();

    // A service that is not there: ipvsadm's words, exit 1, nothing on stdout.
    let out = rvsadm(&["--from", from, "-L", "-n", "-t", "192.0.2.9:80"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No such service\n");

    // A command-line error: ipvsadm's fail(2, ...).
    let out = rvsadm(&["-A", "-t", "192.0.2.1:80", "-w", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Illegal 'weight' option with the 'add-service' command\n"
    );

    // A file that is not a dump.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = rvsadm(&["--from", bad.to_str().unwrap(), "-L", "-n"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{} is not a state as `rvsadm dump` writes it:",
            bad.display()
        )),
        "{stderr}"
    );

    let missing = dir.join("missing.json");
    let out = rvsadm(&["--from", missing.to_str().unwrap(), "-L", "-n"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "cannot read {}: No such file or directory\n",
            missing.display()
        )
    );

    // -h on stdout, exit 0.
    let out = rvsadm(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rvsadm "));
    let _ = std::fs::remove_dir_all(&dir);
}
