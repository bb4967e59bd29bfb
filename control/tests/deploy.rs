//! The bare-metal deployment: `deploy/systemd/rvsd.service` passes `systemd-analyze verify`,
//! and `scripts/rvs-prepare.sh --dry-run` reads the plan out of a configuration (hugepages,
//! the PCI devices to bind, vdevs left alone) and refuses the NIC the machine is reached
//! through. Nothing here changes the machine: the unit is verified from a scratch copy whose
//! programs are this build's, and the script runs against a fake sysfs.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rvs-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

const UNIT: &str = "deploy/systemd/rvsd.service";

/// The unit as written: the directives the deployment relies on.
#[test]
fn the_unit_says_what_the_deployment_needs() {
    let unit = std::fs::read_to_string(repo().join(UNIT)).unwrap();
    let lines: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for want in [
        "Type=notify",
        "ExecStartPre=/usr/local/bin/rvsd --check-config /etc/rvs/rvsd.ron",
        "ExecStartPre=/usr/local/sbin/rvs-prepare --config /etc/rvs/rvsd.ron",
        "ExecStart=/usr/local/bin/rvsd --config /etc/rvs/rvsd.ron",
        "ExecReload=/usr/local/bin/rvsadm reload",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "RuntimeDirectory=rvs",
        "RuntimeDirectoryMode=0700",
        "LimitMEMLOCK=infinity",
        "KillSignal=SIGTERM",
        "After=network-pre.target dev-hugepages.mount",
        "Before=bird.service frr.service",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&want), "{UNIT} lacks {want:?}");
    }
    // The control socket's directory is the one rvsadm and rvsd default to.
    assert_eq!(control::api::DEFAULT_SOCKET, "/run/rvs/rvsd.sock");
}

/// `systemd-analyze verify` on a copy of the unit whose programs exist here: this build's
/// rvsd, the repository's rvs-prepare.sh, and rvsadm (this build's if it has one, else a
/// stub). verify fails on a program that is not executable, and prints (exiting 0) unknown
/// keys, bad values and sections: no line may name the unit.
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !on_path("systemd-analyze") {
        eprintln!("SKIPPED: no systemd-analyze on this machine");
        return;
    }
    let scratch = Scratch::new("verify");
    let rvsadm = match option_env!("CARGO_BIN_EXE_rvsadm") {
        Some(built) => PathBuf::from(built),
        None => {
            let stub = scratch.write("bin/rvsadm", "#!/bin/sh\nexit 0\n");
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
            stub
        }
    };
    let prepare = repo().join("scripts/rvs-prepare.sh");
    let unit = std::fs::read_to_string(repo().join(UNIT))
        .unwrap()
        .replace("/usr/local/bin/rvsd", env!("CARGO_BIN_EXE_rvsd"))
        .replace("/usr/local/sbin/rvs-prepare", prepare.to_str().unwrap())
        .replace("/usr/local/bin/rvsadm", rvsadm.to_str().unwrap());
    assert!(
        !unit.contains("/usr/local/"),
        "a path left to rewrite:\n{unit}"
    );
    let copy = scratch.write("unit/rvsd.service", &unit);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let said = text(&out);
    eprintln!("systemd-analyze verify said: {said:?}");
    assert!(out.status.success(), "verify failed:\n{said}");
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("rvsd.service"))
        .collect();
    assert!(about_unit.is_empty(), "verify complains:\n{said}");

    // The check is real: a mistake in the same copy is caught.
    let broken = scratch.write(
        "broken/rvsd.service",
        &unit.replace("Type=notify\n", "Type=notify\nRestartSecs=5\n"),
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("RestartSecs"),
        "verify missed an unknown key: {}",
        text(&out)
    );
}

