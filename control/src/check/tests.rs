//! The checker against real servers on 127.0.0.1: std listeners on ephemeral ports, a
//! hand-written HTTP responder (plain and TLS), UDP responders, shell scripts, the kernel's
//! own ping replies (which need root, for the raw socket).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread;

use md5::{Digest, Md5};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Quick timings: a check every 200 ms, 200 ms to answer, no retries, no warmup.
fn probe(kind: ProbeKind, target: SocketAddrV4) -> Probe {
    Probe {
        kind,
        target,
        bind: None,
        connect_timeout: ms(200),
        delay_loop: ms(200),
        retry: 0,
        delay_before_retry: ms(100),
        warmup: Duration::ZERO,
        alpha: false,
    }
}

fn alpha(probe: Probe) -> Probe {
    Probe {
        alpha: true,
        ..probe
    }
}

fn up(reason: &str) -> Event {
    Event::Up {
        reason: reason.into(),
    }
}

fn down(reason: &str) -> Event {
    Event::Down {
        reason: reason.into(),
    }
}

fn checker() -> (Checker, Receiver<Report>) {
    Checker::start().expect("checker starts")
}

/// The next report, which must come within `within`.
fn next(rx: &Receiver<Report>, within: Duration) -> Report {
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("no report within {within:?}"))
}

/// No report for `period`.
fn quiet(rx: &Receiver<Report>, period: Duration) {
    if let Ok(report) = rx.recv_timeout(period) {
        panic!("unexpected report {report:?}");
    }
}

/// Every report for `period`.
fn collect(rx: &Receiver<Report>, period: Duration) -> Vec<Report> {
    let end = Instant::now() + period;
    let mut reports = Vec::new();
    while let Ok(r) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        reports.push(r);
    }
    reports
}

/// The events of `probe` among `reports`.
fn events_of(reports: &[Report], probe: &Probe) -> Vec<Event> {
    reports
        .iter()
        .filter(|r| &r.probe == probe)
        .map(|r| r.event.clone())
        .collect()
}

