//! Health checks end to end, in the lab (configs/lab-health.ron: rr over three real servers,
//! each checked with HTTP_GET of /health every second, connect_timeout 1, retry 1,
//! delay_before_retry 1), under a steady stream of new client connections:
//!
//! - a real server's failure (HTTP process killed, link down, HTTP 500, wrong digest, a
//!   MISC_CHECK exiting 1) costs only the connections of the detection window,
//!   delay_loop + connect_timeout + retry x (connect_timeout + delay_before_retry) = 4 s, then
//!   none while it is down; it is back after its first good check;
//! - misc_dynamic weights set the shares; the sorry server takes over when every server is down
//!   (quorum_down runs once) and gives back; inhibit_on_failure keeps a live connection,
//!   expire_nodest_conn resets it;
//! - the kernel path: ping and curl from the appliance, a kernel listener on its own address,
//!   and a SYN flood at that address that does not stop forwarding; a hung script is killed.
//!
//! The figures each test measures are printed (`cargo test -- --nocapture`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{client, client_any, in_ns, lab_rs, log_time, now, start_config, Setup, VIP};
use serde_json::Value;

/// The detection window of configs/lab-health.ron: delay_loop + connect_timeout + retry x
/// (connect_timeout + delay_before_retry).
const WINDOW: f64 = 1.0 + 1.0 + 1.0 * (1.0 + 1.0);
/// Beyond the window: the control thread's poll (20 ms), the snapshot's way to the worker,
/// a noisy shared machine.
const SLACK: f64 = 1.0;

fn start(tag: &str, workers: usize, edit: impl Fn(String) -> String) -> Setup {
    start_config(tag, "nat", "configs/lab-health.ron", workers, edit)
}

