//! `rvsadm import-keepalived` on every sample keepalived ships (Debian's package puts them in
//! /usr/share/doc/keepalived/samples/): what each converts to (counted from the RON, read with
//! rvs's own schema) and what it lists as unsupported (line and keyword), written out per
//! sample so that a change in either shows as a changed line here. The RON must then load with
//! rvs's loader once the operator's parts are filled: each port gets addresses on the subnets
//! the file's addresses need, and validation passes or refuses for the reason named.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use control::config::{self, keepalived, Config};

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// The samples keepalived 2.2.7 (Debian 12) ships; each has a test below.
const KNOWN: [&str; 25] = [
    "keepalived.conf.HTTP_GET.port",
    "keepalived.conf.IPv6",
    "keepalived.conf.PING_CHECK",
    "keepalived.conf.SMTP_CHECK",
    "keepalived.conf.SSL_GET",
    "keepalived.conf.UDP_CHECK",
    "keepalived.conf.conditional_conf",
    "keepalived.conf.fwmark",
    "keepalived.conf.inhibit",
    "keepalived.conf.misc_check",
    "keepalived.conf.misc_check_arg",
    "keepalived.conf.quorum",
    "keepalived.conf.sample",
    "keepalived.conf.status_code",
    "keepalived.conf.track_interface",
    "keepalived.conf.virtual_server_group",
    "keepalived.conf.virtualhost",
    "keepalived.conf.vrrp",
    "keepalived.conf.vrrp.localcheck",
    "keepalived.conf.vrrp.lvs_syncd",
    "keepalived.conf.vrrp.routes",
    "keepalived.conf.vrrp.rules",
    "keepalived.conf.vrrp.scripts",
    "keepalived.conf.vrrp.static_ipaddress",
    "keepalived.conf.vrrp.sync",
];

#[test]
fn every_sample_on_this_machine_has_its_expectation() {
    let Ok(entries) = std::fs::read_dir(SAMPLES) else {
        println!("note: {SAMPLES} is absent (apt-get install keepalived): nothing to compare");
        return;
    };
    let mut found: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keepalived.conf."))
        .collect();
    found.sort();
    let unknown: Vec<&String> = found
        .iter()
        .filter(|n| !KNOWN.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "samples without an expectation in this file: {unknown:?}"
    );
}

/// What an import gives, counted from the RON as rvs reads it, and whether it loads once
/// filled: the text each test below names.
fn summary(name: &str) -> Option<String> {
    let path = Path::new(SAMPLES).join(name);
    if !path.is_file() {
        println!("note: {} is absent: skipped", path.display());
        return None;
    }
    let import = keepalived::import(&path).unwrap();
    // The header lists what `unsupported` lists.
    for u in &import.unsupported {
        let line = format!("//   {u}");
        assert!(import.ron.contains(&line), "{line} is not in the header");
    }
    let c: Config = ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str(&import.ron)
        .unwrap_or_else(|e| panic!("{name}: the RON does not read: {e}\n{}", import.ron));

    let mut out = String::new();
    let ports: Vec<&str> = c.ports.iter().map(|p| p.name.as_str()).collect();
    writeln!(out, "workers: {:?}, ports: {}", c.workers, ports.join(" ")).unwrap();
    let reals: usize = c.services.iter().map(|s| s.real_servers.len()).sum();
    let mut checks: BTreeMap<&str, usize> = BTreeMap::new();
    for rs in c.services.iter().flat_map(|s| &s.real_servers) {
        for check in &rs.checks {
            *checks.entry(check.name()).or_default() += 1;
        }
    }
    let checks: Vec<String> = checks.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(
        out,
        "services: {}, real servers: {reals}, checks: {}",
        c.services.len(),
        if checks.is_empty() {
            "none".to_owned()
        } else {
            checks.join(", ")
        }
    )
    .unwrap();
    let sync = match &c.lvs_sync_daemon {
        Some(d) => format!("{} {} id {}", d.interface, d.vrrp_instance, d.id),
        None => "none".into(),
    };
    writeln!(
        out,
        "vrrp_instances: {}, vrrp_sync_groups: {}, vrrp_scripts: {}, lvs_sync_daemon: {sync}",
        c.vrrp_instances.len(),
        c.vrrp_sync_groups.len(),
        c.vrrp_scripts.len()
    )
    .unwrap();
    writeln!(
        out,
        "unsupported:{}",
        if import.unsupported.is_empty() {
            " none"
        } else {
            ""
        }
    )
    .unwrap();
    for u in &import.unsupported {
        assert_eq!(u.file, path, "{u}");
        writeln!(out, "  {} {}", u.line, u.keyword).unwrap();
    }
    let filled = fill(&import.ron, &c);
    let verdict = match config::parse_with_cores(&path, filled.clone(), &[0, 1]) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.reason,
    };
    writeln!(out, "validation: {verdict}").unwrap();
    if verdict != "ok" {
        println!("{filled}");
    }
    Some(out)
}