type Handler = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// A TCP server on 127.0.0.1 that counts the connections it accepts and hands each to a
/// handler on a thread of its own (or closes it at once). Killed, its port refuses.
struct Server {
    addr: SocketAddrV4,
    accepted: Arc<AtomicUsize>,
    /// What the HTTP handlers saw: SNI and request head of each request.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(handler: Option<Handler>) -> Server {
        let listener = TcpListener::bind((LO, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            if let Some(handler) = &handler {
                                let handler = handler.clone();
                                stream.set_nonblocking(false).unwrap();
                                thread::spawn(move || handler(stream));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ms(1)),
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        Server {
            addr,
            accepted,
            requests: Arc::default(),
            stop,
            thread: Some(thread),
        }
    }

    /// Accepts and closes.
    fn tcp() -> Server {
        Server::start(None)
    }

    /// Answers each request with what `answer` makes of its head: (status, body).
    fn http(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Server {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let mut server = Server::start(Some(Arc::new(move |mut stream: TcpStream| {
            let head = read_head(&mut stream);
            seen.lock().unwrap().push(head.clone());
            let _ = stream.write_all(&response(answer(&head)));
        })));
        server.requests = requests;
        server
    }

    /// As [`Server::http`] over TLS, with the test certificate; records the SNI too.
    fn https(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Server {
        let config = tls_server_config();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let mut server = Server::start(Some(Arc::new(move |stream: TcpStream| {
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = StreamOwned::new(conn, stream);
            let head = read_head(&mut tls);
            let sni = tls.conn.server_name().map(str::to_owned);
            seen.lock().unwrap().push(format!("sni={sni:?}\n{head}"));
            let _ = tls.write_all(&response(answer(&head)));
            tls.conn.send_close_notify();
            let _ = tls.flush();
        })));
        server.requests = requests;
        server
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Closes the listening socket: from now on connections are refused.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The request head, up to the blank line (or whatever came before 2 s of silence).
fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn response((status, body): (u16, String)) -> Vec<u8> {
    format!(
        "HTTP/1.0 {status} Whatever\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn tls_server_config() -> Arc<ServerConfig> {
    let provider = Arc::new(super::http::ring_provider());
    let cert = CertificateDer::from(include_bytes!("testdata/cert.der").to_vec());
    let key = PrivatePkcs8KeyDer::from(include_bytes!("testdata/key.der").to_vec());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key))
        .unwrap();
    Arc::new(config)
}

fn md5_hex(body: &str) -> String {
    Md5::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn get(path: &str) -> UrlCheck {
    UrlCheck {
        path: path.into(),
        status_code: None,
        digest: None,
        virtualhost: None,
    }
}

fn http(urls: Vec<UrlCheck>) -> ProbeKind {
    ProbeKind::Http {
        tls: false,
        urls,
        virtualhost: None,
    }
}

/// A UDP responder on 127.0.0.1: answers every datagram with `reply`, or never (None).
struct UdpServer {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
}

impl UdpServer {
    fn start(reply: Option<&'static [u8]>) -> UdpServer {
        let socket = UdpSocket::bind((LO, 0)).unwrap();
        socket.set_read_timeout(Some(ms(20))).unwrap();
        let SocketAddr::V4(addr) = socket.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                if let (Ok((_, from)), Some(reply)) = (socket.recv_from(&mut buf), reply) {
                    let _ = socket.send_to(reply, from);
                }
            }
        });
        UdpServer { addr, stop }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A directory of this test's own under the system's temporary one.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvs-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a script and returns the misc_path that runs it. Run through /bin/sh rather than
/// exec'd: a file just written can be busy (ETXTBSY) while another test thread forks.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    format!("/bin/sh {} {}", path.display(), dir.display())
}

fn misc(path: String, timeout: Duration, dynamic: bool) -> ProbeKind {
    ProbeKind::Misc {
        path,
        timeout,
        dynamic,
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn read_pid(path: PathBuf) -> u32 {
    let deadline = Instant::now() + ms(3000);
    loop {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        thread::sleep(ms(10));
    }
}

/// Polls `cond` for up to `within`.
fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(ms(10));
    }
    cond()
}

#[test]
fn tcp_up_then_refused() {
    let mut server = Server::tcp();
    let (checker, rx) = checker();
    let p = alpha(probe(ProbeKind::Tcp, server.addr));
    checker.set_probes(vec![p.clone()]);
    let r = next(&rx, ms(1000));
    assert_eq!((r.probe, r.event), (p, up("connected")));
    quiet(&rx, ms(500));
    server.kill();
    assert_eq!(next(&rx, ms(1000)).event, down("refused"));
    quiet(&rx, ms(300));
}

/// delay_loop 200 ms, connect_timeout 200 ms, retry 2, delay_before_retry 100 ms: a server
/// that dies is Down within 200 + 200 + 2 × (200 + 100) ms, and no sooner than the two
/// retries allow.
#[test]
fn a_dead_server_is_down_within_the_bound_after_its_retries() {
    let mut server = Server::tcp();
    let (checker, rx) = checker();
    let p = Probe {
        retry: 2,
        ..alpha(probe(ProbeKind::Tcp, server.addr))
    };
    checker.set_probes(vec![p]);
    assert_eq!(next(&rx, ms(1000)).event, up("connected"));
    thread::sleep(ms(50));
    server.kill();
    let died = Instant::now();
    let r = next(&rx, ms(2000));
    let took = died.elapsed();
    assert_eq!(r.event, down("refused"));
    assert!(
        took >= ms(200),
        "2 retries 100 ms apart, yet down after {took:?}"
    );
    assert!(took <= ms(1000 + 150), "the bound is 1 s, took {took:?}");
}

/// Failed checks are retried without a word; Down comes with the third failure.
#[test]
fn retries_are_checks_and_silent() {
    let server = Server::http(|_| (500, "broken".into()));
    let (checker, rx) = checker();
    let p = Probe {
        retry: 2,
        delay_loop: ms(5000),
        ..probe(http(vec![get("/")]), server.addr)
    };
    let start = Instant::now();
    checker.set_probes(vec![p]);
    assert_eq!(next(&rx, ms(2000)).event, down("status 500"));
    assert!(start.elapsed() >= ms(200), "two retries 100 ms apart");
    assert_eq!(server.accepted(), 3, "the check and its two retries");
    quiet(&rx, ms(400));
    assert_eq!(
        server.accepted(),
        3,
        "down: the next check is a delay_loop later"
    );
}

#[test]
fn http_status_digest_and_host() {
    let server = Server::http(|head| {
        if head.starts_with("GET /created ") {
            (201, "made".into())
        } else {
            (200, "hello rvs".into())
        }
    });
    let (checker, rx) = checker();
    let port = server.addr.port();
    let digest = |d: &str| UrlCheck {
        digest: Some(d.into()),
        ..get("/ok")
    };
    let good = alpha(probe(
        http(vec![digest(&md5_hex("hello rvs"))]),
        server.addr,
    ));
    let bad_digest = probe(http(vec![digest(&md5_hex("something else"))]), server.addr);
    let wrong_status = probe(
        http(vec![UrlCheck {
            status_code: Some(201),
            ..get("/ok")
        }]),
        server.addr,
    );
    let exact_status = alpha(probe(
        http(vec![UrlCheck {
            status_code: Some(201),
            ..get("/created")
        }]),
        server.addr,
    ));
    let two_urls = probe(
        http(vec![
            get("/ok"),
            UrlCheck {
                status_code: Some(200),
                ..get("/created")
            },
        ]),
        server.addr,
    );
    let vhost = alpha(probe(
        ProbeKind::Http {
            tls: false,
            urls: vec![
                get("/site"),
                UrlCheck {
                    virtualhost: Some("url.example".into()),
                    ..get("/url")
                },
            ],
            virtualhost: Some("www.example".into()),
        },
        server.addr,
    ));
    let probes = [
        &good,
        &bad_digest,
        &wrong_status,
        &exact_status,
        &two_urls,
        &vhost,
    ];
    checker.set_probes(probes.iter().map(|p| (*p).clone()).collect());
    let reports = collect(&rx, ms(800));
    assert_eq!(events_of(&reports, &good), vec![up("status 200")]);
    assert_eq!(
        events_of(&reports, &bad_digest),
        vec![down("digest mismatch")]
    );
    assert_eq!(events_of(&reports, &wrong_status), vec![down("status 200")]);
    assert_eq!(events_of(&reports, &exact_status), vec![up("status 201")]);
    assert_eq!(
        events_of(&reports, &two_urls),
        vec![down("/created: status 201")]
    );
    assert_eq!(events_of(&reports, &vhost), vec![up("status 200")]);

    let requests = server.requests();
    let has = |line: &str| requests.iter().any(|r| r.contains(line));
    assert!(has(&format!(
        "GET /ok HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:{port}\r\n"
    )));
    assert!(has(&format!(
        "GET /site HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example:{port}\r\n"
    )));
    assert!(has(&format!(
        "GET /url HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: url.example:{port}\r\n"
    )));
}

#[test]
fn http_that_never_answers_times_out() {
    let server = Server::start(Some(Arc::new(|stream: TcpStream| {
        thread::sleep(ms(3000));
        drop(stream);
    })));
    let (checker, rx) = checker();
    let start = Instant::now();
    checker.set_probes(vec![probe(http(vec![get("/")]), server.addr)]);
    assert_eq!(next(&rx, ms(1500)).event, down("timeout"));
    assert!(start.elapsed() >= ms(200), "connect_timeout is 200 ms");
}

#[test]
fn ssl_get_sends_sni_and_accepts_any_certificate() {
    let server = Server::https(|_| (200, "secure".into()));
    let (checker, rx) = checker();
    let ssl = |virtualhost: Option<&str>, digest: &str| {
        alpha(probe(
            ProbeKind::Http {
                tls: true,
                urls: vec![UrlCheck {
                    digest: Some(digest.into()),
                    ..get("/tls")
                }],
                virtualhost: virtualhost.map(str::to_owned),
            },
            server.addr,
        ))
    };
    let named = ssl(Some("www.example"), &md5_hex("secure"));
    let by_address = ssl(None, &md5_hex("secure"));
    let bad_digest = Probe {
        alpha: false,
        ..ssl(None, &md5_hex("insecure"))
    };
    checker.set_probes(vec![named.clone(), by_address.clone(), bad_digest.clone()]);
    let reports = collect(&rx, ms(1000));
    assert_eq!(events_of(&reports, &named), vec![up("status 200")]);
    assert_eq!(events_of(&reports, &by_address), vec![up("status 200")]);
    assert_eq!(
        events_of(&reports, &bad_digest),
        vec![down("digest mismatch")]
    );
    let requests = server.requests();
    let port = server.addr.port();
    assert!(requests
        .iter()
        .any(|r| r.starts_with("sni=Some(\"www.example\")\n")
            && r.contains(&format!("Host: www.example:{port}\r\n"))));
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("sni=None\n")
                && r.contains(&format!("Host: 127.0.0.1:{port}\r\n")))
    );
}

#[test]
fn ssl_get_to_a_server_without_tls_is_down() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    let p = probe(
        ProbeKind::Http {
            tls: true,
            urls: vec![get("/")],
            virtualhost: None,
        },
        server.addr,
    );
    checker.set_probes(vec![p]);
    let Event::Down { reason } = next(&rx, ms(1000)).event else {
        panic!("down expected");
    };
    assert!(
        reason.starts_with("tls: ") || reason == "reset",
        "the handshake fails: {reason}"
    );
}

