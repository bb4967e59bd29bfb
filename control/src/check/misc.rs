//! MISC_CHECK: runs the operator's program and reads its exit code. The program runs without
//! a shell (misc_path split on whitespace), with no stdin/stdout/stderr, in a process group of
//! its own so that at `timeout` it dies with everything it started. The child is always
//! reaped: waited for after an exit or a kill, or, when the probe is stopped mid-run, handed
//! to tokio's orphan reaper with the group killed.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::Command;

use super::machine::Outcome;

/// How long a killed group is waited for before the child is left to the orphan reaper (a
/// process stuck in the kernel does not die at once, and the probe must go on).
const REAP: Duration = Duration::from_secs(1);

/// Kills the process group when dropped, unless its leader was reaped (after which its id
/// may belong to someone else).
struct Group(Option<Pid>);

impl Group {
    fn reaped(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // ESRCH (all gone already) is the only likely error, and nothing to act on.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

/// Runs `path` and judges its exit; see [`verdict`].
pub(super) async fn check(path: &str, timeout: Duration, dynamic: bool) -> Outcome {
    let mut words = path.split_whitespace();
    let Some(program) = words.next() else {
        return Outcome::local("misc_path is empty");
    };
    let mut command = Command::new(program);
    command
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::local(format!("cannot run {program}: {e}")),
    };
    // The child leads its own group (process_group(0)), so its pid names the group. Pids 0
    // and 1 would name our own group or every process: never the child's, never killed.
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .filter(|&id| id > 1)
        .and_then(Pid::from_raw);
    let mut group = Group(pid);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            group.reaped();
            verdict(status, dynamic)
        }
        Ok(Err(e)) => Outcome::local(format!("waiting for {program}: {e}")),
        Err(_) => {
            drop(group);
            // Reaped here if it dies in time, else by the orphan reaper once it does.
            let _ = tokio::time::timeout(REAP, child.wait()).await;
            Outcome::down("timeout")
        }
    }
}

/// keepalived's reading of an exit: 0 up, 1 down; with `dynamic`, 2..=255 up with weight
/// code - 2; anything else (a signal included) down.
fn verdict(status: ExitStatus, dynamic: bool) -> Outcome {
    match status.code() {
        Some(0) => Outcome::up("exit 0"),
        Some(code @ 2..=255) if dynamic => Outcome::Up {
            reason: format!("exit {code}"),
            weight: u32::try_from(code - 2).ok(),
        },
        Some(code) => Outcome::down(format!("exit code {code}")),
        None => Outcome::down(format!("killed by signal {}", status.signal().unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_codes() {
        assert_eq!(verdict(exit(0), false), Outcome::up("exit 0"));
        assert_eq!(verdict(exit(1), false), Outcome::down("exit code 1"));
        assert_eq!(verdict(exit(7), false), Outcome::down("exit code 7"));
        assert_eq!(verdict(exit(1), true), Outcome::down("exit code 1"));
        assert_eq!(
            verdict(exit(0), true),
            Outcome::up("exit 0"),
            "weight as it was"
        );
        for (code, weight) in [(2, 0), (7, 5), (255, 253)] {
            assert_eq!(
                verdict(exit(code), true),
                Outcome::Up {
                    reason: format!("exit {code}"),
                    weight: Some(weight)
                }
            );
        }
        assert_eq!(
            verdict(ExitStatus::from_raw(9), false),
            Outcome::down("killed by signal 9")
        );
    }
}
