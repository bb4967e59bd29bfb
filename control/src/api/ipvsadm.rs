//! ipvsadm's language for `rvsadm`: its command line ([`parse`]) and its tables ([`render`]),
//! so that scripts and people used to `ipvsadm` 1.26 (and keepalived's `check`/`notify`
//! helpers that call it) work unchanged against rvs.
//!
//! # What is reproduced
//!
//! - **Command line** (ipvsadm.c `parse_options`, `process_options`): popt-style options, short
//!   ones combinable (`-Ln`, `-At VIP:PORT`), long ones with `=` or a separate argument,
//!   `-p [TIMEOUT]` with its optional argument (300 s when absent). The first option must be
//!   a command, as ipvsadm requires. The table of legal command/option pairs
//!   (`commands_v_options`) and its messages ("Illegal 'weight' option with the
//!   'add-service' command", ...), the exclusive list options (`-c`, a service, `--timeout`,
//!   `--daemon`), "options conflicts in the list command", "Zero port specified for
//!   non-persistent service", ipvsadm's range checks and their messages.
//! - **Defaults as ipvsadm sends them**: the client fills every field of a service or a real
//!   server, so an edit *replaces* rather than merges:
//!   - `-A`/`-E` without `-s` is `wlc`; without `-M` the netmask is 255.255.255.255; without
//!     `-b` no scheduler flags. `-E` without `-p` turns persistence **off**: rvsadm sends
//!     `persistent: Some(0)` for that (0 is never a persistence timeout, ipvsadm refuses
//!     `-p 0`), and the daemon must read `Some(0)` as "not persistent". `-A` without `-p`
//!     sends `None`.
//!   - `-a`/`-e` without a forwarding option is Route (`-g`), without `-w` weight 1, without
//!     `-x`/`-y` thresholds 0. A real server's port is the service's when `-r` has none, and
//!     for Route and Tunnel it is always the service's (IPVS cannot change the port without
//!     rewriting the packet), whatever `-r` says.
//! - **Tables** (ipvsadm.c `list_all`, `print_title`, `print_service_entry`,
//!   `print_largenum`, `list_conn`/`print_conn`, `list_timeout`, `list_daemon`, `fwd_name`,
//!   `fwd_switch`): the same printf formats and widths, the 33-character service and
//!   28-character real-server columns (cut, as ipvsadm cuts them), `--stats`, `--rate` (whose
//!   real-server CPS/InPPS/OutPPS ipvsadm prints as plain `%8u`, not with K/M), `--exact`,
//!   `--thresholds`, `--persistent-conn`, `-c`, `--timeout`, `-S`. Scheduler flags are shown
//!   as ipvsadm 1.29 and later show them: `rr (sh-fallback,sh-port)` and `-b sh-port`.
//!   FullNAT's forward name is DPVS's `FullNat`; in `-S` its switch is `--fullnat` (DPVS
//!   writes `-b`, which is the scheduler flags option here).
//! - **Sorting** as ipvsadm 1.26: on by default (services by protocol, address, port; real
//!   servers by address, port), `--sort` accepted and a no-op, `--nosort` keeps the daemon's
//!   order. ipvsadm compares addresses by subtracting them into an `int`, which misorders
//!   addresses more than 2^31 apart; rvsadm orders them numerically.
//!
//! # Names
//!
//! Without `-n`, addresses and ports are shown by name as ipvsadm shows them, but looked up
//! **only in `/etc/hosts` and `/etc/services`**: rvsadm never asks DNS (a listing must not
//! hang on a resolver, and the load balancer's own DNS may be what is failing). The same
//! files resolve names given on the command line (`-t www:http`).
//!
//! # Not reproduced
//!
//! Firewall marks (`-f`), IPv6, `-R`/`--restore`, `--start-daemon`/`--stop-daemon` (rvs's
//! sync daemon is configured, `lvs_sync_daemon`), `--ops`, `--pe`, tunnel options: refused
//! with a message. The optnames table of ipvsadm 1.26 is off by one after "scheduler" (a
//! stray "pe"); rvsadm names the options correctly, as later ipvsadm versions do.
//!
//! `-L --daemon` has no state to read from a [`State`]: it asks rvsd's status and prints
//! ipvsadm's "master sync daemon (mcast=IFACE, syncid=N)" line from its `sync` object
//! (`state`, `interface`, `id`; see [`render_daemon`]), nothing if there is none.
//!
//! rvs's own commands: `reload`, `status`, `dump`, `--save-ron`, and two modifiers:
//! `--from FILE` (render from a `dump` instead of asking rvsd) and `--socket PATH`.
//!
//! A parse error is ipvsadm's message; ipvsadm exits 2 after one (`fail(2, ...)`), and so
//! does `rvsadm`.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::{
    Connection, Forward, Protocol, RealServerState, Reply, Request, ServerSettings, ServiceKey,
    ServiceSettings, ServiceState, State, DEFAULT_SOCKET,
};

/// The IPVS version the first line of `-L` names; rvs behaves as this one.
pub const IPVS_VERSION: &str = "1.2.1";
/// ipvsadm's `DEF_SCHED`.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's `IPVS_SVC_PERSISTENT_TIMEOUT`: `-p` without a value.
pub const DEFAULT_PERSISTENT: u32 = 300;
/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// What one `rvsadm` invocation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-h`: the usage text.
    Help,
    /// `-v`: the version line.
    Version,
    /// `-A/-E/-D/-a/-e/-d/-C/-Z/--set`: send the request; silent on success, as ipvsadm.
    Edit { request: Request, socket: PathBuf },
    /// `-L/-l` (and its variants), `-c`, `--timeout`, `-S`: fetch the state (a
    /// [`Request::State`]) from rvsd or read it from a dump, and render it.
    List {
        request: Request,
        options: ListOptions,
        source: Source,
    },
    /// `-L --daemon`: the sync daemon's line, from rvsd's status.
    Daemon { socket: PathBuf },
    /// `dump`: the state, connections included, as pretty JSON (what `--from` reads).
    Dump { socket: PathBuf },
    /// `--save-ron`: the running configuration as RON.
    SaveRon { socket: PathBuf },
    /// `reload`: read the configuration file again.
    Reload { socket: PathBuf },
    /// `status`: workers, ports, checkers, VRRP as pretty JSON.
    Status { socket: PathBuf },
}

impl Command {
    /// The request this command sends to rvsd, if it asks rvsd anything.
    pub fn request(&self) -> Option<Request> {
        match self {
            Command::Help | Command::Version => None,
            Command::List {
                source: Source::File(_),
                ..
            } => None,
            Command::Edit { request, .. } | Command::List { request, .. } => Some(request.clone()),
            Command::Daemon { .. } | Command::Status { .. } => Some(Request::Status),
            Command::Dump { .. } => Some(Request::State {
                connections: true,
                limit: None,
            }),
            Command::SaveRon { .. } => Some(Request::SaveRon),
            Command::Reload { .. } => Some(Request::Reload),
        }
    }

    /// The control socket this command talks to, if it talks to rvsd.
    pub fn socket(&self) -> Option<&PathBuf> {
        match self {
            Command::Help | Command::Version => None,
            Command::List { source, .. } => match source {
                Source::Daemon(socket) => Some(socket),
                Source::File(_) => None,
            },
            Command::Edit { socket, .. }
            | Command::Daemon { socket }
            | Command::Dump { socket }
            | Command::SaveRon { socket }
            | Command::Reload { socket }
            | Command::Status { socket } => Some(socket),
        }
    }
}

/// Where a table's state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// rvsd, through this control socket.
    Daemon(PathBuf),
    /// A file `rvsadm dump` wrote (`--from FILE`).
    File(PathBuf),
}

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `-L`: services and real servers (with `--stats`, `--rate`, `--thresholds`,
    /// `--persistent-conn` as asked).
    Services,
    /// `-L -c`: the connection table.
    Connections,
    /// `-L --timeout`.
    Timeout,
    /// `-L --daemon` (rendered from the status by [`render_daemon`], not from a state).
    Daemon,
    /// `-S`: the rules that would rebuild the table.
    Save,
}

/// How to render a listing: ipvsadm's `FMT_*` flags and the one service `-L -t` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    pub view: View,
    /// `-L -t|-u VIP:PORT`: only this service.
    pub service: Option<ServiceKey>,
    /// `-n`: addresses and ports as numbers.
    pub numeric: bool,
    /// `--exact`: no K/M/G rounding.
    pub exact: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    /// On unless `--nosort` (ipvsadm sorts by default).
    pub sort: bool,
}

impl Default for ListOptions {
    /// What `ipvsadm` with no arguments shows: `-L`, names, sorted.
    fn default() -> Self {
        ListOptions {
            view: View::Services,
            service: None,
            numeric: false,
            exact: false,
            stats: false,
            rate: false,
            thresholds: false,
            persistent_conn: false,
            sort: true,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Names: /etc/hosts and /etc/services, never DNS.
// ---------------------------------------------------------------------------------------

/// Host and service names from `/etc/hosts` and `/etc/services` (files only: no DNS).
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// An address and its names, the canonical one first, in file order.
    hosts: Vec<(Ipv4Addr, Vec<String>)>,
    /// Names (canonical first), port, protocol ("tcp", "udp"), in file order.
    services: Vec<(Vec<String>, u16, String)>,
}

impl Names {
    /// The system's files; a missing or unreadable file is as an empty one.
    pub fn system() -> Names {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        Names::from_text(&read("/etc/hosts"), &read("/etc/services"))
    }

    /// From the text of a hosts file and a services file.
    pub fn from_text(hosts: &str, services: &str) -> Names {
        let fields = |line: &str| -> Vec<String> {
            let line = line.split('#').next().unwrap_or("");
            line.split_whitespace().map(str::to_owned).collect()
        };
        let hosts = hosts
            .lines()
            .filter_map(|line| {
                let f = fields(line);
                let addr = f.first()?.parse::<Ipv4Addr>().ok()?;
                (f.len() > 1).then(|| (addr, f[1..].to_vec()))
            })
            .collect();
        let services = services
            .lines()
            .filter_map(|line| {
                let f = fields(line);
                let (port, proto) = f.get(1)?.split_once('/')?;
                let port = port.parse::<u16>().ok()?;
                let mut names = vec![f[0].clone()];
                names.extend(f[2..].iter().cloned());
                Some((names, port, proto.to_ascii_lowercase()))
            })
            .collect();
        Names { hosts, services }
    }

    /// `gethostbyaddr` from the hosts file: the first line's canonical name.
    fn host_name(&self, addr: Ipv4Addr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, names)| names[0].as_str())
    }

    /// `gethostbyname` from the hosts file: the first line naming it (any case).
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .map(|(a, _)| *a)
    }

    /// `getservbyport`.
    fn service_name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        let proto = proto_lower(protocol);
        self.services
            .iter()
            .find(|(_, p, pr)| *p == port && pr == proto)
            .map(|(names, _, _)| names[0].as_str())
    }

    /// `getservbyname`.
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let proto = proto_lower(protocol);
        self.services
            .iter()
            .find(|(names, _, pr)| pr == proto && names.iter().any(|n| n == name))
            .map(|(_, p, _)| *p)
    }
}

fn proto_lower(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TCP => "tcp",
        Protocol::UDP => "udp",
    }
}

fn proto_upper(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TCP => "TCP",
        Protocol::UDP => "UDP",
    }
}

/// The names, read on first use only (most invocations are numeric).
struct Lazy<'a> {
    cell: OnceCell<Names>,
    load: &'a dyn Fn() -> Names,
}

impl Lazy<'_> {
    fn get(&self) -> &Names {
        self.cell.get_or_init(self.load)
    }
}

// ---------------------------------------------------------------------------------------
// The command line.
// ---------------------------------------------------------------------------------------