/// Waits until the log holds `needle` `times` times.
fn wait_log(setup: &Setup, needle: &str, times: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if setup.rvsd.log_text().matches(needle).count() >= times {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One steady stream of new connections to the VIP (20 a second, 2 s timeout each) while
/// `during` runs; returns the stream's events: (start, ok, server or error).
fn stream_while(setup: &Setup, seconds: u32, during: impl FnOnce()) -> Vec<(f64, bool, String)> {
    let url = format!("http://{VIP}/");
    let seconds = seconds.to_string();
    let summary = std::thread::scope(|scope| {
        let s = scope.spawn(|| {
            client_any(
                setup,
                &[
                    "stream",
                    "--url",
                    &url,
                    "--rate",
                    "20",
                    "--seconds",
                    &seconds,
                    "--timeout",
                    "2",
                ],
            )
            .0
        });
        during();
        s.join().expect("stream thread")
    });
    summary["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e[0].as_f64().unwrap(),
                e[1].as_u64() == Some(1),
                e[2].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A way to break real server rs2 and to mend it, and the reason its checker must give.
struct Fault<'a> {
    name: &'a str,
    breaks: &'a dyn Fn(),
    mends: &'a dyn Fn(),
    reasons: &'a [&'a str],
}

/// Breaks rs2 3 s into a stream of new connections, mends it 7 s later, and checks that the
/// failures fall in the detection window, that rs2 served nothing while broken, and that it
/// came back after its first good check. Returns the line the test prints.
fn fault_in_a_stream(setup: &Setup, fault: &Fault<'_>) -> String {
    let downs_before = setup
        .rvsd
        .log_text()
        .matches("203.0.113.12:80 of TCP 198.51.100.100:80: down")
        .count();
    let mut broke = 0.0;
    let mut mended = 0.0;
    let events = stream_while(setup, 16, || {
        std::thread::sleep(Duration::from_secs(3));
        broke = now();
        (fault.breaks)();
        std::thread::sleep(Duration::from_secs(7));
        mended = now();
        (fault.mends)();
    });
    let log = setup.rvsd.log_text();
    let down_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("203.0.113.12:80 of TCP 198.51.100.100:80: down"))
        .collect();
    assert_eq!(
        down_lines.len(),
        downs_before + 1,
        "{}: rs2 went down once:\n{log}",
        fault.name
    );
    let line = down_lines.last().unwrap();
    assert!(
        fault.reasons.iter().any(|r| line.contains(r)),
        "{}: the reason is one of {:?}: {line}",
        fault.name,
        fault.reasons
    );
    let failures: Vec<f64> = events
        .iter()
        .filter(|e| !e.1)
        .map(|e| e.0 - broke)
        .collect();
    let late: Vec<&f64> = failures
        .iter()
        .filter(|t| **t < -0.3 || **t > WINDOW + SLACK)
        .collect();
    assert!(
        late.is_empty(),
        "{}: failures outside the detection window ({WINDOW} s + {SLACK} s) after the fault, \
         at {late:?} s; all at {failures:?}\n{log}",
        fault.name
    );
    let served_broken = events
        .iter()
        .filter(|e| e.1 && e.2 == "rs2" && e.0 > broke + WINDOW + SLACK && e.0 < mended)
        .count();
    assert_eq!(served_broken, 0, "{}: rs2 served while down", fault.name);
    let back = events
        .iter()
        .find(|e| e.1 && e.2 == "rs2" && e.0 > mended)
        .map(|e| e.0 - mended);
    let Some(back) = back else {
        panic!(
            "{}: rs2 never came back after the repair:\n{log}",
            fault.name
        );
    };
    assert!(
        back < 1.0 + 1.0 + 3.0,
        "{}: rs2 back {back:.2} s after the repair (a delay_loop and a check, plus slack)",
        fault.name
    );
    let last = failures.iter().cloned().fold(f64::NAN, f64::max);
    let out_after = log_time(line).map_or(f64::NAN, |t| t - broke);
    assert!(
        out_after <= WINDOW + SLACK,
        "{}: out {out_after:.2} s after the fault",
        fault.name
    );
    format!(
        "{}: out of the scheduler {out_after:.2} s after the fault (window {WINDOW} s); {} of \
         {} new connections failed, the last {:.2} s after the fault; rs2 served none while \
         down, back {:.2} s after the repair; reason: {}",
        fault.name,
        failures.len(),
        events.len(),
        if last.is_nan() { 0.0 } else { last },
        back,
        line.split(": down (")
            .nth(1)
            .unwrap_or("")
            .split(")")
            .next()
            .unwrap_or("")
    )
}

/// The five ways of failing of the issue, on one lab, one after the other.
fn failures_are_confined_to_the_detection_window(workers: usize) {
    let misc_state = std::env::temp_dir().join(format!("rvs-misc-{}-{workers}", common::run_tag()));
    let _ = std::fs::remove_file(&misc_state);
    let script = std::env::temp_dir().join(format!("rvs-misc-{}-{workers}.sh", common::run_tag()));
    std::fs::write(
        &script,
        "#!/bin/sh\nexit $(cat \"$1\" 2>/dev/null || echo 0)\n",
    )
    .unwrap();
    let misc = format!(
        "MISC_CHECK(misc_path: \"/bin/sh {} {}\"), HTTP_GET",
        script.display(),
        misc_state.display()
    );
    let mut setup = start(&format!("hw{workers}"), workers, |s| {
        // rs2 also has a MISC_CHECK: up only while both pass.
        let rs2 = "(address: \"203.0.113.12\", checks: [HTTP_GET";
        s.replacen(
            rs2,
            &format!("(address: \"203.0.113.12\", checks: [{misc}"),
            1,
        )
    });
    let lab_name = setup.lab.name.clone();
    let rs = |action: &'static str, value: Option<&'static str>| {
        let lab = lab_name.clone();
        move || lab_rs(&lab, "rs2", action, value)
    };
    let http_stop = rs("http-stop", None);
    let http_start = rs("http-start", None);
    let link_down = rs("link-down", None);
    let link_up = rs("link-up", None);
    let status_500 = rs("health-status", Some("500"));
    let body = rs("health-body", Some("changed"));
    let ok = rs("health-ok", None);
    let misc_fail = || std::fs::write(&misc_state, "1\n").unwrap();
    let misc_ok = || {
        let _ = std::fs::remove_file(&misc_state);
    };
    let mut faults = vec![
        Fault {
            name: "HTTP process killed",
            breaks: &http_stop,
            mends: &http_start,
            reasons: &["refused"],
        },
        Fault {
            name: "link down",
            breaks: &link_down,
            mends: &link_up,
            reasons: &["timeout", "host unreachable"],
        },
    ];
    if workers == 1 {
        faults.extend([
            Fault {
                name: "HTTP 500",
                breaks: &status_500,
                mends: &ok,
                reasons: &["status 500"],
            },
            Fault {
                name: "wrong digest",
                breaks: &body,
                mends: &ok,
                reasons: &["digest mismatch"],
            },
            Fault {
                name: "MISC_CHECK exit 1",
                breaks: &misc_fail,
                mends: &misc_ok,
                reasons: &["exit code 1"],
            },
        ]);
    }
    let mut lines = Vec::new();
    for fault in &faults {
        lines.push(fault_in_a_stream(&setup, fault));
    }
    setup.stop_rvsd();
    let stats = setup.stats();
    let servers = &stats["services"][0]["real_servers"];
    assert_eq!(servers.as_array().map(Vec::len), Some(3), "{stats}");
    let kernel = &stats["ports"][1]["kernel"];
    for line in &lines {
        eprintln!("health, {workers} worker(s): {line}");
    }
    eprintln!("health, {workers} worker(s): kernel path on the servers' port: {kernel}");
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&misc_state);
}

