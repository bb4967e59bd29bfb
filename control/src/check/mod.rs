//! Health checking of real servers the way keepalived does it: the checkers (`TCP_CHECK`,
//! `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `UDP_CHECK`, `PING_CHECK`), their timing (`delay_loop`,
//! `connect_timeout`, `retry`, `delay_before_retry`, `warmup`, `alpha`) and the verdicts they
//! report. What a service does with the verdicts (weights, quorum, sorry server) is not here.
//!
//! [`Checker::start`] runs every probe as a task of one current-thread tokio runtime on a
//! thread of its own; the control thread gives it the probes to run ([`Checker::set_probes`])
//! and polls the [`Report`]s (changes only) from a std channel. A probe is its whole
//! configuration: probes that are equal run once, and a changed timing is a new probe.
//!
//! - [`machine`]: the sans-IO verdict over time (retries, alpha, what to report).
//! - `tcp`, `http`, `udp`, `misc`, `ping`: one check each, and whose fault an error is.
//!
//! Only the checks that fail through the real server count against it. The appliance's own
//! failures (out of descriptors or buffers, no local route, a bind address that is not ours,
//! a program that cannot be started) are reported as [`Event::LocalError`] and change nothing.
//!
//! Detection time of a dead server: at most `delay_loop + connect_timeout + retry ×
//! (connect_timeout + delay_before_retry)` (MISC_CHECK: its `timeout` for `connect_timeout`).

mod http;
pub mod machine;
mod misc;
mod ping;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc as tokio_mpsc;
use tokio_rustls::rustls::ClientConfig;

use machine::{Machine, Outcome};

/// One probe: what to check, where, and keepalived's timing. Identical probes (==) run once
/// however many real servers or services share them, and keep their state across set_probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub kind: ProbeKind,
    /// connect_ip:connect_port (PING_CHECK ignores the port).
    pub target: SocketAddrV4,
    /// keepalived's bindto: the local address to connect from (None: the kernel picks).
    pub bind: Option<Ipv4Addr>,
    pub connect_timeout: Duration,
    pub delay_loop: Duration,
    /// Retries after a failure before the probe says Down (keepalived's `retry`).
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// A random delay in [0, warmup] before the first check.
    pub warmup: Duration,
    /// keepalived's alpha: the probe starts Down (until a success) instead of Up.
    pub alpha: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// TCP_CHECK: a TCP connection is accepted within connect_timeout.
    Tcp,
    /// HTTP_GET / SSL_GET (tls): every URL must pass. Host header (and TLS SNI) = virtualhost if
    /// set (a URL's own virtualhost wins), else the target's IP. Any certificate is accepted
    /// (keepalived's default without a CA).
    Http {
        tls: bool,
        urls: Vec<UrlCheck>,
        virtualhost: Option<String>,
    },
    /// MISC_CHECK: run the program (misc_path split on whitespace into program and arguments;
    /// no shell), killed (its whole process group) at `timeout`. Exit 0 up, 1 down; with
    /// `dynamic`, 2..=255 means up with weight = code - 2 (without `dynamic` any non-zero is down).
    Misc {
        path: String,
        timeout: Duration,
        dynamic: bool,
    },
    /// UDP_CHECK: send `payload`; with `require_reply` a reply must come within connect_timeout
    /// (Some(empty) = any reply, Some(bytes) = the reply must start with them); without it, the
    /// check fails only on an ICMP port unreachable (connected UDP socket: ECONNREFUSED).
    Udp {
        payload: Vec<u8>,
        require_reply: Option<Vec<u8>>,
    },
    /// PING_CHECK: an ICMP echo request answered within connect_timeout.
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlCheck {
    pub path: String,
    /// Must equal the response's status; None: any 2xx.
    pub status_code: Option<u16>,
    /// keepalived's digest: lowercase hex MD5 of the response body; None: not checked.
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
}

/// What a probe says, only when it changes (and every LocalError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// e.g. "connected", "status 200", "exit 0", "reply", "echo reply".
    Up { reason: String },
    /// e.g. "refused", "timeout", "status 500", "digest mismatch", "exit code 1", "no reply",
    /// "port unreachable".
    Down { reason: String },
    /// misc_dynamic: up with this weight (also sent when only the weight changes).
    Weight { weight: u32, reason: String },
    /// The appliance's own failure (out of file descriptors EMFILE/ENFILE, ENOBUFS, no route
    /// ENETUNREACH/EHOSTUNREACH from the local stack, EADDRNOTAVAIL, a script that cannot be
    /// spawned, ...): NOT counted against the real server, its state does not change.
    LocalError { reason: String },
}

#[derive(Debug, Clone)]
pub struct Report {
    pub probe: Probe,
    pub event: Event,
}

