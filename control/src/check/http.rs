//! HTTP_GET and SSL_GET as keepalived makes them: for each URL a fresh connection, one
//! `GET path HTTP/1.0` with keepalived's User-Agent, the answer read to its end (the
//! Content-Length, else the close), its status and the MD5 of its body compared. Every URL must
//! pass; the first that fails is the verdict. Each URL has `connect_timeout` for all of it
//! (connect, handshake, answer), so a dead server costs one `connect_timeout` per check.
//!
//! HTTP/1.0 is written by hand rather than through an HTTP client library: it is a dozen lines,
//! the digest is keepalived's (the bytes after the head, as they came, not de-chunked), and
//! the connect stays [`tcp::connect`]'s, which tells local errors from the server's.
//!
//! TLS accepts any certificate, as keepalived without a CA does, but still checks the
//! handshake's signature against it (as OpenSSL does without verification).

use std::net::Ipv4Addr;
use std::sync::Arc;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::machine::Outcome;
use super::tcp::{self, remote_error};
use super::{Probe, UrlCheck};

/// The longest head (status line and headers) read before the answer is called bad.
const MAX_HEAD: usize = 64 * 1024;

/// The TLS configuration of every SSL_GET: built once, shared.
pub(super) fn tls_config() -> std::io::Result<Arc<ClientConfig>> {
    let provider = Arc::new(ring_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls on ring (no cmake, no C library of its own to build beyond ring's). Deprecated only
/// for lacking post-quantum key exchange, which protects secrets recorded now from being read
/// later: a health check has none.
#[allow(deprecated)]
pub(super) fn ring_provider() -> CryptoProvider {
    crypto::ring::default_provider()
}

/// keepalived's SSL_GET without a CA: the certificate is not checked, the handshake is.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// HTTP_GET (`tls` None) or SSL_GET: every URL in turn.
pub(super) async fn check(
    probe: &Probe,
    tls: Option<&Arc<ClientConfig>>,
    urls: &[UrlCheck],
    virtualhost: Option<&str>,
) -> Outcome {
    let mut verdict = Outcome::local("no URL to check");
    for url in urls {
        let get = get(probe, tls, url, virtualhost);
        let outcome = tokio::time::timeout(probe.connect_timeout, get)
            .await
            .unwrap_or_else(|_| Outcome::down("timeout"));
        // With several URLs the reason names the one that failed.
        let outcome = match outcome {
            Outcome::Down { reason } if urls.len() > 1 => {
                Outcome::down(format!("{}: {reason}", url.path))
            }
            other => other,
        };
        if !matches!(outcome, Outcome::Up { .. }) {
            return outcome;
        }
        verdict = outcome;
    }
    verdict
}

/// One URL: connect, (handshake,) ask, judge.
async fn get(
    probe: &Probe,
    tls: Option<&Arc<ClientConfig>>,
    url: &UrlCheck,
    virtualhost: Option<&str>,
) -> Outcome {
    let host = url.virtualhost.as_deref().or(virtualhost);
    let request = match request(&url.path, host, probe.target.ip(), probe.target.port(), tls) {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let stream = match tcp::connect(probe.target, probe.bind).await {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };
    let Some(config) = tls else {
        return exchange(stream, &request, url).await;
    };
    let name = server_name(host, *probe.target.ip());
    match TlsConnector::from(config.clone())
        .connect(name, stream)
        .await
    {
        Ok(stream) => exchange(stream, &request, url).await,
        // A socket error during the handshake is the network's; anything else is TLS's.
        Err(e) if e.raw_os_error().is_some() => remote_error(&e),
        Err(e) => Outcome::down(format!("tls: {e}")),
    }
}

/// The SNI: the virtual host (without a port), else the target's address (which rustls does
/// not send, as TLS has no SNI for addresses).
fn server_name(host: Option<&str>, ip: Ipv4Addr) -> ServerName<'static> {
    host.map(|h| h.split(':').next().unwrap_or(h))
        .and_then(|h| ServerName::try_from(h.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(std::net::IpAddr::V4(ip).into()))
}

/// keepalived's request. Host is the virtual host, else the target's address, with the port
/// unless it is the scheme's own. A path or host that would break the request line is a
/// configuration error: refused here rather than sent.
fn request(
    path: &str,
    host: Option<&str>,
    ip: &Ipv4Addr,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Vec<u8>, Outcome> {
    let unfit = |s: &str| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == 0x7f);
    if unfit(path) {
        return Err(Outcome::local(format!("invalid URL path {path:?}")));
    }
    let mut host = match host {
        Some(h) if unfit(h) => return Err(Outcome::local(format!("invalid virtualhost {h:?}"))),
        Some(h) => h.to_owned(),
        None => ip.to_string(),
    };
    let default_port = if tls.is_some() { 443 } else { 80 };
    if port != default_port && !host.contains(':') {
        host = format!("{host}:{port}");
    }
    Ok(format!(
        "GET {path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes())
}

/// The status line and headers of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    /// The body's length if the answer gives it (and is not chunked).
    content_length: Option<usize>,
    /// Bytes of the head, blank line included: the body starts there.
    len: usize,
}

/// Parses the head at the start of `buf`: Ok(None) while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let end = |pat: &[u8]| {
        buf.windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + pat.len())
    };
    let len = match (end(b"\r\n\r\n"), end(b"\n\n")) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Ok(None),
    };
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut lines = head.lines();
    let bad = || "bad response".to_owned();
    let mut status_line = lines.next().ok_or_else(bad)?.split_ascii_whitespace();
    if !status_line.next().is_some_and(|v| v.starts_with("HTTP/")) {
        return Err(bad());
    }
    let status = status_line
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        content_length: content_length.filter(|_| !chunked),
        len,
    }))
}

