//! rvs on DPDK: safe wrappers over `dpdk-sys` (EAL, mempool, mbuf ownership, ports and their
//! queues, rings, telemetry, the registration of pinned worker threads), `impl Frame for Mbuf`,
//! and the worker loop that runs the engine (`dataplane`, which knows nothing of DPDK) on one
//! pinned core. The only crate besides `dpdk-sys` with `unsafe`; every block says why it holds.

pub mod cpu;
pub mod eal;
pub mod flow;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod telemetry;
pub mod worker;

use std::ffi::CStr;
use std::fmt;

pub use eal::{Eal, EalArgs};
pub use flow::{FlowRule, QueueRule};
pub use lcore::LcoreRegistration;
pub use mbuf::{Burst, Mbuf, BURST_SIZE};
pub use mempool::Mempool;
pub use port::{
    DeviceInfo, LinkStatus, Port, PortSettings, PortStats, RssSettings, RxQueue, TxQueue,
};
pub use ring::MbufRing;

/// A DPDK call that failed: what was attempted and DPDK's reason (`rte_strerror`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub what: String,
    pub errno: i32,
}

impl DpdkError {
    pub fn new(what: impl Into<String>, errno: i32) -> Self {
        DpdkError {
            what: what.into(),
            errno: errno.abs(),
        }
    }

    /// A failure DPDK gave no reason for (errno 0); the driver usually logged one itself.
    pub fn without_reason(what: impl Into<String>) -> Self {
        DpdkError {
            what: what.into(),
            errno: 0,
        }
    }

    /// For calls that report failure through `rte_errno`.
    pub fn from_rte_errno(what: impl Into<String>) -> Self {
        // SAFETY: rvs_errno reads this thread's rte_errno; no preconditions.
        let errno = unsafe { dpdk_sys::rvs_errno() };
        DpdkError::new(what, errno)
    }

    pub fn reason(&self) -> String {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
        // string that stays valid until the next call on this thread; we copy it at once.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.errno)) };
        text.to_string_lossy().into_owned()
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            return f.write_str(&self.what);
        }
        write!(f, "{}: {} (errno {})", self.what, self.reason(), self.errno)
    }
}

impl std::error::Error for DpdkError {}

/// The DPDK version string this binary runs against, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(dpdk_sys::rte_version()) };
    text.to_string_lossy().into_owned()
}

/// How this binary links DPDK: "static" or "shared".
pub const LINK_MODE: &str = dpdk_sys::LINK_MODE;
