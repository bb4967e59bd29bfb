//! The scripts rvsd runs on events (keepalived's notify, quorum and VRRP scripts): program and
//! arguments split on whitespace (no shell), not waited for, reaped on the control thread's
//! turns, killed past [`TIMEOUT`] and at stop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How long a notify script may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

struct Running {
    child: Child,
    started: Instant,
    what: String,
}

/// The scripts started and not yet reaped.
#[derive(Default)]
pub struct Scripts {
    running: Vec<Running>,
}

impl Scripts {
    /// Starts `script` with `extra` arguments appended; `what` names it in the log.
    pub fn run(&mut self, script: &str, extra: &[&str], what: String) {
        let mut words = script.split_whitespace();
        let Some(program) = words.next() else {
            return;
        };
        match Command::new(program)
            .args(words)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => {
                info!(
                    "{what}: running {script}{}{}",
                    if extra.is_empty() { "" } else { " " },
                    extra.join(" ")
                );
                self.running.push(Running {
                    child,
                    started: Instant::now(),
                    what,
                });
            }
            Err(e) => warn!("{what}: cannot run {script}: {e}"),
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Collects the scripts that ended; kills those past [`TIMEOUT`].
    pub fn reap(&mut self) {
        self.running.retain_mut(|s| match s.child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    warn!("{}: ended with {status}", s.what);
                }
                false
            }
            Ok(None) if s.started.elapsed() >= TIMEOUT => {
                warn!(
                    "{}: still running after {} s: killed",
                    s.what,
                    TIMEOUT.as_secs()
                );
                let _ = s.child.kill();
                let _ = s.child.wait();
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    }

    /// Waits up to `wait` for the running scripts, then kills the rest.
    pub fn finish(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.running.is_empty() && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
        for mut s in self.running.drain(..) {
            warn!("{} ({:?}) still runs at stop: killed", s.what, s.child.id());
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        for s in &mut self.running {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}