#[test]
fn failures_are_confined_to_the_detection_window_1_worker() {
    failures_are_confined_to_the_detection_window(1);
}

#[test]
fn failures_are_confined_to_the_detection_window_2_workers() {
    failures_are_confined_to_the_detection_window(2);
}

/// misc_dynamic: each server's MISC_CHECK exit code sets its weight (code - 2), and wrr's
/// shares of new connections follow, to weight 0 (up, but no new connections).
#[test]
fn misc_dynamic_weights_set_the_shares() {
    let dir = common::TempDir::new("misc-dynamic");
    let script = dir.path("weight.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexit $(cat \"$1\" 2>/dev/null || echo 0)\n",
    )
    .unwrap();
    let code = |rs: usize| dir.path(&format!("code-rs{rs}"));
    let set = |codes: [u8; 3]| {
        for (i, c) in codes.iter().enumerate() {
            std::fs::write(code(i + 1), format!("{c}\n")).unwrap();
        }
    };
    set([4, 5, 6]); // weights 2, 3, 4 (the file says 1: every one changes)
    let setup = start("mdyn", 1, |s| {
        let mut s = s.replacen("lb_algo: \"rr\"", "lb_algo: \"wrr\"", 1);
        for rs in 1..=3 {
            let old = format!(
                "(address: \"203.0.113.1{rs}\", checks: [HTTP_GET(url: [(path: \"/health\", status_code: 200, digest: \"eff5bc1ef8ec9d03e640fc4370f5eacd\")])]),"
            );
            let new = format!(
                "(address: \"203.0.113.1{rs}\", checks: [MISC_CHECK(misc_path: \"/bin/sh {} {}\", misc_dynamic: true)]),",
                script.display(),
                code(rs).display()
            );
            s = s.replacen(&old, &new, 1);
        }
        s
    });
    assert!(
        wait_log(
            &setup,
            "of TCP 198.51.100.100:80: weight",
            3,
            Duration::from_secs(15)
        ),
        "three weights set:\n{}",
        setup.rvsd.log_text()
    );
    let url = format!("http://{VIP}/");
    let first = client(&setup, &["http", "--url", &url, "--count", "90"]);
    let shares = common::by_server(&first);
    set([6, 4, 2]); // weights 4, 2, 0
    assert!(
        wait_log(
            &setup,
            "of TCP 198.51.100.100:80: weight",
            6,
            Duration::from_secs(15)
        ),
        "three new weights:\n{}",
        setup.rvsd.log_text()
    );
    let second = client(&setup, &["http", "--url", &url, "--count", "60"]);
    let shares2 = common::by_server(&second);
    eprintln!(
        "misc_dynamic: weights 2/3/4 -> {shares:?} of 90 new connections; weights 4/2/0 -> \
         {shares2:?} of 60"
    );
    let near =
        |got: [u64; 3], want: [u64; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 1);
    assert!(near(shares, [20, 30, 40]), "{shares:?}");
    assert!(near(shares2, [40, 20, 0]) && shares2[2] == 0, "{shares2:?}");
}