/// The RON with each port's `addresses: []` filled as an operator would: an own address
/// (unused by the file) in each /24 the port's VRRP addresses need, the first port also in those
/// of the services' addresses no port has, and a spare subnet for a port that needs none.
fn fill(ron: &str, c: &Config) -> String {
    let net = |a: Ipv4Addr| u32::from(a) & 0xffff_ff00;
    let mut used: HashSet<Ipv4Addr> = HashSet::new();
    let mut nets: Vec<Vec<u32>> = vec![Vec::new(); c.ports.len()];
    let mut own: Vec<Ipv4Addr> = Vec::new();
    let add = |nets: &mut Vec<Vec<u32>>, port: usize, n: u32| {
        if !nets[port].contains(&n) {
            nets[port].push(n);
        }
    };
    for v in &c.vrrp_instances {
        let port = c.ports.iter().position(|p| p.name == v.interface).unwrap();
        for a in &v.virtual_ipaddress {
            used.insert(a.addr);
            add(&mut nets, port, net(a.addr));
        }
        if let Some(src) = v.unicast_src_ip {
            own.push(src);
            add(&mut nets, port, net(src));
        }
        used.extend(v.unicast_peer.iter().copied());
    }
    let mut service_addresses = Vec::new();
    for s in &c.services {
        service_addresses.push(s.vip);
        service_addresses.extend(s.real_servers.iter().map(|r| r.address));
        service_addresses.extend(s.sorry_server.iter().map(|r| r.address));
    }
    used.extend(service_addresses.iter().copied());
    for a in service_addresses {
        if !nets.iter().flatten().any(|n| *n == net(a)) {
            add(&mut nets, 0, net(a));
        }
    }
    let mut assigned: Vec<Vec<String>> = Vec::new();
    for (i, port_nets) in nets.iter_mut().enumerate() {
        if port_nets.is_empty() {
            port_nets.push(u32::from(Ipv4Addr::new(198, 18, i as u8, 0)));
        }
        let mut list = Vec::new();
        for &n in port_nets.iter() {
            let address = own
                .iter()
                .copied()
                .find(|a| net(*a) == n)
                .unwrap_or_else(|| {
                    (1..=254u32)
                        .rev()
                        .map(|h| Ipv4Addr::from(n | h))
                        .find(|a| !used.contains(a))
                        .unwrap()
                });
            used.insert(address);
            list.push(format!("\"{address}/24\""));
        }
        assigned.push(list);
    }
    let mut next = assigned.into_iter();
    let mut out = String::new();
    for line in ron.lines() {
        if line.trim() == "addresses: []," {
            let indent = &line[..line.len() - line.trim_start().len()];
            let list = next.next().expect("one `addresses: [],` per port");
            writeln!(out, "{indent}addresses: [{}],", list.join(", ")).unwrap();
        } else {
            writeln!(out, "{line}").unwrap();
        }
    }
    assert!(next.next().is_none(), "a port without `addresses: [],`");
    out
}

/// Compares the summary of sample `name` with `expected`, written indented by 8 in the test
/// between a first and a last line of its own.
fn check(name: &str, expected: &str) {
    let expected: String = expected
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l)))
        .collect();
    if let Some(got) = summary(name) {
        assert_eq!(got, expected, "{name}:\n{got}");
    }
}

#[test]
fn http_get_port() {
    check(
        "keepalived.conf.HTTP_GET.port",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: SSL_GET 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
        validation: ok
        ",
    );
}

#[test]
fn ipv6() {
    check(
        "keepalived.conf.IPv6",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 router_id
          7 virtual_server_group
          13 virtual_server
        validation: ok
        ",
    );
}

#[test]
fn ping_check() {
    check(
        "keepalived.conf.PING_CHECK",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: PING_CHECK 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          5 notification_email
          8 notification_email_from
          9 smtp_server
          10 smtp_connect_timeout
          11 router_id
        validation: ok
        ",
    );
}

#[test]
fn smtp_check() {
    check(
        "keepalived.conf.SMTP_CHECK",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 3, checks: none
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          16 notification_email
          19 notification_email_from
          20 smtp_server
          21 smtp_connect_timeout
          22 router_id
          39 SMTP_CHECK
          58 SMTP_CHECK
          89 SMTP_CHECK
        validation: ok
        ",
    );
}

#[test]
fn ssl_get() {
    check(
        "keepalived.conf.SSL_GET",
        "
        workers: [1], ports: eth0
        services: 2, real servers: 2, checks: HTTP_GET 1, SSL_GET 1
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
          20 auth_type
        validation: ok
        ",
    );
}

