//! Connection sync on the data plane's side: which packets make a master send a connection
//! to its backups (IPVS's rule), and the record a worker hands the control thread, or the
//! control thread hands the worker that owns a synced connection. The wire format and the
//! sending are the control thread's (`control::sync`).

use crate::conn::TcpState;
use crate::flow::{Endpoint, ForwardMode};

/// IPVS's `sync_threshold` default, [3, 50]: a connection is sent at its client's 3rd packet
/// and every 50 after (53, 103, ...).
pub const THRESHOLD: u8 = 3;
pub const PERIOD: u8 = 50;

/// One connection as sync carries it between the workers and the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    pub protocol: u8,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub real: Endpoint,
    /// FULLNAT's local address and port; `None` in the other modes.
    pub local: Option<Endpoint>,
    pub mode: ForwardMode,
    pub state: TcpState,
    /// The state's timeout in seconds, as IPVS sends it (0: the receiver's own).
    pub timeout_s: u32,
    /// The MAC the master sends the client's replies to (its "last hop"): appliances that
    /// share a VIP share its segment, so it holds on the backup too. All zeros: unknown.
    pub client_mac: [u8; 6],
    /// A persistence template (IPVS's `IP_VS_CONN_F_TEMPLATE`): `client` is the client
    /// network and port 0, `real` the server it pins, `timeout_s` the persistence timeout.
    pub template: bool,
}

/// Whether a client's packet that brought a connection from `old` to `new` with `in_pkts`
/// (its count modulo [`PERIOD`]) makes it worth sending (IPVS's `ip_vs_sync_conn_needed`
/// with the default threshold and no refresh period): TCP only in the states a backup can
/// use (ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT, TIME_WAIT), at once when it changes into
/// one of them other than ESTABLISHED, else at the threshold packet of each period; other
/// protocols by the count alone.
#[inline]
pub fn worth_syncing(protocol: u8, old: TcpState, new: TcpState, in_pkts: u8) -> bool {
    if protocol == 6 {
        let syncable = matches!(
            new,
            TcpState::Established
                | TcpState::FinWait
                | TcpState::Close
                | TcpState::CloseWait
                | TcpState::TimeWait
        );
        if !syncable {
            return false;
        }
        if old != new && new != TcpState::Established {
            return true;
        }
    }
    in_pkts == THRESHOLD
}

/// Why a synced connection was not installed: each a counter of the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallError {
    /// No service of that protocol, VIP and port here.
    NoService,
    /// The service has no such real server here.
    NoRealServer,
    /// The connection table is full.
    TableFull,
    /// Its FULLNAT reply key is another connection's.
    Conflict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_sync_rule() {
        use TcpState::*;
        // The handshake is never sent; ESTABLISHED at the 3rd packet and every 50 after.
        assert!(!worth_syncing(6, None, SynRecv, 1));
        assert!(!worth_syncing(6, SynRecv, Established, 2));
        assert!(worth_syncing(6, Established, Established, 3));
        assert!(!worth_syncing(6, Established, Established, 4));
        // Closing states at once.
        assert!(worth_syncing(6, Established, FinWait, 17));
        assert!(worth_syncing(6, FinWait, TimeWait, 18));
        assert!(!worth_syncing(6, TimeWait, TimeWait, 19));
        assert!(!worth_syncing(6, Established, LastAck, 3));
        // UDP by count.
        assert!(worth_syncing(17, Established, Established, 3));
        assert!(!worth_syncing(17, Established, Established, 2));
    }
}
