//! The control socket: a Unix stream socket, mode 0600, that only the user rvsd runs as may
//! use (the peer's uid is checked with `SO_PEERCRED` as well, so a socket made reachable by a
//! wrong directory mode still refuses others). One request per connection: a line of JSON
//! (at most [`MAX_REQUEST`] bytes), one line of JSON back.
//!
//! The control thread never touches a client's socket: this module's threads read the
//! request (with a deadline), hand it over as an [`Incoming`] on a channel, and write the
//! reply. A slow or silent client holds only its own thread, a flood of them at most
//! [`MAX_CLIENTS`] threads; the control thread sees whole requests only.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use super::{Reply, Request, MAX_REQUEST};

/// Clients served at once; more are answered "busy" and closed.
pub const MAX_CLIENTS: usize = 16;

/// How long a client may take to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client waits for the control thread (a reload of a large file takes seconds).
const REPLY_DEADLINE: Duration = Duration::from_secs(120);

/// A whole request for the control thread, and where its reply goes.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    /// The peer's process, for the log.
    pub pid: Option<i32>,
    pub reply: mpsc::SyncSender<Reply>,
}

/// Binds the socket at `path`: 0600, its directory created 0700 if absent. A socket file
/// left by a dead rvsd is replaced; one another process still listens on is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is the control socket of a running rvsd: give each rvsd its own \
                     control_socket",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `listener` until `stop`: every whole request goes to `to_control`.
pub fn spawn<T: From<Incoming> + Send + 'static>(
    listener: UnixListener,
    path: PathBuf,
    to_control: mpsc::Sender<T>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvs-api".into())
        .spawn(move || accept_loop(&listener, &to_control, &stop, &path))
}

fn accept_loop<T: From<Incoming> + Send + 'static>(
    listener: &UnixListener,
    to_control: &mpsc::Sender<T>,
    stop: &AtomicBool,
    path: &Path,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    let me = rustix::process::geteuid();
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Wait for the next client (at once) or look at `stop` again in 100 ms.
                let mut fds = [rustix::event::PollFd::new(
                    listener,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
                continue;
            }
            Err(e) => {
                warn!("control socket {}: accept: {e}", path.display());
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let cred = rustix::net::sockopt::socket_peercred(&stream);
        let pid = cred.as_ref().ok().map(|c| c.pid.as_raw_nonzero().get());
        match cred {
            Ok(c) if c.uid == me => {}
            Ok(c) => {
                warn!(
                    "control socket: refused a client of uid {} (pid {}): only uid {} may \
                     use it",
                    c.uid.as_raw(),
                    c.pid.as_raw_nonzero(),
                    me.as_raw()
                );
                let _ = refuse(
                    &stream,
                    &Reply::Error(format!(
                        "permission denied: only uid {} (the user rvsd runs as) may use this \
                         socket",
                        me.as_raw()
                    )),
                );
                continue;
            }
            Err(e) => {
                warn!("control socket: cannot read the peer's credentials: {e}");
                continue;
            }
        }
        if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
            let _ = refuse(
                &stream,
                &Reply::Error(format!(
                    "busy: {MAX_CLIENTS} clients are being served; try again"
                )),
            );
            continue;
        }
        clients.fetch_add(1, Ordering::Relaxed);
        let (to_control, clients) = (to_control.clone(), Arc::clone(&clients));
        let spawned = std::thread::Builder::new()
            .name("rvs-api-client".into())
            .spawn(move || {
                serve(stream, pid, &to_control);
                clients.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            warn!("control socket: cannot start a client thread: {e}");
        }
    }
    let _ = std::fs::remove_file(path);
    info!("control socket {} closed", path.display());
}

/// One client: its request, the control thread's answer.
fn serve<T: From<Incoming>>(stream: UnixStream, pid: Option<i32>, to_control: &mpsc::Sender<T>) {
    let reply = match read_request(&stream) {
        Ok(request) => {
            let (tx, rx) = mpsc::sync_channel(1);
            let incoming = Incoming {
                request,
                pid,
                reply: tx,
            };
            if to_control.send(T::from(incoming)).is_err() {
                Reply::Error("rvsd is stopping".to_owned())
            } else {
                rx.recv_timeout(REPLY_DEADLINE)
                    .unwrap_or_else(|_| Reply::Error("rvsd did not answer in time".to_owned()))
            }
        }
        Err(e) => Reply::Error(e),
    };
    let _ = answer(&stream, &reply);
}

/// A line of JSON, at most `MAX_REQUEST` bytes, within `READ_DEADLINE`.
fn read_request(stream: &UnixStream) -> Result<Request, String> {
    stream
        .set_read_timeout(Some(READ_DEADLINE))
        .map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64 + 1));
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no whole request within {} s", READ_DEADLINE.as_secs())
            }
            _ => e.to_string(),
        })?;
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    serde_json::from_slice(&line).map_err(|e| format!("not a request: {e}"))
}

/// Answers without serving: the request (if it comes within 100 ms) is read and dropped
/// first, so that the client's write succeeds and it reads the reason.
fn refuse(stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut line = Vec::new();
    let _ = BufReader::new(stream.take(MAX_REQUEST as u64 + 1)).read_until(b'\n', &mut line);
    answer(stream, reply)
}

fn answer(mut stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    stream.set_write_timeout(Some(READ_DEADLINE))?;
    let mut text = serde_json::to_vec(reply).map_err(io::Error::other)?;
    text.push(b'\n');
    stream.write_all(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("rvs-api-test-{}-{name}", std::process::id()))
            .join("rvsd.sock")
    }

    /// A client that writes a request gets the control thread's answer; the socket is 0600;
    /// a second rvsd on the same path is refused; a stale file is replaced.
    #[test]
    fn a_request_reaches_the_control_thread_and_its_reply_the_client() {
        let path = socket_path("roundtrip");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind(&path).unwrap_err();
        assert!(err.to_string().contains("running rvsd"), "{err}");
        let (tx, rx) = mpsc::channel::<Incoming>();
        let stop = Arc::new(AtomicBool::new(false));
        let h = spawn(listener, path.clone(), tx, Arc::clone(&stop)).unwrap();
        let control = std::thread::spawn(move || {
            let incoming: Incoming = rx.recv().unwrap();
            assert_eq!(incoming.request, Request::Reload);
            assert_eq!(incoming.pid, Some(std::process::id() as i32));
            incoming.reply.send(Reply::Done("reloaded".into())).unwrap();
        });
        let reply = crate::api::client::call(&path, &Request::Reload).unwrap();
        assert_eq!(reply, Reply::Done("reloaded".into()));
        control.join().unwrap();

        // Garbage and an oversized request get an error, not a hang.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"{\"nonsense\": 1}\n").unwrap();
        let mut text = String::new();
        BufReader::new(&s).read_line(&mut text).unwrap();
        assert!(text.contains("not a request"), "{text}");
        let mut s = UnixStream::connect(&path).unwrap();
        let _ = s.write_all(&vec![b'x'; MAX_REQUEST + 10]);
        let mut text = String::new();
        BufReader::new(&s).read_line(&mut text).unwrap();
        assert!(text.contains("longer than"), "{text}");

        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(!path.exists(), "the socket is removed on stop");
        // A stale socket file (nobody listening) is replaced.
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        drop(bind(&path).unwrap());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
