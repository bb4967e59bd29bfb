//! The kernel exception path: for each port, a TAP interface (DPDK's `net_tap`) that carries
//! the port's own addresses and MAC, so that health checkers, ssh, routing daemons and `ping`
//! on the appliance use ordinary kernel sockets on the data ports (DPVS's kni/virtio-user; this
//! machine has no `/dev/vhost-net`, which virtio-user needs).
//!
//! Up: a worker hands what reaches a kernel address and is not its own to handle
//! (`Verdict::ToKernel`) to this path on its ring; the path writes it to the port's TAP. The
//! control thread passes the ARP replies it learns from, so that the kernel resolves its
//! neighbours by its own requests. Down: what the kernel sends on a TAP goes out of the port
//! through worker 0's queue. The kernel never hears ARP requests (rvs answers them), so it
//! sends no ARP replies.
//!
//! Bounded both ways: the workers' rings have fixed room (the workers count what does not
//! fit, `kernel_full`, and keep room for BGP and BFD), and each turn of this path moves at
//! most [`BURSTS_PER_TURN`] bursts per ring and per TAP. It runs on its own thread, off the
//! workers' cores, and sleeps when idle (20 µs, doubling up to 1 ms).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dataplane::counters::Counter;
use dataplane::wire::ethernet;
use dpdk::{Burst, MbufRing, Mempool, Port, PortSettings, RxQueue, TxQueue};

use crate::config::{Config, Ipv4Cidr, PortConfig};

/// Bursts moved per ring and per TAP in one turn.
pub const BURSTS_PER_TURN: usize = 8;

/// Descriptors of a TAP queue.
const TAP_DESCRIPTORS: u16 = 512;

/// What the path counted on one port (single writer: the path's thread).
#[derive(Debug, Default)]
pub struct KernelCounters {
    /// Written to the kernel interface.
    pub up: Counter,
    /// Refused by the interface (the kernel is not reading it fast enough).
    pub up_dropped: Counter,
    /// Sent by the kernel and put on the port's way out.
    pub down: Counter,
    /// Sent by the kernel but dropped: the way out was full, or not IPv4 or ARP.
    pub down_dropped: Counter,
}

/// A snapshot of [`KernelCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelTotals {
    pub up: u64,
    pub up_dropped: u64,
    pub down: u64,
    pub down_dropped: u64,
}

impl KernelCounters {
    pub fn read(&self) -> KernelTotals {
        KernelTotals {
            up: self.up.get(),
            up_dropped: self.up_dropped.get(),
            down: self.down.get(),
            down_dropped: self.down_dropped.get(),
        }
    }
}

/// Creates port `index`'s kernel interface (`pc.kernel_interface_name()`) with the port's
/// `mac`, starts it, and gives it the port's MTU, addresses and routes. The interface goes
/// away with the port (the TAP is not persistent).
pub fn open(
    index: usize,
    pc: &PortConfig,
    routes: &[(Ipv4Cidr, Ipv4Addr)],
    mac: [u8; 6],
    pool: &Mempool,
) -> Result<Port, String> {
    let name = pc.kernel_interface_name();
    if mac == [0; 6] {
        tracing::warn!(
            "port {}: the device has no MAC address (00:00:00:00:00:00): its kernel interface \
             gets a random one, and what the kernel sends will not find its way back",
            pc.name
        );
    }
    if std::path::Path::new("/sys/class/net").join(&name).exists() {
        return Err(format!(
            "kernel interface {name:?}: a network interface of that name already exists in \
             this namespace (another rvsd?): set kernel_interface to another name, or \
             kernel: false"
        ));
    }
    let devargs = format!(
        "net_tap_rvs{index},iface={name},mac={}",
        crate::format_mac(&mac)
    );
    if let Some((iface, loose)) = quiet_host_interface(&pc.device)? {
        tracing::info!(
            "port {}: the kernel's own stack now ignores {iface} (rp_filter 1, arp_ignore 8): \
             its traffic goes through {name}",
            pc.name
        );
        if loose {
            tracing::warn!(
                "port {}: net.ipv4.conf.all.rp_filter is 2 (loose), which overrides {iface}'s \
                 1: the kernel may answer on {iface} too (duplicate replies); set it to 0 or 1",
                pc.name
            );
        }
    }
    let id = Port::probe(&devargs).map_err(|e| format!("kernel interface {name:?}: {e}"))?;
    let settings = PortSettings {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: TAP_DESCRIPTORS,
        tx_descriptors: TAP_DESCRIPTORS,
        promiscuous: false,
        rss: None,
    };
    let mut port = Port::configure(id, &settings, pool)
        .map_err(|e| format!("kernel interface {name:?}: {e}"))?;
    port.start()
        .map_err(|e| format!("kernel interface {name:?}: {e}"))?;
    setup_interface(&name, pc.mtu, &pc.addresses, routes)?;
    Ok(port)
}