/// Every server down: the sorry server takes the traffic and quorum_down runs once; one server
/// back: quorum_up runs once and the sorry server leaves.
#[test]
fn the_sorry_server_takes_over_when_all_are_down() {
    let dir = common::TempDir::new("sorry");
    let log_sh = dir.path("log.sh");
    std::fs::write(&log_sh, "#!/bin/sh\necho \"$2\" >> \"$1\"\n").unwrap();
    let marks = dir.path("quorum.log");
    let setup = start("sorry", 1, |s| {
        let rs3 = "                (address: \"203.0.113.13\", checks: [HTTP_GET(url: [(path: \"/health\", status_code: 200, digest: \"eff5bc1ef8ec9d03e640fc4370f5eacd\")])]),\n";
        assert!(s.contains(rs3));
        s.replacen(rs3, "", 1).replacen(
            "delay_before_retry: 1,",
            &format!(
                "delay_before_retry: 1,\n            sorry_server: (address: \"203.0.113.13\"),\n            quorum_up: \"/bin/sh {0} {1} up\",\n            quorum_down: \"/bin/sh {0} {1} down\",",
                log_sh.display(),
                marks.display()
            ),
            1,
        )
    });
    let lab = setup.lab.name.clone();
    let mut broke = 0.0;
    let mut back = 0.0;
    let events = stream_while(&setup, 16, || {
        std::thread::sleep(Duration::from_secs(3));
        broke = now();
        lab_rs(&lab, "rs1", "http-stop", None);
        lab_rs(&lab, "rs2", "http-stop", None);
        std::thread::sleep(Duration::from_secs(7));
        back = now();
        lab_rs(&lab, "rs1", "http-start", None);
    });
    let count = |from: f64, to: f64, server: &str| {
        events
            .iter()
            .filter(|e| e.1 && e.2 == server && e.0 >= from && e.0 < to)
            .count()
    };
    let settled = broke + WINDOW + SLACK;
    let during: Vec<&(f64, bool, String)> = events
        .iter()
        .filter(|e| e.0 >= settled && e.0 < back)
        .collect();
    let failed_late = events.iter().filter(|e| !e.1 && e.0 >= settled).count();
    let after = back + 1.0 + 1.0 + SLACK;
    let log = setup.rvsd.log_text();
    eprintln!(
        "sorry server: {} new connections while both servers were down, {} of them to rs3 (the \
         sorry server); failed after the window: {failed_late}; after rs1 came back: rs1 {}, \
         rs3 {}",
        during.len(),
        during.iter().filter(|e| e.1 && e.2 == "rs3").count(),
        count(after, f64::MAX, "rs1"),
        count(after, f64::MAX, "rs3")
    );
    assert!(!during.is_empty());
    assert!(
        during.iter().all(|e| e.1 && e.2 == "rs3"),
        "the sorry server takes all: {during:?}\n{log}"
    );
    assert_eq!(failed_late, 0, "{log}");
    assert!(count(after, f64::MAX, "rs1") > 0, "{log}");
    assert_eq!(
        count(after, f64::MAX, "rs3"),
        0,
        "the sorry server left:\n{log}"
    );
    let marks = std::fs::read_to_string(&marks).unwrap_or_default();
    assert_eq!(
        marks, "down\nup\n",
        "quorum_down once, then quorum_up once:\n{log}"
    );
}