/// A fake sysfs: a 2 MiB hugepage pool with nothing reserved, and an Intel NIC's two ports
/// on ixgbe, each with its kernel interface named as given, in IOMMU groups of their own.
fn fake_sysfs(scratch: &Scratch, ports: &[(&str, &str)]) -> PathBuf {
    let sys = scratch.path("sys");
    let pool = "sys/kernel/mm/hugepages/hugepages-2048kB";
    for file in ["nr_hugepages", "free_hugepages", "resv_hugepages"] {
        scratch.write(&format!("{pool}/{file}"), "0\n");
    }
    std::fs::create_dir_all(sys.join("bus/pci/drivers/ixgbe")).unwrap();
    for (i, (address, iface)) in ports.iter().enumerate() {
        let dev = sys.join("bus/pci/devices").join(address);
        std::fs::create_dir_all(dev.join("net").join(iface)).unwrap();
        std::fs::write(dev.join("vendor"), "0x8086\n").unwrap();
        symlink("../../drivers/ixgbe", dev.join("driver")).unwrap();
        let group = sys.join(format!("kernel/iommu_groups/{}/devices", 20 + i));
        std::fs::create_dir_all(&group).unwrap();
        symlink(
            format!("../../../../kernel/iommu_groups/{}", 20 + i),
            dev.join("iommu_group"),
        )
        .unwrap();
        symlink(
            format!("../../../../bus/pci/devices/{address}"),
            group.join(address),
        )
        .unwrap();
    }
    sys
}

