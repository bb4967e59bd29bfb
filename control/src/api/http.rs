//! A minimal HTTP/1.x server for Prometheus: `GET /metrics` (and `HEAD`) answer the current
//! text (see [`super::metrics`]), anything else 404 (405 for another method on `/metrics`).
//!
//! One thread, one connection at a time, one request per connection (`Connection: close`).
//! A connection gets [`CLIENT_TIMEOUT`] in all, to send its request and take the answer, so
//! a slow or silent client holds the others back that long at most; a request head is at
//! most [`MAX_REQUEST`] bytes (431 past it). The listener is non-blocking: the thread looks
//! at `stop` every [`POLL`], and as often while it waits on a client.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{debug, warn};

use super::metrics::CONTENT_TYPE;

/// The one path served.
pub const PATH: &str = "/metrics";
/// What one connection may take, request and answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How often `stop` is looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// Serves `body` on `listener` until `stop` is set (the thread then returns: join it).
pub fn serve(
    listener: TcpListener,
    body: Arc<ArcSwap<String>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("rvs-metrics".to_owned())
        .spawn(move || run(&listener, &body, &stop))
        .expect("spawning the metrics thread")
}

fn run(listener: &TcpListener, body: &ArcSwap<String>, stop: &AtomicBool) {
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("metrics: the listener cannot be made non-blocking: {e}");
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle(stream, body, stop) {
                    debug!("metrics: {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors, or the like: try again later.
                debug!("metrics: accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The end of the request head (after its blank line), if it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to answer a request head.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Metrics { head_only: bool },
    Error(u16, &'static str),
}

fn answer(head: &[u8]) -> Answer {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Answer::Error(400, "Bad Request");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::Error(400, "Bad Request");
    };
    if !version.starts_with("HTTP/") {
        return Answer::Error(400, "Bad Request");
    }
    if version != "HTTP/1.0" && version != "HTTP/1.1" {
        return Answer::Error(505, "HTTP Version Not Supported");
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != PATH {
        return Answer::Error(404, "Not Found");
    }
    match method {
        "GET" => Answer::Metrics { head_only: false },
        "HEAD" => Answer::Metrics { head_only: true },
        _ => Answer::Error(405, "Method Not Allowed"),
    }
}

/// Writes all of `data` by `deadline`.
fn write_by(stream: &mut TcpStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn error_response(code: u16, reason: &str) -> String {
    let body = format!("{code} {reason}\n");
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One connection: reads the request head, answers, closes.
fn handle(mut stream: TcpStream, body: &ArcSwap<String>, stop: &AtomicBool) -> io::Result<()> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    // Accepted sockets do not inherit the listener's O_NONBLOCK on Linux; make sure.
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let end = loop {
        if let Some(end) = head_end(&buf[..len]) {
            break end;
        }
        if len == buf.len() {
            let r = error_response(431, "Request Header Fields Too Large");
            write_by(&mut stream, r.as_bytes(), deadline)?;
            return stream.shutdown(Shutdown::Write);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            let r = error_response(408, "Request Timeout");
            // A short grace to say so; the send buffer takes it at once.
            let _ = write_by(
                &mut stream,
                r.as_bytes(),
                Instant::now() + Duration::from_millis(100),
            );
            let _ = stream.shutdown(Shutdown::Write);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no whole request in time",
            ));
        }
        stream.set_read_timeout(Some(left.min(POLL)))?;
        match stream.read(&mut buf[len..]) {
            // Gone before a whole request.
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    };
    match answer(&buf[..end]) {
        Answer::Metrics { head_only } => {
            let text = body.load_full();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                text.len()
            );
            write_by(&mut stream, head.as_bytes(), deadline)?;
            if !head_only {
                write_by(&mut stream, text.as_bytes(), deadline)?;
            }
        }
        Answer::Error(code, reason) => {
            write_by(
                &mut stream,
                error_response(code, reason).as_bytes(),
                deadline,
            )?;
        }
    }
    stream.shutdown(Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    struct Server {
        addr: SocketAddr,
        body: Arc<ArcSwap<String>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        fn start(text: &str) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let body = Arc::new(ArcSwap::from_pointee(text.to_owned()));
            let stop = Arc::new(AtomicBool::new(false));
            let thread = Some(serve(listener, body.clone(), stop.clone()));
            Server {
                addr,
                body,
                stop,
                thread,
            }
        }

        /// Sends `request`, reads until the server closes.
        fn exchange(&self, request: &[u8]) -> String {
            let mut s = TcpStream::connect(self.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request).unwrap();
            read_all(&mut s)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    /// Everything until EOF (or a reset after the answer).
    fn read_all(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn get_metrics_answers_the_current_body() {
        let server = Server::start("rvs_up 1\n");
        let r = server.exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 9\r\nConnection: close\r\n\r\nrvs_up 1\n"
        );
        server.body.store(Arc::new("rvs_up 2\nx 3\n".to_owned()));
        // HTTP/1.0, a query string, bare line feeds.
        let r = server.exchange(b"GET /metrics?x=1 HTTP/1.0\n\n");
        assert!(r.ends_with("Content-Length: 13\r\nConnection: close\r\n\r\nrvs_up 2\nx 3\n"));
        let r = server.exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.ends_with("Content-Length: 13\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn anything_else_is_refused() {
        let server = Server::start("x 1\n");
        let status = |req: &[u8]| {
            let r = server.exchange(req);
            r.lines().next().unwrap_or("").to_owned()
        };
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(status(b"hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        assert_eq!(
            status(b"PRI * HTTP/2.0\r\n\r\n"),
            "HTTP/1.1 505 HTTP Version Not Supported"
        );
        let r = server.exchange(b"GET / HTTP/1.1\r\n\r\n");
        assert!(r.ends_with("\r\n\r\n404 Not Found\n"));
        // Closing without a request harms nothing.
        drop(TcpStream::connect(server.addr).unwrap());
        assert!(server
            .exchange(b"GET /metrics HTTP/1.1\r\n\r\n")
            .ends_with("x 1\n"));
    }

    #[test]
    fn a_request_head_is_bounded() {
        let server = Server::start("x 1\n");
        // Exactly the limit without its end: refused.
        let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_REQUEST, b'a');
        let r = server.exchange(&req);
        assert!(
            r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{r}"
        );
        // Ending right at the limit: served.
        let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_REQUEST - 4, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        assert!(server.exchange(&req).ends_with("\r\n\r\nx 1\n"));
    }

    #[test]
    fn a_slow_client_holds_the_others_back_2_seconds_at_most() {
        let server = Server::start("x 1\n");
        // A silent one, and one that drips a byte every 300 ms (a read timeout alone
        // would never end it).
        let mut silent = TcpStream::connect(server.addr).unwrap();
        silent.write_all(b"GET /met").unwrap();
        let addr = server.addr;
        let dripping = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let started = Instant::now();
            for b in b"GET /metrics HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            (read_all(&mut s), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let r = server.exchange(b"GET /metrics HTTP/1.1\r\n\r\n");
        let waited = started.elapsed();
        assert!(r.ends_with("x 1\n"));
        // Behind the two slow ones: 2 s each at most (the dripping one would take 18 s to
        // send its line; with only a per-read timeout it would hold the server that long).
        assert!(waited < Duration::from_secs(6), "{waited:?}");
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let r = read_all(&mut silent);
        assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
        let (r, took) = dripping.join().unwrap();
        assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
        assert!(took < Duration::from_secs(12), "{took:?}");
    }

    #[test]
    fn stops_within_the_poll_interval() {
        let server = Server::start("x 1\n");
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn stop_ends_a_wait_on_a_silent_client() {
        let server = Server::start("x 1\n");
        let _silent = TcpStream::connect(server.addr).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn request_parsing() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(
            answer(b"GET /metrics HTTP/1.1\r\n"),
            Answer::Metrics { head_only: false }
        );
        assert_eq!(
            answer(b"GET  /metrics HTTP/1.1\r\n"),
            Answer::Error(400, "Bad Request")
        );
        assert_eq!(
            answer(b"GET /metrics\r\n"),
            Answer::Error(400, "Bad Request")
        );
        assert_eq!(
            answer(b"\xff /metrics HTTP/1.1\r\n"),
            Answer::Error(400, "Bad Request")
        );
    }
}