/// inhibit_on_failure: a live connection on a server whose check fails (its process still
/// serves) keeps working; after a reload to expire_nodest_conn instead, it is reset at its
/// next packet. The checker's state survives the reload.
#[test]
fn inhibit_keeps_a_live_connection_and_expire_nodest_conn_resets_it() {
    let mut setup = start("inhibit", 1, |s| {
        s.replacen(
            "delay_before_retry: 1,",
            "delay_before_retry: 1,\n            inhibit_on_failure: true,",
            1,
        )
    });
    let second = |setup: &mut Setup, n: usize| -> (Value, String) {
        let ready = setup.tmp.path(&format!("ready-{n}"));
        let go = setup.tmp.path(&format!("go-{n}"));
        let url = format!("http://{VIP}/");
        let lab = setup.lab.name.clone();
        let setup_ref = &*setup;
        let (summary, server) = std::thread::scope(|scope| {
            let c = scope.spawn(|| {
                client(
                    setup_ref,
                    &[
                        "keepalive",
                        "--url",
                        &url,
                        "--ready-file",
                        ready.to_str().unwrap(),
                        "--go-file",
                        go.to_str().unwrap(),
                        "--timeout",
                        "30",
                    ],
                )
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while !ready.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let server = std::fs::read_to_string(&ready).unwrap().trim().to_owned();
            lab_rs(&lab, &server, "health-status", Some("500"));
            let addr = format!("203.0.113.1{}:80 of TCP", &server[2..]);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let log = setup_ref.rvsd.log_text();
                if log
                    .lines()
                    .filter(|l| l.contains(&addr) && l.contains(": down ("))
                    .count()
                    >= n
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            std::fs::write(&go, "go").unwrap();
            let summary = c.join().unwrap();
            lab_rs(&lab, &server, "health-ok", None);
            (summary, server)
        });
        (summary, server)
    };
    let (kept, server) = second(&mut setup, 1);
    eprintln!("inhibit_on_failure: {kept}");
    assert_eq!(kept["second"], "ok", "{kept}\n{}", setup.rvsd.log_text());
    assert_eq!(kept["second_server"], Value::from(server.clone()));
    assert!(setup
        .rvsd
        .log_text()
        .contains("weight 0 (inhibit_on_failure), its connections drain"));
    // Back up before the reload.
    assert!(wait_log(&setup, ": up (", 1, Duration::from_secs(10)));
    let file = setup.tmp.path("lab.ron");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("inhibit_on_failure: true,", "expire_nodest_conn: true,");
    std::fs::write(&file, text).unwrap();
    setup.rvsd.signal(1);
    assert!(wait_log(&setup, "reloaded ", 1, Duration::from_secs(10)));
    let (reset, _) = second(&mut setup, 2);
    eprintln!("expire_nodest_conn: {reset}");
    assert_eq!(
        reset["second"],
        "reset",
        "{reset}\n{}",
        setup.rvsd.log_text()
    );
    setup.stop_rvsd();
    let stats = setup.stats();
    let ended: u64 = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["connections_expired_nodest"].as_u64().unwrap())
        .sum();
    assert!(ended >= 1, "{stats}");
}

/// From the appliance's namespace, through the kernel interfaces: ping and curl to a real
/// server; a kernel listener on rvs's own address answers a client; a SYN flood at that
/// address does not stop forwarding (the flood is bounded at the ring, counted).
#[test]
fn the_kernel_path_serves_the_appliance_and_a_flood_does_not_stop_forwarding() {
    let mut setup = start("kpath", 1, |s| s);
    let lb = setup.lab.ns("lb");
    let ping = in_ns(
        &lb,
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", "203.0.113.11"],
    );
    let ping_text = String::from_utf8_lossy(&ping.stdout).into_owned();
    assert!(ping.status.success(), "{ping_text}");
    assert!(
        ping_text.contains(" 0% packet loss") && !ping_text.contains("DUP"),
        "{ping_text}"
    );
    let curl = in_ns(&lb, "curl", &["-s", "-m", "5", "http://203.0.113.12/"]);
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "rs2\n");
    // A kernel listener on rvs's own client-side address.
    let listener = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lb,
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "198.51.100.1",
        ])
        .current_dir(setup.tmp.path(""))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _listener = Kill(listener);
    std::fs::write(setup.tmp.path("hello.txt"), "hello from the appliance\n").unwrap();
    let client_ns = setup.lab.ns("client");
    let fetch = || {
        in_ns(
            &client_ns,
            "curl",
            &["-s", "-m", "3", "http://198.51.100.1:8080/hello.txt"],
        )
    };
    let mut answered = false;
    for _ in 0..50 {
        if String::from_utf8_lossy(&fetch().stdout) == "hello from the appliance\n" {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answered,
        "the kernel listener answers the client\n{}",
        setup.rvsd.log_text()
    );
    // The flood at the appliance's own address, while new connections to the VIP go on.
    let lb_mac = setup.lab.mac("lb0");
    let synflood = common::repo_root().join("scripts/lab/synflood.py");
    let started = setup.tmp.path("flood-started");
    let (flood, events) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            in_ns(
                &client_ns,
                "python3",
                &[
                    synflood.to_str().unwrap(),
                    "--iface",
                    "cl0",
                    "--dst-mac",
                    &lb_mac,
                    "--vip",
                    "198.51.100.1",
                    "--port",
                    "8080",
                    "--flows",
                    "50000",
                    "--count",
                    "400000",
                    "--rate",
                    "100000",
                    "--seconds",
                    "6",
                    "--started-file",
                    started.to_str().unwrap(),
                ],
            )
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let events = stream_while(&setup, 5, || {});
        (flood.join().unwrap(), events)
    });
    let flood: Value = serde_json::from_slice(&flood.stdout).unwrap_or(Value::Null);
    let ok = events.iter().filter(|e| e.1).count();
    setup.stop_rvsd();
    let stats = setup.stats();
    let port = &stats["ports"][0];
    eprintln!(
        "kernel path: ping {}; curl from lb ok; kernel listener ok; SYN flood at 198.51.100.1:8080 \
         {flood}: {ok}/{} new connections to the VIP answered meanwhile; client port to_kernel \
         {}, kernel_full {}, kernel interface {}",
        ping_text.lines().find(|l| l.contains("rtt")).unwrap_or(""),
        events.len(),
        port["to_kernel"],
        port["drops"]["kernel_full"],
        port["kernel"]
    );
    assert!(
        ok * 100 >= events.len() * 95,
        "forwarding went on during the flood: {ok}/{}",
        events.len()
    );
}