/// `rvs-prepare.sh --dry-run CONFIG` against `sysfs` (None: the machine's own).
fn dry_run(config: &Path, sysfs: Option<&Path>, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(repo().join("scripts/rvs-prepare.sh"));
    cmd.arg("--dry-run").arg("--config").arg(config);
    cmd.env_remove("SSH_CONNECTION");
    if let Some(sys) = sysfs {
        // Never run: a dry run only looks for it.
        cmd.env("RVS_SYSFS", sys).env("RVS_DEVBIND", "/bin/false");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run rvs-prepare.sh");
    (out.status.code().unwrap_or(-1), text(&out))
}

/// A real run against a fake sysfs, with `devbind` as dpdk-devbind.py.
fn real_run(config: &Path, sysfs: &Path, devbind: &Path) -> (i32, String) {
    let out = Command::new(repo().join("scripts/rvs-prepare.sh"))
        .arg(config)
        .env_remove("SSH_CONNECTION")
        .env("RVS_SYSFS", sysfs)
        .env("RVS_DEVBIND", devbind)
        .output()
        .expect("run rvs-prepare.sh");
    (out.status.code().unwrap_or(-1), text(&out))
}

fn plan_lines(said: &str) -> Vec<&str> {
    said.lines()
        .filter_map(|l| l.strip_prefix("rvs-prepare: plan: "))
        .collect()
}

#[test]
fn the_bare_metal_plan_reserves_hugepages_and_binds_both_ports() {
    let scratch = Scratch::new("plan");
    let sys = fake_sysfs(
        &scratch,
        &[("0000:03:00.0", "enp3s0f0"), ("0000:03:00.1", "enp3s0f1")],
    );
    let config = repo().join("configs/bare-metal.ron");
    let (code, said) = dry_run(&config, Some(&sys), &[]);
    eprintln!("{said}");
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("eal.memory_mb 4096 needs 2048 pages of 2 MiB"),
        "{said}"
    );
    let plan = plan_lines(&said);
    assert!(
        plan.iter()
            .any(|l| l.starts_with("set nr_hugepages 0 -> 2048 ")),
        "{said}"
    );
    let binds: Vec<&&str> = plan.iter().filter(|l| l.starts_with("bind ")).collect();
    assert_eq!(
        binds,
        [
            &"bind 0000:03:00.0 to vfio-pci",
            &"bind 0000:03:00.1 to vfio-pci"
        ],
        "{said}"
    );
    assert!(plan.contains(&"load vfio-pci"), "{said}");
    assert!(said.contains("dry run:") && said.contains("nothing changed"));

    // Already done: nothing left to plan for the NICs (idempotent).
    for port in ["0000:03:00.0", "0000:03:00.1"] {
        let dev = sys.join("bus/pci/devices").join(port);
        std::fs::remove_file(dev.join("driver")).unwrap();
        symlink("../../drivers/vfio-pci", dev.join("driver")).unwrap();
        std::fs::remove_dir_all(dev.join("net")).unwrap();
    }
    std::fs::create_dir_all(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
    let pool = sys.join("kernel/mm/hugepages/hugepages-2048kB");
    std::fs::write(pool.join("nr_hugepages"), "2048\n").unwrap();
    std::fs::write(pool.join("free_hugepages"), "2048\n").unwrap();
    let (code, said) = dry_run(&config, Some(&sys), &[]);
    assert_eq!(code, 0, "{said}");
    let plan = plan_lines(&said);
    assert!(
        plan.iter().all(|l| l.starts_with("mount hugetlbfs")),
        "{said}"
    );
    assert!(
        said.contains("ok: 0000:03:00.0 already bound to vfio-pci"),
        "{said}"
    );
    assert!(said.contains("ok: hugepages: enough"), "{said}");
}

/// On this machine itself (no such PCI devices): the plan says so and fails, as the real
/// run would, before changing anything.
#[test]
fn absent_devices_are_a_problem_and_nothing_changes() {
    let config = repo().join("configs/bare-metal.ron");
    let sys = Path::new("/sys/bus/pci/devices/0000:03:00.0");
    if sys.exists() {
        eprintln!("SKIPPED: this machine has a PCI device at 0000:03:00.0");
        return;
    }
    let (code, said) = dry_run(&config, None, &[]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("problem: no PCI device 0000:03:00.0"),
        "{said}"
    );
    assert!(said.contains("nothing changed"), "{said}");
}

#[test]
fn a_vdev_only_config_binds_nothing() {
    let scratch = Scratch::new("vdev");
    let sys = fake_sysfs(&scratch, &[]);
    let config = scratch.write(
        "vdev.ron",
        r#"// A lab appliance on af_packet: /* nothing */ to bind.
(
    eal: (memory_mb: 256, hugepages: false),
    workers: [0],
    ports: [
        (name: "client", device: "net_af_packet0,iface=lb0", addresses: ["198.51.100.1/24"]),
        // (name: "old", device: "0000:05:00.0"),
        (name: "servers", device: "net_af_packet1,iface=lb1", addresses: ["203.0.113.1/24"]),
    ],
    /* ports: [(name: "x", device: "0000:06:00.0")], */
    services: [(protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, real_servers: [
        (address: "203.0.113.11", checks: [HTTP_GET(url: [(path: "//device: \"0000:07:00.0\"")])]),
    ])],
)
"#,
    );
    let (code, said) = dry_run(&config, Some(&sys), &[]);
    eprintln!("{said}");
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("2 port(s)"), "{said}");
    assert!(
        said.contains("eal.hugepages is false: none needed"),
        "{said}"
    );
    assert!(
        said.contains("skip net_af_packet0,iface=lb0: a vdev"),
        "{said}"
    );
    assert!(said.contains("nothing to bind"), "{said}");
    assert_eq!(plan_lines(&said), Vec::<&str>::new(), "{said}");
    assert!(
        !said.contains("0000:0"),
        "a commented device was read:\n{said}"
    );

    // The lab's NAT example: vdevs with hugepages, 128 pages for 256 MiB.
    let (code, said) = dry_run(&repo().join("configs/lab-nat.ron"), Some(&sys), &[]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("needs 128 pages of 2 MiB"), "{said}");
    assert!(plan_lines(&said).iter().all(|l| !l.starts_with("bind")));
}

