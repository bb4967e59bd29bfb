//! Ethernet ports: probing a device by its devargs, configuring N RX and M TX queues (RSS
//! where the driver has it), link status and statistics, and the per-queue handles that
//! workers own.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Burst, DpdkError, Mempool};

/// What the driver says it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash types the device supports; 0 means no RSS.
    pub rss_offloads: u64,
    /// Length of its RSS key in bytes (0: not settable), and of its redirection table.
    pub hash_key_size: u8,
    pub reta_size: u16,
}

/// RSS hash fields (`RTE_ETH_RSS_*`) rvs asks for, as plain `u64` flags.
pub const RSS_IPV4_TCP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP as u64;
pub const RSS_IPV4_UDP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_UDP as u64;
pub const RSS_L3_SRC_ONLY: u64 = dpdk_sys::RTE_ETH_RSS_L3_SRC_ONLY as u64;
pub const RSS_L3_DST_ONLY: u64 = dpdk_sys::RTE_ETH_RSS_L3_DST_ONLY;
pub const RSS_L4_SRC_ONLY: u64 = dpdk_sys::RTE_ETH_RSS_L4_SRC_ONLY;
pub const RSS_L4_DST_ONLY: u64 = dpdk_sys::RTE_ETH_RSS_L4_DST_ONLY;

/// RSS as rvs programs it: its key, the fields hashed (`RTE_ETH_RSS_*`), and a redirection
/// table of `i mod queues` (see `Port::spread_reta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSettings {
    pub key: Vec<u8>,
    pub hash_fields: u64,
}

/// How a port is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub promiscuous: bool,
    /// RSS with rvs's own key and fields; `None`: the driver's key over addresses and ports.
    pub rss: Option<RssSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// The device's own counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the device because no RX descriptor was free (rvs too slow).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

/// A configured port. Stopped and closed when dropped.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    info: DeviceInfo,
    settings: PortSettings,
    started: bool,
    queues_taken: AtomicBool,
}

fn check(ret: i32, what: impl FnOnce() -> String) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::new(what(), ret))
    } else {
        Ok(())
    }
}

impl Port {
    /// Creates (vdev) or attaches (PCI) the device named by `devargs`, e.g.
    /// `net_af_packet0,iface=lb0` or `0000:03:00.0`, and returns its port id.
    pub fn probe(devargs: &str) -> Result<u16, DpdkError> {
        let name = device_name(devargs);
        if let Some(id) = Port::find(name) {
            return Ok(id);
        }
        let cargs = CString::new(devargs).map_err(|_| DpdkError::new("devargs has a NUL", 22))?;
        // SAFETY: EAL is initialised; cargs is a valid C string for the call.
        let ret = unsafe { dpdk_sys::rte_dev_probe(cargs.as_ptr()) };
        match ret {
            0.. => {}
            // -1 is the bus's "the driver refused": the driver logged its own reason above.
            -1 => {
                return Err(DpdkError::without_reason(format!(
                    "cannot open device {devargs:?} (the driver refused it; its reason is logged above)"
                )))
            }
            _ => return Err(DpdkError::new(format!("cannot open device {devargs:?}"), ret)),
        }
        Port::find(name).ok_or_else(|| {
            DpdkError::new(
                format!("device {devargs:?} probed but is not an ethernet port"),
                19,
            )
        })
    }