/// A MISC_CHECK script that hangs is killed at its misc_timeout (with what it started), and
/// counts as a failure; the processes do not pile up.
#[test]
fn a_hung_script_is_killed_at_its_timeout() {
    let dir = common::TempDir::new("hang");
    let script = dir.path("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
    let setup = start("hang", 1, |s| {
        let rs3 = "(address: \"203.0.113.13\", checks: [HTTP_GET";
        s.replacen(
            rs3,
            &format!(
                "(address: \"203.0.113.13\", checks: [MISC_CHECK(misc_path: \"/bin/sh {}\", misc_timeout: 1), HTTP_GET",
                script.display()
            ),
            1,
        )
    });
    assert!(
        wait_log(
            &setup,
            "203.0.113.13:80 of TCP 198.51.100.100:80: down (",
            1,
            Duration::from_secs(15)
        ),
        "{}",
        setup.rvsd.log_text()
    );
    std::thread::sleep(Duration::from_secs(5));
    let marker = script.display().to_string();
    let running = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                .unwrap_or(false)
        })
        .count();
    let log = setup.rvsd.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("203.0.113.13:80 of TCP 198.51.100.100:80: down ("))
        .unwrap_or("")
        .to_owned();
    eprintln!("hung MISC_CHECK: {line}; copies of the script alive 5 s later: {running}");
    assert!(line.contains("timeout"), "{line}");
    assert!(
        running <= 1,
        "killed at its timeout, not piling up: {running}"
    );
    let _ = Path::new(&marker);
}