/// The checker: a thread running a current-thread tokio runtime; every probe is a task (no
/// thread per check).
pub struct Checker {
    /// The probe sets to run; closing it stops the thread.
    probes: Option<tokio_mpsc::UnboundedSender<Vec<Probe>>>,
    thread: Option<JoinHandle<()>>,
    /// Checks completed so far (retries included), whatever their outcome.
    completed: Arc<AtomicU64>,
}

impl Checker {
    /// Starts the thread, with no probes yet.
    pub fn start() -> std::io::Result<(Checker, mpsc::Receiver<Report>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let completed = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            tls: http::tls_config()?,
            pinger: ping::Pinger::new(random_seed()),
            completed: completed.clone(),
        };
        let (reports, receiver) = mpsc::channel();
        let (probes, commands) = tokio_mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("rvs-check".into())
            .spawn(move || runtime.block_on(run(commands, reports, Arc::new(shared))))?;
        Ok((
            Checker {
                probes: Some(probes),
                thread: Some(thread),
                completed,
            },
            receiver,
        ))
    }

    /// From now on run exactly these probes (duplicates collapse): new ones start (warmup,
    /// then first check), ones no longer listed stop, ones still listed keep running with
    /// their state and timing.
    pub fn set_probes(&self, probes: Vec<Probe>) {
        if let Some(tx) = &self.probes {
            // Fails only if the thread is gone, and then there is nothing left to run them.
            let _ = tx.send(probes);
        }
    }

    /// Checks completed so far (each attempt, retries included, whatever its outcome).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Stops every probe and the thread (also on Drop).
    pub fn stop(self) {}
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.probes = None;
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has been printed already; nothing to add here.
            let _ = thread.join();
        }
    }
}

/// What every probe's task shares.
struct Shared {
    tls: Arc<ClientConfig>,
    pinger: ping::Pinger,
    completed: Arc<AtomicU64>,
}

/// The checker thread's loop: applies each probe set until the Checker goes.
async fn run(
    mut commands: tokio_mpsc::UnboundedReceiver<Vec<Probe>>,
    reports: mpsc::Sender<Report>,
    shared: Arc<Shared>,
) {
    let mut random = random_seed();
    let mut running: HashMap<Probe, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(probes) = commands.recv().await {
        let wanted: HashSet<Probe> = probes.into_iter().collect();
        running.retain(|probe, task| {
            let keep = wanted.contains(probe);
            if !keep {
                task.abort();
            }
            keep
        });
        for probe in wanted {
            running.entry(probe).or_insert_with_key(|probe| {
                let seed = splitmix(&mut random);
                tokio::spawn(watch(
                    Arc::new(probe.clone()),
                    shared.clone(),
                    reports.clone(),
                    seed,
                ))
            });
        }
    }
    // Wait for the aborted tasks to be dropped, so that MISC_CHECK groups are killed before
    // the runtime goes.
    for task in running.values() {
        task.abort();
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

/// One probe, for as long as it is listed: check, judge, report, sleep.
async fn watch(probe: Arc<Probe>, shared: Arc<Shared>, reports: mpsc::Sender<Report>, seed: u64) {
    let mut machine = Machine::new(&probe);
    let mut next = machine.first(Instant::now(), seed);
    loop {
        tokio::time::sleep_until(next.into()).await;
        // Boxed: the task stays small while it sleeps, whatever the check holds while it runs.
        let outcome = Box::pin(check(&probe, &shared)).await;
        shared.completed.fetch_add(1, Ordering::Relaxed);
        let step = machine.outcome(outcome, Instant::now());
        if let Some(event) = step.event {
            let report = Report {
                probe: Probe::clone(&probe),
                event,
            };
            if reports.send(report).is_err() {
                return;
            }
        }
        next = step.next;
    }
}

/// One check of `probe`, whatever its kind, within its time.
async fn check(probe: &Probe, shared: &Shared) -> Outcome {
    let timeout = probe.connect_timeout;
    let timed = |outcome: Result<Outcome, tokio::time::error::Elapsed>| {
        outcome.unwrap_or_else(|_| Outcome::down("timeout"))
    };
    match &probe.kind {
        ProbeKind::Tcp => {
            timed(tokio::time::timeout(timeout, tcp::check(probe.target, probe.bind)).await)
        }
        ProbeKind::Http {
            tls,
            urls,
            virtualhost,
        } => {
            let tls = tls.then_some(&shared.tls);
            http::check(probe, tls, urls, virtualhost.as_deref()).await
        }
        ProbeKind::Misc {
            path,
            timeout,
            dynamic,
        } => misc::check(path, *timeout, *dynamic).await,
        ProbeKind::Udp {
            payload,
            require_reply,
        } => udp::check(probe, payload, require_reply.as_deref()).await,
        ProbeKind::Ping => timed(
            tokio::time::timeout(timeout, shared.pinger.ping(*probe.target.ip(), probe.bind)).await,
        ),
    }
}

/// Randomness for warmups and ping identifiers: std's per-process random hash keys, so no
/// dependency for it.
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

/// SplitMix64: a new well-mixed number per call from a running state.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