#[test]
fn misc_exit_codes() {
    let dir = temp_dir("exit");
    let (checker, rx) = checker();
    let second = ms(1000);
    let ok = alpha(probe(
        misc(script(&dir, "ok", "exit 0"), second, false),
        LO_ANY,
    ));
    let fails = probe(misc(script(&dir, "fails", "exit 1"), second, false), LO_ANY);
    let three = probe(misc(script(&dir, "three", "exit 3"), second, false), LO_ANY);
    let missing = probe(
        misc("/nonexistent/check --flag".into(), second, false),
        LO_ANY,
    );
    let empty = probe(misc("  ".into(), second, false), LO_ANY);
    checker.set_probes(vec![
        ok.clone(),
        fails.clone(),
        three.clone(),
        missing.clone(),
        empty.clone(),
    ]);
    let reports = collect(&rx, ms(700));
    assert_eq!(events_of(&reports, &ok), vec![up("exit 0")]);
    assert_eq!(events_of(&reports, &fails), vec![down("exit code 1")]);
    assert_eq!(events_of(&reports, &three), vec![down("exit code 3")]);
    let missing = events_of(&reports, &missing);
    assert!(missing.len() >= 2, "reported every round: {missing:?}");
    assert!(missing.iter().all(|e| matches!(e,
        Event::LocalError { reason } if reason.starts_with("cannot run /nonexistent/check: "))));
    assert!(events_of(&reports, &empty).iter().all(|e| *e
        == Event::LocalError {
            reason: "misc_path is empty".into()
        }));
    let _ = std::fs::remove_dir_all(dir);
}