/// The kernel interface under a port of `net_af_packet` or `net_af_xdp` (its `iface=`):
/// the kernel sees that interface's frames too, and, now that it holds the port's addresses
/// (on the TAP), it would answer them a second time (Linux accepts a local address on any
/// interface). Strict reverse-path filtering (the way back to any sender is the TAP, not this
/// interface) and `arp_ignore` 8 make its own stack ignore the interface; rvs still reads it.
/// Returns the interface and whether the host's `all` setting (loose, 2) overrides this.
pub fn quiet_host_interface(device: &str) -> Result<Option<(String, bool)>, String> {
    let driver = dpdk::port::device_name(device);
    if !(driver.starts_with("net_af_packet") || driver.starts_with("net_af_xdp")) {
        return Ok(None);
    }
    let Some(iface) = device.split(',').find_map(|kv| kv.strip_prefix("iface=")) else {
        return Ok(None);
    };
    let conf = |what: &str| format!("/proc/sys/net/ipv4/conf/{iface}/{what}");
    for (what, value) in [("rp_filter", "1"), ("arp_ignore", "8")] {
        std::fs::write(conf(what), value)
            .map_err(|e| format!("cannot write {}: {e}", conf(what)))?;
    }
    let all = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap_or_default();
    Ok(Some((iface.to_owned(), all.trim() == "2")))
}

/// The routes of `config` through port `port` (destination, gateway), for its interface.
pub fn routes_of(config: &Config, port: &str) -> Vec<(Ipv4Cidr, Ipv4Addr)> {
    config
        .routes
        .iter()
        .filter(|r| r.port == port)
        .map(|r| (r.destination, r.via))
        .collect()
}

/// Puts `vip` as a /32 on interface `name` (announce by health).
pub fn add_vip(name: &str, vip: Ipv4Addr) -> Result<(), String> {
    ip(&["addr", "replace", &format!("{vip}/32"), "dev", name])
}

/// Takes `vip`/32 off interface `name`.
pub fn remove_vip(name: &str, vip: Ipv4Addr) -> Result<(), String> {
    ip(&["addr", "del", &format!("{vip}/32"), "dev", name])
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// MTU, no IPv6 (no router solicitations or DAD of its own on the data port), the port's
/// addresses with their prefixes (connected routes), the configured routes, up.
fn setup_interface(
    name: &str,
    mtu: u16,
    addresses: &[Ipv4Cidr],
    routes: &[(Ipv4Cidr, Ipv4Addr)],
) -> Result<(), String> {
    let ipv6 = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if std::path::Path::new(&ipv6).exists() {
        std::fs::write(&ipv6, "1").map_err(|e| format!("cannot write {ipv6}: {e}"))?;
    }
    ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    for a in addresses {
        ip(&["addr", "replace", &a.to_string(), "dev", name])?;
    }
    ip(&["link", "set", "dev", name, "up"])?;
    set_routes(name, &[], routes)
}

/// Brings the interface's routes from `old` to `new` (a reload).
pub fn set_routes(
    name: &str,
    old: &[(Ipv4Cidr, Ipv4Addr)],
    new: &[(Ipv4Cidr, Ipv4Addr)],
) -> Result<(), String> {
    for (dest, _) in old.iter().filter(|r| !new.contains(r)) {
        // Gone already (its gateway's subnet left with an address) is fine.
        let _ = ip(&["route", "del", &dest.to_string(), "dev", name]);
    }
    for (dest, via) in new.iter().filter(|r| !old.contains(r)) {
        ip(&[
            "route",
            "replace",
            &dest.to_string(),
            "via",
            &via.to_string(),
            "dev",
            name,
        ])?;
    }
    Ok(())
}

/// One port's TAP, as the path's thread drives it.
pub struct Tap<'p> {
    /// The port's index in the config.
    pub port: usize,
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
}

