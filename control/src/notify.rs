//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd and without unsafe: one
//! datagram of newline-separated `KEY=VALUE` assignments to the socket `$NOTIFY_SOCKET` names,
//! a path (`/run/systemd/notify`) or, when it starts with `@`, an abstract address.
//!
//! What a `Type=notify` service such as `deploy/systemd/rvsd.service` expects of rvsd:
//!
//! - `READY=1` once its ports are up and its workers run ([`ready`]); until then systemd
//!   holds back the units ordered after it (bird, frr), and past `TimeoutStartSec=` it gives
//!   up on the start;
//! - `RELOADING=1` and `MONOTONIC_USEC=...` when a reload starts ([`reloading`]), `READY=1`
//!   again when it is done (applied or refused); systemd ≥ 253 requires the timestamp for
//!   `Type=notify-reload`, 252 (Debian 12) ignores it;
//! - `STOPPING=1` when it starts to stop ([`stopping`]);
//! - `STATUS=...` at any time, a line `systemctl status` shows.
//!
//! [`watchdog_interval`] reads `WATCHDOG_USEC`/`WATCHDOG_PID`: with `WatchdogSec=` in the unit,
//! `WATCHDOG=1` must then be sent at least that often (every half of it, by convention).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// How long a datagram may wait for room in the receiver's queue (systemd reads promptly; a
/// hung manager must not hang the caller).
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `state` (`"READY=1"`, `"STATUS=3 services"`, several lines at once) to
/// `$NOTIFY_SOCKET`. `Ok(false)` when the variable is unset (not started by systemd, or the
/// unit is not `Type=notify`), `Ok(true)` once sent.
pub fn notify(state: &str) -> io::Result<bool> {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// [`notify`] to an explicit socket (`None`: nothing to send to). The address follows
/// `$NOTIFY_SOCKET`'s rules: an absolute path, or `@name` for the abstract address `name`;
/// anything else (also an empty value) is refused as `InvalidInput`, as libsystemd does.
pub fn notify_to(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(socket) = socket else {
        return Ok(false);
    };
    if state.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty notification",
        ));
    }
    let address = socket_address(socket)?;
    let sender = UnixDatagram::unbound()?;
    sender.set_write_timeout(Some(SEND_TIMEOUT))?;
    let sent = sender.send_to_addr(state.as_bytes(), &address)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("notification cut short ({sent} of {} bytes)", state.len()),
        ));
    }
    Ok(true)
}

/// The address `$NOTIFY_SOCKET` names.
fn socket_address(socket: &OsStr) -> io::Result<SocketAddr> {
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'@') if bytes.len() > 1 => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(socket),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET={:?} is neither an absolute path nor an abstract address (@name)",
                socket
            ),
        )),
    }
}

/// `READY=1`, with a status line if `status` is not empty.
pub fn ready(status: &str) -> io::Result<bool> {
    notify(&with_status("READY=1", status))
}

/// `RELOADING=1` with `MONOTONIC_USEC` (see [`reloading_state`]).
pub fn reloading(status: &str) -> io::Result<bool> {
    notify(&with_status(&reloading_state(), status))
}

/// `STOPPING=1`, with a status line if `status` is not empty.
pub fn stopping(status: &str) -> io::Result<bool> {
    notify(&with_status("STOPPING=1", status))
}

/// `RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now, µs>`; the timestamp is left out when
/// [`monotonic_usec`] cannot tell it (systemd 252 does not need it).
pub fn reloading_state() -> String {
    match monotonic_usec() {
        Some(usec) => format!("RELOADING=1\nMONOTONIC_USEC={usec}"),
        None => "RELOADING=1".to_owned(),
    }
}

fn with_status(state: &str, status: &str) -> String {
    if status.is_empty() {
        state.to_owned()
    } else {
        // One line: a newline would start another assignment.
        format!("{state}\nSTATUS={}", status.replace('\n', " "))
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds, as systemd wants it in `MONOTONIC_USEC`.
///
/// std's `Instant` is `CLOCK_MONOTONIC` on Linux (std documents the clock each platform
/// uses), and without unsafe or another dependency its value is reachable only through its
/// `Debug` form, `Instant { tv_sec: 24587, tv_nsec: 653505259 }`. That form is not a stable
/// interface: if it changes, this returns `None` (a unit test says so) and the notification
/// goes without the timestamp.
pub fn monotonic_usec() -> Option<u64> {
    parse_instant_debug(&format!("{:?}", Instant::now()))
}

fn parse_instant_debug(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let start = text.find(name)? + name.len();
        let rest = text[start..].trim_start();
        let digits: &str = &rest[..rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len())];
        digits.parse().ok()
    };
    let sec = field("tv_sec:")?;
    let nsec = field("tv_nsec:")?;
    if nsec >= 1_000_000_000 {
        return None;
    }
    sec.checked_mul(1_000_000)?.checked_add(nsec / 1_000)
}