    /// Creates a `net_ring` ethdev whose queue i receives from `rx[i]` and transmits into
    /// `tx[i]`: a port the caller can feed and drain in-process (tests, benchmarks).
    pub fn from_rings(
        name: &str,
        rx: &[&super::MbufRing],
        tx: &[&super::MbufRing],
    ) -> Result<u16, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("port name has a NUL", 22))?;
        let rx_rings: Vec<*mut dpdk_sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let tx_rings: Vec<*mut dpdk_sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: valid name and ring arrays for the call; the ring PMD keeps the ring pointers,
        // so the caller keeps the rings alive as long as the port (documented above).
        let ret = unsafe {
            dpdk_sys::rte_eth_from_rings(
                cname.as_ptr(),
                rx_rings.as_ptr(),
                rx_rings.len() as u32,
                tx_rings.as_ptr(),
                tx_rings.len() as u32,
                0,
            )
        };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "rte_eth_from_rings({name})"
            )));
        }
        Ok(ret as u16)
    }

    /// The port id of an existing ethdev by name (`net_ring0`, `0000:03:00.0`).
    pub fn find(name: &str) -> Option<u16> {
        let cname = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer for the duration of the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        (ret == 0).then_some(id)
    }

    pub fn info(id: u16) -> Result<DeviceInfo, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid out-pointer; the call checks the port id.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        check(ret, || format!("rte_eth_dev_info_get(port {id})"))?;
        let driver = if info.driver_name.is_null() {
            String::from("?")
        } else {
            // SAFETY: non-null driver_name points at the driver's static name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DeviceInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
        })
    }

    /// Configures the port and its queues (RX buffers from `pool`); not started yet.
    pub fn configure(id: u16, settings: &PortSettings, pool: &Mempool) -> Result<Port, DpdkError> {
        let info = Port::info(id)?;
        let name = port_name(id);
        if settings.rx_queues == 0 || settings.tx_queues == 0 {
            return Err(DpdkError::new(
                format!("port {name}: needs at least one RX and one TX queue"),
                22,
            ));
        }
        if settings.rx_queues > info.max_rx_queues || settings.tx_queues > info.max_tx_queues {
            return Err(DpdkError::new(
                format!(
                    "port {name} ({}): {} RX / {} TX queues asked, the driver has {} / {}",
                    info.driver,
                    settings.rx_queues,
                    settings.tx_queues,
                    info.max_rx_queues,
                    info.max_tx_queues
                ),
                22,
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss_hf = u64::from(
            dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP,
        ) & info.rss_offloads;
        // Lives until rte_eth_dev_configure has copied it.
        let mut key = Vec::new();
        if settings.rx_queues > 1 {
            if let Some(rss) = &settings.rss {
                key = rss.key.clone();
                key.resize(usize::from(info.hash_key_size), 0);
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
                conf.rx_adv_conf.rss_conf.rss_hf = rss.hash_fields;
            } else if rss_hf != 0 {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
        }
        // SAFETY: conf is a valid, fully initialised configuration for the call.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, settings.rx_queues, settings.tx_queues, &conf)
        };
        check(ret, || format!("rte_eth_dev_configure(port {name})"))?;
        drop(key);

        let (mut rx_desc, mut tx_desc) = (settings.rx_descriptors, settings.tx_descriptors);
        // SAFETY: valid in/out pointers; the port is configured.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        check(ret, || {
            format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {name})")
        })?;
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 {
            dpdk_sys::SOCKET_ID_ANY
        } else {
            socket
        };
        for q in 0..settings.rx_queues {
            // SAFETY: the port is configured with this many queues; a null rxconf means the
            // driver's defaults; the pool outlives the port (callers drop ports first).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    rx_desc,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(ret, || {
                format!("rte_eth_rx_queue_setup(port {name}, queue {q})")
            })?;
        }
        for q in 0..settings.tx_queues {
            // SAFETY: as above; a null txconf means the driver's defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket as u32, std::ptr::null())
            };
            check(ret, || {
                format!("rte_eth_tx_queue_setup(port {name}, queue {q})")
            })?;
        }
        if settings.promiscuous {
            // SAFETY: plain control call on a configured port.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            check(ret, || format!("rte_eth_promiscuous_enable(port {name})"))?;
        }
        let settings = PortSettings {
            rx_descriptors: rx_desc,
            tx_descriptors: tx_desc,
            ..settings.clone()
        };
        Ok(Port {
            id,
            name,
            info,
            settings,
            started: false,
            queues_taken: AtomicBool::new(false),
        })
    }

    /// Programs the redirection table as `slot i -> queue i mod queues` (with `queues` a
    /// power of two no larger than the table, slot `h & (size - 1)` then names queue
    /// `h & (queues - 1)` whatever the table's size).
    pub fn spread_reta(&self, queues: u16) -> Result<(), DpdkError> {
        let size = usize::from(self.info.reta_size);
        if size == 0 || queues == 0 {
            return Err(DpdkError::new(
                format!("port {}: no redirection table to program", self.name),
                95,
            ));
        }
        let mut groups = vec![dpdk_sys::rte_eth_rss_reta_entry64::default(); size.div_ceil(64)];
        for i in 0..size {
            let group = &mut groups[i / 64];
            group.mask |= 1 << (i % 64);
            group.reta[i % 64] = (i % usize::from(queues)) as u16;
        }
        // SAFETY: `groups` holds reta_size entries (64 per group) as the call expects.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_update(self.id, groups.as_mut_ptr(), self.info.reta_size)
        };
        check(ret, || {
            format!("rte_eth_dev_rss_reta_update(port {})", self.name)
        })
    }

    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: the port is configured with all its queues set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        check(ret, || format!("rte_eth_dev_start(port {})", self.name))?;
        self.started = true;
        Ok(())
    }

    /// Stops the port. Needs `&mut self`, so no worker can still hold one of its queues.
    pub fn stop(&mut self) {
        if self.started {
            // SAFETY: the port was started and no queue handle is alive (borrow rules).
            unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            self.started = false;
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn device_info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn settings(&self) -> &PortSettings {
        &self.settings
    }

    pub fn mac(&self) -> [u8; 6] {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer; the port id is valid.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        addr.addr_bytes
    }

    pub fn link(&self) -> LinkStatus {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out-pointer; the _nowait variant never blocks.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer; reading counters is safe while the port runs.
        unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        }
    }

    /// The queue handles, once: each RX and TX queue has exactly one owner.
    pub fn take_queues(&self) -> Option<(Vec<RxQueue<'_>>, Vec<TxQueue<'_>>)> {
        if self.queues_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let rx = (0..self.settings.rx_queues)
            .map(|queue| RxQueue {
                port: self.id,
                queue,
                _port: PhantomData,
            })
            .collect();
        let tx = (0..self.settings.tx_queues)
            .map(|queue| TxQueue {
                port: self.id,
                queue,
                _port: PhantomData,
            })
            .collect();
        Some((rx, tx))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: stopped above; the id is ours and closed once.
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
    }
}