/// Any target will do for MISC_CHECK.
const LO_ANY: SocketAddrV4 = SocketAddrV4::new(LO, 9);

#[test]
fn misc_dynamic_weights() {
    let dir = temp_dir("dynamic");
    let code = dir.join("code");
    let set = |c: u32| {
        let tmp = dir.join("code.tmp");
        std::fs::write(&tmp, c.to_string()).unwrap();
        std::fs::rename(&tmp, &code).unwrap();
    };
    set(12);
    let (checker, rx) = checker();
    let body = format!("exit $(cat {})", code.display());
    let p = Probe {
        delay_loop: ms(100),
        ..alpha(probe(
            misc(script(&dir, "weight", &body), ms(1000), true),
            LO_ANY,
        ))
    };
    checker.set_probes(vec![p]);
    let weight = |weight: u32, reason: &str| Event::Weight {
        weight,
        reason: reason.into(),
    };
    assert_eq!(next(&rx, ms(1000)).event, weight(10, "exit 12"));
    quiet(&rx, ms(250));
    set(7);
    assert_eq!(
        next(&rx, ms(1000)).event,
        weight(5, "exit 7"),
        "up all along"
    );
    set(0);
    quiet(&rx, ms(300));
    set(1);
    assert_eq!(next(&rx, ms(1000)).event, down("exit code 1"));
    set(2);
    assert_eq!(next(&rx, ms(1000)).event, weight(0, "exit 2"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hanging_misc_is_killed_with_its_group_at_its_timeout() {
    let dir = temp_dir("hang");
    let body = r#"sleep 30 & echo $! > "$1/child"; echo $$ > "$1/shell"; wait"#;
    let (checker, rx) = checker();
    let p = Probe {
        delay_loop: ms(10_000),
        ..probe(misc(script(&dir, "hang", body), ms(300), false), LO_ANY)
    };
    let start = Instant::now();
    checker.set_probes(vec![p]);
    let shell = read_pid(dir.join("shell"));
    let child = read_pid(dir.join("child"));
    assert_eq!(next(&rx, ms(1500)).event, down("timeout"));
    assert!(start.elapsed() >= ms(300));
    assert!(
        eventually(ms(1000), || !alive(child)),
        "the script's own child dies with it"
    );
    assert!(
        eventually(ms(1000), || !std::path::Path::new(&format!(
            "/proc/{shell}"
        ))
        .exists()),
        "the script is reaped, not left a zombie"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_removed_misc_probe_kills_its_script() {
    let dir = temp_dir("removed");
    let body = r#"sleep 30 & echo $! > "$1/child"; echo $$ > "$1/shell"; wait"#;
    let (checker, rx) = checker();
    checker.set_probes(vec![probe(
        misc(script(&dir, "slow", body), ms(20_000), false),
        LO_ANY,
    )]);
    let shell = read_pid(dir.join("shell"));
    let child = read_pid(dir.join("child"));
    checker.set_probes(vec![]);
    assert!(eventually(ms(1000), || !alive(shell) && !alive(child)));
    quiet(&rx, ms(100));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn udp_checks() {
    let pong = UdpServer::start(Some(b"pong!"));
    let silent = UdpServer::start(None);
    let closed = {
        let socket = UdpSocket::bind((LO, 0)).unwrap();
        let SocketAddr::V4(addr) = socket.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        addr
    };
    let (checker, rx) = checker();
    let udp = |require_reply: Option<&[u8]>| ProbeKind::Udp {
        payload: b"ping?".to_vec(),
        require_reply: require_reply.map(<[u8]>::to_vec),
    };
    let prefix = alpha(probe(udp(Some(b"pong")), pong.addr));
    let any = alpha(probe(udp(Some(b"")), pong.addr));
    let mismatch = probe(udp(Some(b"nope")), pong.addr);
    let unreachable = probe(udp(None), closed);
    let no_reply = probe(udp(Some(b"")), silent.addr);
    let silence_is_fine = alpha(probe(udp(None), silent.addr));
    checker.set_probes(vec![
        prefix.clone(),
        any.clone(),
        mismatch.clone(),
        unreachable.clone(),
        no_reply.clone(),
        silence_is_fine.clone(),
    ]);
    let reports = collect(&rx, ms(800));
    assert_eq!(events_of(&reports, &prefix), vec![up("reply")]);
    assert_eq!(events_of(&reports, &any), vec![up("reply")]);
    assert_eq!(events_of(&reports, &mismatch), vec![down("reply mismatch")]);
    assert_eq!(
        events_of(&reports, &unreachable),
        vec![down("port unreachable")]
    );
    assert_eq!(events_of(&reports, &no_reply), vec![down("no reply")]);
    assert_eq!(
        events_of(&reports, &silence_is_fine),
        vec![up("no port unreachable")]
    );
    drop(pong);
}

/// Needs root (CAP_NET_RAW) for the raw ICMP socket.
#[test]
fn ping() {
    let (checker, rx) = checker();
    let target = |ip: Ipv4Addr| SocketAddrV4::new(ip, 0);
    let lo = alpha(probe(ProbeKind::Ping, target(LO)));
    let bound = Probe {
        bind: Some(LO),
        ..lo.clone()
    };
    // TEST-NET-2: routed out by default, answered by nobody.
    let nobody = probe(ProbeKind::Ping, target(Ipv4Addr::new(198, 51, 100, 1)));
    checker.set_probes(vec![lo.clone(), bound.clone(), nobody.clone()]);
    let reports = collect(&rx, ms(700));
    assert_eq!(events_of(&reports, &lo), vec![up("echo reply")]);
    assert_eq!(events_of(&reports, &bound), vec![up("echo reply")]);
    match events_of(&reports, &nobody).as_slice() {
        [Event::Down { reason }] => assert_eq!(reason, "timeout"),
        // A host without a default route cannot send it at all: not the server's fault.
        [Event::LocalError { .. }, ..] => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn identical_probes_run_once() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    let p = Probe {
        delay_loop: ms(10_000),
        ..alpha(probe(ProbeKind::Tcp, server.addr))
    };
    checker.set_probes(vec![p.clone(), p.clone(), p.clone()]);
    assert_eq!(next(&rx, ms(1000)).event, up("connected"));
    quiet(&rx, ms(300));
    assert_eq!(server.accepted(), 1);
    checker.set_probes(vec![p.clone(), p]);
    quiet(&rx, ms(300));
    assert_eq!(server.accepted(), 1, "still listed: not started again");
}

#[test]
fn set_probes_keeps_listed_probes_and_stops_the_others() {
    let a = Server::tcp();
    let b = Server::tcp();
    let (checker, rx) = checker();
    let pa = Probe {
        delay_loop: ms(100),
        ..alpha(probe(ProbeKind::Tcp, a.addr))
    };
    let pb = Probe {
        delay_loop: ms(100),
        ..alpha(probe(ProbeKind::Tcp, b.addr))
    };
    checker.set_probes(vec![pa.clone()]);
    assert_eq!(next(&rx, ms(1000)).probe, pa);
    checker.set_probes(vec![pb.clone(), pa.clone()]);
    let r = next(&rx, ms(1000));
    assert_eq!((r.probe, r.event), (pb.clone(), up("connected")));
    quiet(&rx, ms(300));
    checker.set_probes(vec![pb]);
    thread::sleep(ms(50));
    let (a_then, b_then) = (a.accepted(), b.accepted());
    thread::sleep(ms(400));
    assert_eq!(a.accepted(), a_then, "removed: no more checks");
    assert!(b.accepted() >= b_then + 2, "kept: still checking");
}

#[test]
fn a_local_error_is_not_held_against_the_server() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    // TEST-NET-3: not an address of this host, so bind fails with EADDRNOTAVAIL.
    let foreign = Some(Ipv4Addr::new(203, 0, 113, 1));
    let p = Probe {
        bind: foreign,
        delay_loop: ms(100),
        ..probe(ProbeKind::Tcp, server.addr)
    };
    let pa = alpha(p.clone());
    checker.set_probes(vec![p.clone(), pa.clone()]);
    let reports = collect(&rx, ms(700));
    for probe in [&p, &pa] {
        let events = events_of(&reports, probe);
        assert!(events.len() >= 3, "every round: {events:?}");
        assert!(
            events.iter().all(|e| matches!(e,
                Event::LocalError { reason } if reason.starts_with("bind: "))),
            "{events:?}"
        );
    }
    assert_eq!(server.accepted(), 0);
}

#[test]
fn warmup_spreads_the_first_checks() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    let probes: Vec<Probe> = (0..20)
        .map(|i| Probe {
            warmup: ms(300),
            delay_loop: ms(10_000 + i),
            ..alpha(probe(ProbeKind::Tcp, server.addr))
        })
        .collect();
    let start = Instant::now();
    checker.set_probes(probes);
    let times: Vec<Duration> = (0..20)
        .map(|_| {
            assert_eq!(next(&rx, ms(1000)).event, up("connected"));
            start.elapsed()
        })
        .collect();
    let (first, last) = (times[0], times[19]);
    assert!(last <= ms(300 + 150), "all within the warmup: {times:?}");
    assert!(last - first >= ms(50), "not all at once: {times:?}");
}

/// Many probes are many tasks, not threads: 2,000 checks a second on the one checker thread.
#[test]
fn two_thousand_probes() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    let probes: Vec<Probe> = (0..2000)
        .map(|i| Probe {
            connect_timeout: ms(1000),
            delay_loop: ms(1000) + Duration::from_micros(i),
            warmup: ms(500),
            ..alpha(probe(ProbeKind::Tcp, server.addr))
        })
        .collect();
    checker.set_probes(probes);
    let reports = collect(&rx, ms(1500));
    assert_eq!(reports.len(), 2000);
    assert!(reports.iter().all(|r| r.event == up("connected")));
    assert!(server.accepted() >= 2000);
}

#[test]
fn stop_ends_the_thread_and_the_reports() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    checker.set_probes(vec![alpha(probe(ProbeKind::Tcp, server.addr))]);
    assert_eq!(next(&rx, ms(1000)).event, up("connected"));
    let start = Instant::now();
    checker.stop();
    assert!(start.elapsed() < ms(500));
    assert!(rx.recv().is_err(), "every sender is gone");
}

/// CPU ticks (user + system) the checker thread has used so far.
fn checker_ticks() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "rvs-check").then(|| std::fs::read_to_string(dir.join("stat")).ok())?
        })
        .map(|stat| {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
        })
        .sum()
}