/// The commands, in ipvsadm's `cmdnames` order (and rvs's `save-ron`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Set,
    Save,
    Zero,
    SaveRon,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Set => "set",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::SaveRon => "save-ron",
        }
    }

    /// ipvsadm's `commands_v_options` row over [`OPT_NAMES`]: '+' compulsory, 'x' illegal,
    /// '1' exclusive (one of them at most), ' ' optional.
    fn legal(self) -> &'static [u8; OPTS] {
        //                  n c s s p M r f w x y t d s r t p s e b
        //                    svc sch   srv    tmo st  thr nosort
        match self {
            Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxx ",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxx",
            Cmd::List => b" 11xxxxxxxx11      x",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxx",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxx",
            Cmd::Save => b" xxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx xxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Set | Cmd::SaveRon => b"xxxxxxxxxxxxxxxxxxxx",
        }
    }
}

const OPTS: usize = 20;

/// ipvsadm's `optnames` (as later versions have them, without 1.26's stray "pe"), restricted
/// to the options rvs has, plus 1.29's "sched-flags"; the bit order of [`Opt`].
const OPT_NAMES: [&str; OPTS] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "exact",
    "sched-flags",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
}

/// What an option is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Scheduler,
    SchedFlags,
    Persistent,
    Netmask,
    RealServer,
    Forward(Forward),
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    Sort,
    NoSort,
    Exact,
    /// An ipvsadm option rvs does not have: the reason.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    Optional,
}

const NO_DAEMON: &str = "the connection sync daemon is rvs's configuration (lvs_sync_daemon), \
                         not something rvsadm starts or stops";

/// ipvsadm's option table (long name, short name, argument, meaning).
const OPTIONS: &[(&str, Option<char>, Arg, Id)] = &[
    ("add-service", Some('A'), Arg::No, Id::Cmd(Cmd::Add)),
    ("edit-service", Some('E'), Arg::No, Id::Cmd(Cmd::Edit)),
    ("delete-service", Some('D'), Arg::No, Id::Cmd(Cmd::Del)),
    ("clear", Some('C'), Arg::No, Id::Cmd(Cmd::Flush)),
    ("list", Some('L'), Arg::No, Id::Cmd(Cmd::List)),
    ("list", Some('l'), Arg::No, Id::Cmd(Cmd::List)),
    ("zero", Some('Z'), Arg::No, Id::Cmd(Cmd::Zero)),
    ("add-server", Some('a'), Arg::No, Id::Cmd(Cmd::AddDest)),
    ("edit-server", Some('e'), Arg::No, Id::Cmd(Cmd::EditDest)),
    ("delete-server", Some('d'), Arg::No, Id::Cmd(Cmd::DelDest)),
    ("set", None, Arg::No, Id::Cmd(Cmd::Set)),
    ("save", Some('S'), Arg::No, Id::Cmd(Cmd::Save)),
    ("save-ron", None, Arg::No, Id::Cmd(Cmd::SaveRon)),
    ("help", Some('h'), Arg::No, Id::Help),
    ("version", Some('v'), Arg::No, Id::Version),
    ("tcp-service", Some('t'), Arg::Required, Id::Tcp),
    ("udp-service", Some('u'), Arg::Required, Id::Udp),
    ("scheduler", Some('s'), Arg::Required, Id::Scheduler),
    ("sched-flags", Some('b'), Arg::Required, Id::SchedFlags),
    ("persistent", Some('p'), Arg::Optional, Id::Persistent),
    ("netmask", Some('M'), Arg::Required, Id::Netmask),
    ("real-server", Some('r'), Arg::Required, Id::RealServer),
    (
        "masquerading",
        Some('m'),
        Arg::No,
        Id::Forward(Forward::Masq),
    ),
    (
        "gatewaying",
        Some('g'),
        Arg::No,
        Id::Forward(Forward::Route),
    ),
    ("ipip", Some('i'), Arg::No, Id::Forward(Forward::Tunnel)),
    ("fullnat", None, Arg::No, Id::Forward(Forward::FullNat)),
    ("weight", Some('w'), Arg::Required, Id::Weight),
    ("u-threshold", Some('x'), Arg::Required, Id::UThreshold),
    ("l-threshold", Some('y'), Arg::Required, Id::LThreshold),
    ("numeric", Some('n'), Arg::No, Id::Numeric),
    ("connection", Some('c'), Arg::No, Id::Connection),
    ("timeout", None, Arg::No, Id::Timeout),
    ("daemon", None, Arg::No, Id::Daemon),
    ("stats", None, Arg::No, Id::Stats),
    ("rate", None, Arg::No, Id::Rate),
    ("thresholds", None, Arg::No, Id::Thresholds),
    ("persistent-conn", None, Arg::No, Id::PersistentConn),
    ("sort", None, Arg::No, Id::Sort),
    ("nosort", None, Arg::No, Id::NoSort),
    ("exact", Some('X'), Arg::No, Id::Exact),
    (
        "fwmark-service",
        Some('f'),
        Arg::Required,
        Id::Unsupported("firewall-mark services are not supported by rvs (use -t|-u VIP:PORT)"),
    ),
    (
        "ipv6",
        Some('6'),
        Arg::No,
        Id::Unsupported("IPv6 is not supported by rvs"),
    ),
    (
        "sctp-service",
        None,
        Arg::Required,
        Id::Unsupported("SCTP is not supported by rvs"),
    ),
    (
        "restore",
        Some('R'),
        Arg::No,
        Id::Unsupported(
            "restoring rules from stdin is not supported by rvs (give the rules one by one, \
             or edit the configuration file and run `rvsadm reload`)",
        ),
    ),
    (
        "start-daemon",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    (
        "stop-daemon",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    (
        "mcast-interface",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    ("syncid", None, Arg::Required, Id::Unsupported(NO_DAEMON)),
    (
        "mcast-group",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    (
        "mcast-port",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    ("mcast-ttl", None, Arg::Required, Id::Unsupported(NO_DAEMON)),
    (
        "sync-maxlen",
        None,
        Arg::Required,
        Id::Unsupported(NO_DAEMON),
    ),
    (
        "ops",
        Some('o'),
        Arg::No,
        Id::Unsupported("one-packet scheduling (--ops) is not supported by rvs"),
    ),
    (
        "pe",
        None,
        Arg::Required,
        Id::Unsupported("persistence engines (--pe) are not supported by rvs"),
    ),
    (
        "tun-type",
        None,
        Arg::Required,
        Id::Unsupported("tunnel options are not supported by rvs (-i is plain IPIP)"),
    ),
    (
        "tun-port",
        None,
        Arg::Required,
        Id::Unsupported("tunnel options are not supported by rvs (-i is plain IPIP)"),
    ),
    (
        "tun-nocsum",
        None,
        Arg::No,
        Id::Unsupported("tunnel options are not supported by rvs (-i is plain IPIP)"),
    ),
    (
        "tun-csum",
        None,
        Arg::No,
        Id::Unsupported("tunnel options are not supported by rvs (-i is plain IPIP)"),
    ),
    (
        "tun-remcsum",
        None,
        Arg::No,
        Id::Unsupported("tunnel options are not supported by rvs (-i is plain IPIP)"),
    ),
];

/// One element of the command line after popt-style splitting.
#[derive(Debug)]
enum Token {
    /// An option as written (`-t`, `--weight`), what it is, its argument.
    Opt(String, Id, Option<String>),
    Positional(String),
}

/// Splits the arguments as popt does: `--long[=ARG]`, clusters of short options whose last
/// may take the rest of the cluster or the next argument as its value, `--` ending options.
/// Stops at the first bad option: the tokens before it and popt's "OPTION: reason".
fn tokenize(args: &[String]) -> (Vec<Token>, Option<String>) {
    let mut out = Vec::new();
    let error = tokenize_into(args, &mut out).err();
    (out, error)
}

fn tokenize_into(args: &[String], out: &mut Vec<Token>) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.extend(args[i..].iter().cloned().map(Token::Positional));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, _, kind, id)) = OPTIONS.iter().find(|o| o.0 == name) else {
                return Err(format!("--{name}: unknown option"));
            };
            let value = match (kind, inline) {
                (Arg::No, Some(_)) => {
                    return Err(format!("--{name}: option does not take an argument"))
                }
                (Arg::No, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(format!("--{name}: missing argument")),
                },
                (Arg::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            out.push(Token::Opt(format!("--{name}"), id, value));
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            out.push(Token::Positional(arg.clone()));
            continue;
        };
        for (at, c) in cluster.char_indices() {
            let Some(&(_, _, kind, id)) = OPTIONS.iter().find(|o| o.1 == Some(c)) else {
                return Err(format!("-{c}: unknown option"));
            };
            let rest = &cluster[at + c.len_utf8()..];
            let value = match kind {
                Arg::No => {
                    out.push(Token::Opt(format!("-{c}"), id, None));
                    continue;
                }
                // popt skips one '=' there: `-p=600`.
                _ if !rest.is_empty() && rest != "=" => {
                    Some(rest.strip_prefix('=').unwrap_or(rest).to_owned())
                }
                Arg::Required => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(format!("-{c}: missing argument")),
                },
                Arg::Optional => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            out.push(Token::Opt(format!("-{c}"), id, value));
            break;
        }
    }
    Ok(())
}

/// What the options said, before the command turns it into a [`Command`].
#[derive(Default)]
struct Given {
    opts: [bool; OPTS],
    service: Option<ServiceKey>,
    scheduler: Option<String>,
    sched_flags: Option<String>,
    persistent: Option<u32>,
    netmask: Option<Ipv4Addr>,
    /// `-r` as written: resolved once the service's protocol is known.
    server: Option<String>,
    forward: Option<Forward>,
    weight: Option<u32>,
    upper: Option<u32>,
    lower: Option<u32>,
    positional: Vec<String>,
}

impl Given {
    fn has(&self, o: Opt) -> bool {
        self.opts[o as usize]
    }

    /// ipvsadm's `set_option`.
    fn set(&mut self, o: Opt) -> Result<(), String> {
        if self.opts[o as usize] {
            return Err(format!(
                "multiple '{}' options specified",
                OPT_NAMES[o as usize]
            ));
        }
        self.opts[o as usize] = true;
        Ok(())
    }
}

/// ipvsadm's `tryhelp_exit` text.
pub fn try_help() -> String {
    "Try `rvsadm -h' or 'rvsadm --help' for more information.".to_owned()
}

/// Parses `rvsadm`'s arguments (without the program's name) as ipvsadm 1.26 does, plus
/// rvs's own (`reload`, `status`, `dump`, `--save-ron`, `--from FILE`, `--socket PATH`).
/// Names (`-t www:http`) are looked up in `/etc/hosts` and `/etc/services` only, and only
/// when a name is given. The error is what ipvsadm prints (one or more lines, no newline at
/// the end); ipvsadm exits 2 after it.
pub fn parse(args: &[String]) -> Result<Command, String> {
    parse_with(args, &Names::system)
}

/// [`parse`] with the names from `load` (tests give their own).
fn parse_with(args: &[String], load: &dyn Fn() -> Names) -> Result<Command, String> {
    let names = Lazy {
        cell: OnceCell::new(),
        load,
    };

    // rvs's modifiers may stand anywhere.
    let mut rest = Vec::new();
    let mut from: Option<PathBuf> = None;
    let mut socket: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            rest.extend(args[i - 1..].iter().cloned());
            break;
        }
        let (slot, name, value) = if let Some(v) = arg.strip_prefix("--from=") {
            (&mut from, "--from", Some(v.to_owned()))
        } else if let Some(v) = arg.strip_prefix("--socket=") {
            (&mut socket, "--socket", Some(v.to_owned()))
        } else if arg == "--from" || arg == "--socket" {
            let value = args.get(i).cloned();
            i += 1;
            let slot = if arg == "--from" {
                &mut from
            } else {
                &mut socket
            };
            (slot, arg.as_str(), value)
        } else {
            rest.push(arg.clone());
            continue;
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(format!("{name}: missing argument"));
        };
        if slot.is_some() {
            return Err(format!("multiple '{}' options specified", &name[2..]));
        }
        *slot = Some(PathBuf::from(value));
    }
    if from.is_some() && socket.is_some() {
        return Err("--from FILE renders a dump without rvsd: it excludes --socket".to_owned());
    }
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let needs_daemon = |what: &str| -> Result<(), String> {
        match from {
            Some(_) => Err(format!(
                "{what} asks rvsd: --from FILE only renders tables (-L, -c, --timeout, -S) \
                 from a dump"
            )),
            None => Ok(()),
        }
    };

    // rvs's words.
    if let Some(word @ ("reload" | "status" | "dump")) = rest.first().map(String::as_str) {
        if let Some(extra) = rest.get(1) {
            return Err(format!("unexpected argument {extra}"));
        }
        needs_daemon(word)?;
        return Ok(match word {
            "reload" => Command::Reload { socket },
            "status" => Command::Status { socket },
            _ => Command::Dump { socket },
        });
    }

    let source = match &from {
        Some(file) => Source::File(file.clone()),
        None => Source::Daemon(socket.clone()),
    };
    let state_request = |connections| Request::State {
        connections,
        limit: None,
    };

    // ipvsadm with no arguments lists the table.
    if rest.is_empty() {
        return Ok(Command::List {
            request: state_request(false),
            options: ListOptions::default(),
            source,
        });
    }

    let (tokens, bad_option) = tokenize(&rest);
    // popt stops at a bad option; when it is the first, ipvsadm only says "Try ...".
    let bad_option = bad_option.map(|e| {
        if tokens.iter().any(|t| matches!(t, Token::Opt(..))) {
            e
        } else {
            try_help()
        }
    });

    let mut cmd: Option<Cmd> = None;
    let mut given = Given::default();
    let mut exact = false;
    let mut sort = true;
    let (mut stats, mut rate, mut thresholds, mut persistent_conn) = (false, false, false, false);
    let mut first = true;
    for token in tokens {
        let (written, id, value) = match token {
            Token::Positional(p) => {
                given.positional.push(p);
                continue;
            }
            Token::Opt(written, id, value) => (written, id, value),
        };
        let persistent_value = value.clone();
        let value = value.unwrap_or_default();
        match id {
            Id::Help => return Ok(Command::Help),
            Id::Version => return Ok(Command::Version),
            Id::Unsupported(why) => return Err(format!("{written}: {why}")),
            Id::Cmd(c) => {
                if cmd.is_some() {
                    return Err("multiple commands specified".to_owned());
                }
                cmd = Some(c);
            }
            _ if first => return Err(try_help()),
            Id::Tcp | Id::Udp => {
                given.set(Opt::Service)?;
                let protocol = if id == Id::Tcp {
                    Protocol::TCP
                } else {
                    Protocol::UDP
                };
                let (address, port) = parse_address(&value, protocol, &names)
                    .ok_or("illegal virtual server address[:port] specified")?;
                given.service = Some(ServiceKey {
                    protocol,
                    address,
                    port: port.unwrap_or(0),
                });
            }
            Id::Scheduler => {
                given.set(Opt::Scheduler)?;
                given.scheduler = Some(value);
            }
            Id::SchedFlags => {
                given.set(Opt::SchedFlags)?;
                given.sched_flags = Some(value);
            }
            Id::Persistent => {
                given.set(Opt::Persistent)?;
                given.persistent = Some(match persistent_value {
                    None => DEFAULT_PERSISTENT,
                    Some(v) => parse_timeout(&v, 1)?,
                });
            }
            Id::Netmask => {
                given.set(Opt::Netmask)?;
                let mask = value
                    .parse::<Ipv4Addr>()
                    .ok()
                    .or_else(|| names.get().host_addr(&value))
                    .ok_or("illegal virtual server persistent mask specified")?;
                given.netmask = Some(mask);
            }
            Id::RealServer => {
                given.set(Opt::Server)?;
                given.server = Some(value);
            }
            Id::Forward(f) => {
                given.set(Opt::Forward)?;
                given.forward = Some(f);
            }
            Id::Weight => {
                given.set(Opt::Weight)?;
                given.weight =
                    Some(number(&value, 0, 65535).ok_or("illegal weight specified")? as u32);
            }
            Id::UThreshold => {
                given.set(Opt::UThreshold)?;
                given.upper = Some(
                    number(&value, 0, i32::MAX as i64).ok_or("illegal u_threshold specified")?
                        as u32,
                );
            }
            Id::LThreshold => {
                given.set(Opt::LThreshold)?;
                given.lower = Some(
                    number(&value, 0, i32::MAX as i64).ok_or("illegal l_threshold specified")?
                        as u32,
                );
            }
            Id::Numeric => given.set(Opt::Numeric)?,
            Id::Connection => given.set(Opt::Connection)?,
            Id::Timeout => given.set(Opt::Timeout)?,
            Id::Daemon => given.set(Opt::Daemon)?,
            Id::Stats => {
                given.set(Opt::Stats)?;
                stats = true;
            }
            Id::Rate => {
                given.set(Opt::Rate)?;
                rate = true;
            }
            Id::Thresholds => {
                given.set(Opt::Thresholds)?;
                thresholds = true;
            }
            Id::PersistentConn => {
                given.set(Opt::PersistentConn)?;
                persistent_conn = true;
            }
            Id::Sort => {}
            Id::NoSort => {
                given.set(Opt::NoSort)?;
                sort = false;
            }
            Id::Exact => {
                given.set(Opt::Exact)?;
                exact = true;
            }
        }
        first = false;
    }
    if let Some(e) = bad_option {
        return Err(e);
    }
    let Some(cmd) = cmd else {
        return Err(try_help());
    };

    // --set's three values, then nothing else.
    let mut positional = std::mem::take(&mut given.positional).into_iter();
    let mut timeouts = None;
    if cmd == Cmd::Set {
        match (positional.next(), positional.next(), positional.next()) {
            (Some(tcp), Some(tcpfin), Some(udp)) => {
                timeouts = Some((
                    parse_timeout(&tcp, 0)?,
                    parse_timeout(&tcpfin, 0)?,
                    parse_timeout(&udp, 0)?,
                ))
            }
            _ => return Err("--set option requires 3 timeout values".to_owned()),
        }
    }
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument {extra}"));
    }

    // -b after everything (ipvsadm 1.29): the scheduler decides which flags exist.
    let sched_flags = match &given.sched_flags {
        Some(list) => Some(parse_sched_flags(
            given.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER),
            list,
        )?),
        None => None,
    };

    generic_opt_check(cmd, &given)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if let Some(svc) = &given.service {
            if svc.port == 0 && given.persistent.is_none() {
                return Err("Zero port specified for non-persistent service".to_owned());
            }
        }
    }
    if cmd == Cmd::List
        && ((given.has(Opt::Connection) || given.has(Opt::Timeout) || given.has(Opt::Daemon))
            && (stats || rate || thresholds)
            || (given.has(Opt::Timeout) || given.has(Opt::Daemon)) && persistent_conn)
    {
        return Err("options conflicts in the list command".to_owned());
    }

    // Only -A/-E/-a/-e/-d/-D/-Z/-L take a service, and generic_opt_check made sure the
    // ones that need it have it.
    let service = given.service;
    let service_required = || service.ok_or_else(try_help);

    // The real server, with ipvsadm's port rules.
    let forward = given.forward.unwrap_or(Forward::Route);
    let server = match &given.server {
        Some(text) => {
            let svc = service_required()?;
            let (address, port) = parse_address(text, svc.protocol, &names)
                .ok_or("illegal real server address[:port] specified")?;
            let port = match (cmd, forward) {
                (Cmd::AddDest | Cmd::EditDest, Forward::Route | Forward::Tunnel) => svc.port,
                _ => port.unwrap_or(svc.port),
            };
            Some((address, port))
        }
        None => None,
    };
    let server_settings = || ServerSettings {
        forward: Some(forward),
        weight: Some(given.weight.unwrap_or(1)),
        upper_threshold: Some(given.upper.unwrap_or(0)),
        lower_threshold: Some(given.lower.unwrap_or(0)),
    };
    let service_settings = |edit: bool| ServiceSettings {
        scheduler: Some(
            given
                .scheduler
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned()),
        ),
        flags: Some(sched_flags.clone().unwrap_or_default()),
        persistent: match given.persistent {
            Some(t) => Some(t),
            None if edit => Some(0),
            None => None,
        },
        netmask: Some(given.netmask.unwrap_or(Ipv4Addr::BROADCAST)),
    };

    let edit = |request: Request| -> Result<Command, String> {
        needs_daemon(&format!("the '{}' command", cmd.name()))?;
        Ok(Command::Edit {
            request,
            socket: socket.clone(),
        })
    };
    let server_of = || server.ok_or_else(try_help);
    match cmd {
        Cmd::Add => edit(Request::AddService {
            service: service_required()?,
            settings: service_settings(false),
        }),
        Cmd::Edit => edit(Request::EditService {
            service: service_required()?,
            settings: service_settings(true),
        }),
        Cmd::Del => edit(Request::DeleteService {
            service: service_required()?,
        }),
        Cmd::AddDest => {
            let (address, port) = server_of()?;
            edit(Request::AddServer {
                service: service_required()?,
                address,
                port: Some(port),
                settings: server_settings(),
            })
        }
        Cmd::EditDest => {
            let (address, port) = server_of()?;
            edit(Request::EditServer {
                service: service_required()?,
                address,
                port: Some(port),
                settings: server_settings(),
            })
        }
        Cmd::DelDest => {
            let (address, port) = server_of()?;
            edit(Request::DeleteServer {
                service: service_required()?,
                address,
                port: Some(port),
            })
        }
        Cmd::Flush => edit(Request::Clear),
        Cmd::Zero => edit(Request::Zero { service }),
        Cmd::Set => {
            let (tcp, tcpfin, udp) = timeouts.unwrap_or_default();
            edit(Request::SetTimeouts { tcp, tcpfin, udp })
        }
        Cmd::SaveRon => {
            needs_daemon("--save-ron")?;
            Ok(Command::SaveRon { socket })
        }
        Cmd::Save | Cmd::List => {
            let view = if cmd == Cmd::Save {
                View::Save
            } else if given.has(Opt::Connection) {
                View::Connections
            } else if given.has(Opt::Timeout) {
                View::Timeout
            } else if given.has(Opt::Daemon) {
                View::Daemon
            } else {
                View::Services
            };
            if view == View::Daemon {
                needs_daemon("-L --daemon")?;
                return Ok(Command::Daemon { socket });
            }
            Ok(Command::List {
                request: state_request(view == View::Connections),
                options: ListOptions {
                    view,
                    service,
                    numeric: given.has(Opt::Numeric),
                    exact,
                    stats,
                    rate,
                    thresholds,
                    persistent_conn,
                    sort,
                },
                source,
            })
        }
    }
}