#[test]
fn udp_check() {
    check(
        "keepalived.conf.UDP_CHECK",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: UDP_CHECK 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          5 notification_email
          8 notification_email_from
          9 smtp_server
          10 smtp_connect_timeout
          11 router_id
        validation: ok
        ",
    );
}

#[test]
fn conditional_conf() {
    check(
        "keepalived.conf.conditional_conf",
        "
        workers: [1], ports: eth0 eth3
        services: 0, real servers: 0, checks: none
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          3 @high net_namespace
          4 @low net_namespace
          6 vrrp_script
          7 @high script
          8 @low script
          19 @high priority
          20 @low priority
          23 use_vmac
          25 check_VI_0
          29 weight
        validation: ok
        ",
    );
}

#[test]
fn fwmark() {
    check(
        "keepalived.conf.fwmark",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 router_id
          7 virtual_server
        validation: ok
        ",
    );
}

#[test]
fn inhibit() {
    check(
        "keepalived.conf.inhibit",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: HTTP_GET 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
        validation: ok
        ",
    );
}

#[test]
fn misc_check() {
    check(
        "keepalived.conf.misc_check",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: MISC_CHECK 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          5 notification_email
          8 notification_email_from
          9 smtp_server
          10 smtp_connect_timeout
          11 router_id
        validation: ok
        ",
    );
}

#[test]
fn misc_check_arg() {
    check(
        "keepalived.conf.misc_check_arg",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: MISC_CHECK 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
        validation: ok
        ",
    );
}

#[test]
fn quorum() {
    check(
        "keepalived.conf.quorum",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 10, checks: TCP_CHECK 10
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported: none
        validation: ok
        ",
    );
}

#[test]
fn sample_conf() {
    check(
        "keepalived.conf.sample",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: HTTP_GET 1
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
        validation: ok
        ",
    );
}

#[test]
fn status_code() {
    check(
        "keepalived.conf.status_code",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: SSL_GET 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          5 notification_email
          8 notification_email_from
          9 smtp_server
          10 smtp_connect_timeout
          11 router_id
          26 status_code
        validation: ok
        ",
    );
}

#[test]
fn track_interface() {
    check(
        "keepalived.conf.track_interface",
        "
        workers: [1], ports: eth0.1 eth0 eth1
        services: 0, real servers: 0, checks: none
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 router_id
          7 static_routes
          25 dev
          26 dev
          28 virtual_routes
        validation: ok
        ",
    );
}

#[test]
fn virtual_server_group() {
    check(
        "keepalived.conf.virtual_server_group",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
          13 virtual_server_group
          22 virtual_server
        validation: ok
        ",
    );
}

#[test]
fn virtualhost() {
    check(
        "keepalived.conf.virtualhost",
        "
        workers: [1], ports: eth0
        services: 1, real servers: 1, checks: SSL_GET 1
        vrrp_instances: 0, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
        validation: ok
        ",
    );
}

#[test]
fn vrrp() {
    check(
        "keepalived.conf.vrrp",
        "
        workers: [1], ports: eth0 eth1
        services: 0, real servers: 0, checks: none
        vrrp_instances: 4, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 notification_email
          7 notification_email_from
          8 smtp_server
          9 smtp_connect_timeout
          10 router_id
          17 smtp_alert
          32 label
          32 192.168.200.18
          38 smtp_alert
          52 smtp_alert
          69 smtp_alert
        validation: ok
        ",
    );
}

#[test]
fn vrrp_localcheck() {
    check(
        "keepalived.conf.vrrp.localcheck",
        "
        workers: [1], ports: eth0 eth3 eth1
        services: 0, real servers: 0, checks: none
        vrrp_instances: 9, vrrp_sync_groups: 0, vrrp_scripts: 5, lvs_sync_daemon: none
        unsupported:
          25 script
          31 script
          37 script
          51 weight
          52 weight
          57 weight
          73 weight
          74 weight
          78 weight
        validation: ok
        ",
    );
}

#[test]
fn vrrp_lvs_syncd() {
    check(
        "keepalived.conf.vrrp.lvs_syncd",
        "
        workers: [1], ports: eth0 eth1
        services: 1, real servers: 1, checks: TCP_CHECK 1
        vrrp_instances: 3, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: eth1 VI_1 id 51
        unsupported:
          3 vrrp_sync_group
          4 VI_2
          5 VI_3
        validation: ok
        ",
    );
}

#[test]
fn vrrp_routes() {
    check(
        "keepalived.conf.vrrp.routes",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 router_id
          7 static_routes
          22 dev
          23 dev
          25 virtual_routes
        validation: ok
        ",
    );
}

