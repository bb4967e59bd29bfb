//! Shared by the tests that run the real rvsd binary: a lab of network namespaces and an rvsd
//! process, each torn down by `Drop` (also when an assertion fails and the test unwinds).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The rvsd under test: this build's, or `RVS_BIN` (the test command points it at the
/// statically linked release binary for a second pass).
pub fn rvsd_binary() -> PathBuf {
    match std::env::var_os("RVS_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_rvsd")),
    }
}

/// Names the labs and DPDK prefixes of this run (`RVS_TEST_RUN` from scripts/test.sh, so
/// that its trap can find what a killed test left), else the test process's pid.
pub fn run_tag() -> String {
    std::env::var("RVS_TEST_RUN").unwrap_or_else(|_| format!("p{}", std::process::id()))
}

/// Whether DPDK may use hugepages here (else the tests run EAL with --no-huge).
pub fn hugepages_free() -> bool {
    match std::env::var("RVS_TEST_HUGEPAGES").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => dpdk::eal::free_hugepages() >= 256,
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rvs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RVS_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

/// Runs a command inside network namespace `ns`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    run(Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args))
}

/// The lab of `scripts/lab.sh`, brought down on drop.
pub struct Lab {
    pub name: String,
}

impl Lab {
    pub fn up(name: &str) -> Lab {
        let script = repo_root().join("scripts/lab.sh");
        // A lab of that name left by a killed run of this test is ours to remove.
        let _ = run(Command::new(&script).args(["down", name]));
        let out = run(Command::new(&script).args(["up", name]));
        assert!(
            out.status.success(),
            "lab.sh up {name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Lab {
            name: name.to_owned(),
        }
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// A counter of interface `iface` in namespace `role` (`tx_packets`, `rx_packets`, ...).
    pub fn iface_counter(&self, role: &str, iface: &str, counter: &str) -> u64 {
        let out = in_ns(
            &self.ns(role),
            "cat",
            &[&format!("/sys/class/net/{iface}/statistics/{counter}")],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("interface counter")
    }

    /// Runs `lab.sh ARGS... NAME`-style subcommands (`servers start`, `mode nat`).
    pub fn lab_sh(&self, verb: &str, arg: &str) {
        let out =
            run(Command::new(repo_root().join("scripts/lab.sh")).args([verb, &self.name, arg]));
        assert!(
            out.status.success(),
            "lab.sh {verb} {} {arg}:\n{}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `lab.sh rs NAME RS ACTION [VALUE]`: one real server's trouble (http-stop, link-down,
    /// health-status 500, ...).
    pub fn rs(&self, rs: &str, action: &str, value: Option<&str>) {
        lab_rs(&self.name, rs, action, value);
    }

    /// The lab's state directory (server logs, decapsulator statistics).
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/rvs-lab/{}.d", self.name))
    }

    pub fn mac(&self, iface: &str) -> String {
        let out =
            run(Command::new(repo_root().join("scripts/lab.sh")).args(["mac", &self.name, iface]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/lab.sh"))
            .args(["down", &self.name])
            .stdout(Stdio::null())
            .status();
    }
}

/// [`Lab::rs`] by the lab's name (for closures that outlive a borrow of the lab).
pub fn lab_rs(lab: &str, rs: &str, action: &str, value: Option<&str>) {
    let mut cmd = Command::new(repo_root().join("scripts/lab.sh"));
    cmd.args(["rs", lab, rs, action]);
    if let Some(v) = value {
        cmd.arg(v);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "lab.sh rs {lab} {rs} {action} {value:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An rvsd process; SIGTERM then, if it lingers, SIGKILL on drop.
pub struct Rvsd {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Rvsd {
    /// Starts rvsd with `config`, in network namespace `ns` if given, logging to `log`.
    pub fn start(ns: Option<&str>, config: &Path, log: &Path) -> Rvsd {
        let log_file = std::fs::File::create(log).expect("log file");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(rvsd_binary());
                c
            }
            None => Command::new(rvsd_binary()),
        };
        cmd.arg("--config").arg(config).env("RVS_LOG", "info");
        cmd.stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rvsd: {e}"));
        Rvsd {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `needle`, or the process exits, or `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    return self.log_text().contains(needle);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // `ip netns exec` execs rvsd in place, so the child's pid is rvsd's.
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// SIGTERM and wait up to `timeout` for the exit.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(15);
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if self.child.is_some() && self.stop(Duration::from_secs(5)).is_none() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The lab's VIP (configs/lab-*.ron).
pub const VIP: &str = "198.51.100.100";

/// The last core this process may use: rvsd's worker in the lab tests.
pub fn last_core() -> usize {
    core_affinity::get_core_ids()
        .and_then(|c| c.last().map(|c| c.id))
        .unwrap_or(0)
}

/// A running mode: its lab, rvsd and files. Dropped in reverse: rvsd stops, then the lab.
pub struct Setup {
    pub rvsd: Rvsd,
    pub lab: Lab,
    pub tmp: TempDir,
    pub prefix: String,
    pub mode: &'static str,
    /// rvsd's workers.
    pub workers: usize,
    /// rvsd's starts so far (each logs to its own file).
    pub starts: usize,
}

/// A lab named after `tag` (short: it names namespaces), its real servers set up for `mode`,
/// and rvsd on `configs/lab-MODE.ron` as `edit` changes it, running and with the three real
/// servers resolved.
pub fn start(tag: &str, mode: &'static str, edit: impl Fn(String) -> String) -> Setup {
    start_workers(tag, mode, 1, edit)
}

/// [`start`] with `workers` workers: the machine's cores in turn (sharing them when there are
/// more workers than cores), and a queue pair per worker on each `net_af_packet` port, whose
/// kernel fanout spreads flows by its own hash, so that replies often reach a worker that does
/// not own them.
pub fn start_workers(
    tag: &str,
    mode: &'static str,
    workers: usize,
    edit: impl Fn(String) -> String,
) -> Setup {
    start_config(tag, mode, &format!("configs/lab-{mode}.ron"), workers, edit)
}

/// [`start_workers`] on another of the repository's configurations (`file`, relative to its
/// root) written for the lab in `mode`.
pub fn start_config(
    tag: &str,
    mode: &'static str,
    file: &str,
    workers: usize,
    edit: impl Fn(String) -> String,
) -> Setup {
    let run = run_tag();
    let lab = Lab::up(&format!("e2e{run}{tag}"));
    lab.lab_sh("servers", "start");
    lab.lab_sh("mode", mode);
    let tmp = TempDir::new(&format!("{tag}-{mode}"));
    let prefix = format!("rvs-e2e-{tag}-{mode}-{run}");
    let source = std::fs::read_to_string(repo_root().join(file))
        .unwrap()
        .replace("\"rvs-lab\"", &format!("{prefix:?}"))
        .replace(
            "\"/run/rvs/lab-stats.json\"",
            &format!("{:?}", tmp.path("stats.json").display().to_string()),
        )
        .replace(
            "hugepages: true",
            &format!("hugepages: {}", hugepages_free()),
        )
        .replace(
            "workers: [1]",
            &format!("{}, stats_interval_ms: 200", workers_field(workers)),
        );
    let source = if workers > 1 {
        source
            .replace("iface=lb0\"", &format!("iface=lb0,qpairs={workers}\""))
            .replace("iface=lb1\"", &format!("iface=lb1,qpairs={workers}\""))
    } else {
        source
    };
    let config = tmp.path("lab.ron");
    std::fs::write(&config, edit(source)).unwrap();
    let rvsd = start_rvsd(&lab, &tmp, 0);
    Setup {
        rvsd,
        lab,
        tmp,
        prefix,
        mode,
        workers,
        starts: 1,
    }
}

/// `workers: [...]` for `n` workers on this machine's cores, last core first (the first is the
/// busiest with everything else), in turn; `oversubscribe` when they are fewer than `n`.
pub fn workers_field(n: usize) -> String {
    let mut cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    cores.reverse();
    if cores.is_empty() {
        cores.push(0);
    }
    let list: Vec<String> = (0..n).map(|i| cores[i % cores.len()].to_string()).collect();
    let shared = if n > cores.len() {
        ", oversubscribe: true"
    } else {
        ""
    };
    format!("workers: [{}]{shared}", list.join(", "))
}

/// Starts rvsd in the lab on `tmp/lab.ron`, logging to `tmp/rvsd-N.log` (`rvsd.log` for the
/// first), and waits until it runs and has resolved the three real servers with its own ARP.
fn start_rvsd(lab: &Lab, tmp: &TempDir, n: usize) -> Rvsd {
    let log = if n == 0 {
        tmp.path("rvsd.log")
    } else {
        tmp.path(&format!("rvsd-{n}.log"))
    };
    let mut rvsd = Rvsd::start(Some(&lab.ns("lb")), &tmp.path("lab.ron"), &log);
    assert!(
        rvsd.wait_for_log("rvsd running", Duration::from_secs(60)),
        "rvsd did not start:\n{}",
        rvsd.log_text()
    );
    let resolved = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        rvsd.log_text().matches("neighbor 203.0.113.1").count() >= 3
    });
    assert!(resolved, "real servers not resolved:\n{}", rvsd.log_text());
    rvsd
}

impl Setup {
    /// Stops rvsd with SIGTERM; it must exit cleanly within 20 s.
    pub fn stop_rvsd(&mut self) {
        let status = self
            .rvsd
            .stop(Duration::from_secs(20))
            .expect("rvsd stops on SIGTERM");
        assert!(
            status.success(),
            "rvsd exit {status}:\n{}",
            self.rvsd.log_text()
        );
    }

    /// Stops rvsd cleanly and starts it again on the same configuration.
    pub fn restart(&mut self) {
        self.stop_rvsd();
        self.rvsd = start_rvsd(&self.lab, &self.tmp, self.starts);
        self.starts += 1;
    }

    /// The stats file rvsd wrote (at exit, once stopped).
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.tmp.path("stats.json")).unwrap())
            .unwrap()
    }
}

/// Runs scripts/lab/client.py in the client namespace and returns its JSON summary; the
/// client must succeed.
pub fn client(setup: &Setup, args: &[&str]) -> serde_json::Value {
    let (summary, ok) = client_any(setup, args);
    assert!(
        ok,
        "client.py {args:?} failed: {summary}\nrvsd log:\n{}",
        setup.rvsd.log_text()
    );
    summary
}

/// As [`client`], whatever its exit status (returned beside the summary).
pub fn client_any(setup: &Setup, args: &[&str]) -> (serde_json::Value, bool) {
    let script = repo_root().join("scripts/lab/client.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = in_ns(&setup.lab.ns("client"), "python3", &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "client.py {args:?}: {e}\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (summary, out.status.success())
}

/// Requests per real server of a client summary.
pub fn by_server(summary: &serde_json::Value) -> [u64; 3] {
    let counts = &summary["by_server"];
    ["rs1", "rs2", "rs3"].map(|rs| counts[rs].as_u64().unwrap_or(0))
}

/// The Unix time now, in seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The Unix time of a log line's RFC 3339 UTC stamp (`2026-12-05T03:36:47.526540Z ...`).
pub fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut t = time.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let min: f64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}