/// ipvsadm's `generic_opt_check` over [`Cmd::legal`].
fn generic_opt_check(cmd: Cmd, given: &Given) -> Result<(), String> {
    let legal = cmd.legal();
    let mut exclusive: Option<usize> = None;
    for (j, name) in OPT_NAMES.iter().enumerate() {
        if !given.opts[j] {
            if legal[j] == b'+' {
                return Err(format!(
                    "You need to supply the '{name}' option for the '{}' command",
                    cmd.name()
                ));
            }
            continue;
        }
        match legal[j] {
            b'x' => {
                return Err(format!(
                    "Illegal '{name}' option with the '{}' command",
                    cmd.name()
                ))
            }
            b'1' => match exclusive {
                None => exclusive = Some(j),
                Some(last) => {
                    return Err(format!(
                        "The option '{name}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[last],
                        cmd.name()
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `string_to_number`: `strtol` in base 10 (leading blanks and a sign allowed),
/// nothing after the digits, within `min..=max`.
fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.parse::<i64>().ok()?;
    let n = if negative { -n } else { n };
    (min..=max).contains(&n).then_some(n)
}

/// ipvsadm's `parse_timeout` (seconds, at most 31 days).
fn parse_timeout(s: &str, min: i64) -> Result<u32, String> {
    number(s, min, MAX_TIMEOUT as i64)
        .map(|n| n as u32)
        .ok_or_else(|| format!("invalid timeout value `{s}' specified"))
}

/// ipvsadm's `parse_service`: `ADDRESS[:PORT]`, the address dotted or a name from
/// `/etc/hosts`, the port a number or a name from `/etc/services`. `None` where ipvsadm has
/// `SERVICE_NONE` (all digits, an unknown name, a bad port, and here IPv6 too).
fn parse_address(
    text: &str,
    protocol: Protocol,
    names: &Lazy<'_>,
) -> Option<(Ipv4Addr, Option<u16>)> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.starts_with('[') || text.parse::<Ipv6Addr>().is_ok() {
        return None;
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let address = host
        .parse::<Ipv4Addr>()
        .ok()
        .or_else(|| names.get().host_addr(host))?;
    let port = match port {
        None => None,
        Some(p) => Some(match number(p, 0, 65535) {
            Some(n) => n as u16,
            None => names.get().service_port(p, protocol)?,
        }),
    };
    Some((address, port))
}

/// ipvsadm 1.29's `parse_sched_flags`: a comma list, each flag valid for its scheduler only.
fn parse_sched_flags(scheduler: &str, list: &str) -> Result<Vec<String>, String> {
    let mut flags: Vec<String> = Vec::new();
    for flag in list.split(',').filter(|f| !f.is_empty()) {
        let owner = match flag {
            "sh-fallback" | "sh-port" => "sh",
            "mh-fallback" | "mh-port" => "mh",
            _ => return Err(format!("invalid scheduler flag `{flag}'")),
        };
        if scheduler != owner {
            return Err(format!("incompatible scheduler flag `{flag}'"));
        }
        if !flags.iter().any(|f| f == flag) {
            flags.push(flag.to_owned());
        }
    }
    if flags.is_empty() {
        return Err(format!("invalid scheduler flag `{list}'"));
    }
    Ok(flags)
}

// ---------------------------------------------------------------------------------------
// The tables.
// ---------------------------------------------------------------------------------------

/// Renders the table `opts` asks for, as ipvsadm prints it to stdout. For a service `-L -t`
/// names that does not exist this is empty (ipvsadm prints nothing on stdout then, and "No
/// such service" on stderr: [`list`] gives that error).
pub fn render(state: &State, opts: &ListOptions) -> String {
    list(state, opts).unwrap_or_default()
}

/// [`render`], or ipvsadm's error: "No such service" for a service that is not there.
/// Without `-n` it reads `/etc/hosts` and `/etc/services` for names.
pub fn list(state: &State, opts: &ListOptions) -> Result<String, String> {
    if opts.numeric || matches!(opts.view, View::Timeout | View::Daemon) {
        list_with(state, opts, None)
    } else {
        list_with(state, opts, Some(&Names::system()))
    }
}

/// [`list`] with given names (`None`: numeric).
fn list_with(state: &State, opts: &ListOptions, names: Option<&Names>) -> Result<String, String> {
    let mut out = String::new();
    match opts.view {
        View::Timeout => {
            let t = &state.timeouts;
            let _ = writeln!(
                out,
                "Timeout (tcp tcpfin udp): {} {} {}",
                t.tcp, t.tcpfin, t.udp
            );
        }
        // The daemon's line comes from the status; a state has none.
        View::Daemon => {}
        View::Connections => {
            let empty = Vec::new();
            let conns = state.connections.as_ref().unwrap_or(&empty);
            list_connections(&mut out, conns, opts, names);
        }
        View::Save | View::Services => {
            let mut services: Vec<&ServiceState> = match &opts.service {
                Some(key) => {
                    let found = state.services.iter().find(|s| {
                        s.protocol == key.protocol && s.address == key.address && s.port == key.port
                    });
                    vec![found.ok_or("No such service")?]
                }
                None => {
                    if opts.view == View::Services {
                        let _ = writeln!(
                            out,
                            "IP Virtual Server version {IPVS_VERSION} (size={})",
                            state.conn_tab_size
                        );
                    }
                    state.services.iter().collect()
                }
            };
            if opts.sort {
                services.sort_by_key(|s| (s.protocol, u32::from(s.address), s.port));
            }
            print_title(&mut out, opts);
            for s in services {
                print_service(&mut out, s, opts, names);
            }
        }
    }
    Ok(out)
}

/// `-L --daemon` from rvsd's status: ipvsadm's "master sync daemon (mcast=IFACE, syncid=N)"
/// (or "backup ...") when the status has a `sync` object with `state` ("master" or
/// "backup"), `interface` and `id`; nothing when no sync daemon runs (as ipvsadm).
pub fn render_daemon(status: &serde_json::Value) -> String {
    let sync = &status["sync"];
    let state = sync["state"].as_str().map(str::to_ascii_lowercase);
    match (state.as_deref(), sync["interface"].as_str()) {
        (Some(state @ ("master" | "backup")), Some(interface)) => format!(
            "{state} sync daemon (mcast={interface}, syncid={})\n",
            sync["id"].as_u64().unwrap_or(0)
        ),
        _ => String::new(),
    }
}

/// ipvsadm's `addrport_to_anyname` (IPv4): `ADDR:PORT`, by name where the files have one.
fn addrport(names: Option<&Names>, address: Ipv4Addr, port: u16, protocol: Protocol) -> String {
    match names {
        None => format!("{address}:{port}"),
        Some(n) => {
            let host = n
                .host_name(address)
                .map_or_else(|| address.to_string(), str::to_owned);
            let service = n
                .service_name(port, protocol)
                .map_or_else(|| port.to_string(), str::to_owned);
            format!("{host}:{service}")
        }
    }
}

/// `svc_name[33] = '\0'`, `dname[28] = '\0'`: ipvsadm cuts long names.
fn cut(mut s: String, len: usize) -> String {
    if s.len() > len {
        let mut at = len;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

/// ipvsadm's `print_largenum`: at least 9 columns; past 8 digits K, M, G, T of 1000
/// (`--exact`: every digit, one blank before).
fn largenum(out: &mut String, i: u64, exact: bool) {
    let _ = if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{i:>width$}")
    } else if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

/// ipvsadm's `print_title`.
fn print_title(out: &mut String, opts: &ListOptions) {
    const PROT: &str = "Prot LocalAddress:Port";
    let _ = if opts.view == View::Save {
        Ok(())
    } else if opts.stats {
        write!(
            out,
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if opts.rate {
        write!(
            out,
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if opts.thresholds {
        write!(
            out,
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if opts.persistent_conn {
        write!(
            out,
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward \
             Weight ActiveConn InActConn\n",
        );
        Ok(())
    };
}

/// The scheduler flags in the kernel's bit order (`*-fallback` is SCHED1, `*-port` SCHED2),
/// comma-separated as ipvsadm 1.29's `print_sched_flags`.
fn sched_flags(flags: &[String]) -> String {
    let rank = |f: &String| {
        if f.ends_with("-fallback") {
            0
        } else if f.ends_with("-port") {
            1
        } else {
            2
        }
    };
    let mut sorted: Vec<&String> = flags.iter().collect();
    sorted.sort_by_key(|f| rank(f));
    sorted
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// ipvsadm's `fwd_name` (and DPVS's "FullNat").
fn fwd_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "Masq",
        Forward::Route => "Route",
        Forward::Tunnel => "Tunnel",
        Forward::FullNat => "FullNat",
    }
}

/// ipvsadm's `fwd_switch`; FullNAT's is `--fullnat` (`-b` is the scheduler flags here).
fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "-m",
        Forward::Route => "-g",
        Forward::Tunnel => "-i",
        Forward::FullNat => "--fullnat",
    }
}

/// ipvsadm's `print_service_entry`: the service's line, then its real servers'.
fn print_service(out: &mut String, s: &ServiceState, opts: &ListOptions, names: Option<&Names>) {
    let vname = addrport(names, s.address, s.port, s.protocol);
    let rule = opts.view == View::Save;
    let svc_name = if rule {
        let switch = match s.protocol {
            Protocol::TCP => "-t",
            Protocol::UDP => "-u",
        };
        format!("{switch} {vname}")
    } else {
        cut(format!("{}  {vname}", proto_upper(s.protocol)), 33)
    };
    let persistent_mask = s.netmask != Ipv4Addr::BROADCAST;

    if rule {
        let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
        if let Some(t) = s.persistent {
            let _ = write!(out, " -p {t}");
            if persistent_mask {
                let _ = write!(out, " -M {}", s.netmask);
            }
        }
        if !s.flags.is_empty() {
            let _ = write!(out, " -b {}", sched_flags(&s.flags));
        }
    } else if opts.stats {
        let _ = write!(out, "{svc_name:<33}");
        let st = &s.stats;
        for n in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
            largenum(out, n, opts.exact);
        }
    } else if opts.rate {
        let _ = write!(out, "{svc_name:<33}");
        let r = &s.rates;
        for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, n, opts.exact);
        }
    } else {
        let _ = write!(out, "{svc_name} {}", s.scheduler);
        if !s.flags.is_empty() {
            let _ = write!(out, " ({})", sched_flags(&s.flags));
        }
        if let Some(t) = s.persistent {
            let _ = write!(out, " persistent {t}");
            if persistent_mask {
                let _ = write!(out, " mask {}", s.netmask);
            }
        }
    }
    out.push('\n');

    let mut dests: Vec<&RealServerState> = s.real_servers.iter().collect();
    if opts.sort {
        dests.sort_by_key(|d| (u32::from(d.address), d.port));
    }
    for d in dests {
        let dname = addrport(names, d.address, d.port, s.protocol);
        if rule {
            let _ = writeln!(
                out,
                "-a {svc_name} -r {dname} {} -w {}",
                fwd_switch(d.forward),
                d.weight
            );
            continue;
        }
        let dname = cut(dname, 28);
        let _ = if opts.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let st = &d.stats;
            for n in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                largenum(out, n, opts.exact);
            }
            writeln!(out)
        } else if opts.rate {
            let r = &d.rates;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            largenum(out, r.inbps, opts.exact);
            largenum(out, r.outbps, opts.exact);
            writeln!(out)
        } else if opts.thresholds {
            writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.upper_threshold, d.lower_threshold, d.active_conns, d.inactive_conns
            )
        } else if opts.persistent_conn {
            writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, d.persistent_conns, d.active_conns, d.inactive_conns
            )
        } else {
            writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(d.forward),
                d.weight,
                d.active_conns,
                d.inactive_conns
            )
        };
    }
}

/// ipvsadm's `list_conn`/`print_conn`: the kernel's whole seconds left (`/proc/net/ip_vs_conn`
/// truncates), as `MM:SS`. rvs has no persistence engines, so with `--persistent-conn` the
/// header has ipvsadm's two extra columns and the rows do not (ipvsadm prints them only for
/// entries with a persistence engine).
fn list_connections(
    out: &mut String,
    conns: &[Connection],
    opts: &ListOptions,
    names: Option<&Names>,
) {
    out.push_str("IPVS connection entries\n");
    let _ = if opts.persistent_conn {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for c in conns {
        let expires = c.expires_ms / 1000;
        let expire = format!("{:02}:{:02}", expires / 60, expires % 60);
        let name = |a: std::net::SocketAddrV4| addrport(names, *a.ip(), a.port(), c.protocol);
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            proto_upper(c.protocol),
            c.state,
            name(c.source),
            name(c.virtual_),
            name(c.destination)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Replies.
// ---------------------------------------------------------------------------------------

/// What `command` prints on stdout for rvsd's `reply`, or the error for stderr.
/// Edits are silent on success, as ipvsadm.
pub fn output(command: &Command, reply: Reply) -> Result<String, String> {
    let unexpected = |reply: &Reply| {
        let kind = match reply {
            Reply::Done(_) => "Done",
            Reply::State(_) => "State",
            Reply::Ron(_) => "Ron",
            Reply::Status(_) => "Status",
            Reply::Error(_) => "Error",
        };
        Err(format!(
            "rvsd answered with an unexpected reply ({kind}) to {:?}",
            command.request()
        ))
    };
    match (command, reply) {
        (_, Reply::Error(e)) => Err(e),
        (Command::Edit { .. }, Reply::Done(_)) => Ok(String::new()),
        (Command::Reload { .. }, Reply::Done(text)) => Ok(line(text)),
        (Command::List { options, .. }, Reply::State(state)) => list(&state, options),
        (Command::Daemon { .. }, Reply::Status(v)) => Ok(render_daemon(&v)),
        (Command::Dump { .. }, Reply::State(state)) => pretty(&state),
        (Command::Status { .. }, Reply::Status(v)) => pretty(&v),
        (Command::SaveRon { .. }, Reply::Ron(text)) => Ok(line(text)),
        (_, reply) => unexpected(&reply),
    }
}

/// The text with a newline at its end, if it has any text.
fn line(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Pretty JSON and a newline (`dump`, `status`).
fn pretty<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| format!("cannot write JSON: {e}"))
}

/// `-h`.
pub fn usage() -> String {
    format!(
        "rvsadm {} - the rvs load balancer's administration, in ipvsadm's language\n\
         \n\
         Usage:\n\
         \x20 rvsadm -A|E -t|u service-address [-s scheduler] [-b flags] [-p [timeout]] [-M netmask]\n\
         \x20 rvsadm -D -t|u service-address\n\
         \x20 rvsadm -C\n\
         \x20 rvsadm -S [-n]\n\
         \x20 rvsadm -a|e -t|u service-address -r server-address [options]\n\
         \x20 rvsadm -d -t|u service-address -r server-address\n\
         \x20 rvsadm -L|l [options]\n\
         \x20 rvsadm -Z [-t|u service-address]\n\
         \x20 rvsadm --set tcp tcpfin udp\n\
         \x20 rvsadm reload | status | dump | --save-ron\n\
         \x20 rvsadm -h | -v\n\
         \n\
         Options as ipvsadm's: -t/--tcp-service, -u/--udp-service, -s/--scheduler (default {}),\n\
         -b/--sched-flags, -p/--persistent (default {} s), -M/--netmask, -r/--real-server,\n\
         -g/--gatewaying (default), -i/--ipip, -m/--masquerading, --fullnat, -w/--weight,\n\
         -x/--u-threshold, -y/--l-threshold, -c/--connection, --timeout, --daemon, --stats,\n\
         --rate, --exact, --thresholds, --persistent-conn, --sort, --nosort, -n/--numeric.\n\
         \n\
         rvs's own:\n\
         \x20 reload            read the configuration file again\n\
         \x20 status            workers, ports, checkers, VRRP (JSON)\n\
         \x20 dump              the running state, connections included (JSON)\n\
         \x20 --save-ron        the running configuration (RON)\n\
         \x20 --from FILE       render -L, -c, --timeout, -S from a dump instead of asking rvsd\n\
         \x20 --socket PATH     rvsd's control socket (default {})\n\
         \n\
         Names (without -n) come from /etc/hosts and /etc/services only, never from DNS.\n",
        env!("CARGO_PKG_VERSION"),
        DEFAULT_SCHEDULER,
        DEFAULT_PERSISTENT,
        DEFAULT_SOCKET
    )
}

/// `-v`.
pub fn version() -> String {
    format!(
        "rvsadm {} (speaks ipvsadm v1.26, IPVS v{IPVS_VERSION})\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    //! Expected texts were written from ipvsadm.c's printf formats (print_title,
    //! print_service_entry, print_largenum, list_conn/print_conn, list_timeout) applied to
    //! these fixtures, independently of the code above.

    use super::*;
    use crate::api::{Rates, Stats, Timeouts};
    use std::net::SocketAddrV4;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn stats(n: [u64; 5]) -> Stats {
        Stats {
            conns: n[0],
            inpkts: n[1],
            outpkts: n[2],
            inbytes: n[3],
            outbytes: n[4],
        }
    }

    fn rates(n: [u64; 5]) -> Rates {
        Rates {
            cps: n[0],
            inpps: n[1],
            outpps: n[2],
            inbps: n[3],
            outbps: n[4],
        }
    }

    fn rs(addr: &str, port: u16, forward: Forward, weight: u32) -> RealServerState {
        RealServerState {
            address: ip(addr),
            port,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }

    fn svc(protocol: Protocol, addr: &str, port: u16, scheduler: &str) -> ServiceState {
        ServiceState {
            protocol,
            address: ip(addr),
            port,
            scheduler: scheduler.to_owned(),
            flags: vec![],
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            stats: Stats::default(),
            rates: Rates::default(),
            real_servers: vec![],
        }
    }

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn conn(protocol: Protocol, state: &str, ms: u64, c: &str, v: &str, d: &str) -> Connection {
        Connection {
            protocol,
            state: state.to_owned(),
            expires_ms: ms,
            source: sa(c),
            virtual_: sa(v),
            destination: sa(d),
            local: None,
            template: c.ends_with(":0"),
        }
    }

    /// Three services in configuration order (not ipvsadm's sorted order), every forwarding
    /// method, scheduler flags, persistence with a netmask, counters on the K/M/G/T edges.
    fn fixture() -> State {
        let mut udp = svc(Protocol::UDP, "192.0.2.53", 53, "rr");
        udp.real_servers = vec![
            rs("10.0.1.2", 53, Forward::Masq, 1),
            rs("10.0.1.1", 53, Forward::Masq, 2),
        ];

        let mut https = svc(Protocol::TCP, "192.0.2.1", 443, "sh");
        https.flags = vec!["sh-port".into(), "sh-fallback".into()];
        https.persistent = Some(300);
        https.netmask = ip("255.255.255.0");
        https.stats = stats([1, 2, 3, 4, 5]);
        let mut fullnat = rs("10.0.0.3", 443, Forward::FullNat, 100);
        fullnat.stats = stats([10, 20, 30, 40, 50]);
        https.real_servers = vec![fullnat, rs("10.0.0.2", 443, Forward::Tunnel, 0)];

        let mut http = svc(Protocol::TCP, "192.0.2.1", 80, "wlc");
        http.stats = stats([
            99_999_999,
            100_000_000,
            999_999_999,
            1_000_000_000,
            99_999_999_999,
        ]);
        http.rates = rates([1234, 100_000_000, 5, 999_999_999, 100_000_000_000_000]);
        let mut masq = rs("10.0.0.1", 8080, Forward::Masq, 1);
        masq.active_conns = 12;
        masq.inactive_conns = 34;
        masq.persistent_conns = 7;
        masq.upper_threshold = 1000;
        masq.lower_threshold = 800;
        masq.stats = stats([
            100_000_000_000,
            99_999_999_999_999,
            100_000_000_000_000,
            0,
            12345,
        ]);
        masq.rates = rates([123_456_789, 7, 8, 2_000_000_000, 1]);
        http.real_servers = vec![rs("10.0.0.2", 80, Forward::Route, 3), masq];

        State {
            version: "0.1.0".into(),
            conn_tab_size: 4096,
            services: vec![udp, https, http],
            timeouts: Timeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300,
            },
            connections: Some(vec![
                conn(
                    Protocol::TCP,
                    "ESTABLISHED",
                    899_999,
                    "198.51.100.7:40000",
                    "192.0.2.1:80",
                    "10.0.0.1:8080",
                ),
                conn(
                    Protocol::UDP,
                    "UDP",
                    300_000,
                    "198.51.100.8:5353",
                    "192.0.2.53:53",
                    "10.0.1.1:53",
                ),
                conn(
                    Protocol::TCP,
                    "NONE",
                    6_000_500,
                    "198.51.100.7:0",
                    "192.0.2.1:443",
                    "10.0.0.3:443",
                ),
                conn(
                    Protocol::TCP,
                    "TIME_WAIT",
                    999,
                    "198.51.100.9:65535",
                    "192.0.2.1:80",
                    "10.0.0.2:80",
                ),
            ]),
            taken_unix_ms: 1_700_000_000_000,
        }
    }

    fn numeric() -> ListOptions {
        ListOptions {
            numeric: true,
            ..ListOptions::default()
        }
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    const HOSTS: &str = "127.0.0.1 localhost\n\
                         # a comment\n\
                         192.0.2.1 a-very-long-host-name.example.test www # the VIP\n\
                         10.0.0.1 web1\n\
                         10.0.0.2 a-rather-long-real-server-name.example.test\n\
                         ::1 localhost6\n";
    const SERVICES: &str = "http 80/tcp www # WorldWideWeb HTTP\n\
                            https 443/tcp\n\
                            domain 53/tcp\n\
                            domain 53/udp\n\
                            webcache 8080/tcp http-alt\n";

    fn test_names() -> Names {
        Names::from_text(HOSTS, SERVICES)
    }

    /// Parses with the test's names; panics if a numeric test looks a name up.
    fn p(line: &str) -> Result<Command, String> {
        parse_with(&args(line), &test_names)
    }

    fn socket() -> PathBuf {
        PathBuf::from(DEFAULT_SOCKET)
    }

    fn key(protocol: Protocol, addr: &str, port: u16) -> ServiceKey {
        ServiceKey {
            protocol,
            address: ip(addr),
            port,
        }
    }

    fn edit(request: Request) -> Command {
        Command::Edit {
            request,
            socket: socket(),
        }
    }

    fn listing(connections: bool, options: ListOptions) -> Command {
        Command::List {
            request: Request::State {
                connections,
                limit: None,
            },
            options,
            source: Source::Daemon(socket()),
        }
    }

    // --- Rendering --------------------------------------------------------------------

    #[test]
    fn list_numeric_sorted_with_every_forward_method_and_flags() {
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.0.2.1:80 wlc\n",
            "  -> 10.0.0.1:8080                Masq    1      12         34        \n",
            "  -> 10.0.0.2:80                  Route   3      0          0         \n",
            "TCP  192.0.2.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.2:443                 Tunnel  0      0          0         \n",
            "  -> 10.0.0.3:443                 FullNat 100    0          0         \n",
            "UDP  192.0.2.53:53 rr\n",
            "  -> 10.0.1.1:53                  Masq    2      0          0         \n",
            "  -> 10.0.1.2:53                  Masq    1      0          0         \n",
        );
        assert_eq!(render(&fixture(), &numeric()), expected);
    }

    #[test]
    fn nosort_keeps_the_daemons_order() {
        let opts = ListOptions {
            sort: false,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "UDP  192.0.2.53:53 rr\n",
            "  -> 10.0.1.2:53                  Masq    1      0          0         \n",
            "  -> 10.0.1.1:53                  Masq    2      0          0         \n",
            "TCP  192.0.2.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.3:443                 FullNat 100    0          0         \n",
            "  -> 10.0.0.2:443                 Tunnel  0      0          0         \n",
            "TCP  192.0.2.1:80 wlc\n",
            "  -> 10.0.0.2:80                  Route   3      0          0         \n",
            "  -> 10.0.0.1:8080                Masq    1      12         34        \n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn sort_is_numeric_by_protocol_address_port() {
        let mut state = fixture();
        state.services = vec![
            svc(Protocol::UDP, "10.0.0.1", 1, "rr"),
            svc(Protocol::TCP, "203.0.113.1", 80, "rr"),
            svc(Protocol::TCP, "10.0.0.1", 8080, "rr"),
            svc(Protocol::TCP, "10.0.0.1", 443, "rr"),
        ];
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:443 rr\n",
            "TCP  10.0.0.1:8080 rr\n",
            "TCP  203.0.113.1:80 rr\n",
            "UDP  10.0.0.1:1 rr\n",
        );
        assert_eq!(render(&state, &numeric()), expected);
    }

    #[test]
    fn one_service_and_no_such_service() {
        let opts = ListOptions {
            service: Some(key(Protocol::TCP, "192.0.2.1", 443)),
            ..numeric()
        };
        let expected = concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.0.2.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.2:443                 Tunnel  0      0          0         \n",
            "  -> 10.0.0.3:443                 FullNat 100    0          0         \n",
        );
        assert_eq!(list(&fixture(), &opts).unwrap(), expected);

        let missing = ListOptions {
            service: Some(key(Protocol::UDP, "192.0.2.1", 443)),
            ..numeric()
        };
        assert_eq!(
            list(&fixture(), &missing),
            Err("No such service".to_owned())
        );
        assert_eq!(render(&fixture(), &missing), "");
    }

    #[test]
    fn stats_rounds_on_print_largenum_edges() {
        let opts = ListOptions {
            stats: true,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                 99999999  100000K  999999K    1000M   99999M\n",
            "  -> 10.0.0.1:8080                    100G   99999G     100T        0    12345\n",
            "  -> 10.0.0.2:80                         0        0        0        0        0\n",
            "TCP  192.0.2.1:443                       1        2        3        4        5\n",
            "  -> 10.0.0.2:443                        0        0        0        0        0\n",
            "  -> 10.0.0.3:443                       10       20       30       40       50\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
            "  -> 10.0.1.2:53                         0        0        0        0        0\n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn stats_exact_prints_every_digit() {
        let opts = ListOptions {
            stats: true,
            exact: true,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                 99999999 100000000 999999999 1000000000 99999999999\n",
            "  -> 10.0.0.1:8080                100000000000 99999999999999 100000000000000        0    12345\n",
            "  -> 10.0.0.2:80                         0        0        0        0        0\n",
            "TCP  192.0.2.1:443                       1        2        3        4        5\n",
            "  -> 10.0.0.2:443                        0        0        0        0        0\n",
            "  -> 10.0.0.3:443                       10       20       30       40       50\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
            "  -> 10.0.1.2:53                         0        0        0        0        0\n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn rate_and_its_plain_real_server_pps_columns() {
        let opts = ListOptions {
            rate: true,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                     1234  100000K        5  999999K     100T\n",
            "  -> 10.0.0.1:8080                123456789        7        8    2000M        1\n",
            "  -> 10.0.0.2:80                         0        0        0        0        0\n",
            "TCP  192.0.2.1:443                       0        0        0        0        0\n",
            "  -> 10.0.0.2:443                        0        0        0        0        0\n",
            "  -> 10.0.0.3:443                        0        0        0        0        0\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
            "  -> 10.0.1.2:53                         0        0        0        0        0\n",
        );
        assert_eq!(render(&fixture(), &opts), expected);

        let exact = ListOptions {
            exact: true,
            ..opts
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80                     1234 100000000        5 999999999 100000000000000\n",
            "  -> 10.0.0.1:8080                123456789        7        8 2000000000        1\n",
            "  -> 10.0.0.2:80                         0        0        0        0        0\n",
            "TCP  192.0.2.1:443                       0        0        0        0        0\n",
            "  -> 10.0.0.2:443                        0        0        0        0        0\n",
            "  -> 10.0.0.3:443                        0        0        0        0        0\n",
            "UDP  192.0.2.53:53                       0        0        0        0        0\n",
            "  -> 10.0.1.1:53                         0        0        0        0        0\n",
            "  -> 10.0.1.2:53                         0        0        0        0        0\n",
        );
        assert_eq!(render(&fixture(), &exact), expected);
    }

    #[test]
    fn stats_wins_over_rate_as_in_print_title() {
        let both = ListOptions {
            stats: true,
            rate: true,
            ..numeric()
        };
        let stats_only = ListOptions {
            stats: true,
            ..numeric()
        };
        assert_eq!(render(&fixture(), &both), render(&fixture(), &stats_only));
    }

    #[test]
    fn largenum_boundaries() {
        let cases: [(u64, &str, &str); 12] = [
            (0, "        0", "        0"),
            (99_999_999, " 99999999", " 99999999"),
            (100_000_000, "  100000K", " 100000000"),
            (999_999_999, "  999999K", " 999999999"),
            (1_000_000_000, "    1000M", " 1000000000"),
            (99_999_999_999, "   99999M", " 99999999999"),
            (100_000_000_000, "     100G", " 100000000000"),
            (99_999_999_999_999, "   99999G", " 99999999999999"),
            (100_000_000_000_000, "     100T", " 100000000000000"),
            (123_456_789_012_345, "     123T", " 123456789012345"),
            (u64::MAX, "18446744T", " 18446744073709551615"),
            (12_345_678, " 12345678", " 12345678"),
        ];
        for (n, rounded, exact) in cases {
            let mut a = String::new();
            largenum(&mut a, n, false);
            assert_eq!(a, rounded, "{n}");
            let mut b = String::new();
            largenum(&mut b, n, true);
            assert_eq!(b, exact, "{n} exact");
        }
    }

    #[test]
    fn thresholds() {
        let opts = ListOptions {
            thresholds: true,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80 wlc\n",
            "  -> 10.0.0.1:8080                1000       800        12         34        \n",
            "  -> 10.0.0.2:80                  0          0          0          0         \n",
            "TCP  192.0.2.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.2:443                 0          0          0          0         \n",
            "  -> 10.0.0.3:443                 0          0          0          0         \n",
            "UDP  192.0.2.53:53 rr\n",
            "  -> 10.0.1.1:53                  0          0          0          0         \n",
            "  -> 10.0.1.2:53                  0          0          0          0         \n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn persistent_conn() {
        let opts = ListOptions {
            persistent_conn: true,
            ..numeric()
        };
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n",
            "TCP  192.0.2.1:80 wlc\n",
            "  -> 10.0.0.1:8080                1         7           12         34        \n",
            "  -> 10.0.0.2:80                  3         0           0          0         \n",
            "TCP  192.0.2.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.2:443                 0         0           0          0         \n",
            "  -> 10.0.0.3:443                 100       0           0          0         \n",
            "UDP  192.0.2.53:53 rr\n",
            "  -> 10.0.1.1:53                  2         0           0          0         \n",
            "  -> 10.0.1.2:53                  1         0           0          0         \n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn connections_with_mm_ss_expiry() {
        let opts = ListOptions {
            view: View::Connections,
            ..numeric()
        };
        let expected = concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination\n",
            "TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.1:80       10.0.0.1:8080\n",
            "UDP 05:00  UDP         198.51.100.8:5353  192.0.2.53:53      10.0.1.1:53\n",
            "TCP 100:00 NONE        198.51.100.7:0     192.0.2.1:443      10.0.0.3:443\n",
            "TCP 00:00  TIME_WAIT   198.51.100.9:65535 192.0.2.1:80       10.0.0.2:80\n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn connections_with_persistent_conn_header() {
        let mut state = fixture();
        state.connections = Some(vec![conn(
            Protocol::TCP,
            "SYN_RECV",
            61_000,
            "198.51.100.7:40000",
            "192.0.2.1:80",
            "10.0.0.1:8080",
        )]);
        let opts = ListOptions {
            view: View::Connections,
            persistent_conn: true,
            ..numeric()
        };
        let expected = concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination        pe name          pe_data\n",
            "TCP 01:01  SYN_RECV    198.51.100.7:40000 192.0.2.1:80       10.0.0.1:8080\n",
        );
        assert_eq!(render(&state, &opts), expected);

        state.connections = None;
        let plain = ListOptions {
            view: View::Connections,
            ..numeric()
        };
        assert_eq!(
            render(&state, &plain),
            concat!(
                "IPVS connection entries\n",
                "pro expire state       source             virtual            destination\n",
            )
        );
    }

    #[test]
    fn save_rules() {
        let opts = ListOptions {
            view: View::Save,
            ..numeric()
        };
        let expected = concat!(
            "-A -t 192.0.2.1:80 -s wlc\n",
            "-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 1\n",
            "-a -t 192.0.2.1:80 -r 10.0.0.2:80 -g -w 3\n",
            "-A -t 192.0.2.1:443 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port\n",
            "-a -t 192.0.2.1:443 -r 10.0.0.2:443 -i -w 0\n",
            "-a -t 192.0.2.1:443 -r 10.0.0.3:443 --fullnat -w 100\n",
            "-A -u 192.0.2.53:53 -s rr\n",
            "-a -u 192.0.2.53:53 -r 10.0.1.1:53 -m -w 2\n",
            "-a -u 192.0.2.53:53 -r 10.0.1.2:53 -m -w 1\n",
        );
        assert_eq!(render(&fixture(), &opts), expected);
    }

    #[test]
    fn save_output_parses_back_to_the_same_requests() {
        let opts = ListOptions {
            view: View::Save,
            ..numeric()
        };
        for rule in render(&fixture(), &opts).lines() {
            let cmd = p(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert!(matches!(cmd, Command::Edit { .. }), "{rule}");
        }
        let Command::Edit { request, .. } =
            p("-A -t 192.0.2.1:443 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            request,
            Request::AddService {
                service: key(Protocol::TCP, "192.0.2.1", 443),
                settings: ServiceSettings {
                    scheduler: Some("sh".into()),
                    flags: Some(vec!["sh-fallback".into(), "sh-port".into()]),
                    persistent: Some(300),
                    netmask: Some(ip("255.255.255.0")),
                },
            }
        );
    }

    #[test]
    fn timeout() {
        let opts = ListOptions {
            view: View::Timeout,
            ..ListOptions::default()
        };
        assert_eq!(
            render(&fixture(), &opts),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    #[test]
    fn daemon_line_from_the_status() {
        let master = serde_json::json!({"sync": {"state": "master", "interface": "eth1", "id": 5}});
        assert_eq!(
            render_daemon(&master),
            "master sync daemon (mcast=eth1, syncid=5)\n"
        );
        let backup = serde_json::json!({"sync": {"state": "BACKUP", "interface": "lan", "id": 0}});
        assert_eq!(
            render_daemon(&backup),
            "backup sync daemon (mcast=lan, syncid=0)\n"
        );
        assert_eq!(render_daemon(&serde_json::json!({"workers": 2})), "");
    }

    #[test]
    fn names_from_files_cut_as_ipvsadm_cuts_them() {
        let names = test_names();
        let expected = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  a-very-long-host-name.exampl wlc\n",
            "  -> web1:webcache                Masq    1      12         34        \n",
            "  -> a-rather-long-real-server-na Route   3      0          0         \n",
            "TCP  a-very-long-host-name.exampl sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
            "  -> a-rather-long-real-server-na Tunnel  0      0          0         \n",
            "  -> 10.0.0.3:https               FullNat 100    0          0         \n",
            "UDP  192.0.2.53:domain rr\n",
            "  -> 10.0.1.1:domain              Masq    2      0          0         \n",
            "  -> 10.0.1.2:domain              Masq    1      0          0         \n",
        );
        let opts = ListOptions::default();
        assert_eq!(
            list_with(&fixture(), &opts, Some(&names)).unwrap(),
            expected
        );

        // 8080/tcp is webcache, http-alt its alias: the first name wins (getservbyport's
        // s_name); 127.0.0.1 is localhost.
        let mut state = fixture();
        state.services.truncate(0);
        let mut svc80 = svc(Protocol::TCP, "127.0.0.1", 8080, "rr");
        svc80.real_servers = vec![rs("127.0.0.1", 8080, Forward::Masq, 1)];
        state.services.push(svc80);
        assert_eq!(
            list_with(&state, &opts, Some(&names)).unwrap(),
            concat!(
                "IP Virtual Server version 1.2.1 (size=4096)\n",
                "Prot LocalAddress:Port Scheduler Flags\n",
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
                "TCP  localhost:webcache rr\n",
                "  -> localhost:webcache           Masq    1      0          0         \n",
            )
        );

        let save = ListOptions {
            view: View::Save,
            ..ListOptions::default()
        };
        let expected = concat!(
            "-A -t a-very-long-host-name.example.test:http -s wlc\n",
            "-a -t a-very-long-host-name.example.test:http -r web1:webcache -m -w 1\n",
            "-a -t a-very-long-host-name.example.test:http -r a-rather-long-real-server-name.example.test:http -g -w 3\n",
            "-A -t a-very-long-host-name.example.test:https -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port\n",
            "-a -t a-very-long-host-name.example.test:https -r a-rather-long-real-server-name.example.test:https -i -w 0\n",
            "-a -t a-very-long-host-name.example.test:https -r 10.0.0.3:https --fullnat -w 100\n",
            "-A -u 192.0.2.53:domain -s rr\n",
            "-a -u 192.0.2.53:domain -r 10.0.1.1:domain -m -w 2\n",
            "-a -u 192.0.2.53:domain -r 10.0.1.2:domain -m -w 1\n",
        );
        assert_eq!(
            list_with(&fixture(), &save, Some(&names)).unwrap(),
            expected
        );

        let conns = ListOptions {
            view: View::Connections,
            ..ListOptions::default()
        };
        let mut one = fixture();
        one.connections.as_mut().unwrap().truncate(1);
        assert_eq!(
            list_with(&one, &conns, Some(&names)).unwrap(),
            concat!(
                "IPVS connection entries\n",
                "pro expire state       source             virtual            destination\n",
                "TCP 14:59  ESTABLISHED 198.51.100.7:40000 a-very-long-host-name.example.test:http web1:webcache\n",
            )
        );
    }

    #[test]
    fn names_lookups() {
        let n = test_names();
        assert_eq!(
            n.host_name(ip("192.0.2.1")),
            Some("a-very-long-host-name.example.test")
        );
        assert_eq!(n.host_addr("WWW"), Some(ip("192.0.2.1")));
        assert_eq!(n.host_addr("localhost6"), None);
        assert_eq!(n.service_name(53, Protocol::UDP), Some("domain"));
        assert_eq!(n.service_port("www", Protocol::TCP), Some(80));
        assert_eq!(n.service_port("www", Protocol::UDP), None);
        assert_eq!(n.service_name(8080, Protocol::TCP), Some("webcache"));
    }

    // --- Parsing ----------------------------------------------------------------------

    #[test]
    fn parse_add_service_defaults_to_wlc() {
        let expected = edit(Request::AddService {
            service: key(Protocol::TCP, "192.0.2.1", 80),
            settings: ServiceSettings {
                scheduler: Some("wlc".into()),
                flags: Some(vec![]),
                persistent: None,
                netmask: Some(Ipv4Addr::BROADCAST),
            },
        });
        assert_eq!(p("-A -t 192.0.2.1:80"), Ok(expected.clone()));
        assert_eq!(p("-At 192.0.2.1:80"), Ok(expected.clone()));
        assert_eq!(p("-At192.0.2.1:80"), Ok(expected.clone()));
        assert_eq!(
            p("--add-service --tcp-service=192.0.2.1:80"),
            Ok(expected.clone())
        );
        assert_eq!(
            p("--add-service --tcp-service 192.0.2.1:80 --sort"),
            Ok(expected)
        );
    }

    #[test]
    fn parse_persistent_with_and_without_timeout() {
        let add = |persistent, scheduler: &str, netmask| {
            edit(Request::AddService {
                service: key(Protocol::UDP, "192.0.2.53", 53),
                settings: ServiceSettings {
                    scheduler: Some(scheduler.into()),
                    flags: Some(vec![]),
                    persistent: Some(persistent),
                    netmask: Some(netmask),
                },
            })
        };
        let host = Ipv4Addr::BROADCAST;
        assert_eq!(p("-A -u 192.0.2.53:53 -p"), Ok(add(300, "wlc", host)));
        assert_eq!(p("-A -u 192.0.2.53:53 -p -s rr"), Ok(add(300, "rr", host)));
        assert_eq!(
            p("-A -u 192.0.2.53:53 -p 600 -s rr"),
            Ok(add(600, "rr", host))
        );
        assert_eq!(p("-A -u 192.0.2.53:53 -p600"), Ok(add(600, "wlc", host)));
        assert_eq!(p("-A -u 192.0.2.53:53 -p=600"), Ok(add(600, "wlc", host)));
        assert_eq!(p("-A -u 192.0.2.53:53 -p="), Ok(add(300, "wlc", host)));
        assert_eq!(
            p("--add-service --udp-service 192.0.2.53:53 --persistent=60 --netmask 255.255.0.0 --scheduler=lc"),
            Ok(add(60, "lc", ip("255.255.0.0")))
        );
        assert_eq!(
            p("-A -u 192.0.2.53:53 -s rr -p 10 -M 255.255.255.0"),
            Ok(add(10, "rr", ip("255.255.255.0")))
        );
        // A persistent service may have port 0 (all ports).
        assert!(p("-A -t 192.0.2.1 -p").is_ok());
    }

    #[test]
    fn parse_edit_service_resets_what_is_not_given() {
        assert_eq!(
            p("-E -t 192.0.2.1:80"),
            Ok(edit(Request::EditService {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                settings: ServiceSettings {
                    scheduler: Some("wlc".into()),
                    flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(Ipv4Addr::BROADCAST),
                },
            }))
        );
        assert_eq!(
            p("-E -t 192.0.2.1:80 -s sh -b sh-port -p 30"),
            Ok(edit(Request::EditService {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                settings: ServiceSettings {
                    scheduler: Some("sh".into()),
                    flags: Some(vec!["sh-port".into()]),
                    persistent: Some(30),
                    netmask: Some(Ipv4Addr::BROADCAST),
                },
            }))
        );
        assert_eq!(
            p("--edit-service -u 192.0.2.53:53 -s mh -b mh-port,mh-fallback"),
            Ok(edit(Request::EditService {
                service: key(Protocol::UDP, "192.0.2.53", 53),
                settings: ServiceSettings {
                    scheduler: Some("mh".into()),
                    flags: Some(vec!["mh-port".into(), "mh-fallback".into()]),
                    persistent: Some(0),
                    netmask: Some(Ipv4Addr::BROADCAST),
                },
            }))
        );
    }

    #[test]
    fn parse_delete_service_clear_zero_set() {
        assert_eq!(
            p("-D -t 192.0.2.1:80"),
            Ok(edit(Request::DeleteService {
                service: key(Protocol::TCP, "192.0.2.1", 80)
            }))
        );
        assert_eq!(
            p("--delete-service --udp-service 192.0.2.53:53"),
            Ok(edit(Request::DeleteService {
                service: key(Protocol::UDP, "192.0.2.53", 53)
            }))
        );
        assert_eq!(p("-C"), Ok(edit(Request::Clear)));
        assert_eq!(p("--clear"), Ok(edit(Request::Clear)));
        assert_eq!(p("-Z"), Ok(edit(Request::Zero { service: None })));
        assert_eq!(
            p("--zero -u 192.0.2.53:53"),
            Ok(edit(Request::Zero {
                service: Some(key(Protocol::UDP, "192.0.2.53", 53))
            }))
        );
        assert_eq!(
            p("--set 900 120 300"),
            Ok(edit(Request::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            }))
        );
        assert_eq!(
            p("--set 0 0 60"),
            Ok(edit(Request::SetTimeouts {
                tcp: 0,
                tcpfin: 0,
                udp: 60
            }))
        );
    }

    #[test]
    fn parse_add_server_defaults_and_port_rules() {
        let add = |address: &str, port, forward, weight, upper, lower| {
            edit(Request::AddServer {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                address: ip(address),
                port: Some(port),
                settings: ServerSettings {
                    forward: Some(forward),
                    weight: Some(weight),
                    upper_threshold: Some(upper),
                    lower_threshold: Some(lower),
                },
            })
        };
        // No port: the service's; no method: Route; no weight: 1.
        assert_eq!(
            p("-a -t 192.0.2.1:80 -r 10.0.0.1"),
            Ok(add("10.0.0.1", 80, Forward::Route, 1, 0, 0))
        );
        // Route and Tunnel cannot change the port: the service's, whatever -r says.
        assert_eq!(
            p("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -g"),
            Ok(add("10.0.0.1", 80, Forward::Route, 1, 0, 0))
        );
        assert_eq!(
            p("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 --ipip -w 0"),
            Ok(add("10.0.0.1", 80, Forward::Tunnel, 0, 0, 0))
        );
        assert_eq!(
            p("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 5 -x 100 -y 50"),
            Ok(add("10.0.0.1", 8080, Forward::Masq, 5, 100, 50))
        );
        assert_eq!(
            p("--add-server --tcp-service 192.0.2.1:80 --real-server 10.0.0.1:8080 --fullnat --weight 65535"),
            Ok(add("10.0.0.1", 8080, Forward::FullNat, 65535, 0, 0))
        );
        assert_eq!(
            p("-a -t 192.0.2.1:80 -r 10.0.0.1 --masquerading --u-threshold=7 --l-threshold=3"),
            Ok(add("10.0.0.1", 80, Forward::Masq, 1, 7, 3))
        );
        // -r before -t: the port still comes from the service.
        assert_eq!(
            p("-a -r 10.0.0.1 -m -t 192.0.2.1:80"),
            Ok(add("10.0.0.1", 80, Forward::Masq, 1, 0, 0))
        );
        // Clusters as ipvsadm allows them.
        assert_eq!(
            p("-at 192.0.2.1:80 -mr 10.0.0.1:81 -w2"),
            Ok(add("10.0.0.1", 81, Forward::Masq, 2, 0, 0))
        );
    }

    #[test]
    fn parse_edit_and_delete_server() {
        assert_eq!(
            p("-e -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 0"),
            Ok(edit(Request::EditServer {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                address: ip("10.0.0.1"),
                port: Some(8080),
                settings: ServerSettings {
                    forward: Some(Forward::Masq),
                    weight: Some(0),
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
            }))
        );
        // As ipvsadm: -e without a method is Route, so the port is the service's.
        assert_eq!(
            p("--edit-server -t 192.0.2.1:80 -r 10.0.0.1:8080 -w 3"),
            Ok(edit(Request::EditServer {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                address: ip("10.0.0.1"),
                port: Some(80),
                settings: ServerSettings {
                    forward: Some(Forward::Route),
                    weight: Some(3),
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
            }))
        );
        assert_eq!(
            p("-d -t 192.0.2.1:80 -r 10.0.0.1:8080"),
            Ok(edit(Request::DeleteServer {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                address: ip("10.0.0.1"),
                port: Some(8080),
            }))
        );
        assert_eq!(
            p("--delete-server -u 192.0.2.53:53 --real-server 10.0.1.1"),
            Ok(edit(Request::DeleteServer {
                service: key(Protocol::UDP, "192.0.2.53", 53),
                address: ip("10.0.1.1"),
                port: Some(53),
            }))
        );
    }

    #[test]
    fn parse_list_variants() {
        assert_eq!(p(""), Ok(listing(false, ListOptions::default())));
        assert_eq!(p("-L"), Ok(listing(false, ListOptions::default())));
        assert_eq!(p("-L -n"), Ok(listing(false, numeric())));
        assert_eq!(p("-Ln"), Ok(listing(false, numeric())));
        assert_eq!(p("-ln"), Ok(listing(false, numeric())));
        assert_eq!(p("--list --numeric"), Ok(listing(false, numeric())));
        assert_eq!(
            p("-L -n --stats --exact"),
            Ok(listing(
                false,
                ListOptions {
                    stats: true,
                    exact: true,
                    ..numeric()
                }
            ))
        );
        assert_eq!(
            p("-l --rate -X --nosort"),
            Ok(listing(
                false,
                ListOptions {
                    rate: true,
                    exact: true,
                    sort: false,
                    ..ListOptions::default()
                }
            ))
        );
        assert_eq!(
            p("-L --thresholds --persistent-conn --sort"),
            Ok(listing(
                false,
                ListOptions {
                    thresholds: true,
                    persistent_conn: true,
                    ..ListOptions::default()
                }
            ))
        );
        assert_eq!(
            p("-Lnc"),
            Ok(listing(
                true,
                ListOptions {
                    view: View::Connections,
                    ..numeric()
                }
            ))
        );
        assert_eq!(
            p("-L -c --persistent-conn"),
            Ok(listing(
                true,
                ListOptions {
                    view: View::Connections,
                    persistent_conn: true,
                    ..ListOptions::default()
                }
            ))
        );
        assert_eq!(
            p("-L --timeout"),
            Ok(listing(
                false,
                ListOptions {
                    view: View::Timeout,
                    ..ListOptions::default()
                }
            ))
        );
        assert_eq!(
            p("-L -n -t 192.0.2.1:80"),
            Ok(listing(
                false,
                ListOptions {
                    service: Some(key(Protocol::TCP, "192.0.2.1", 80)),
                    ..numeric()
                }
            ))
        );
        assert_eq!(p("-L --daemon"), Ok(Command::Daemon { socket: socket() }));
        let save = ListOptions {
            view: View::Save,
            ..ListOptions::default()
        };
        assert_eq!(p("-S"), Ok(listing(false, save.clone())));
        assert_eq!(p("--save"), Ok(listing(false, save.clone())));
        assert_eq!(
            p("-S -n"),
            Ok(listing(
                false,
                ListOptions {
                    numeric: true,
                    ..save
                }
            ))
        );
    }

    #[test]
    fn parse_rvs_commands_and_modifiers() {
        let s = || PathBuf::from("/tmp/lb.sock");
        assert_eq!(p("reload"), Ok(Command::Reload { socket: socket() }));
        assert_eq!(p("status"), Ok(Command::Status { socket: socket() }));
        assert_eq!(p("dump"), Ok(Command::Dump { socket: socket() }));
        assert_eq!(p("--save-ron"), Ok(Command::SaveRon { socket: socket() }));
        assert_eq!(
            p("--socket /tmp/lb.sock reload"),
            Ok(Command::Reload { socket: s() })
        );
        assert_eq!(
            p("status --socket=/tmp/lb.sock"),
            Ok(Command::Status { socket: s() })
        );
        assert_eq!(
            p("-L -n --socket /tmp/lb.sock"),
            Ok(Command::List {
                request: Request::State {
                    connections: false,
                    limit: None
                },
                options: numeric(),
                source: Source::Daemon(s()),
            })
        );
        let from = p("--from /tmp/state.json -L -n -c").unwrap();
        assert_eq!(
            from,
            Command::List {
                request: Request::State {
                    connections: true,
                    limit: None
                },
                options: ListOptions {
                    view: View::Connections,
                    ..numeric()
                },
                source: Source::File(PathBuf::from("/tmp/state.json")),
            }
        );
        assert_eq!(from.request(), None);
        assert_eq!(from.socket(), None);
        assert_eq!(
            p("--from=/tmp/state.json").unwrap(),
            Command::List {
                request: Request::State {
                    connections: false,
                    limit: None
                },
                options: ListOptions::default(),
                source: Source::File(PathBuf::from("/tmp/state.json")),
            }
        );
        assert_eq!(
            p("dump").unwrap().request(),
            Some(Request::State {
                connections: true,
                limit: None
            })
        );
        assert_eq!(p("-h"), Ok(Command::Help));
        assert_eq!(p("--help"), Ok(Command::Help));
        assert_eq!(p("-v"), Ok(Command::Version));
        assert_eq!(p("-L --version"), Ok(Command::Version));
    }

    #[test]
    fn parse_names_from_the_files_only() {
        assert_eq!(
            p("-a -t www:http -r web1:http-alt -m"),
            Ok(edit(Request::AddServer {
                service: key(Protocol::TCP, "192.0.2.1", 80),
                address: ip("10.0.0.1"),
                port: Some(8080),
                settings: ServerSettings {
                    forward: Some(Forward::Masq),
                    weight: Some(1),
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
            }))
        );
        assert_eq!(
            p("-D -u 192.0.2.53:domain"),
            Ok(edit(Request::DeleteService {
                service: key(Protocol::UDP, "192.0.2.53", 53)
            }))
        );
        // http is a TCP name only here.
        assert_eq!(
            p("-D -u 192.0.2.53:http"),
            Err("illegal virtual server address[:port] specified".into())
        );
        assert_eq!(
            p("-D -t nowhere.example:80"),
            Err("illegal virtual server address[:port] specified".into())
        );
    }

    #[test]
    fn numeric_arguments_never_read_the_files() {
        let never = || -> Names { panic!("a numeric command line looked a name up") };
        for line in [
            "-A -t 192.0.2.1:80 -s rr -p 30 -M 255.255.255.0",
            "-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 2",
            "-L -n",
            "-Z -u 192.0.2.53:53",
        ] {
            assert!(parse_with(&args(line), &never).is_ok(), "{line}");
        }
    }

    #[test]
    fn parse_errors_as_ipvsadm_words_them() {
        let cases: &[(&str, &str)] = &[
            // popt and the first option.
            ("-n -L", "Try `rvsadm -h' or 'rvsadm --help' for more information."),
            ("--bogus", "Try `rvsadm -h' or 'rvsadm --help' for more information."),
            ("-q", "Try `rvsadm -h' or 'rvsadm --help' for more information."),
            ("foo", "Try `rvsadm -h' or 'rvsadm --help' for more information."),
            ("-L --bogus", "--bogus: unknown option"),
            ("-L -q", "-q: unknown option"),
            ("-A -t", "-t: missing argument"),
            ("-A --tcp-service", "--tcp-service: missing argument"),
            ("-L --stats=1", "--stats: option does not take an argument"),
            ("-L -A", "multiple commands specified"),
            ("-L -n foo", "unexpected argument foo"),
            ("-L -n -n", "multiple 'numeric' options specified"),
            (
                "-A -t 192.0.2.1:80 -t 192.0.2.1:81",
                "multiple 'service-address' options specified",
            ),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -m -g", "multiple 'forwarding-method' options specified"),
            // commands_v_options.
            (
                "-A -t 192.0.2.1:80 -w 1",
                "Illegal 'weight' option with the 'add-service' command",
            ),
            (
                "-A -s rr",
                "You need to supply the 'service-address' option for the 'add-service' command",
            ),
            (
                "-a -t 192.0.2.1:80",
                "You need to supply the 'real-server' option for the 'add-server' command",
            ),
            (
                "-d -t 192.0.2.1:80 -r 10.0.0.1 -m",
                "Illegal 'forwarding-method' option with the 'delete-server' command",
            ),
            (
                "-D -t 192.0.2.1:80 -s rr",
                "Illegal 'scheduler' option with the 'delete-service' command",
            ),
            ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
            ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
            (
                "-S -t 192.0.2.1:80",
                "Illegal 'service-address' option with the 'save' command",
            ),
            ("-S --stats", "Illegal 'stats' option with the 'save' command"),
            (
                "-L -s rr",
                "Illegal 'scheduler' option with the 'list' command",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.1 -b sh-port",
                "incompatible scheduler flag `sh-port'",
            ),
            (
                "-L -c --timeout",
                "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
            ),
            (
                "-L -t 192.0.2.1:80 -c",
                "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
            ),
            ("-L -c --stats", "options conflicts in the list command"),
            ("-L --timeout --rate", "options conflicts in the list command"),
            ("-L --daemon --persistent-conn", "options conflicts in the list command"),
            ("--set 900 120", "--set option requires 3 timeout values"),
            ("--set 900 120 x", "invalid timeout value `x' specified"),
            ("--set 900 120 2678401", "invalid timeout value `2678401' specified"),
            ("--set 1 2 3 4", "unexpected argument 4"),
            // Values.
            ("-A -t 192.0.2.1", "Zero port specified for non-persistent service"),
            ("-E -t 192.0.2.1:0", "Zero port specified for non-persistent service"),
            ("-A -t 80", "illegal virtual server address[:port] specified"),
            ("-A -t 192.0.2.1:", "illegal virtual server address[:port] specified"),
            ("-A -t 192.0.2.1:65536", "illegal virtual server address[:port] specified"),
            ("-A -t 192.0.2.300:80", "illegal virtual server address[:port] specified"),
            ("-A -t [2001:db8::1]:80", "illegal virtual server address[:port] specified"),
            ("-A -t 2001:db8::1", "illegal virtual server address[:port] specified"),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.300",
                "illegal real server address[:port] specified",
            ),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -w 65536", "illegal weight specified"),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -w x", "illegal weight specified"),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -x -1", "illegal u_threshold specified"),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -y 2147483648", "illegal l_threshold specified"),
            ("-A -t 192.0.2.1:80 -p 0", "invalid timeout value `0' specified"),
            ("-A -t 192.0.2.1:80 -p 2678401", "invalid timeout value `2678401' specified"),
            ("-A -t 192.0.2.1:80 --persistent=", "invalid timeout value `' specified"),
            (
                "-A -t 192.0.2.1:80 -p -M 255.255.255.256",
                "illegal virtual server persistent mask specified",
            ),
            ("-A -t 192.0.2.1:80 -b sh-port", "incompatible scheduler flag `sh-port'"),
            ("-A -t 192.0.2.1:80 -s sh -b bogus", "invalid scheduler flag `bogus'"),
            ("-A -t 192.0.2.1:80 -s sh -b mh-port", "incompatible scheduler flag `mh-port'"),
            // Not in rvs.
            ("-A -f 1", "-f: firewall-mark services are not supported by rvs (use -t|-u VIP:PORT)"),
            ("-L -6", "-6: IPv6 is not supported by rvs"),
            ("-A --sctp-service 192.0.2.1:80", "--sctp-service: SCTP is not supported by rvs"),
            ("-A -t 192.0.2.1:80 --ops", "--ops: one-packet scheduling (--ops) is not supported by rvs"),
            ("-A -t 192.0.2.1:80 --pe sip", "--pe: persistence engines (--pe) are not supported by rvs"),
            ("-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gue", "--tun-type: tunnel options are not supported by rvs (-i is plain IPIP)"),
            // rvs's modifiers.
            ("--from", "--from: missing argument"),
            ("-L --socket", "--socket: missing argument"),
            ("--socket a --socket b -L", "multiple 'socket' options specified"),
            ("--from a --socket b -L", "--from FILE renders a dump without rvsd: it excludes --socket"),
            ("reload now", "unexpected argument now"),
            ("--save-ron -n", "Illegal 'numeric' option with the 'save-ron' command"),
        ];
        for (line, expected) in cases {
            assert_eq!(p(line), Err((*expected).to_owned()), "{line}");
        }
        let daemon_words = [
            ("-R", "-R: restoring rules"),
            (
                "--start-daemon master",
                "--start-daemon: the connection sync daemon",
            ),
            (
                "--stop-daemon backup",
                "--stop-daemon: the connection sync daemon",
            ),
            (
                "-L --daemon --syncid 3",
                "--syncid: the connection sync daemon",
            ),
            (
                "--from f -A -t 192.0.2.1:80",
                "the 'add-service' command asks rvsd",
            ),
            ("--from f -C", "the 'flush' command asks rvsd"),
            ("--from f reload", "reload asks rvsd"),
            ("--from f dump", "dump asks rvsd"),
            ("--from f --save-ron", "--save-ron asks rvsd"),
            ("--from f -L --daemon", "-L --daemon asks rvsd"),
        ];
        for (line, start) in daemon_words {
            let e = p(line).unwrap_err();
            assert!(e.starts_with(start), "{line}: {e}");
        }
    }

    // --- Replies ----------------------------------------------------------------------

    #[test]
    fn output_of_each_reply() {
        let add = p("-A -t 192.0.2.1:80").unwrap();
        assert_eq!(output(&add, Reply::Done("added".into())), Ok(String::new()));
        assert_eq!(
            output(&add, Reply::Error("Service already exists".into())),
            Err("Service already exists".into())
        );
        assert!(output(&add, Reply::Ron(String::new()))
            .unwrap_err()
            .starts_with("rvsd answered with an unexpected reply (Ron)"));

        let list_cmd = p("-L -n --timeout").unwrap();
        assert_eq!(
            output(&list_cmd, Reply::State(Box::new(fixture()))),
            Ok("Timeout (tcp tcpfin udp): 900 120 300\n".into())
        );
        let missing = p("-L -n -t 192.0.2.9:80").unwrap();
        assert_eq!(
            output(&missing, Reply::State(Box::new(fixture()))),
            Err("No such service".into())
        );

        let dump = p("dump").unwrap();
        let text = output(&dump, Reply::State(Box::new(fixture()))).unwrap();
        assert!(text.ends_with("}\n"));
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), fixture());

        let status = p("status").unwrap();
        assert_eq!(
            output(&status, Reply::Status(serde_json::json!({"workers": 2}))),
            Ok("{\n  \"workers\": 2\n}\n".into())
        );
        let daemon = p("-L --daemon").unwrap();
        assert_eq!(
            output(
                &daemon,
                Reply::Status(
                    serde_json::json!({"sync": {"state": "master", "interface": "eth0", "id": 1}})
                )
            ),
            Ok("master sync daemon (mcast=eth0, syncid=1)\n".into())
        );
        let ron = p("--save-ron").unwrap();
        assert_eq!(
            output(&ron, Reply::Ron("(services: [])".into())),
            Ok("(services: [])\n".into())
        );
        let reload = p("reload").unwrap();
        assert_eq!(
            output(&reload, Reply::Done(String::new())),
            Ok(String::new())
        );
        assert_eq!(
            output(&reload, Reply::Done("2 services changed".into())),
            Ok("2 services changed\n".into())
        );
    }

    #[test]
    fn usage_and_version_name_the_tool() {
        assert!(usage().starts_with("rvsadm "));
        assert!(usage().contains("never from DNS"));
        assert!(version().contains("ipvsadm v1.26"));
    }
}