#[test]
fn vrrp_rules() {
    check(
        "keepalived.conf.vrrp.rules",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          6 router_id
          9 static_rules
          21 dev
          22 dev
          24 virtual_rules
        validation: ok
        ",
    );
}

#[test]
fn vrrp_scripts() {
    check(
        "keepalived.conf.vrrp.scripts",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 3, vrrp_sync_groups: 1, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          19 smtp_alert
        validation: ok
        ",
    );
}

#[test]
fn vrrp_static_ipaddress() {
    check(
        "keepalived.conf.vrrp.static_ipaddress",
        "
        workers: [1], ports: eth0
        services: 0, real servers: 0, checks: none
        vrrp_instances: 1, vrrp_sync_groups: 0, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported:
          4 router_id
          7 static_ipaddress
          21 virtual_routes
        validation: ok
        ",
    );
}

#[test]
fn vrrp_sync() {
    check(
        "keepalived.conf.vrrp.sync",
        "
        workers: [1], ports: eth0 eth1
        services: 0, real servers: 0, checks: none
        vrrp_instances: 9, vrrp_sync_groups: 2, vrrp_scripts: 0, lvs_sync_daemon: none
        unsupported: none
        validation: ok
        ",
    );
}

/// A file written by hand (no sample has them): an include, `lvs_timeouts` and
/// `lvs_sync_daemon` in `global_defs`, DR with a sorry server, UDP_CHECK's free-form hex,
/// unicast VRRP, a sync group, a tracked script. It converts whole and loads once filled.
#[test]
fn a_hand_written_config_with_an_include_loads_once_filled() {
    let dir = std::env::temp_dir().join(format!("rvs-import-keepalived-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let main = dir.join("keepalived.conf");
    std::fs::write(
        &main,
        r#"global_defs {
    lvs_timeouts tcp 7200 tcpfin 60 udp 30
    lvs_sync_daemon eth1 inst VI_1 maxlen 1400
}
include conf.d/*.conf
vrrp_script chk {
    script /usr/local/bin/chk
    interval 2
    fall 3
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.5
    version 3
    unicast_src_ip 198.51.100.2
    unicast_peer {
        198.51.100.3
    }
    virtual_ipaddress {
        198.51.100.100
        198.51.100.1/24
    }
    track_script {
        chk
    }
    notify "/usr/bin/logger -t vrrp"
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 52
    priority 150
    version 3
    virtual_ipaddress {
        203.0.113.1/24
    }
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
}
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/services.conf"),
        r#"virtual_server 198.51.100.100 53 {
    lvs_sched sh
    sh-port
    lvs_method DR
    protocol UDP
    sorry_server 198.51.100.50
    real_server 198.51.100.11 53 {
        UDP_CHECK {
            payload 0a1 b2
            require_reply
        }
    }
}
virtual_server 198.51.100.100 80 {
    lb_algo wlc
    lb_kind NAT
    quorum 2
    hysteresis 1
    real_server 203.0.113.11 8080 {
        weight 2
        TCP_CHECK {
            connect_port 8081
            bindto 203.0.113.2
        }
    }
    real_server 203.0.113.12 8080 {
        weight 2
        PING_CHECK {
        }
    }
}
"#,
    )
    .unwrap();
    let import = keepalived::import(&main).unwrap();
    let listed: Vec<String> = import.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(listed, Vec::<String>::new());
    let c: Config = ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str(&import.ron)
        .unwrap();
    assert_eq!(
        c.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["eth0", "eth1"]
    );
    let dns = &c.services[0];
    assert_eq!(
        (dns.lb_algo.name(), &dns.sched_flags[..], dns.lb_kind),
        (
            "sh",
            &[config::SchedFlagName::ShPort][..],
            config::LbKind::DR
        )
    );
    assert_eq!(
        dns.real_servers[0].checks,
        [config::health::CheckConfig::UDP_CHECK {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            connect_timeout: None,
            delay_loop: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            alpha: None,
            payload: Some("0a01b2".into()),
            require_reply: Some(String::new()),
        }]
    );
    let conns = &c.connections;
    assert_eq!(
        (conns.tcp_timeout, conns.tcpfin_timeout, conns.udp_timeout),
        (7200, 60, 30)
    );
    let sync = c.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (sync.id, sync.maxlen),
        (51, 1400),
        "the id defaults to VI_1's"
    );
    assert_eq!(c.vrrp_instances[0].advert_int.0, 50);
    assert_eq!(c.vrrp_sync_groups[0].group, ["VI_1", "VI_2"]);
    let filled = fill(&import.ron, &c);
    assert!(
        filled.contains("addresses: [\"198.51.100.2/24\"]"),
        "{filled}"
    );
    if let Err(e) = config::parse_with_cores(&main, filled.clone(), &[0, 1]) {
        panic!("{e}\n{filled}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