/// Sends the request, reads the answer to its end, judges it.
async fn exchange<S>(mut stream: S, request: &[u8], url: &UrlCheck) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = async {
        stream.write_all(request).await?;
        stream.flush().await
    }
    .await
    {
        return remote_error(&e);
    }
    // On the heap: a probe's task is as big as its largest check, and there may be 10,000.
    let mut chunk = vec![0u8; 16 * 1024];
    let mut buf = Vec::new();
    let head = loop {
        match parse_head(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() > MAX_HEAD => return Outcome::down("bad response"),
            Ok(None) => {}
            Err(reason) => return Outcome::down(reason),
        }
        match stream.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => return Outcome::down("closed"),
            Ok(0) => return Outcome::down("bad response"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return remote_error(&e),
        }
    };
    let status_ok = match url.status_code {
        Some(code) => head.status == code,
        None => (200..300).contains(&head.status),
    };
    if !status_ok {
        return Outcome::down(format!("status {}", head.status));
    }
    let mut md5 = Md5::new();
    let mut left = head.content_length;
    let mut take = |bytes: &[u8], left: &mut Option<usize>| {
        let n = left.map_or(bytes.len(), |l| l.min(bytes.len()));
        md5.update(&bytes[..n]);
        if let Some(l) = left {
            *l -= n;
        }
    };
    take(&buf[head.len..], &mut left);
    while left != Some(0) {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => take(&chunk[..n], &mut left),
            // TLS servers that close without close_notify: the end of the body all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return remote_error(&e),
        }
    }
    if let Some(digest) = &url.digest {
        if !hex(&md5.finalize()).eq_ignore_ascii_case(digest.trim()) {
            return Outcome::down("digest mismatch");
        }
    }
    Outcome::up(format!("status {}", head.status))
}

/// Lowercase hex, as keepalived's genhash prints digests.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_keepalived_s() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let r = request("/health", None, &ip, 80, None).unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.1\r\n\
             Connection: close\r\n\r\n"
        );
        let r = String::from_utf8(request("/", Some("www.example"), &ip, 8080, None).unwrap());
        assert!(r.unwrap().contains("\r\nHost: www.example:8080\r\n"));
        let tls = tls_config().unwrap();
        let r = String::from_utf8(request("/", None, &ip, 443, Some(&tls)).unwrap());
        assert!(
            r.unwrap().contains("\r\nHost: 10.0.0.1\r\n"),
            "443 is https's own"
        );
    }

    #[test]
    fn a_path_that_would_break_the_request_is_refused() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        for path in ["", "/a b", "/a\r\nX-Evil: 1"] {
            assert!(matches!(
                request(path, None, &ip, 80, None),
                Err(Outcome::Local { .. })
            ));
        }
        assert!(request("/", Some("a\nb"), &ip, 80, None).is_err());
    }

    #[test]
    fn heads() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let head = parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(
            head,
            Ok(Some(Head {
                status: 404,
                content_length: Some(5),
                len: 45
            }))
        );
        let head =
            parse_head(b"HTTP/1.0 200 OK\nTransfer-Encoding: chunked\nContent-Length: 5\n\n");
        assert_eq!(head.unwrap().unwrap().content_length, None);
        assert_eq!(
            parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err("bad response".into())
        );
        assert_eq!(
            parse_head(b"HTTP/1.0 20x\r\n\r\n"),
            Err("bad response".into())
        );
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(hex(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn sni_is_the_virtual_host() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            server_name(Some("www.example:8443"), ip),
            ServerName::try_from("www.example").unwrap()
        );
        assert_eq!(
            server_name(None, ip),
            ServerName::IpAddress(std::net::IpAddr::V4(ip).into())
        );
    }
}
