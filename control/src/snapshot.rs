//! Builds the immutable [`Snapshot`] the workers read from the configuration and what the
//! devices said about themselves (their MAC addresses).

use dataplane::engine::{PortAddrs, Snapshot};

use crate::config::Config;

/// `macs[i]` is the MAC of `config.ports[i]`.
pub fn build(config: &Config, macs: &[[u8; 6]]) -> Snapshot {
    Snapshot {
        ports: config
            .ports
            .iter()
            .zip(macs)
            .map(|(port, mac)| PortAddrs {
                mac: *mac,
                ipv4: port.addresses.iter().map(|c| c.addr).collect(),
            })
            .collect(),
    }
}
