//! rvsadm against a running rvsd in the lab (NAT, two workers): the table an LVS user knows,
//! runtime edits under load that leave the connections on what stayed alone, the socket
//! refusing another uid, `--save-ron` then `reload` changing nothing, `dump` and `--from`
//! rendering the same table, and the metrics endpoint agreeing with `--stats`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{in_ns, repo_root, start_workers, Setup, VIP};

fn rvsadm_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvsadm"))
}

fn rvsadm(socket: &Path, args: &[&str]) -> Output {
    Command::new(rvsadm_binary())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// rvsadm's stdout; it must succeed.
fn ok(socket: &Path, args: &[&str]) -> String {
    let out = rvsadm(socket, args);
    assert!(
        out.status.success(),
        "rvsadm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The lab's NAT configuration with a control socket and a metrics endpoint.
fn setup() -> (Setup, PathBuf) {
    let socket_dir = std::env::temp_dir().join(format!("rvs-adm-{}", std::process::id()));
    let socket = socket_dir.join("rvsd.sock");
    let sock = socket.clone();
    let setup = start_workers("adm", "nat", 2, move |source| {
        let end = source.rfind(')').unwrap();
        format!(
            "{}    control_socket: {:?},\n    metrics: \"127.0.0.1:9477\",\n){}",
            &source[..end],
            sock.display().to_string(),
            &source[end + 1..]
        )
    });
    (setup, socket)
}

const LIST: &str = "\
IP Virtual Server version 1.2.1 (size=2097152)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.51.100.100:80 rr
  -> 203.0.113.11:80              Masq    1      0          0         
  -> 203.0.113.12:80              Masq    1      0          0         
  -> 203.0.113.13:80              Masq    1      0          0         
UDP  198.51.100.100:9000 rr
  -> 203.0.113.11:9000            Masq    1      0          0         
  -> 203.0.113.12:9000            Masq    1      0          0         
  -> 203.0.113.13:9000            Masq    1      0          0         
";

fn scrape(setup: &Setup) -> String {
    let out = in_ns(
        &setup.lab.ns("lb"),
        "python3",
        &[
            "-c",
            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9477/metrics', timeout=5).read().decode())",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of one sample line (`name{labels} value`), summed over the lines that start so.
fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn rvsadm_lists_edits_under_load_saves_and_dumps() {
    let (setup, socket) = setup();
    // The table as ipvsadm 1.26 prints it for this state.
    assert_eq!(ok(&socket, &["-L", "-n"]), LIST);
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // Another uid: the socket's mode keeps it out; made reachable, SO_PEERCRED still does.
    let nobody = |args: &[&str]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"])
            .arg(rvsadm_binary())
            .arg("--socket")
            .arg(&socket);
        cmd.args(args).stdin(Stdio::null()).output().unwrap()
    };
    std::fs::set_permissions(
        socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = nobody(&["-L", "-n"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = nobody(&["-L", "-n"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("only uid 0"), "refused by SO_PEERCRED: {err}");
    assert!(setup.rvsd.log_text().contains("refused a client of uid"));
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // Load: 30 long-lived connections and a stream of new ones on TCP :80, while the
    // services change around them.
    let url = format!("http://{VIP}/");
    let ready = setup.tmp.path("ready");
    let long = Command::new("ip")
        .args(["netns", "exec", &setup.lab.ns("client"), "python3"])
        .arg(repo_root().join("scripts/lab/long_conns.py"))
        .args([
            "--url",
            &url,
            "--count",
            "30",
            "--seconds",
            "12",
            "--timeout",
            "10",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready.exists(), "the long connections did not start");
    let stream = Command::new("ip")
        .args(["netns", "exec", &setup.lab.ns("client"), "python3"])
        .arg(repo_root().join("scripts/lab/client.py"))
        .args([
            "stream",
            "--url",
            &url,
            "--rate",
            "20",
            "--seconds",
            "8",
            "--timeout",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let edits: &[&[&str]] = &[
        &["-A", "-t", "198.51.100.100:8080", "-s", "wrr"],
        &[
            "-a",
            "-t",
            "198.51.100.100:8080",
            "-r",
            "203.0.113.11:80",
            "-m",
            "-w",
            "2",
        ],
        &[
            "-a",
            "-t",
            "198.51.100.100:8080",
            "-r",
            "203.0.113.12:80",
            "-m",
            "-w",
            "1",
        ],
        &[
            "-e",
            "-t",
            "198.51.100.100:80",
            "-r",
            "203.0.113.12",
            "-m",
            "-w",
            "3",
        ],
        &["-E", "-t", "198.51.100.100:80", "-s", "wrr"],
        &["-d", "-u", "198.51.100.100:9000", "-r", "203.0.113.13"],
        &["-d", "-t", "198.51.100.100:8080", "-r", "203.0.113.12:80"],
        &["--set", "900", "120", "300"],
    ];
    for args in edits {
        ok(&socket, args);
        std::thread::sleep(Duration::from_millis(300));
    }
    // ipvsadm's refusals.
    let out = rvsadm(&socket, &["-A", "-t", "198.51.100.100:8080", "-s", "rr"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Service already exists"));
    let out = rvsadm(
        &socket,
        &["-d", "-t", "198.51.100.100:8080", "-r", "203.0.113.99"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such destination"));

    let long = long.wait_with_output().unwrap();
    let long: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    let stream = stream.wait_with_output().unwrap();
    let stream: serde_json::Value = serde_json::from_slice(&stream.stdout).unwrap();
    println!(
        "under edits: long-lived {} of 30 ok, {} moved; new connections {} of {} ok",
        long["ok"], long["moved"], stream["ok"], stream["requests"]
    );
    assert_eq!(long["ok"], 30, "no connection on what stayed fails: {long}");
    assert_eq!(long["moved"], 0, "none moves: {long}");
    assert_eq!(
        stream["ok"], stream["requests"],
        "no new connection fails: {stream}"
    );

    // The new service answers.
    let out = in_ns(
        &setup.lab.ns("client"),
        "curl",
        &["-sS", "-m", "3", &format!("http://{VIP}:8080/")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The running state, and what the file would need to be: --save-ron, written over the
    // file, then reloaded: nothing changes.
    let listed = ok(&socket, &["-L", "-n"]);
    assert!(
        listed
            .contains("TCP  198.51.100.100:8080 wrr\n  -> 203.0.113.11:80              Masq    2"),
        "{listed}"
    );
    let ron = ok(&socket, &["--save-ron"]);
    std::fs::write(setup.tmp.path("lab.ron"), &ron).unwrap();
    let reload = ok(&socket, &["reload"]);
    assert!(reload.contains("unchanged"), "{reload}");
    assert_eq!(ok(&socket, &["-L", "-n"]), listed);

    // -S: ipvsadm's rules for this state.
    let saved = ok(&socket, &["-S", "-n"]);
    assert!(
        saved.contains("-A -t 198.51.100.100:8080 -s wrr\n"),
        "{saved}"
    );
    assert!(
        saved.contains("-a -t 198.51.100.100:8080 -r 203.0.113.11:80 -m -w 2\n"),
        "{saved}"
    );

    // dump, then --from: the same tables without the daemon.
    std::thread::sleep(Duration::from_secs(3));
    let dump = ok(&socket, &["dump"]);
    let file = setup.tmp.path("dump.json");
    std::fs::write(&file, &dump).unwrap();
    let from = |args: &[&str]| {
        let out = Command::new(rvsadm_binary())
            .arg("--from")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for args in [
        &["-L", "-n", "--stats", "--exact"][..],
        &["-L", "-n", "--rate"],
        &["-L", "-n"],
    ] {
        let mut live = vec!["-L"];
        live.extend_from_slice(&args[1..]);
        assert_eq!(from(args), ok(&socket, &live), "{args:?}");
    }

    // Metrics agree with --stats (both from the workers' totals; the endpoint refreshes
    // every 2 s and nothing moves now).
    std::thread::sleep(Duration::from_millis(2500));
    let metrics = scrape(&setup);
    let state: serde_json::Value = serde_json::from_str(&ok(&socket, &["dump"])).unwrap();
    let conns: u64 = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stats"]["conns"].as_u64().unwrap())
        .sum();
    assert!(conns > 0);
    assert_eq!(
        metric_sum(&metrics, "node_ipvs_connections_total ") as u64,
        conns,
        "{metrics}"
    );
    let active: u64 = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["real_servers"].as_array().unwrap().iter())
        .map(|r| r["active_conns"].as_u64().unwrap())
        .sum();
    assert_eq!(
        metric_sum(&metrics, "node_ipvs_backend_connections_active{") as u64,
        active
    );

    // DPDK telemetry: dpdk-telemetry.py lists rvs's commands and answers them, with the
    // totals the metrics have.
    let mut tel = Command::new("dpdk-telemetry.py")
        .args(["-f", &setup.prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = tel.stdin.take().unwrap();
        stdin
            .write_all(b"/\n/rvs/stats\n/rvs/services\n/rvs/info\n")
            .unwrap();
    }
    let tel = tel.wait_with_output().unwrap();
    let tel_out = String::from_utf8_lossy(&tel.stdout).to_string();
    assert!(
        tel.status.success(),
        "{tel_out}{}",
        String::from_utf8_lossy(&tel.stderr)
    );
    for command in [
        "/rvs/info",
        "/rvs/stats",
        "/rvs/services",
        "/rvs/drops",
        "/rvs/vrrp",
    ] {
        assert!(
            tel_out.contains(&format!("\"{command}\"")),
            "{command} listed: {tel_out}"
        );
    }
    assert!(
        tel_out.contains(&format!("\"conns\": {conns}")),
        "{tel_out}"
    );
    assert!(
        tel_out.contains("TCP 198.51.100.100:80 wrr: 3 real servers"),
        "{tel_out}"
    );

    // -c lists connections with IPVS's states; -Z zeroes the counters, not the connections.
    let c = ok(&socket, &["-L", "-n", "-c"]);
    assert!(c.starts_with("IPVS connection entries\n"), "{c}");
    assert!(
        c.contains("TCP ")
            && (c.contains("TIME_WAIT") || c.contains("FIN_WAIT") || c.contains("CLOSE")),
        "{c}"
    );
    ok(&socket, &["-Z"]);
    let stats = ok(&socket, &["-L", "-n", "--stats", "--exact"]);
    assert!(
        stats.contains(
            "TCP  198.51.100.100:80                   0        0        0        0        0"
        ),
        "{stats}"
    );

    // Edits per second, measured (reported, not asserted).
    let n = 200;
    let t0 = Instant::now();
    for i in 0..n {
        let w = (i % 5 + 1).to_string();
        ok(
            &socket,
            &[
                "-e",
                "-t",
                "198.51.100.100:8080",
                "-r",
                "203.0.113.11:80",
                "-m",
                "-w",
                &w,
            ],
        );
    }
    let rate = f64::from(n) / t0.elapsed().as_secs_f64();
    println!(
        "rvsadm edits: {n} in {:.2} s = {rate:.0} edits/s (each one a snapshot published)",
        t0.elapsed().as_secs_f64()
    );
    drop(setup);
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}