/// The NIC the machine is reached through stays the kernel's: the interface with the default
/// route, or one whose address an ssh session uses, is refused, with the reason, and then
/// nothing is done at all (not even the other port).
#[test]
fn the_management_nic_is_refused() {
    let routes = Command::new("ip")
        .args(["-o", "-4", "route", "show", "default"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let config = repo().join("configs/bare-metal.ron");
    if let Some(dev) = routes.split_whitespace().skip_while(|w| *w != "dev").nth(1) {
        let scratch = Scratch::new("route");
        let sys = fake_sysfs(
            &scratch,
            &[("0000:03:00.0", "enp3s0f0"), ("0000:03:00.1", dev)],
        );
        let (code, said) = dry_run(&config, Some(&sys), &[]);
        eprintln!("{said}");
        assert_eq!(code, 1, "{said}");
        assert!(
            said.contains(&format!(
                "problem: 0000:03:00.1 is {dev}, which carries the default route"
            )),
            "{said}"
        );
        assert!(said.contains("nothing changed"), "{said}");
    } else {
        eprintln!("no default route here: that case is not tried");
    }
    // `lo` has an address and no route in the main table: the ssh session's address decides.
    let scratch = Scratch::new("ssh");
    let sys = fake_sysfs(
        &scratch,
        &[("0000:03:00.0", "enp3s0f0"), ("0000:03:00.1", "lo")],
    );
    let (code, said) = dry_run(
        &config,
        Some(&sys),
        &[("SSH_CONNECTION", "192.0.2.7 50123 127.0.0.1 22")],
    );
    eprintln!("{said}");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("problem: 0000:03:00.1 is lo, whose address 127.0.0.1 an ssh session uses"),
        "{said}"
    );
}

/// The steps themselves, against a fake sysfs and a fake dpdk-devbind.py that moves the
/// device to vfio-pci (or, broken, leaves it): each binding is checked afterwards, and a
/// second run finds nothing to do. Hugepages off: the kernel's pool is not faked.
#[test]
fn a_real_run_binds_checks_and_is_idempotent() {
    let scratch = Scratch::new("real");
    let sys = fake_sysfs(
        &scratch,
        &[("0000:03:00.0", "enp3s0f0"), ("0000:03:00.1", "enp3s0f1")],
    );
    std::fs::create_dir_all(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
    let config = scratch.write(
        "rvsd.ron",
        &std::fs::read_to_string(repo().join("configs/bare-metal.ron"))
            .unwrap()
            .replace("hugepages: true", "hugepages: false")
            // The short form is a PCI address too.
            .replace("\"0000:03:00.1\"", "\"03:00.1\""),
    );
    let script = |name: &str, body: &str| {
        let path = scratch.write(name, &format!("#!/bin/sh\n{body}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let log = scratch.path("devbind.log");
    let broken = script(
        "devbind-broken",
        &format!("echo \"$@\" >> {}\n", log.display()),
    );
    let (code, said) = real_run(&config, &sys, &broken);
    eprintln!("{said}");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("0000:03:00.0 is still on ixgbe after dpdk-devbind.py"),
        "{said}"
    );
    let devbind = script(
        "devbind",
        &format!(
            "echo \"$@\" >> {log}\nfor d in \"$@\"; do case $d in --*) ;; *)\n\
             ln -sfn ../../drivers/vfio-pci \"$RVS_SYSFS/bus/pci/devices/$d/driver\"\n\
             rm -r \"$RVS_SYSFS/bus/pci/devices/$d/net\";; esac; done\n",
            log = log.display()
        ),
    );
    let (code, said) = real_run(&config, &sys, &devbind);
    eprintln!("{said}");
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("done: 0000:03:00.0 bound to vfio-pci"),
        "{said}"
    );
    assert!(
        said.contains("done: 0000:03:00.1 bound to vfio-pci"),
        "{said}"
    );
    assert!(said.contains("rvs-prepare: ready"), "{said}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        "--bind=vfio-pci 0000:03:00.0\n\
         --bind=vfio-pci 0000:03:00.0\n--bind=vfio-pci 0000:03:00.1\n",
        "the broken run stopped at the first device"
    );
    let (code, said) = real_run(&config, &sys, &broken);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("ok: 0000:03:00.1 already bound to vfio-pci"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        calls,
        "a second run binds nothing"
    );
}

#[test]
fn the_script_refuses_bad_usage() {
    let script = repo().join("scripts/rvs-prepare.sh");
    let out = Command::new(&script)
        .args(["--dry-run", "--config", "/nonexistent/rvsd.ron"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = Command::new(&script).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = Command::new(&script).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(text(&out).contains("--dry-run"));
}

/// shellcheck, where it is installed.
#[test]
fn the_script_is_shellcheck_clean() {
    if !on_path("shellcheck") {
        eprintln!("SKIPPED: no shellcheck (apt-get install shellcheck)");
        return;
    }
    let out = Command::new("shellcheck")
        .arg(repo().join("scripts/rvs-prepare.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
