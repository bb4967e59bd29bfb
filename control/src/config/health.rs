//! Health checking in the configuration, with keepalived's words: the checkers of a real server
//! (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `UDP_CHECK`, `PING_CHECK`), their timing,
//! and what a service does with the verdicts (`alpha`, `omega`, `quorum`, `hysteresis`,
//! `inhibit_on_failure`, `sorry_server`, the notify scripts). As in keepalived, a timing set on
//! the service is the default of its real servers, and a real server's the default of its
//! checkers.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{ipv4, ipv4_opt};

/// One URL of an `HTTP_GET` or `SSL_GET`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UrlConfig {
    pub path: String,
    /// The status the answer must have; absent: any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// MD5 of the answer's body, 32 hex digits (keepalived's `genhash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

/// The `sorry_server` of a service: takes its traffic while the quorum is not met.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SorryServer {
    #[serde(deserialize_with = "ipv4")]
    pub address: Ipv4Addr,
    /// Default: the service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The timing every checker has (keepalived's common checker options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing<'a> {
    pub connect_ip: Option<Ipv4Addr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<Ipv4Addr>,
    pub connect_timeout: Option<u32>,
    pub delay_loop: Option<u32>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<u32>,
    pub warmup: Option<u32>,
    pub alpha: Option<bool>,
    pub virtualhost: Option<&'a str>,
}

/// Declares the checkers: each variant has the common fields and its own.
macro_rules! checkers {
    ($( $(#[$doc:meta])* $variant:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        /// A health checker of a real server, as keepalived names it.
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        #[allow(non_camel_case_types)]
        pub enum CheckConfig {
            $(
                $(#[$doc])*
                $variant {
                    /// Address to check (default: the real server's).
                    #[serde(default, deserialize_with = "ipv4_opt", skip_serializing_if = "Option::is_none")]
                    connect_ip: Option<Ipv4Addr>,
                    /// Port to check (default: the real server's).
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    connect_port: Option<u16>,
                    /// Local address to check from.
                    #[serde(default, deserialize_with = "ipv4_opt", skip_serializing_if = "Option::is_none")]
                    bindto: Option<Ipv4Addr>,
                    /// Seconds a check may take.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    connect_timeout: Option<u32>,
                    /// Seconds between checks.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    delay_loop: Option<u32>,
                    /// Retries after a failure before the server is down.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    retry: Option<u32>,
                    /// Seconds between retries.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    delay_before_retry: Option<u32>,
                    /// Random delay of at most this many seconds before the first check.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    warmup: Option<u32>,
                    /// Start down until a check passes.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    alpha: Option<bool>,
                    $( $(#[$fm])* $field: $ty, )*
                },
            )*
        }

        impl CheckConfig {
            /// keepalived's name of the checker.
            pub fn name(&self) -> &'static str {
                match self {
                    $( CheckConfig::$variant { .. } => stringify!($variant), )*
                }
            }

            /// Its common options, as written (None where not).
            pub fn timing(&self) -> Timing<'_> {
                match self {
                    $( CheckConfig::$variant {
                        connect_ip, connect_port, bindto, connect_timeout, delay_loop, retry,
                        delay_before_retry, warmup, alpha, ..
                    } => Timing {
                        connect_ip: *connect_ip,
                        connect_port: *connect_port,
                        bindto: *bindto,
                        connect_timeout: *connect_timeout,
                        delay_loop: *delay_loop,
                        retry: *retry,
                        delay_before_retry: *delay_before_retry,
                        warmup: *warmup,
                        alpha: *alpha,
                        virtualhost: None,
                    }, )*
                }
            }
        }
    };
}

checkers! {
    /// A TCP connection to the server is accepted.
    TCP_CHECK {}
    /// Every URL answers over HTTP as expected.
    HTTP_GET {
        url: Vec<UrlConfig>,
        /// Host header for every URL that sets none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        virtualhost: Option<String>,
    }
    /// Every URL answers over HTTPS as expected (any certificate).
    SSL_GET {
        url: Vec<UrlConfig>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        virtualhost: Option<String>,
    }
    /// A program decides: exit 0 up, 1 down; with misc_dynamic 2..=255 up with weight code - 2.
    MISC_CHECK {
        /// The program and its arguments, split on whitespace (no shell).
        misc_path: String,
        /// Seconds before the program is killed (default: the delay_loop).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        misc_timeout: Option<u32>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        misc_dynamic: bool,
    }
    /// A UDP datagram: the server must not answer "port unreachable" (or must reply).
    UDP_CHECK {
        /// The datagram, in hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// A reply is required; "" any, else the hex bytes it must start with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        require_reply: Option<String>,
    }
    /// An ICMP echo is answered.
    PING_CHECK {}
}

impl CheckConfig {
    /// The virtualhost an `HTTP_GET`/`SSL_GET` sets for its URLs.
    pub fn virtualhost(&self) -> Option<&str> {
        match self {
            CheckConfig::HTTP_GET { virtualhost, .. }
            | CheckConfig::SSL_GET { virtualhost, .. } => virtualhost.as_deref(),
            _ => None,
        }
    }
}

/// Parses a hex string ("0a1B", spaces allowed between bytes) into bytes.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// keepalived's defaults where nothing is set: a check every 60 s, 5 s to answer, one retry
/// a second later, no warmup, servers start up.
pub mod defaults {
    pub const DELAY_LOOP: u32 = 60;
    pub const CONNECT_TIMEOUT: u32 = 5;
    pub const RETRY: u32 = 1;
    pub const DELAY_BEFORE_RETRY: u32 = 1;
    pub const QUORUM: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<CheckConfig>, ron::error::SpannedError> {
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(text)
    }

    #[test]
    fn checkers_read_as_keepalived_writes_them() {
        let checks: Vec<CheckConfig> = read(
            r#"[
                TCP_CHECK(connect_timeout: 3, retry: 2),
                HTTP_GET(url: [(path: "/health", status_code: 200,
                                digest: "9b3e6a1fbd3a23d5c0e0fa0b4c2d0e1f")],
                         virtualhost: "www.example.com", delay_loop: 2),
                SSL_GET(url: [(path: "/")]),
                MISC_CHECK(misc_path: "/usr/local/bin/check.sh a b", misc_timeout: 5,
                           misc_dynamic: true),
                UDP_CHECK(payload: "0a0b", require_reply: ""),
                PING_CHECK(connect_ip: "203.0.113.254"),
            ]"#,
        )
        .unwrap();
        assert_eq!(
            checks.iter().map(CheckConfig::name).collect::<Vec<_>>(),
            [
                "TCP_CHECK",
                "HTTP_GET",
                "SSL_GET",
                "MISC_CHECK",
                "UDP_CHECK",
                "PING_CHECK"
            ]
        );
        assert_eq!(checks[0].timing().retry, Some(2));
        assert_eq!(checks[1].timing().delay_loop, Some(2));
        assert_eq!(checks[1].virtualhost(), Some("www.example.com"));
        assert_eq!(
            checks[5].timing().connect_ip,
            Some(Ipv4Addr::new(203, 0, 113, 254))
        );
        let bad = read("[TCP_CHECK(url: [])]");
        assert!(bad.is_err(), "TCP_CHECK has no url");
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("0a1B ff"), Some(vec![0x0a, 0x1b, 0xff]));
        assert_eq!(parse_hex(""), Some(vec![]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
    }
}