/// The watchdog interval systemd expects `WATCHDOG=1` within (`WatchdogSec=`), if it set one
/// for this process: `WATCHDOG_USEC` present and positive, and `WATCHDOG_PID`, when present,
/// this process's id (as `sd_watchdog_enabled(3)`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] from the variables' values and this process's id.
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A directory of its own per test, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rvs-notify-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn a_path_socket_gets_the_datagram() {
        let dir = Scratch::new("path");
        let path = dir.0.join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        assert!(notify_to(Some(path.as_os_str()), "READY=1").unwrap());
        assert_eq!(receive(&manager), "READY=1");
        let state = "STOPPING=1\nSTATUS=stopping: SIGTERM";
        assert!(notify_to(Some(path.as_os_str()), state).unwrap());
        assert_eq!(receive(&manager), state);
    }

    #[test]
    fn an_abstract_socket_gets_the_datagram() {
        let name = format!("rvs-notify-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let address = format!("@{name}");
        let state = reloading_state();
        assert!(notify_to(Some(OsStr::new(&address)), &state).unwrap());
        assert_eq!(receive(&manager), state);
    }

    #[test]
    fn no_socket_is_not_an_error_and_sends_nothing() {
        assert!(!notify_to(None, "READY=1").unwrap());
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!notify("READY=1").unwrap());
            assert!(!ready("3 services").unwrap());
        }
    }

    #[test]
    fn bad_addresses_and_absent_managers_are_errors() {
        for bad in ["", "relative/notify", "@", "vsock:2:1234"] {
            let e = notify_to(Some(OsStr::new(bad)), "READY=1").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
        }
        let dir = Scratch::new("absent");
        let path = dir.0.join("nobody");
        assert!(notify_to(Some(path.as_os_str()), "READY=1").is_err());
        // Bound once, gone: the path stays, nobody reads it.
        let gone = dir.0.join("gone");
        drop(UnixDatagram::bind(&gone).unwrap());
        assert!(notify_to(Some(gone.as_os_str()), "READY=1").is_err());
        let manager = UnixDatagram::bind(dir.0.join("empty")).unwrap();
        let e = notify_to(Some(dir.0.join("empty").as_os_str()), "").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        drop(manager);
    }

    #[test]
    fn status_is_one_line_after_the_state() {
        assert_eq!(with_status("READY=1", ""), "READY=1");
        assert_eq!(
            with_status("READY=1", "2 services\n4 workers"),
            "READY=1\nSTATUS=2 services 4 workers"
        );
        let reloading = with_status(&reloading_state(), "reloading /etc/rvs/rvsd.ron");
        let lines: Vec<&str> = reloading.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        assert!(lines[1].starts_with("MONOTONIC_USEC="), "{reloading}");
        assert_eq!(lines[2], "STATUS=reloading /etc/rvs/rvsd.ron");
    }

    /// The timestamp is CLOCK_MONOTONIC: std's Debug form still parses, the value moves
    /// forward, and it matches the kernel's own clock where that can be read
    /// (`/proc/timer_list`'s "now at N nsecs", root only) or stays below the boot time
    /// (`/proc/uptime`, which also counts suspended time).
    #[test]
    fn monotonic_usec_is_clock_monotonic() {
        let a = monotonic_usec().expect("std's Instant Debug form changed: see monotonic_usec");
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_usec().unwrap();
        assert!(b >= a + 20_000 && b < a + 5_000_000, "{a} -> {b}");
        if let Ok(list) = std::fs::read_to_string("/proc/timer_list") {
            let now = monotonic_usec().unwrap();
            let kernel: u64 = list
                .lines()
                .find_map(|l| l.strip_prefix("now at ")?.strip_suffix(" nsecs"))
                .and_then(|n| n.parse().ok())
                .expect("now at N nsecs");
            let kernel = kernel / 1_000;
            assert!(now.abs_diff(kernel) < 2_000_000, "{now} vs {kernel}");
        }
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
        let boot: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
        let now = monotonic_usec().unwrap();
        assert!((now as f64) <= boot * 1e6 + 1e6, "{now} vs uptime {boot}");
    }

    #[test]
    fn instant_debug_forms() {
        assert_eq!(
            parse_instant_debug("Instant { tv_sec: 24587, tv_nsec: 653505259 }"),
            Some(24_587_653_505)
        );
        assert_eq!(
            parse_instant_debug("Instant { tv_sec: 0, tv_nsec: 999 }"),
            Some(0)
        );
        assert_eq!(parse_instant_debug("Instant { t: 5 }"), None);
        assert_eq!(
            parse_instant_debug("Instant { tv_sec: 1, tv_nsec: 1000000000 }"),
            None
        );
    }

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let me = 4242;
        assert_eq!(watchdog_interval_from(None, None, me), None);
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval_from(Some("500000"), Some("4242"), me),
            Some(Duration::from_millis(500))
        );
        assert_eq!(watchdog_interval_from(Some("500000"), Some("1"), me), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("5"), Some("x"), me), None);
        // The real variables: unset in a test run unless systemd started it with WatchdogSec=.
        if std::env::var_os("WATCHDOG_USEC").is_none() {
            assert_eq!(watchdog_interval(), None);
        }
    }
}