/// Everything the path's thread moves packets between.
pub struct Path<'p> {
    /// From each worker (and the control thread's ARP), to the kernel; each mbuf carries the
    /// DPDK id of the port it came in on.
    pub up: Vec<&'p MbufRing>,
    /// To worker 0, per port index: what the kernel sends.
    pub down: &'p [MbufRing],
    pub taps: Vec<Tap<'p>>,
    /// DPDK port id -> port index.
    pub port_index: HashMap<u16, usize>,
    /// Per port index.
    pub counters: &'p [KernelCounters],
}

impl Path<'_> {
    /// Moves packets until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut idle = Duration::ZERO;
        let mut burst = Burst::new();
        let mut out: Vec<Burst> = self.taps.iter().map(|_| Burst::new()).collect();
        // Port index -> position in `taps`.
        let mut tap_of: HashMap<usize, usize> = HashMap::new();
        for (i, tap) in self.taps.iter().enumerate() {
            tap_of.insert(tap.port, i);
        }
        while !stop.load(Ordering::Relaxed) {
            let moved = self.turn(&mut burst, &mut out, &tap_of);
            if moved > 0 {
                idle = Duration::ZERO;
                continue;
            }
            idle = (idle * 2).clamp(Duration::from_micros(20), Duration::from_millis(1));
            std::thread::sleep(idle);
        }
    }

    /// One turn: the rings up to the TAPs, the TAPs down to the ports. Returns the packets
    /// moved.
    fn turn(
        &mut self,
        burst: &mut Burst,
        out: &mut [Burst],
        tap_of: &HashMap<usize, usize>,
    ) -> usize {
        let mut moved = 0;
        for ring in &self.up {
            for _ in 0..BURSTS_PER_TURN {
                let n = ring.dequeue_burst(burst);
                if n == 0 {
                    break;
                }
                moved += n;
                for mbuf in burst.drain() {
                    let tap = self
                        .port_index
                        .get(&mbuf.port())
                        .and_then(|p| tap_of.get(p));
                    match tap {
                        Some(&t) => {
                            if let Err(mbuf) = out[t].push(mbuf) {
                                send(&mut self.taps[t], &mut out[t], self.counters);
                                let _ = out[t].push(mbuf);
                            }
                        }
                        // A port without an interface: the snapshot and the taps disagree
                        // only if a worker raced a reload; nothing to do with it.
                        None => drop(mbuf),
                    }
                }
            }
        }
        for (tap, pending) in self.taps.iter_mut().zip(out.iter_mut()) {
            if !pending.is_empty() {
                send(tap, pending, self.counters);
            }
        }
        for tap in &mut self.taps {
            let counters = &self.counters[tap.port];
            for _ in 0..BURSTS_PER_TURN {
                let n = tap.rx.rx_burst(burst);
                if n == 0 {
                    break;
                }
                moved += n;
                for mbuf in burst.drain() {
                    let kind = ethernet::Frame::new_checked(mbuf.data())
                        .map(|f| f.ethertype())
                        .ok();
                    let wanted = matches!(
                        kind,
                        Some(ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_ARP)
                    ) && mbuf.segments() == 1;
                    if wanted && self.down[tap.port].enqueue(mbuf).is_ok() {
                        counters.down.add(1);
                    } else {
                        counters.down_dropped.add(1);
                    }
                }
            }
        }
        moved
    }
}

/// Writes `pending` to the TAP; what it refuses is freed and counted.
fn send(tap: &mut Tap<'_>, pending: &mut Burst, counters: &[KernelCounters]) {
    let queued = pending.len() as u64;
    tap.tx.tx_burst(pending);
    let refused = pending.len() as u64;
    counters[tap.port].up.add(queued - refused);
    if refused > 0 {
        counters[tap.port].up_dropped.add(refused);
        pending.clear();
    }
}