/// The 10,000-probe load of the brief (TCP_CHECK, delay_loop 1 s), for a manual run:
/// `cargo test -p control --lib check::tests::ten_thousand -- --ignored --nocapture`.
#[test]
#[ignore]
fn ten_thousand_probes() {
    let server = Server::tcp();
    let (checker, rx) = checker();
    let probes: Vec<Probe> = (0..10_000)
        .map(|i| Probe {
            connect_timeout: ms(1000),
            delay_loop: ms(1000) + Duration::from_micros(i),
            warmup: ms(1000),
            ..alpha(probe(ProbeKind::Tcp, server.addr))
        })
        .collect();
    let start = Instant::now();
    checker.set_probes(probes);
    let mut up = 0;
    while up < 10_000 && rx.recv_timeout(ms(3000)).is_ok() {
        up += 1;
    }
    let all_up = start.elapsed();
    let (accepted, ticks) = (server.accepted(), checker_ticks());
    thread::sleep(ms(5000));
    let per_second = (server.accepted() - accepted) as f64 / 5.0;
    // USER_HZ is 100 on Linux: a tick is 10 ms.
    let cpu = (checker_ticks() - ticks) as f64 / 100.0 / 5.0;
    eprintln!(
        "{up} up in {all_up:?}; then {per_second:.0} checks/s using {:.0}% of a CPU",
        cpu * 100.0
    );
    assert_eq!(up, 10_000);
    assert!(per_second > 9_000.0);
}