/// The name EAL knows a device by: the devargs up to the first comma.
pub fn device_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or(devargs).trim()
}

fn port_name(id: u16) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: buf is a valid writable buffer of the size we pass (RTE_ETH_NAME_MAX_LEN = 64).
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return format!("#{id}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// One RX queue of one port, owned by exactly one worker.
#[derive(Debug)]
pub struct RxQueue<'port> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'port Port>,
}

impl RxQueue<'_> {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to a burst into an empty `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let (slots, cap) = burst.spare_raw();
        // SAFETY: this handle is the queue's only user (`take_queues` hands it out once and
        // &mut self makes it exclusive); `slots` has room for `cap` pointers.
        let n = unsafe { dpdk_sys::rvs_eth_rx_burst(self.port, self.queue, slots, cap as u16) };
        // SAFETY: DPDK wrote `n` owned mbufs into the first slots.
        unsafe { burst.set_len(usize::from(n)) };
        usize::from(n)
    }
}

/// One TX queue of one port, owned by exactly one thread.
#[derive(Debug)]
pub struct TxQueue<'port> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'port Port>,
}

impl TxQueue<'_> {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Hands as much of `burst` to the device as it takes; what it refused stays in `burst`.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut Burst) -> usize {
        let (slots, len) = burst.filled_raw();
        if len == 0 {
            return 0;
        }
        // SAFETY: exclusive queue as for RX; `slots` holds `len` owned mbufs.
        let sent = unsafe { dpdk_sys::rvs_eth_tx_burst(self.port, self.queue, slots, len as u16) };
        // SAFETY: the device took ownership of exactly the first `sent` mbufs.
        unsafe { burst.consume_front(usize::from(sent)) };
        usize::from(sent)
    }
}
