//! The Environment Abstraction Layer: one per process, initialised from rvs's own settings,
//! cleaned up (hugepages released, runtime directory removed) when dropped.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::DpdkError;

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Free 2 MiB hugepages, if hugetlbfs is mounted (0 otherwise): whether `hugepages: true`
/// can work here.
pub fn free_hugepages() -> u64 {
    let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains(" hugetlbfs "));
    if !mounted {
        return 0;
    }
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The process that holds EAL's lock on the shared configuration of `file_prefix`
/// (`/var/run/dpdk/PREFIX/config`, or under `$XDG_RUNTIME_DIR` for other users than root),
/// if another one does: a second primary process with the same prefix cannot start, and EAL
/// only says so at its own log level. Read from `/proc/locks`, which names the holder of every
/// POSIX lock by the locked file's device and inode.
pub fn prefix_in_use(file_prefix: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !is_root() => PathBuf::from(dir).join("dpdk"),
        _ => PathBuf::from("/var/run/dpdk"),
    };
    let meta = std::fs::metadata(base.join(file_prefix).join("config")).ok()?;
    let dev = meta.dev();
    // Linux's encoding of st_dev (new_encode_dev); /proc/locks prints major:minor in hex.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: POSIX  ADVISORY  WRITE 4128 00:19:1234 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == file)?;
        let pid: u32 = fields.get(at.checked_sub(1)?)?.parse().ok()?;
        (fields.get(1) == Some(&"POSIX") && pid != std::process::id()).then_some(pid)
    })
}

/// Whether the real user is root, as EAL decides where its runtime directory goes.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// What rvs tells EAL. Built from the config; `to_args` renders the command line.
#[derive(Debug, Clone)]
pub struct EalArgs {
    /// Distinct per instance so that several DPDK processes can share a machine.
    pub file_prefix: String,
    /// Upper bound of the memory EAL reserves, in MiB.
    pub memory_mb: u32,
    /// `false`: run on ordinary pages (`--no-huge --no-shconf`), slower; for tests and labs.
    pub hugepages: bool,
    /// CPUs the main (control) thread may run on; it is not pinned hot.
    pub control_cpus: Vec<usize>,
    /// PCI devices to probe at start (`-a`). With none, EAL does not scan the PCI bus.
    pub pci_allow: Vec<String>,
    /// Virtual devices to create at start (`--vdev`); rvsd itself hot-plugs its ports instead,
    /// so that an error names the port that failed.
    pub vdevs: Vec<String>,
    /// Anything else, appended verbatim (e.g. "--log-level=pmd.net.memif:debug").
    pub extra: Vec<String>,
    /// DPDK telemetry's socket under the runtime directory (`dpdk-telemetry.py -f PREFIX`):
    /// rvsd registers its `/rvs/...` commands there; tools and tests leave it off.
    pub telemetry: bool,
}

impl EalArgs {
    pub fn new(file_prefix: impl Into<String>) -> Self {
        EalArgs {
            file_prefix: file_prefix.into(),
            memory_mb: 256,
            hugepages: true,
            control_cpus: Vec::new(),
            pci_allow: Vec::new(),
            vdevs: Vec::new(),
            extra: Vec::new(),
            telemetry: false,
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["rvs".to_owned()];
        // lcore 0 is the control thread; workers register themselves later and take the
        // following lcore ids, so EAL never launches threads of its own onto worker cores.
        if !self.control_cpus.is_empty() {
            let cpus: Vec<String> = self.control_cpus.iter().map(usize::to_string).collect();
            args.push(format!("--lcores=0@({})", cpus.join(",")));
        }
        args.push(format!("--file-prefix={}", self.file_prefix));
        args.push(format!("-m{}", self.memory_mb));
        if self.hugepages {
            // Unlinked at once: a crash leaves no hugepage file behind.
            args.push("--huge-unlink".to_owned());
        } else {
            args.push("--no-huge".to_owned());
            args.push("--no-shconf".to_owned());
        }
        if self.pci_allow.is_empty() {
            args.push("--no-pci".to_owned());
        }
        for pci in &self.pci_allow {
            args.push(format!("-a{pci}"));
        }
        for vdev in &self.vdevs {
            args.push(format!("--vdev={vdev}"));
        }
        if !self.telemetry {
            args.push("--no-telemetry".to_owned());
        }
        // EAL's start-up banner is noise in an operator's log; its warnings and errors stay.
        args.push("--log-level=lib.eal:notice".to_owned());
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// The initialised EAL. Dropping it calls `rte_eal_cleanup` and removes the runtime
/// directory, so an instance leaves nothing under /var/run/dpdk or /dev/hugepages.
#[derive(Debug)]
pub struct Eal {
    runtime_dir: Option<PathBuf>,
}

impl Eal {
    /// Initialises EAL. Only once per process: DPDK cannot be initialised again, even after
    /// cleanup, so a second call is refused.
    pub fn init(args: &EalArgs) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new(
                "rte_eal_init: EAL already initialised in this process",
                114,
            ));
        }
        let argv = args.to_args();
        let owned: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| DpdkError::new("rte_eal_init: argument contains a NUL byte", 22))?;
        let mut ptrs: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        ptrs.push(std::ptr::null_mut());
        // SAFETY: argv is a NULL-terminated array of NUL-terminated strings that outlive the
        // call (`owned`); EAL may permute the pointer array, which we own and never reuse.
        let ret = unsafe { dpdk_sys::rte_eal_init(owned.len() as i32, ptrs.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "rte_eal_init({})",
                argv[1..].join(" ")
            )));
        }
        // SAFETY: after a successful init, rte_eal_get_runtime_dir returns a static string.
        let dir = unsafe { CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        let dir = PathBuf::from(dir.to_string_lossy().into_owned());
        Ok(Eal {
            runtime_dir: (!dir.as_os_str().is_empty()).then_some(dir),
        })
    }

    pub fn runtime_dir(&self) -> Option<&std::path::Path> {
        self.runtime_dir.as_deref()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by `init`; every port, mempool and registered thread
        // that used it is gone by now (they borrow or outlive nothing of the Eal's).
        unsafe { dpdk_sys::rte_eal_cleanup() };
        if let Some(dir) = &self.runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
