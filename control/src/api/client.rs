//! The client side of the control socket: one request, one reply.
//!
//! A request is one line of JSON and a newline; rvsd answers with one line of JSON and
//! closes the connection. Errors are sentences for a person at a terminal, not errno
//! numbers: what failed, on which socket, and the likely reason.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Reply, Request, MAX_REQUEST};

/// How long rvsd may take to answer. A dump of a large connection table is the slowest
/// answer; a daemon that is wedged should not hang the shell forever.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `req` to rvsd at `socket` and returns its reply (an [`Reply::Error`] is a reply,
/// not an `Err`: the caller prints it as ipvsadm prints the kernel's refusals).
pub fn call(socket: &Path, req: &Request) -> Result<Reply, String> {
    let shown = socket.display();
    let mut line =
        serde_json::to_vec(req).map_err(|e| format!("cannot encode the request: {e}"))?;
    line.push(b'\n');
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "the request is {} bytes, rvsd reads at most {MAX_REQUEST}",
            line.len()
        ));
    }

    let mut stream = UnixStream::connect(socket).map_err(|e| connect_error(socket, &e))?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(|e| format!("cannot use {shown}: {}", plain(&e)))?;
    // rvsd may answer before reading (a refused peer, "busy") and close: the write then fails
    // with a broken pipe while its answer waits to be read, so read it anyway.
    let sent = stream.write_all(&line).and_then(|()| stream.flush());
    if let Err(e) = sent {
        let mut answer = String::new();
        let _ = BufReader::new(&stream).read_line(&mut answer);
        return match serde_json::from_str::<Reply>(answer.trim()) {
            Ok(reply) => Ok(reply),
            Err(_) => Err(format!("cannot send the request to {shown}: {}", plain(&e))),
        };
    }

    let mut answer = String::new();
    match BufReader::new(stream).read_line(&mut answer) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!(
                "rvsd did not answer on {shown} within {} s",
                REPLY_TIMEOUT.as_secs()
            ))
        }
        Err(e) => {
            return Err(format!(
                "cannot read rvsd's answer on {shown}: {}",
                plain(&e)
            ))
        }
    }
    if answer.trim().is_empty() {
        return Err(format!(
            "rvsd closed {shown} without answering (see its log)"
        ));
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| {
        format!(
            "rvsd's answer on {shown} is not understood ({e}): is rvsadm the same version as rvsd?"
        )
    })
}

/// The connect failure in words, with what usually causes it.
fn connect_error(socket: &Path, e: &io::Error) -> String {
    let hint = match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => " (is rvsd running?)",
        io::ErrorKind::PermissionDenied => {
            " (the socket belongs to the user rvsd runs as: run rvsadm as that user, or as root)"
        }
        _ => "",
    };
    format!("cannot connect to {}: {}{hint}", socket.display(), plain(e))
}

/// The error's text without Rust's " (os error N)" suffix: "No such file or directory".
fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rvsadm-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("rvsd.sock")
    }

    #[test]
    fn missing_socket_says_so_in_words() {
        let socket = temp_socket("missing");
        let err = call(&socket, &Request::Reload).unwrap_err();
        assert_eq!(
            err,
            format!(
                "cannot connect to {}: No such file or directory (is rvsd running?)",
                socket.display()
            )
        );
        let _ = std::fs::remove_dir_all(socket.parent().unwrap());
    }

    #[test]
    fn one_line_each_way() {
        let socket = temp_socket("roundtrip");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut stream = reader.into_inner();
            let reply = Reply::Done(format!("got {}", line.trim_end()));
            let mut text = serde_json::to_string(&reply).unwrap();
            text.push('\n');
            stream.write_all(text.as_bytes()).unwrap();
        });
        let reply = call(&socket, &Request::Reload).unwrap();
        assert_eq!(reply, Reply::Done("got \"Reload\"".to_owned()));
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(socket.parent().unwrap());
    }

    #[test]
    fn a_close_without_answer_is_an_error() {
        let socket = temp_socket("silent");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        });
        let err = call(&socket, &Request::Status).unwrap_err();
        assert!(err.contains("without answering"), "{err}");
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(socket.parent().unwrap());
    }
}
