//! Hardware flow rules (`rte_flow`): packets to one IPv4 address, TCP or UDP, whose destination
//! port matches a value under a mask, go to one RX queue. rvs uses them to steer the replies of
//! FULLNAT connections (to a local address) to the worker whose share holds their port.

use std::ffi::CStr;
use std::net::Ipv4Addr;

use super::DpdkError;

/// What one rule matches and where it sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRule {
    pub dst: Ipv4Addr,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    /// The destination port under `port_mask` must equal `port_value` (host order).
    pub port_value: u16,
    pub port_mask: u16,
    pub queue: u16,
}

/// A rule installed on a port; removed when dropped (before its port is closed).
#[derive(Debug)]
pub struct FlowRule {
    port: u16,
    raw: std::ptr::NonNull<dpdk_sys::rte_flow>,
}

// SAFETY: a flow handle is an opaque token the control thread creates and destroys; nothing
// reads through it.
unsafe impl Send for FlowRule {}

/// The rule as rte_flow's structures, kept together so that the pointers between them stay
/// valid for the call.
struct Spec {
    attr: dpdk_sys::rte_flow_attr,
    ipv4: [dpdk_sys::rte_flow_item_ipv4; 2],
    tcp: [dpdk_sys::rte_flow_item_tcp; 2],
    udp: [dpdk_sys::rte_flow_item_udp; 2],
    queue: dpdk_sys::rte_flow_action_queue,
}

impl Spec {
    fn new(rule: &QueueRule) -> Box<Spec> {
        let mut attr = dpdk_sys::rte_flow_attr::default();
        attr.set_ingress(1);
        let mut spec = Box::new(Spec {
            attr,
            ipv4: Default::default(),
            tcp: Default::default(),
            udp: Default::default(),
            queue: dpdk_sys::rte_flow_action_queue { index: rule.queue },
        });
        spec.ipv4[0].hdr.dst_addr = u32::from(rule.dst).to_be();
        spec.ipv4[1].hdr.dst_addr = u32::MAX;
        spec.tcp[0].hdr.dst_port = rule.port_value.to_be();
        spec.tcp[1].hdr.dst_port = rule.port_mask.to_be();
        spec.udp[0].hdr.dst_port = rule.port_value.to_be();
        spec.udp[1].hdr.dst_port = rule.port_mask.to_be();
        spec
    }

    /// The pattern (ETH / IPV4 / TCP|UDP / END) and actions (QUEUE / END), pointing into self.
    fn parts(
        &self,
        protocol: u8,
    ) -> ([dpdk_sys::rte_flow_item; 4], [dpdk_sys::rte_flow_action; 2]) {
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| {
            dpdk_sys::rte_flow_item {
                type_,
                spec,
                last: std::ptr::null(),
                mask,
            }
        };
        let l4 = if protocol == 6 {
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_TCP,
                (&self.tcp[0] as *const dpdk_sys::rte_flow_item_tcp).cast(),
                (&self.tcp[1] as *const dpdk_sys::rte_flow_item_tcp).cast(),
            )
        } else {
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_UDP,
                (&self.udp[0] as *const dpdk_sys::rte_flow_item_udp).cast(),
                (&self.udp[1] as *const dpdk_sys::rte_flow_item_udp).cast(),
            )
        };
        let pattern = [
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_ETH,
                std::ptr::null(),
                std::ptr::null(),
            ),
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV4,
                (&self.ipv4[0] as *const dpdk_sys::rte_flow_item_ipv4).cast(),
                (&self.ipv4[1] as *const dpdk_sys::rte_flow_item_ipv4).cast(),
            ),
            l4,
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_END,
                std::ptr::null(),
                std::ptr::null(),
            ),
        ];
        let actions = [
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: (&self.queue as *const dpdk_sys::rte_flow_action_queue).cast(),
            },
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ];
        (pattern, actions)
    }
}

fn flow_error(what: String, ret: i32, error: &dpdk_sys::rte_flow_error) -> DpdkError {
    let reason = if error.message.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null message is a NUL-terminated string the driver keeps static.
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .into_owned()
    };
    if reason.is_empty() {
        DpdkError::new(what, ret)
    } else {
        DpdkError::new(format!("{what}: {reason}"), ret)
    }
}

impl FlowRule {
    /// Whether port `port` would take `rule` (`rte_flow_validate`), with the driver's reason
    /// when not.
    pub fn validate(port: u16, rule: &QueueRule) -> Result<(), DpdkError> {
        let spec = Spec::new(rule);
        let (pattern, actions) = spec.parts(rule.protocol);
        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: attr, pattern and actions are valid, END-terminated and point into `spec`,
        // which outlives the call; `error` is a valid out-pointer.
        let ret = unsafe {
            dpdk_sys::rte_flow_validate(
                port,
                &spec.attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(flow_error(
                format!("rte_flow_validate(port {port})"),
                ret,
                &error,
            ))
        }
    }

    /// Installs `rule` on port `port`.
    pub fn create(port: u16, rule: &QueueRule) -> Result<FlowRule, DpdkError> {
        let spec = Spec::new(rule);
        let (pattern, actions) = spec.parts(rule.protocol);
        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: as in `validate`; the driver copies what it keeps.
        let raw = unsafe {
            dpdk_sys::rte_flow_create(
                port,
                &spec.attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        std::ptr::NonNull::new(raw)
            .map(|raw| FlowRule { port, raw })
            .ok_or_else(|| flow_error(format!("rte_flow_create(port {port})"), -1, &error))
    }
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: `raw` came from rte_flow_create on this port and is destroyed once, here.
        unsafe { dpdk_sys::rte_flow_destroy(self.port, self.raw.as_ptr(), &mut error) };
    }
}
