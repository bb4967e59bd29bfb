//! `rvsadm import-keepalived FILE`: a keepalived.conf turned into rvs's RON configuration.
//!
//! keepalived's words map to rvs's (whose schema took them from keepalived): `virtual_server`
//! to `services`, `real_server` to `real_servers` with their checkers, `vrrp_instance`,
//! `vrrp_sync_group`, `vrrp_script` and `lvs_sync_daemon` to their namesakes, `lvs_timeouts`
//! to `connections`. What rvs needs and keepalived.conf does not say (the worker cores, each
//! port's DPDK device and own addresses) is written as placeholders marked `TODO`.
//!
//! Nothing is dropped silently: every keyword not converted (one rvs has no equivalent of, an
//! unknown one, a value rvs cannot take, IPv6, fwmark and group virtual servers) is listed in
//! [`Import::unsupported`] with its `FILE:LINE`, and as comments at the top of the RON text.
//!
//! The reader follows keepalived.conf(5) of keepalived 2.2.7: blocks in `{ }`, comments from
//! `#` or `!` to the end of the line, `"` and `'` quoting (removed; whitespace inside kept; the
//! escapes `\n`, `\t`, `\xXX`, `\nnn`, ... inside quotes), `include` and its variants (resolved
//! from the including file's directory, with the wildcards `*`, `?` and `[...]`; csh brace
//! expressions are not expanded). Conditional lines (`@ID ...`, `@^ID ...`), parameter
//! definitions (`$NAME=...`) and `~SEQ`/`~LST` lines are listed as unsupported and skipped: the
//! config id they depend on belongs to the host keepalived runs on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::iter::Peekable;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};
use std::str::Chars;

use super::Ipv4Cidr;

/// The result of an import: the RON text and what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// rvs's configuration, with `TODO` comments where the operator must fill in.
    pub ron: String,
    /// Every keyword (or option of one) that was not converted, in file order.
    pub unsupported: Vec<Unsupported>,
}

/// A keyword of the keepalived.conf that the RON does not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub file: PathBuf,
    pub line: usize,
    pub keyword: String,
    pub why: String,
}

impl fmt::Display for Unsupported {
    /// `FILE:LINE: keyword: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.keyword,
            self.why
        )
    }
}

/// Reads `path` (and what it includes) and converts it. Fails only when `path` itself cannot
/// be read; everything else that does not convert is in [`Import::unsupported`].
pub fn import(path: &Path) -> Result<Import, String> {
    let source = Source::read(path)?;
    let mut parse_notes = Vec::new();
    let statements = parse(&source.tokens, &mut parse_notes);
    let mut conv = Conv::new(&source.files);
    conv.top(&statements);
    conv.finish();
    // By file (in the order read) and line; at one line, in the order they were found.
    let mut notes: Vec<(usize, Note)> = source
        .notes
        .iter()
        .cloned()
        .chain(parse_notes)
        .chain(conv.notes.iter().cloned())
        .enumerate()
        .collect();
    notes.sort_by_key(|(i, (at, ..))| (*at, *i));
    let unsupported: Vec<Unsupported> = notes
        .into_iter()
        .map(|(_, (at, keyword, why))| Unsupported {
            file: source.files[at.0].clone(),
            line: at.1,
            keyword,
            why,
        })
        .collect();
    let ron = conv.render(path, &unsupported);
    Ok(Import { ron, unsupported })
}

/// For `rvsadm import-keepalived`: the RON text of [`import`]. The unsupported keywords are in
/// its header comments; a caller that also wants them on stderr (as rvsadm does) calls
/// [`import`] and prints each [`Unsupported`] (its `Display` is `FILE:LINE: keyword: why`)
/// itself: this function writes nothing.
pub fn import_main(path: &Path) -> Result<String, String> {
    import(path).map(|i| i.ron)
}

// ---------------------------------------------------------------------------------------------
// Reading: lines to tokens, includes, conditionals.

/// (index of the file in `Source::files`, line number from 1).
type At = (usize, usize);

/// A note: where, the keyword, why it is not converted.
type Note = (At, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: Kind,
    text: String,
    file: usize,
    line: usize,
    /// The first token of its line: a word here starts a new statement.
    first: bool,
}

const INCLUDES: [&str; 6] = [
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// How deep includes may nest (keepalived's own limit is similar; it stops loops too).
const MAX_INCLUDE_DEPTH: usize = 32;

/// The files read, their tokens in order (included files spliced in), and the notes of the
/// reading (conditional lines, parameters, includes that found nothing).
struct Source {
    files: Vec<PathBuf>,
    tokens: Vec<Token>,
    notes: Vec<Note>,
    /// `$NAME`s defined so far: their uses are noted, since they are not substituted.
    params: HashSet<String>,
    /// The files being read, for include loops.
    stack: Vec<PathBuf>,
}

impl Source {
    fn read(path: &Path) -> Result<Source, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut source = Source {
            files: Vec::new(),
            tokens: Vec::new(),
            notes: Vec::new(),
            params: HashSet::new(),
            stack: Vec::new(),
        };
        source.lex_file(path, &text);
        Ok(source)
    }

    fn lex_file(&mut self, path: &Path, text: &str) {
        let file = self.files.len();
        self.files.push(path.to_owned());
        self.stack
            .push(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        self.lex(text, file, &dir);
        self.stack.pop();
    }

    fn note(&mut self, at: At, keyword: impl Into<String>, why: impl Into<String>) {
        self.notes.push((at, keyword.into(), why.into()));
    }

    fn lex(&mut self, text: &str, file: usize, dir: &Path) {
        let lines: Vec<&str> = text.lines().collect();
        let mut n = 0;
        while n < lines.len() {
            let line = lines[n];
            n += 1;
            let at = (file, n);
            let trimmed = line.trim_start();
            if let Some(name) = param_definition(trimmed) {
                // A multi-line definition goes on while its lines end with '\'.
                let mut last = line;
                while last.trim_end().ends_with('\\') && n < lines.len() {
                    last = lines[n];
                    n += 1;
                }
                self.params.insert(name.to_owned());
                self.note(
                    at,
                    format!("${name}"),
                    "parameter definition: the importer does not substitute parameters \
                     (expand them by hand)",
                );
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('@') {
                let (id, line_rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let keyword = line_rest.split_whitespace().next().unwrap_or("");
                self.note(
                    at,
                    format!("@{id} {keyword}").trim_end().to_owned(),
                    format!(
                        "conditional line: it applies only where keepalived's config id {} \
                         {}; the importer does not know the host, so it is left out",
                        if id.starts_with('^') { "is not" } else { "is" },
                        id.trim_start_matches('^')
                    ),
                );
                continue;
            }
            if trimmed.starts_with("~SEQ") || trimmed.starts_with("~LST") {
                let keyword = if trimmed.starts_with("~SEQ") {
                    "~SEQ"
                } else {
                    "~LST"
                };
                self.note(
                    at,
                    keyword,
                    "sequence/list line: not expanded by the importer (expand it by hand)",
                );
                continue;
            }
            let raw = split_line(line, false);
            if let Some((Kind::Word, word)) = raw.first() {
                if INCLUDES.contains(&word.as_str()) && !trimmed.starts_with(['"', '\'']) {
                    let word = word.clone();
                    self.include(at, &word, &raw[1..], dir);
                    continue;
                }
            }
            for (i, (kind, text)) in split_line(line, true).into_iter().enumerate() {
                if kind == Kind::Word && text.contains('$') {
                    for name in params_used(&text, &self.params) {
                        self.note(
                            at,
                            format!("${name}"),
                            "parameter use: not substituted by the importer (the value is \
                             taken as written)",
                        );
                    }
                }
                self.tokens.push(Token {
                    kind,
                    text,
                    file,
                    line: at.1,
                    first: i == 0,
                });
            }
        }
    }

    fn include(&mut self, at: At, keyword: &str, args: &[(Kind, String)], dir: &Path) {
        let Some((_, pattern)) = args.first() else {
            self.note(at, keyword, "names no file");
            return;
        };
        if args.len() > 1 {
            self.note(
                at,
                keyword,
                "more than one file name: only the first is read",
            );
        }
        if pattern.contains('{') {
            self.note(
                at,
                keyword,
                format!("{pattern}: csh brace expressions are not expanded by the importer"),
            );
            return;
        }
        let full = dir.join(pattern);
        let files = glob(&full);
        if files.is_empty() {
            self.note(at, keyword, format!("no file matches {}", full.display()));
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.note(
                at,
                keyword,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH}: not read"),
            );
            return;
        }
        for file in files {
            let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if self.stack.contains(&canonical) {
                self.note(
                    at,
                    keyword,
                    format!("{} includes itself: not read again", file.display()),
                );
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => self.lex_file(&file, &text),
                Err(e) => self.note(at, keyword, format!("cannot read {}: {e}", file.display())),
            }
        }
    }
}

/// `NAME` of a `$NAME=VALUE` line.
fn param_definition(trimmed: &str) -> Option<&str> {
    let rest = trimmed.strip_prefix('$')?;
    let (name, _) = rest.split_once('=')?;
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(name)
}

/// The defined parameters `word` uses (`$NAME` ending the word or followed by a non-name
/// character, or `${NAME}`).
fn params_used(word: &str, params: &HashSet<String>) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = if let Some(inner) = rest.strip_prefix('{') {
            inner.split('}').next().unwrap_or("").to_owned()
        } else {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        if params.contains(&name) && !used.contains(&name) {
            used.push(name);
        }
    }
    used
}

/// One line as keepalived reads it: words, and (with `braces`) `{` and `}` as tokens of their
/// own. A comment (`#` or `!`, outside quotes) ends the line; quotes are removed, the
/// whitespace they enclose kept; `${NAME}` stays one word.
fn split_line(line: &str, braces: bool) -> Vec<(Kind, String)> {
    fn flush(word: &mut String, in_word: &mut bool, out: &mut Vec<(Kind, String)>) {
        if *in_word {
            out.push((Kind::Word, std::mem::take(word)));
            *in_word = false;
        }
    }
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                unescape(&mut chars, &mut word);
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut out),
            '#' | '!' => break,
            '"' | '\'' => {
                quote = Some(c);
                in_word = true;
            }
            '$' if chars.peek() == Some(&'{') => {
                in_word = true;
                word.push('$');
                for c in chars.by_ref() {
                    word.push(c);
                    if c == '}' {
                        break;
                    }
                }
            }
            '{' | '}' if braces => {
                flush(&mut word, &mut in_word, &mut out);
                let kind = if c == '{' { Kind::Open } else { Kind::Close };
                out.push((kind, c.to_string()));
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut out);
    out
}

/// The character(s) a backslash escape inside quotes stands for, as keepalived.conf(5) lists
/// them: `\a \b \E \f \n \r \t \v`, `\nnn` octal, `\xXX` hex, `\cC` control, `\C` itself.
fn unescape(chars: &mut Peekable<Chars<'_>>, word: &mut String) {
    let Some(c) = chars.next() else {
        word.push('\\');
        return;
    };
    let digits = |chars: &mut Peekable<Chars<'_>>, radix: u32, max: usize| {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    value = value * radix + d;
                    chars.next();
                    n += 1;
                }
                None => break,
            }
        }
        (n > 0).then_some(value)
    };
    let byte = |v: u32| char::from((v & 0xff) as u8);
    match c {
        'a' => word.push('\x07'),
        'b' => word.push('\x08'),
        'E' => word.push('\x1b'),
        'f' => word.push('\x0c'),
        'n' => word.push('\n'),
        'r' => word.push('\r'),
        't' => word.push('\t'),
        'v' => word.push('\x0b'),
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        value = value * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            word.push(byte(value));
        }
        'x' => match digits(chars, 16, 2) {
            Some(v) => word.push(byte(v)),
            None => word.push('x'),
        },
        'c' => match chars.next() {
            Some(k) => word.push(byte(u32::from(k) & 0x1f)),
            None => word.push('c'),
        },
        other => word.push(other),
    }
}

/// The files `pattern` names: its components with `*`, `?` or `[...]` are matched against
/// directory entries (names starting with '.' only by a pattern that does), sorted.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let wild = |s: &str| s.contains(['*', '?', '[']);
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                if !wild(&part) {
                    for p in &mut found {
                        p.push(part.as_ref());
                    }
                    continue;
                }
                let pat: Vec<char> = part.chars().collect();
                let mut next = Vec::new();
                for base in &found {
                    let dir = if base.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        base.as_path()
                    };
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.') || pat.first() == Some(&'.'))
                        .filter(|n| wildcard(&pat, &n.chars().collect::<Vec<_>>()))
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| base.join(n)));
                }
                found = next;
            }
            other => {
                for p in &mut found {
                    p.push(other.as_os_str());
                }
            }
        }
    }
    found.retain(|p| p.is_file());
    found
}

/// Shell wildcard match: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`.
fn wildcard(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|i| wildcard(&pat[1..], &name[i..])),
        Some('?') => !name.is_empty() && wildcard(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(close) = pat.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                return name.first() == Some(&'[') && wildcard(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut set = &pat[1..close];
            let negate = matches!(set.first(), Some('!' | '^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard(&pat[close + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && wildcard(&pat[1..], &name[1..]),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: tokens to statements.

/// A keyword with its words and, if it opens one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stmt {
    key: String,
    args: Vec<String>,
    block: Option<Vec<Stmt>>,
    at: At,
}

/// Blocks nest at most this deep (a guard for the recursion, far above keepalived's 4 or 5).
const MAX_DEPTH: usize = 64;

fn parse(tokens: &[Token], notes: &mut Vec<Note>) -> Vec<Stmt> {
    let mut i = 0;
    parse_block(tokens, &mut i, 0, notes).0
}

/// Statements up to the `}` closing this block (`true`) or the end of the tokens (`false`).
fn parse_block(
    tokens: &[Token],
    i: &mut usize,
    depth: usize,
    notes: &mut Vec<Note>,
) -> (Vec<Stmt>, bool) {
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*i) {
        let at = (t.file, t.line);
        match t.kind {
            Kind::Close => {
                *i += 1;
                if depth > 0 {
                    return (out, true);
                }
                notes.push((at, "}".into(), "a `}` that closes no block: ignored".into()));
            }
            Kind::Open => {
                *i += 1;
                let (_, closed) = parse_block(tokens, i, depth + 1, notes);
                notes.push((
                    at,
                    "{".into(),
                    format!(
                        "a block that follows no keyword: ignored with its contents{}",
                        if closed {
                            ""
                        } else {
                            " (and it is never closed)"
                        }
                    ),
                ));
            }
            Kind::Word => {
                *i += 1;
                let mut args = Vec::new();
                while let Some(a) = tokens.get(*i) {
                    if a.kind != Kind::Word || a.first {
                        break;
                    }
                    args.push(a.text.clone());
                    *i += 1;
                }
                let mut block = None;
                if tokens.get(*i).is_some_and(|b| b.kind == Kind::Open) {
                    *i += 1;
                    if depth >= MAX_DEPTH {
                        notes.push((at, t.text.clone(), "blocks nest too deep".into()));
                        return (out, false);
                    }
                    let (children, closed) = parse_block(tokens, i, depth + 1, notes);
                    if !closed {
                        notes.push((
                            at,
                            t.text.clone(),
                            "its block has no closing `}` (read to the end of the file)".into(),
                        ));
                    }
                    block = Some(children);
                }
                out.push(Stmt {
                    key: t.text.clone(),
                    args,
                    block,
                    at,
                });
            }
        }
    }
    (out, false)
}

// ---------------------------------------------------------------------------------------------
// Converting: statements to rvs's configuration.

const NO_EQUIVALENT: &str = "no equivalent in rvs";

/// keepalived's checker timing, with rvs's field names.
#[derive(Debug, Clone, Default)]
struct Timing {
    delay_loop: Option<u32>,
    connect_timeout: Option<u32>,
    retry: Option<u32>,
    delay_before_retry: Option<u32>,
    warmup: Option<u32>,
}

impl Timing {
    fn fields(&self, out: &mut Vec<F>) {
        for (name, value) in [
            ("delay_loop", self.delay_loop),
            ("connect_timeout", self.connect_timeout),
            ("retry", self.retry),
            ("delay_before_retry", self.delay_before_retry),
            ("warmup", self.warmup),
        ] {
            if let Some(v) = value {
                out.push(F::new(name, num(v)));
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Service {
    at: At,
    protocol: &'static str,
    vip: Ipv4Addr,
    port: u16,
    lb_kind: &'static str,
    lb_algo: Option<String>,
    sched_flags: Vec<String>,
    persistence_timeout: Option<u32>,
    persistence_netmask: Option<Ipv4Addr>,
    timing: Timing,
    alpha: bool,
    omega: bool,
    quorum: Option<u32>,
    hysteresis: Option<u32>,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    inhibit_on_failure: bool,
    sorry_server: Option<(Ipv4Addr, Option<u16>)>,
    virtualhost: Option<String>,
    real_servers: Vec<Real>,
}

#[derive(Debug, Clone, Default)]
struct Real {
    address: Option<Ipv4Addr>,
    port: Option<u16>,
    weight: Option<u32>,
    upper_threshold: Option<u32>,
    lower_threshold: Option<u32>,
    notify_up: Option<String>,
    notify_down: Option<String>,
    inhibit_on_failure: Option<bool>,
    alpha: Option<bool>,
    timing: Timing,
    virtualhost: Option<String>,
    checks: Vec<V>,
}

#[derive(Debug, Clone, Default)]
struct Instance {
    at: At,
    name: String,
    state: Option<&'static str>,
    interface: Option<String>,
    virtual_router_id: Option<u8>,
    priority: Option<u8>,
    /// In hundredths of a second, and as written.
    advert_int: Option<(u32, At)>,
    version: Option<u8>,
    virtual_ipaddress: Vec<Ipv4Cidr>,
    nopreempt: Option<At>,
    preempt_delay: Option<u32>,
    /// The password rvs takes, where, whether it was cut to 8 bytes.
    auth_pass: Option<(String, At, bool)>,
    unicast_src_ip: Option<Ipv4Addr>,
    unicast_peer: Vec<Ipv4Addr>,
    garp_master_delay: Option<u32>,
    garp_master_repeat: Option<u32>,
    garp_master_refresh: Option<u32>,
    track_interface: Vec<String>,
    /// Script name, a weight written on the instance, where.
    track_script: Vec<(String, Option<i32>, At)>,
    notify_master: Option<String>,
    notify_backup: Option<String>,
    notify_fault: Option<String>,
    notify_stop: Option<String>,
    notify: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    at: At,
    name: String,
    members: Vec<(String, At)>,
    notify_master: Option<String>,
    notify_backup: Option<String>,
    notify_fault: Option<String>,
    notify_stop: Option<String>,
    notify: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Script {
    at: At,
    name: String,
    script: Option<String>,
    interval: Option<u32>,
    timeout: Option<u32>,
    weight: Option<i32>,
    fall: Option<u32>,
    rise: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct SyncDaemon {
    at: At,
    /// `lvs_sync_daemon`, or the older `lvs_sync_daemon_interface` of an instance.
    keyword: String,
    interface: String,
    vrrp_instance: Option<String>,
    id: Option<u8>,
    maxlen: Option<u16>,
    port: Option<u16>,
    ttl: Option<u8>,
    group: Option<Ipv4Addr>,
}

/// The global VRRP defaults (`global_defs`) that instances take when they say nothing.
#[derive(Debug, Clone, Default)]
struct VrrpDefaults {
    version: Option<u8>,
    garp_master_delay: Option<u32>,
    garp_master_repeat: Option<u32>,
    garp_master_refresh: Option<u32>,
}

struct Conv<'a> {
    files: &'a [PathBuf],
    notes: Vec<Note>,
    services: Vec<Service>,
    timeouts: [Option<u32>; 3],
    timeouts_at: Option<At>,
    instances: Vec<Instance>,
    groups: Vec<Group>,
    scripts: Vec<Script>,
    sync: Option<SyncDaemon>,
    defaults: VrrpDefaults,
    ports: Vec<String>,
}

impl<'a> Conv<'a> {
    fn new(files: &'a [PathBuf]) -> Self {
        Conv {
            files,
            notes: Vec::new(),
            services: Vec::new(),
            timeouts: [None; 3],
            timeouts_at: None,
            instances: Vec::new(),
            groups: Vec::new(),
            scripts: Vec::new(),
            sync: None,
            defaults: VrrpDefaults::default(),
            ports: Vec::new(),
        }
    }

    fn note(&mut self, at: At, keyword: impl Into<String>, why: impl Into<String>) {
        self.notes.push((at, keyword.into(), why.into()));
    }

    fn skip(&mut self, s: &Stmt, why: impl Into<String>) {
        self.note(s.at, s.key.clone(), why);
    }

    /// `file:line` for the comments of the RON.
    fn place(&self, at: At) -> String {
        let name = self.files[at.0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.files[at.0].display().to_string());
        format!("{name}:{}", at.1)
    }

    /// The block of `s`, or a note that it has none.
    fn block<'s>(&mut self, s: &'s Stmt) -> Option<&'s [Stmt]> {
        match &s.block {
            Some(b) => Some(b),
            None => {
                self.skip(s, "expects a block `{ ... }`: none follows");
                None
            }
        }
    }

    /// The only word of `s`; a note if there is none, and one for words beyond it.
    fn one<'s>(&mut self, s: &'s Stmt) -> Option<&'s str> {
        if s.block.is_some() {
            self.skip(s, "takes a value, not a block: ignored");
            return None;
        }
        match s.args.as_slice() {
            [] => {
                self.skip(s, "has no value: ignored");
                None
            }
            [one] => Some(one),
            [one, rest @ ..] => {
                let rest = rest.join(" ");
                self.skip(s, format!("extra words `{rest}` ignored"));
                Some(one)
            }
        }
    }

    fn invalid(&mut self, s: &Stmt, value: &str, expected: &str) {
        self.skip(s, format!("`{value}` is not {expected}: ignored"));
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &mut self,
        s: &Stmt,
        range: std::ops::RangeInclusive<T>,
    ) -> Option<T> {
        let value = self.one(s)?;
        match value.parse::<T>() {
            Ok(v) if range.contains(&v) => Some(v),
            _ => {
                let expected = format!("a number in {}..={}", range.start(), range.end());
                self.invalid(s, value, &expected);
                None
            }
        }
    }

    /// A keepalived TIMER (seconds, maybe fractional) as rvs's whole seconds.
    fn seconds(&mut self, s: &Stmt, min: u32, max: u32) -> Option<u32> {
        let value = self.one(s)?;
        let Some(secs) = value.parse::<f64>().ok().filter(|v| v.is_finite()) else {
            self.invalid(s, value, "a time in seconds");
            return None;
        };
        let whole = secs.round().clamp(f64::from(min), f64::from(max)) as u32;
        if !(f64::from(min)..=f64::from(max)).contains(&secs) {
            self.skip(
                s,
                format!("{value} is outside rvs's {min}..={max} seconds: written as {whole}"),
            );
        } else if secs.fract() != 0.0 {
            self.skip(
                s,
                format!("rvs counts whole seconds: {value} written as {whole}"),
            );
        }
        Some(whole)
    }

    /// A time in seconds kept in hundredths (VRRP's `advert_int`, `preempt_delay`).
    fn centis(&mut self, s: &Stmt, max: u32) -> Option<u32> {
        let value = self.one(s)?;
        let Some(secs) = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
        else {
            self.invalid(s, value, "a time in seconds");
            return None;
        };
        let centis = (secs * 100.0).round();
        if centis > f64::from(max) {
            self.invalid(s, value, &format!("at most {} seconds", Centis(max)));
            return None;
        }
        if (centis - secs * 100.0).abs() > 1e-6 {
            self.skip(
                s,
                format!(
                    "rvs counts hundredths of a second: {value} written as {}",
                    Centis(centis as u32)
                ),
            );
        }
        Some(centis as u32)
    }

    /// keepalived's <BOOL> (no word: true).
    fn boolean(&mut self, s: &Stmt) -> Option<bool> {
        if s.args.is_empty() && s.block.is_none() {
            return Some(true);
        }
        let value = self.one(s)?;
        match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Some(true),
            "off" | "false" | "no" => Some(false),
            _ => {
                self.invalid(s, value, "on|off|true|false|yes|no");
                None
            }
        }
    }

    /// A flag that takes no word (`alpha` on a virtual server), or a <BOOL>.
    fn flag(&mut self, s: &Stmt) -> bool {
        self.boolean(s).unwrap_or(false)
    }

    fn ipv4(&mut self, s: &Stmt, text: &str, what: &str) -> Option<Ipv4Addr> {
        match text.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) if text.contains(':') => {
                self.skip(s, format!("{what} {text} is IPv6: rvs is IPv4 only"));
                None
            }
            Err(_) => {
                self.invalid(s, text, &format!("an IPv4 address ({what})"));
                None
            }
        }
    }

    /// A program with its arguments (`notify_up`, `quorum_down`, ...): the first word (quoted
    /// if it has arguments); the words after it name the user and group keepalived runs it as.
    fn program(&mut self, s: &Stmt) -> Option<String> {
        if s.block.is_some() {
            self.skip(s, "takes a program, not a block: ignored");
            return None;
        }
        let Some(program) = s.args.first() else {
            self.skip(s, "names no program: ignored");
            return None;
        };
        if program.trim().is_empty() {
            self.skip(s, "names no program: ignored");
            return None;
        }
        if s.args.len() > 1 {
            self.skip(
                s,
                format!(
                    "runs as user/group `{}`: rvs runs programs as itself (the program is kept)",
                    s.args[1..].join(" ")
                ),
            );
        }
        self.shell_syntax(s, program);
        Some(program.clone())
    }

    /// A note if `program` has shell syntax, which rvs (running it split on blanks, without a
    /// shell) would pass as words.
    fn shell_syntax(&mut self, s: &Stmt, program: &str) {
        if program.contains(['\'', '"', '<', '>', '|', '&', ';', '`', '$', '*', '(']) {
            self.skip(
                s,
                "rvs runs the program without a shell, split on blanks: quotes, redirections \
                 and other shell syntax in it are not interpreted (put such a command in a \
                 script file)",
            );
        }
    }

    fn port_named(&mut self, name: &str) {
        if !self.ports.iter().any(|p| p == name) {
            self.ports.push(name.to_owned());
        }
    }

    // --- top level -------------------------------------------------------------------------

    fn top(&mut self, statements: &[Stmt]) {
        for s in statements {
            match s.key.as_str() {
                "global_defs" => self.global_defs(s),
                "lvs_sync_daemon" => self.sync_daemon(s),
                "lvs_timeouts" => self.timeouts(s),
                "virtual_server" => self.virtual_server(s),
                "vrrp_instance" => self.vrrp_instance(s),
                "vrrp_sync_group" => self.sync_group(s),
                "vrrp_script" | "vrrp_track_script" => self.vrrp_script(s),
                "virtual_server_group" => self.skip(
                    s,
                    "rvs has no virtual server groups (nor fwmarks): write one \
                     virtual_server per VIP and port",
                ),
                "static_ipaddress" => self.skip(
                    s,
                    "rvs's own addresses are its ports' `addresses`: add them there by hand",
                ),
                "static_routes" => self.skip(
                    s,
                    "rvs's `routes` (DESTINATION via GATEWAY on a port) lead to real servers \
                     off the ports' subnets: write them by hand",
                ),
                "static_rules" => self.skip(s, "rvs has no policy routing"),
                "linkbeat_interfaces"
                | "track_group"
                | "track_file"
                | "vrrp_track_file"
                | "vrrp_track_process"
                | "bfd_instance"
                | "garp_group"
                | "SSL"
                | "net_namespace"
                | "net_namespace_ipvs"
                | "namespace_with_ipsets"
                | "instance"
                | "use_pid_dir"
                | "linkbeat_use_polling"
                | "child_wait_time" => self.skip(s, NO_EQUIVALENT),
                _ => self.skip(s, "unknown keyword at the top level: not converted"),
            }
        }
    }

    fn global_defs(&mut self, s: &Stmt) {
        let Some(block) = self.block(s) else { return };
        for c in block {
            match c.key.as_str() {
                "lvs_sync_daemon" => self.sync_daemon(c),
                "lvs_timeouts" => self.timeouts(c),
                "vrrp_version" => {
                    if let Some(v) = self.number(c, 2..=3) {
                        self.defaults.version = Some(v);
                    }
                }
                "vrrp_garp_master_delay" => {
                    if let Some(v) = self.number(c, 0..=u32::MAX) {
                        self.defaults.garp_master_delay = Some(v);
                    }
                }
                "vrrp_garp_master_repeat" => {
                    if let Some(v) = self.number(c, 0..=u32::MAX) {
                        self.defaults.garp_master_repeat = Some(v);
                    }
                }
                "vrrp_garp_master_refresh" => {
                    if let Some(v) = self.number(c, 0..=u32::MAX) {
                        self.defaults.garp_master_refresh = Some(v);
                    }
                }
                "vrrp_mcast_group4" if c.args == ["224.0.0.18"] => {}
                "vrrp_mcast_group4" => {
                    self.skip(c, "rvs sends VRRP to 224.0.0.18 (or unicast_peer) only")
                }
                _ => self.skip(c, NO_EQUIVALENT),
            }
        }
    }

    /// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`.
    fn timeouts(&mut self, s: &Stmt) {
        if s.args.is_empty() {
            self.skip(s, "names no timeout");
            return;
        }
        let mut words = s.args.iter();
        while let Some(word) = words.next() {
            let slot = match word.as_str() {
                "tcp" => 0,
                "tcpfin" => 1,
                "udp" => 2,
                other => {
                    self.skip(s, format!("unknown timeout `{other}` ignored"));
                    continue;
                }
            };
            match words.next().map(|v| (v, v.parse::<u32>())) {
                Some((_, Ok(v))) if (1..=604_800).contains(&v) => {
                    self.timeouts[slot] = Some(v);
                    self.timeouts_at = Some(s.at);
                }
                Some((v, _)) => self.skip(
                    s,
                    format!("{word} {v}: rvs takes 1..=604800 seconds (0 keeps the kernel's)"),
                ),
                None => self.skip(s, format!("{word} has no value")),
            }
        }
    }

    /// `lvs_sync_daemon IFACE [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
    fn sync_daemon(&mut self, s: &Stmt) {
        let Some(interface) = s.args.first() else {
            self.skip(s, "names no interface");
            return;
        };
        let mut d = SyncDaemon {
            at: s.at,
            keyword: s.key.clone(),
            interface: interface.clone(),
            ..SyncDaemon::default()
        };
        let mut words = s.args[1..].iter();
        while let Some(word) = words.next() {
            let value = match word.as_str() {
                "inst" | "id" | "maxlen" | "port" | "ttl" | "group" => match words.next() {
                    Some(v) => v.as_str(),
                    None => {
                        self.skip(s, format!("{word} has no value"));
                        break;
                    }
                },
                name if d.vrrp_instance.is_none() => {
                    d.vrrp_instance = Some(name.to_owned());
                    continue;
                }
                other => {
                    self.skip(s, format!("unknown word `{other}` ignored"));
                    continue;
                }
            };
            let bad = |c: &mut Self, what: &str| c.invalid(s, value, &format!("a {word} ({what})"));
            match word.as_str() {
                "inst" => d.vrrp_instance = Some(value.to_owned()),
                "id" => match value.parse() {
                    Ok(v) => d.id = Some(v),
                    Err(_) => bad(self, "0..=255"),
                },
                "maxlen" => match value.parse() {
                    Ok(v) if (100..=65_000).contains(&v) => d.maxlen = Some(v),
                    _ => bad(self, "100..=65000 in rvs"),
                },
                "port" => match value.parse() {
                    Ok(v) if v > 0 => d.port = Some(v),
                    _ => bad(self, "1..=65535"),
                },
                "ttl" => match value.parse() {
                    Ok(v) if v > 0 => d.ttl = Some(v),
                    _ => bad(self, "1..=255"),
                },
                _ => match value.parse::<Ipv4Addr>() {
                    Ok(g) if g.is_multicast() => d.group = Some(g),
                    _ => bad(self, "an IPv4 multicast group"),
                },
            }
        }
        if d.vrrp_instance.is_none() {
            self.skip(
                s,
                "names no vrrp_instance: keepalived then runs the master and backup daemons at \
                 once; rvs ties sync to an instance's state (add `vrrp_instance` by hand)",
            );
            return;
        }
        if let Some(old) = &self.sync {
            let old = self.place(old.at);
            self.skip(
                s,
                format!("a second lvs_sync_daemon: it replaces the one of {old}"),
            );
        }
        self.sync = Some(d);
    }

    // --- virtual servers -------------------------------------------------------------------

    fn virtual_server(&mut self, s: &Stmt) {
        let (vip, port) = match s.args.as_slice() {
            [kind, _] if kind == "fwmark" => {
                self.skip(s, "fwmark virtual server: rvs has no firewall marks");
                return;
            }
            [kind, _] if kind == "group" => {
                self.skip(
                    s,
                    "virtual_server_group virtual server: rvs has no groups: write one \
                     virtual_server per VIP and port",
                );
                return;
            }
            [ip] | [ip, _] if ip.contains(':') => {
                self.skip(s, format!("IPv6 virtual server {ip}: rvs is IPv4 only"));
                return;
            }
            [ip] => {
                self.skip(
                    s,
                    format!(
                        "{ip} without a port (every port, persistent): rvs serves one port per \
                         service"
                    ),
                );
                return;
            }
            [ip, port] => {
                let Ok(vip) = ip.parse::<Ipv4Addr>() else {
                    self.invalid(s, ip, "an IPv4 address");
                    return;
                };
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => (vip, p),
                    _ => {
                        self.invalid(s, port, "a port (1..=65535)");
                        return;
                    }
                }
            }
            _ => {
                self.skip(s, "expects `IP PORT`, `fwmark N` or `group NAME`");
                return;
            }
        };
        let Some(block) = self.block(s) else { return };
        let mut svc = Service {
            at: s.at,
            protocol: "TCP",
            vip,
            port,
            lb_kind: "NAT",
            lb_algo: None,
            sched_flags: Vec::new(),
            persistence_timeout: None,
            persistence_netmask: None,
            timing: Timing::default(),
            alpha: false,
            omega: false,
            quorum: None,
            hysteresis: None,
            quorum_up: None,
            quorum_down: None,
            inhibit_on_failure: false,
            sorry_server: None,
            virtualhost: None,
            real_servers: Vec::new(),
        };
        let mut numbered_flags: Vec<&Stmt> = Vec::new();
        let mut keep = true;
        // The service's own options first: its real servers take them as defaults, and
        // check `lvs_method` against its kind.
        for c in block.iter().filter(|c| c.key != "real_server") {
            if self.timing(c, &mut svc.timing) {
                continue;
            }
            match c.key.as_str() {
                "lb_algo" | "lvs_sched" => {
                    if let Some(name) = self.one(c) {
                        if name.parse::<super::LbAlgo>().is_ok() {
                            svc.lb_algo = Some(name.to_owned());
                        } else {
                            self.skip(
                                c,
                                format!("rvs has no scheduler `{name}`: rvs's default rr is used"),
                            );
                        }
                    }
                }
                "lb_kind" | "lvs_method" => {
                    if let Some(kind) = self.method(c) {
                        svc.lb_kind = kind;
                    }
                }
                "protocol" => match self.one(c).map(str::to_ascii_uppercase).as_deref() {
                    Some("TCP") => svc.protocol = "TCP",
                    Some("UDP") => svc.protocol = "UDP",
                    Some(other) => {
                        self.skip(
                            c,
                            format!("protocol {other}: rvs forwards TCP and UDP; the service is left out"),
                        );
                        keep = false;
                    }
                    None => {}
                },
                "persistence_timeout" => {
                    svc.persistence_timeout = if c.args.is_empty() && c.block.is_none() {
                        // keepalived's default: 6 minutes.
                        Some(360)
                    } else {
                        self.number(c, 1..=31_536_000)
                    };
                }
                "persistence_granularity" => {
                    if let Some(text) = self.one(c) {
                        match netmask(text) {
                            Some(mask) => svc.persistence_netmask = Some(mask),
                            None => self.invalid(c, text, "a netmask (255.255.255.0)"),
                        }
                    }
                }
                "alpha" => svc.alpha = self.flag(c),
                "omega" => svc.omega = self.flag(c),
                "quorum" => svc.quorum = self.number(c, 1..=u32::MAX),
                "hysteresis" => svc.hysteresis = self.number(c, 0..=u32::MAX),
                "quorum_up" => svc.quorum_up = self.program(c),
                "quorum_down" => svc.quorum_down = self.program(c),
                "inhibit_on_failure" => svc.inhibit_on_failure = self.flag(c),
                "virtualhost" => svc.virtualhost = self.one(c).map(str::to_owned),
                "sorry_server" => svc.sorry_server = self.sorry_server(c),
                "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    if !svc.sched_flags.contains(&c.key) {
                        svc.sched_flags.push(c.key.clone());
                    }
                }
                "flag-1" | "flag-2" => numbered_flags.push(c),
                "flag-3" => self.skip(c, "scheduler flag-3: no rvs scheduler uses it"),
                "ha_suspend"
                | "smtp_alert"
                | "snmp_name"
                | "ops"
                | "persistence_engine"
                | "ip_family"
                | "sorry_server_inhibit"
                | "sorry_server_lvs_method" => self.skip(c, NO_EQUIVALENT),
                _ => self.skip(c, "unknown keyword in virtual_server: not converted"),
            }
        }
        // ipvsadm's flag-1 is sh-fallback/mh-fallback, flag-2 sh-port/mh-port.
        for c in numbered_flags {
            let algo = svc.lb_algo.as_deref().unwrap_or("rr");
            if algo == "sh" || algo == "mh" {
                let what = if c.key == "flag-1" {
                    "fallback"
                } else {
                    "port"
                };
                let flag = format!("{algo}-{what}");
                if !svc.sched_flags.contains(&flag) {
                    svc.sched_flags.push(flag);
                }
            } else {
                self.skip(c, format!("scheduler {algo} has no {}", c.key));
            }
        }
        if !keep {
            return;
        }
        for c in block.iter().filter(|c| c.key == "real_server") {
            if let Some(rs) = self.real_server(c, &svc) {
                svc.real_servers.push(rs);
            }
        }
        self.services.push(svc);
    }

    /// `lb_kind`/`lvs_method`: NAT, DR or TUN (ipip).
    fn method(&mut self, c: &Stmt) -> Option<&'static str> {
        let Some(kind) = c.args.first() else {
            self.skip(c, "has no value: ignored");
            return None;
        };
        let kind = match kind.to_ascii_uppercase().as_str() {
            "NAT" => "NAT",
            "DR" => "DR",
            "TUN" => "TUN",
            _ => {
                self.invalid(c, kind, "NAT, DR or TUN");
                return None;
            }
        };
        let rest = &c.args[1..];
        if kind == "TUN" && (rest == ["type", "ipip"] || rest.is_empty()) {
            return Some(kind);
        }
        if !rest.is_empty() {
            self.skip(
                c,
                format!(
                    "`{}`: rvs's TUN is IPIP only, without options; TUN (IPIP) is used",
                    rest.join(" ")
                ),
            );
        }
        Some(kind)
    }

    fn sorry_server(&mut self, c: &Stmt) -> Option<(Ipv4Addr, Option<u16>)> {
        let (ip, port) = match c.args.as_slice() {
            [ip] => (ip, None),
            [ip, port] => (ip, Some(port)),
            _ => {
                self.skip(c, "expects `IP [PORT]`");
                return None;
            }
        };
        let address = self.ipv4(c, ip, "sorry server")?;
        let port = match port.map(|p| (p, p.parse::<u16>())) {
            None => None,
            Some((_, Ok(p))) if p > 0 => Some(p),
            Some((p, _)) => {
                self.invalid(c, p, "a port");
                return None;
            }
        };
        Some((address, port))
    }

    /// The timing keywords every level has; `true` if `c` was one.
    fn timing(&mut self, c: &Stmt, t: &mut Timing) -> bool {
        match c.key.as_str() {
            "delay_loop" => t.delay_loop = self.seconds(c, 1, 86_400),
            "connect_timeout" => t.connect_timeout = self.seconds(c, 1, 3_600),
            "retry" | "nb_get_retry" => t.retry = self.number(c, 0..=100),
            "delay_before_retry" => t.delay_before_retry = self.seconds(c, 0, 3_600),
            "warmup" => t.warmup = self.seconds(c, 0, 86_400),
            _ => return false,
        }
        true
    }

    fn real_server(&mut self, s: &Stmt, svc: &Service) -> Option<Real> {
        let (ip, port) = match s.args.as_slice() {
            [ip] => (ip, None),
            [ip, port] => (ip, Some(port)),
            _ => {
                self.skip(s, "expects `IP [PORT]`");
                return None;
            }
        };
        if ip.contains(':') {
            self.skip(s, format!("IPv6 real server {ip}: rvs is IPv4 only"));
            return None;
        }
        let Ok(address) = ip.parse::<Ipv4Addr>() else {
            self.invalid(s, ip, "an IPv4 address");
            return None;
        };
        let port = match port.map(|p| (p, p.parse::<u16>())) {
            None | Some((_, Ok(0))) => None,
            Some((_, Ok(p))) => Some(p),
            Some((p, _)) => {
                self.invalid(s, p, "a port");
                return None;
            }
        };
        let mut rs = Real {
            address: Some(address),
            port,
            ..Real::default()
        };
        let checkers = [
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "MISC_CHECK",
            "UDP_CHECK",
            "PING_CHECK",
            "SMTP_CHECK",
            "DNS_CHECK",
            "BFD_CHECK",
            "FILE_CHECK",
        ];
        let block = s.block.as_deref().unwrap_or_default();
        for c in block.iter().filter(|c| !checkers.contains(&c.key.as_str())) {
            if self.timing(c, &mut rs.timing) {
                continue;
            }
            match c.key.as_str() {
                "weight" => rs.weight = self.number(c, 0..=super::MAX_WEIGHT),
                "uthreshold" => rs.upper_threshold = self.number(c, 0..=u32::MAX),
                "lthreshold" => rs.lower_threshold = self.number(c, 0..=u32::MAX),
                "notify_up" => rs.notify_up = self.program(c),
                "notify_down" => rs.notify_down = self.program(c),
                "inhibit_on_failure" => rs.inhibit_on_failure = self.boolean(c),
                "alpha" => rs.alpha = self.boolean(c),
                "virtualhost" => rs.virtualhost = self.one(c).map(str::to_owned),
                "lvs_method" | "lb_kind" => {
                    if let Some(kind) = self.method(c) {
                        if kind != svc.lb_kind {
                            self.skip(
                                c,
                                format!(
                                    "{kind} for one real server: rvs forwards a service's real \
                                     servers one way ({})",
                                    svc.lb_kind
                                ),
                            );
                        }
                    }
                }
                "smtp_alert" | "snmp_name" => self.skip(c, NO_EQUIVALENT),
                _ => self.skip(c, "unknown keyword in real_server: not converted"),
            }
        }
        for c in block.iter().filter(|c| checkers.contains(&c.key.as_str())) {
            if let Some(check) = self.checker(c, svc, &rs) {
                rs.checks.push(check);
            }
        }
        Some(rs)
    }

    fn checker(&mut self, s: &Stmt, svc: &Service, rs: &Real) -> Option<V> {
        let kind = s.key.as_str();
        if matches!(
            kind,
            "SMTP_CHECK" | "DNS_CHECK" | "BFD_CHECK" | "FILE_CHECK"
        ) {
            self.skip(
                s,
                format!(
                    "rvs has no {kind} (it has TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, \
                     UDP_CHECK, PING_CHECK): left out, the real server is not checked by it"
                ),
            );
            return None;
        }
        let block = self.block(s)?;
        let misc = kind == "MISC_CHECK";
        let http = kind == "HTTP_GET" || kind == "SSL_GET";
        let mut t = Timing::default();
        let mut fields: Vec<F> = Vec::new();
        let mut own: Vec<F> = Vec::new();
        let mut urls: Vec<V> = Vec::new();
        let mut misc_path = None;
        for c in block {
            if misc && matches!(c.key.as_str(), "connect_timeout") {
                self.skip(
                    c,
                    "rvs's MISC_CHECK takes misc_timeout, not connect_timeout",
                );
                continue;
            }
            if self.timing(c, &mut t) {
                continue;
            }
            match (c.key.as_str(), kind) {
                ("connect_ip" | "connect_port" | "bindto", "MISC_CHECK") => self.skip(
                    c,
                    "MISC_CHECK takes no address or port (its program checks)",
                ),
                ("connect_ip", _) => {
                    if let Some(ip) = self.one(c) {
                        if let Some(ip) = self.ipv4(c, ip, "address") {
                            fields.push(F::new("connect_ip", string(&ip.to_string())));
                        }
                    }
                }
                ("connect_port", _) => {
                    if let Some(p) = self.number::<u16>(c, 1..=65_535) {
                        fields.push(F::new("connect_port", num(p)));
                    }
                }
                ("bindto", _) => {
                    if let Some(ip) = self.one(c) {
                        if let Some(ip) = self.ipv4(c, ip, "address") {
                            fields.push(F::new("bindto", string(&ip.to_string())));
                        }
                    }
                }
                ("alpha", _) => {
                    if let Some(b) = self.boolean(c) {
                        fields.push(F::new("alpha", num(b)));
                    }
                }
                ("url", "HTTP_GET" | "SSL_GET") => {
                    if let Some(url) = self.url(c) {
                        urls.push(url);
                    }
                }
                ("virtualhost", "HTTP_GET" | "SSL_GET") => {
                    if let Some(v) = self.one(c) {
                        own.push(F::new("virtualhost", string(v)));
                    }
                }
                ("enable_sni", "SSL_GET") => {
                    // rvs always sends SNI (the virtualhost, if any).
                }
                ("misc_path", "MISC_CHECK") => {
                    if let Some(p) = self.one(c) {
                        self.shell_syntax(c, p);
                        misc_path = Some(p.to_owned());
                    }
                }
                ("misc_timeout", "MISC_CHECK") => {
                    if let Some(v) = self.seconds(c, 1, 3_600) {
                        own.push(F::new("misc_timeout", num(v)));
                    }
                }
                ("misc_dynamic", "MISC_CHECK") => {
                    if self.flag(c) {
                        own.push(F::new("misc_dynamic", num(true)));
                    }
                }
                ("payload", "UDP_CHECK") => {
                    let text = c.args.join(" ");
                    match udp_hex(&text, false) {
                        Some(hex) if !text.is_empty() => own.push(F::new("payload", string(&hex))),
                        _ => self.invalid(c, &text, "hex bytes"),
                    }
                }
                ("require_reply", "UDP_CHECK") => {
                    let text = c.args.join(" ");
                    if let Some(hex) = udp_hex(&text, false) {
                        own.push(F::new("require_reply", string(&hex)));
                    } else if udp_hex(&text, true).is_some() {
                        self.skip(
                            c,
                            format!(
                                "`{text}`: rvs cannot ignore nibbles (X); any reply is \
                                 required instead"
                            ),
                        );
                        own.push(F::new("require_reply", string("")));
                    } else {
                        self.invalid(c, &text, "hex bytes");
                    }
                }
                ("bind_if" | "bind_port" | "fwmark" | "log_all_failures", _) => {
                    self.skip(c, NO_EQUIVALENT)
                }
                ("http_protocol", "HTTP_GET" | "SSL_GET") if c.args == ["1.0"] => {
                    // rvs's checks speak HTTP/1.0.
                }
                ("http_protocol", "HTTP_GET" | "SSL_GET") => {
                    self.skip(c, "rvs's checks speak HTTP/1.0 only")
                }
                ("fast_recovery", "HTTP_GET" | "SSL_GET") => {
                    if self.boolean(c) == Some(false) {
                        self.skip(
                            c,
                            "rvs checks every URL at each check, as with fast_recovery on",
                        );
                    }
                }
                ("min_reply_length" | "max_reply_length", "UDP_CHECK") => {
                    self.skip(c, "rvs does not check the reply's length")
                }
                ("user", "MISC_CHECK") => self.skip(c, "rvs runs programs as itself"),
                _ => self.skip(c, format!("unknown keyword in {kind}: not converted")),
            }
        }
        // keepalived's defaults where they are not rvs's, said explicitly.
        let set =
            |f: fn(&Timing) -> Option<u32>| f(&t).or(f(&rs.timing)).or(f(&svc.timing)).is_some();
        let no_delay_before_retry = !set(|t| t.delay_before_retry);
        let no_retry = !set(|t| t.retry);
        let mut default_note = None;
        if http && no_delay_before_retry {
            t.delay_before_retry = Some(3);
            default_note = Some((
                "delay_before_retry",
                format!("keepalived's default for {kind} (rvs's is 1)"),
            ));
        }
        if misc && no_retry {
            t.retry = Some(0);
            default_note = Some((
                "retry",
                "keepalived's default for MISC_CHECK (rvs's is 1)".to_owned(),
            ));
        }
        let mut out = Vec::new();
        // The common fields in the schema's order: address, port, bindto, then timing.
        for name in ["connect_ip", "connect_port", "bindto"] {
            out.extend(fields.iter().filter(|f| f.name == name).cloned());
        }
        let timing_at = out.len();
        t.fields(&mut out);
        if let Some((name, note)) = default_note {
            if let Some(f) = out[timing_at..].iter_mut().find(|f| f.name == name) {
                f.note = Some(note);
            }
        }
        out.extend(fields.into_iter().filter(|f| f.name == "alpha"));
        if http {
            if urls.is_empty() {
                self.skip(s, format!("{kind} without a usable url: left out"));
                return None;
            }
            out.push(F::new("url", V::List(urls)));
        }
        if misc {
            let Some(path) = misc_path else {
                self.skip(s, "MISC_CHECK without misc_path: left out");
                return None;
            };
            if path.split_whitespace().next().is_none() {
                self.skip(s, "misc_path names no program: left out");
                return None;
            }
            out.insert(0, F::new("misc_path", string(&path)));
        }
        out.extend(own);
        Some(V::Struct(kind.to_owned(), out))
    }

    /// One `url { path; digest; status_code; virtualhost }`.
    fn url(&mut self, s: &Stmt) -> Option<V> {
        let block = self.block(s)?;
        let mut path = None;
        let mut fields = Vec::new();
        for c in block {
            match c.key.as_str() {
                "path" => path = self.one(c).map(str::to_owned),
                "digest" => {
                    if let Some(d) = self.one(c) {
                        if d.len() == 32 && d.chars().all(|ch| ch.is_ascii_hexdigit()) {
                            fields.push(F::new("digest", string(&d.to_ascii_lowercase())));
                        } else {
                            self.invalid(c, d, "an MD5 digest (32 hex digits)");
                        }
                    }
                }
                "status_code" => match c.args.as_slice() {
                    [one] if one == "200-299" => {
                        // rvs's default: any 2xx.
                    }
                    [one] => match one.parse::<u16>() {
                        Ok(code) if (100..=599).contains(&code) => {
                            fields.insert(0, F::new("status_code", num(code)));
                        }
                        _ => self.skip(
                            c,
                            format!(
                                "`{one}`: rvs checks one status (or any 2xx); any 2xx is \
                                 accepted instead"
                            ),
                        ),
                    },
                    [] => self.skip(c, "has no value: ignored"),
                    many => self.skip(
                        c,
                        format!(
                            "`{}`: rvs checks one status (or any 2xx); any 2xx is accepted \
                             instead",
                            many.join(" ")
                        ),
                    ),
                },
                "virtualhost" => {
                    if let Some(v) = self.one(c) {
                        fields.push(F::new("virtualhost", string(v)));
                    }
                }
                "regex" | "regex_no_match" | "regex_options" | "regex_stack"
                | "regex_min_offset" | "regex_max_offset" => {
                    self.skip(c, "rvs's HTTP checks match no regular expression")
                }
                _ => self.skip(c, "unknown keyword in url: not converted"),
            }
        }
        let Some(path) = path else {
            self.skip(s, "url without path: left out");
            return None;
        };
        if !path.starts_with('/') {
            self.skip(s, format!("path `{path}` does not start with /: left out"));
            return None;
        }
        let mut out = vec![F::new("path", string(&path))];
        out.extend(fields);
        Some(V::Struct(String::new(), out))
    }

    // --- VRRP ------------------------------------------------------------------------------

    fn vrrp_instance(&mut self, s: &Stmt) {
        let Some(name) = self.one_name(s) else { return };
        let Some(block) = self.block(s) else { return };
        let mut v = Instance {
            at: s.at,
            name,
            ..Instance::default()
        };
        for c in block {
            match c.key.as_str() {
                "state" => match self.one(c).map(str::to_ascii_uppercase).as_deref() {
                    Some("MASTER") => v.state = Some("MASTER"),
                    Some("BACKUP") => v.state = Some("BACKUP"),
                    Some(other) => self.invalid(c, other, "MASTER or BACKUP"),
                    None => {}
                },
                "interface" => v.interface = self.one(c).map(str::to_owned),
                "virtual_router_id" => v.virtual_router_id = self.number(c, 1..=255),
                "priority" => v.priority = self.number(c, 1..=255),
                "advert_int" => v.advert_int = self.centis(c, 25_500).map(|x| (x, c.at)),
                "version" => v.version = self.number(c, 2..=3),
                "virtual_ipaddress" => self.vips(c, &mut v),
                "nopreempt" => v.nopreempt = Some(c.at),
                "preempt" => v.nopreempt = None,
                "preempt_delay" => v.preempt_delay = self.centis(c, 100_000),
                "authentication" => self.authentication(c, &mut v),
                "unicast_src_ip" | "mcast_src_ip" => {
                    if let Some(ip) = self.one(c) {
                        if let Some(ip) = self.ipv4(c, ip, "address") {
                            v.unicast_src_ip = Some(ip);
                        }
                    }
                }
                "unicast_peer" => {
                    let Some(peers) = self.block(c) else { continue };
                    for p in peers {
                        if !p.args.is_empty() {
                            self.note(
                                p.at,
                                p.args[0].clone(),
                                format!(
                                    "`{}` of peer {}: {NO_EQUIVALENT}",
                                    p.args.join(" "),
                                    p.key
                                ),
                            );
                        }
                        if let Some(ip) = self.ipv4(p, &p.key, "unicast peer") {
                            v.unicast_peer.push(ip);
                        }
                    }
                }
                "garp_master_delay" => v.garp_master_delay = self.number(c, 0..=u32::MAX),
                "garp_master_repeat" => v.garp_master_repeat = self.number(c, 0..=u32::MAX),
                "garp_master_refresh" => v.garp_master_refresh = self.number(c, 0..=u32::MAX),
                "track_interface" => {
                    let Some(list) = self.block(c) else { continue };
                    for t in list {
                        if t.args.is_empty() && t.block.is_none() {
                            v.track_interface.push(t.key.clone());
                        } else {
                            self.note(
                                t.at,
                                t.args.first().cloned().unwrap_or_else(|| t.key.clone()),
                                format!(
                                    "track_interface `{} {}`: rvs's tracked interfaces have no \
                                     weight (a link down is FAULT); not tracked",
                                    t.key,
                                    t.args.join(" ")
                                ),
                            );
                        }
                    }
                }
                "track_script" => {
                    let Some(list) = self.block(c) else { continue };
                    for t in list {
                        match t.args.as_slice() {
                            [] => v.track_script.push((t.key.clone(), None, t.at)),
                            [w, n] if w == "weight" => match n.parse::<i32>() {
                                Ok(n) => v.track_script.push((t.key.clone(), Some(n), t.at)),
                                Err(_) => self.note(
                                    t.at,
                                    "weight",
                                    format!("`{n}` is not a weight: {} is not tracked", t.key),
                                ),
                            },
                            other => self.note(
                                t.at,
                                other[0].clone(),
                                format!(
                                    "track_script `{} {}`: rvs takes a script's own weight \
                                     only; not tracked",
                                    t.key,
                                    other.join(" ")
                                ),
                            ),
                        }
                    }
                }
                "notify_master" => v.notify_master = self.program(c),
                "notify_backup" => v.notify_backup = self.program(c),
                "notify_fault" => v.notify_fault = self.program(c),
                "notify_stop" => v.notify_stop = self.program(c),
                "notify" => v.notify = self.program(c),
                "lvs_sync_daemon_interface" => {
                    if let Some(iface) = self.one(c) {
                        if self.sync.is_some() {
                            self.skip(c, "lvs_sync_daemon is set already: this one is ignored");
                        } else {
                            self.sync = Some(SyncDaemon {
                                at: c.at,
                                keyword: c.key.clone(),
                                interface: iface.to_owned(),
                                vrrp_instance: Some(v.name.clone()),
                                ..SyncDaemon::default()
                            });
                        }
                    }
                }
                "dont_track_primary" => self.skip(c, "rvs always tracks the instance's own port"),
                "use_vmac" | "vmac_xmit_base" | "use_vmac_addr" | "use_ipvlan" => {
                    self.skip(c, "rvs has no virtual MAC or ipvlan interfaces")
                }
                "virtual_ipaddress_excluded" => self.skip(
                    c,
                    "rvs puts every held address in the adverts: move them to \
                     virtual_ipaddress by hand if the peers are rvs too",
                ),
                "virtual_routes" | "virtual_rules" => self.skip(
                    c,
                    "rvs installs no routes or rules on a state change (use notify_master)",
                ),
                "smtp_alert" => self.skip(c, "rvs sends no mail (use notify scripts)"),
                "native_ipv6" => self.skip(c, "rvs's VRRP is IPv4 only"),
                "track_file"
                | "track_process"
                | "track_bfd"
                | "track_src_ip"
                | "vrf"
                | "mcast_dst_ip"
                | "check_unicast_src"
                | "unicast_fault_no_peer"
                | "unicast_ttl"
                | "old_unicast_checksum"
                | "garp_lower_prio_delay"
                | "garp_lower_prio_repeat"
                | "garp_master_refresh_repeat"
                | "garp_extra_if"
                | "garp_extra_if_vmac"
                | "down_timer_adverts"
                | "lower_prio_no_advert"
                | "higher_prio_send_advert"
                | "promote_secondaries"
                | "accept"
                | "no_accept"
                | "skip_check_adv_addr"
                | "strict_mode"
                | "debug"
                | "notify_master_rx_lower_pri"
                | "notify_priority_changes"
                | "notify_deleted"
                | "kernel_rx_buf_size"
                | "linkbeat_use_polling" => self.skip(c, NO_EQUIVALENT),
                _ => self.skip(c, "unknown keyword in vrrp_instance: not converted"),
            }
        }
        let missing =
            |what: &str| format!("has no {what} (rvs needs one): the instance is left out");
        if v.interface.is_none() {
            self.skip(s, missing("interface"));
            return;
        }
        if v.virtual_router_id.is_none() {
            self.skip(s, missing("virtual_router_id"));
            return;
        }
        if v.virtual_ipaddress.is_empty() {
            self.skip(s, missing("IPv4 virtual_ipaddress"));
            return;
        }
        if self.instances.iter().any(|o| o.name == v.name) {
            self.skip(s, format!("a second vrrp_instance {}: left out", v.name));
            return;
        }
        let interface = v.interface.clone().unwrap_or_default();
        self.port_named(&interface);
        for t in v.track_interface.clone() {
            self.port_named(&t);
        }
        self.instances.push(v);
    }

    /// The name of a `vrrp_instance NAME`, `vrrp_script NAME`, ...
    fn one_name(&mut self, s: &Stmt) -> Option<String> {
        match s.args.as_slice() {
            [name] => Some(name.clone()),
            [] => {
                self.skip(s, "has no name: left out");
                None
            }
            [name, rest @ ..] => {
                self.skip(s, format!("extra words `{}` ignored", rest.join(" ")));
                Some(name.clone())
            }
        }
    }

    fn vips(&mut self, s: &Stmt, v: &mut Instance) {
        let Some(list) = self.block(s) else { return };
        for a in list {
            if a.key.contains(':') {
                self.note(
                    a.at,
                    a.key.clone(),
                    "IPv6 address: rvs's VRRP is IPv4 only; not held",
                );
                continue;
            }
            let cidr: Ipv4Cidr = match a.key.parse() {
                Ok(c) => c,
                Err(e) => {
                    self.note(a.at, a.key.clone(), format!("{e}: not held"));
                    continue;
                }
            };
            // Options: those taking a value, then flags.
            let mut words = a.args.iter();
            while let Some(word) = words.next() {
                let with_value = matches!(
                    word.as_str(),
                    "brd" | "dev" | "scope" | "label" | "peer" | "preferred_lft" | "track_group"
                );
                let value = if with_value {
                    words.next().map(String::as_str).unwrap_or("")
                } else {
                    ""
                };
                let why = match word.as_str() {
                    "dev" => format!(
                        "dev {value} for {}: rvs holds an instance's addresses on its interface \
                         ({}); the address is kept",
                        a.key,
                        v.interface.as_deref().unwrap_or("?")
                    ),
                    "label" => format!("label {value} for {}: rvs does not name addresses", a.key),
                    "brd" => format!(
                        "brd {value} for {}: rvs derives the broadcast from the prefix",
                        a.key
                    ),
                    other if with_value => {
                        format!("{other} {value} for {}: {NO_EQUIVALENT}", a.key)
                    }
                    other => format!("{other} for {}: {NO_EQUIVALENT}", a.key),
                };
                self.note(a.at, word.clone(), why);
            }
            if v.virtual_ipaddress.iter().any(|x| x.addr == cidr.addr) {
                self.note(
                    a.at,
                    a.key.clone(),
                    format!("{} is listed twice: held once", cidr.addr),
                );
                continue;
            }
            v.virtual_ipaddress.push(cidr);
        }
    }

    fn authentication(&mut self, s: &Stmt, v: &mut Instance) {
        let Some(block) = self.block(s) else { return };
        let mut kind = None;
        let mut pass = None;
        for c in block {
            match c.key.as_str() {
                "auth_type" => kind = self.one(c).map(|k| (k.to_ascii_uppercase(), c.at)),
                "auth_pass" => pass = self.one(c).map(|p| (p.to_owned(), c.at)),
                _ => self.skip(c, "unknown keyword in authentication: not converted"),
            }
        }
        match (kind, pass) {
            (Some((k, _)), Some((p, at))) if k == "PASS" => {
                // keepalived uses the first 8 characters; rvs takes at most 8 (bytes).
                let mut cut = String::new();
                for ch in p.chars() {
                    if cut.len() + ch.len_utf8() > 8 {
                        break;
                    }
                    cut.push(ch);
                }
                if cut.is_empty() {
                    self.skip(s, "auth_pass is empty: no authentication");
                } else {
                    let cut_short = cut.len() < p.len();
                    v.auth_pass = Some((cut, at, cut_short));
                }
            }
            (Some((k, at)), _) if k == "AH" => self.note(
                at,
                "auth_type",
                "AH (IPsec) authentication: rvs has PASS only; no authentication",
            ),
            (Some((k, at)), Some(_)) => {
                self.note(at, "auth_type", format!("`{k}` is not PASS or AH"))
            }
            _ => self.skip(s, "needs auth_type and auth_pass: no authentication"),
        }
    }

    fn sync_group(&mut self, s: &Stmt) {
        let Some(name) = self.one_name(s) else { return };
        let Some(block) = self.block(s) else { return };
        let mut g = Group {
            at: s.at,
            name,
            ..Group::default()
        };
        for c in block {
            match c.key.as_str() {
                "group" => {
                    let Some(members) = self.block(c) else {
                        continue;
                    };
                    for m in members {
                        if !m.args.is_empty() || m.block.is_some() {
                            self.note(m.at, m.key.clone(), "expects one instance name per line");
                            continue;
                        }
                        g.members.push((m.key.clone(), m.at));
                    }
                }
                "notify_master" => g.notify_master = self.program(c),
                "notify_backup" => g.notify_backup = self.program(c),
                "notify_fault" => g.notify_fault = self.program(c),
                "notify_stop" => g.notify_stop = self.program(c),
                "notify" => g.notify = self.program(c),
                "track_interface" | "track_script" | "track_file" | "track_process"
                | "track_bfd" => self.skip(
                    c,
                    "rvs tracks per instance, not per sync group: move it to the member \
                     instances by hand",
                ),
                "smtp_alert" => self.skip(c, "rvs sends no mail (use notify scripts)"),
                "notify_deleted"
                | "notify_priority_changes"
                | "global_tracking"
                | "sync_group_tracking_weight" => self.skip(c, NO_EQUIVALENT),
                _ if c.args.is_empty() && c.block.is_none() => self.skip(
                    c,
                    "not a vrrp_sync_group keyword: keepalived.conf(5) lists the member \
                     instances inside `group { ... }`",
                ),
                _ => self.skip(c, "unknown keyword in vrrp_sync_group: not converted"),
            }
        }
        if self.groups.iter().any(|o| o.name == g.name) {
            self.skip(s, format!("a second vrrp_sync_group {}: left out", g.name));
            return;
        }
        self.groups.push(g);
    }

    fn vrrp_script(&mut self, s: &Stmt) {
        let Some(name) = self.one_name(s) else { return };
        let Some(block) = self.block(s) else { return };
        let mut v = Script {
            at: s.at,
            name,
            ..Script::default()
        };
        for c in block {
            match c.key.as_str() {
                "script" => v.script = self.program(c),
                "interval" => v.interval = self.seconds(c, 1, 86_400),
                "timeout" => v.timeout = self.seconds(c, 1, 86_400),
                "weight" => match c.args.as_slice() {
                    [w] | [w, _] => match w.parse::<i32>() {
                        Ok(n) if (-253..=253).contains(&n) => {
                            v.weight = Some(n);
                            if c.args.len() == 2 {
                                self.skip(
                                    c,
                                    format!(
                                        "`{}`: rvs cannot reverse a script's weight (the \
                                         weight is kept)",
                                        c.args[1]
                                    ),
                                );
                            }
                        }
                        _ => self.invalid(c, w, "a weight in -253..=253"),
                    },
                    _ => self.skip(c, "expects `weight N [reverse]`"),
                },
                "rise" => v.rise = self.number(c, 1..=u32::MAX),
                "fall" => v.fall = self.number(c, 1..=u32::MAX),
                "user" => self.skip(c, "rvs runs programs as itself"),
                "init_fail" => self.skip(c, "rvs's scripts start as succeeding"),
                _ => self.skip(c, "unknown keyword in vrrp_script: not converted"),
            }
        }
        if v.script.is_none() {
            self.skip(s, "has no (unconditional) script line: left out");
            return;
        }
        if self.scripts.iter().any(|o| o.name == v.name) {
            self.skip(s, format!("a second vrrp_script {}: left out", v.name));
            return;
        }
        self.scripts.push(v);
    }

    /// Cross references, once everything is read: tracked scripts, sync group members, the
    /// sync daemon's instance, global defaults.
    fn finish(&mut self) {
        let script_weight: HashMap<String, i32> = self
            .scripts
            .iter()
            .map(|s| (s.name.clone(), s.weight.unwrap_or(0)))
            .collect();
        let defaults = self.defaults.clone();
        let mut notes = Vec::new();
        for v in &mut self.instances {
            if v.version.is_none() {
                v.version = defaults.version;
            }
            v.garp_master_delay = v.garp_master_delay.or(defaults.garp_master_delay);
            v.garp_master_repeat = v.garp_master_repeat.or(defaults.garp_master_repeat);
            v.garp_master_refresh = v.garp_master_refresh.or(defaults.garp_master_refresh);
            let version = v.version.unwrap_or(2);
            if let Some((centis, at)) = v.advert_int {
                if version == 2 && !centis.is_multiple_of(100) {
                    let whole = centis.div_ceil(100).clamp(1, 255) * 100;
                    notes.push((
                        at,
                        "advert_int".to_owned(),
                        format!(
                            "{}: VRRP version 2 sends whole seconds; written as {}",
                            Centis(centis),
                            Centis(whole)
                        ),
                    ));
                    v.advert_int = Some((whole, at));
                } else if version == 3 && centis > 4_095 {
                    notes.push((
                        at,
                        "advert_int".to_owned(),
                        format!(
                            "{}: VRRP version 3 allows at most 40.95 seconds; written as 40.95",
                            Centis(centis)
                        ),
                    ));
                    v.advert_int = Some((4_095, at));
                } else if centis == 0 {
                    notes.push((
                        at,
                        "advert_int".to_owned(),
                        "0: rvs's default 1 is used".into(),
                    ));
                    v.advert_int = None;
                }
            }
            if version == 3 {
                if let Some((_, at, _)) = v.auth_pass.take() {
                    notes.push((
                        at,
                        "auth_pass".to_owned(),
                        "authentication is VRRP version 2's (RFC 5798 removed it): none".into(),
                    ));
                }
            }
            if let (Some(at), Some("MASTER")) = (v.nopreempt, v.state) {
                notes.push((
                    at,
                    "nopreempt".to_owned(),
                    "needs state BACKUP (keepalived ignores it with state MASTER too)".into(),
                ));
                v.nopreempt = None;
            }
            let mut kept = Vec::new();
            for (name, weight, at) in std::mem::take(&mut v.track_script) {
                match (script_weight.get(&name), weight) {
                    (None, _) => notes.push((
                        at,
                        name.clone(),
                        format!("track_script {name}: no converted vrrp_script has that name"),
                    )),
                    (Some(own), Some(w)) if *own != w => notes.push((
                        at,
                        "weight".to_owned(),
                        format!(
                            "track_script {name} weight {w}: rvs takes the script's own weight \
                             ({own}); not tracked"
                        ),
                    )),
                    _ => kept.push((name, weight, at)),
                }
            }
            v.track_script = kept;
        }
        let names: HashMap<String, u8> = self
            .instances
            .iter()
            .map(|v| (v.name.clone(), v.virtual_router_id.unwrap_or(0)))
            .collect();
        let mut grouped = HashSet::new();
        let mut groups = Vec::new();
        for mut g in std::mem::take(&mut self.groups) {
            let mut members = Vec::new();
            for (m, at) in std::mem::take(&mut g.members) {
                if !names.contains_key(&m) {
                    notes.push((
                        at,
                        m.clone(),
                        format!(
                            "sync group {}: no converted vrrp_instance is named {m}",
                            g.name
                        ),
                    ));
                } else if !grouped.insert(m.clone()) {
                    notes.push((
                        at,
                        m.clone(),
                        format!(
                            "{m} is in another sync group already: left out of {}",
                            g.name
                        ),
                    ));
                } else {
                    members.push((m, at));
                }
            }
            g.members = members;
            if g.members.is_empty() {
                notes.push((
                    g.at,
                    "vrrp_sync_group".to_owned(),
                    format!("{} has no member instance rvs can take: left out", g.name),
                ));
                continue;
            }
            groups.push(g);
        }
        self.groups = groups;
        if let Some(mut d) = self.sync.take() {
            let instance = d.vrrp_instance.clone().unwrap_or_default();
            match names.get(&instance) {
                None => notes.push((
                    d.at,
                    "lvs_sync_daemon".to_owned(),
                    format!("no converted vrrp_instance is named {instance}: left out"),
                )),
                Some(vrid) => {
                    // keepalived's default sync id is the instance's VRID.
                    d.id = d.id.or(Some(*vrid));
                    self.sync = Some(d);
                }
            }
        }
        if let Some(d) = &self.sync {
            let interface = d.interface.clone();
            self.port_named(&interface);
        }
        for (at, keyword, why) in notes {
            self.note(at, keyword, why);
        }
    }

    // --- RON -------------------------------------------------------------------------------

    fn render(&self, path: &Path, unsupported: &[Unsupported]) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "// rvs configuration imported from keepalived's {} by rvsadm import-keepalived.\n",
            path.display()
        ));
        out.push_str(
            "// Before running rvsd: set each port's DPDK device and own addresses (the TODOs), \
             and check\n// `workers` (one worker per core listed).\n",
        );
        if unsupported.is_empty() {
            out.push_str("// Every keyword was converted.\n");
        } else {
            out.push_str(&format!(
                "// Not converted ({}), FILE:LINE: keyword: why:\n",
                unsupported.len()
            ));
            for u in unsupported {
                out.push_str(&format!("//   {}\n", one_line(&u.to_string())));
            }
        }
        let mut top: Vec<F> = Vec::new();
        top.push(F::noted(
            "workers",
            V::List(vec![num(1)]),
            "TODO: the CPU cores of the workers (one worker per core; each polls every port)",
        ));
        let ports = if self.ports.is_empty() {
            vec!["eth0".to_owned()]
        } else {
            self.ports.clone()
        };
        let mut port_values = Vec::new();
        for (i, name) in ports.iter().enumerate() {
            let held: Vec<String> = self
                .instances
                .iter()
                .filter(|v| v.interface.as_deref() == Some(name))
                .flat_map(|v| v.virtual_ipaddress.iter().map(|c| c.addr.to_string()))
                .collect();
            let mut addresses_note =
                format!("TODO: this appliance's own address(es) on {name}, e.g. \"192.0.2.2/24\"");
            if !held.is_empty() {
                addresses_note.push_str(&format!(
                    ";\nits VRRP addresses need their subnet here: {}",
                    list_some(&held)
                ));
            }
            port_values.push(V::Struct(
                String::new(),
                vec![
                    F::new("name", string(name)),
                    F::noted(
                        "device",
                        string(&format!("net_af_packet{i},iface={name}")),
                        &format!(
                            "TODO: the DPDK device of {name} (a PCI address bound to vfio-pci, \
                             or a vdev)"
                        ),
                    ),
                    F::noted("addresses", V::List(Vec::new()), &addresses_note),
                ],
            ));
        }
        let mut on_subnets: Vec<String> = Vec::new();
        for svc in &self.services {
            let mut push = |a: Ipv4Addr| {
                let a = a.to_string();
                if !on_subnets.contains(&a) {
                    on_subnets.push(a);
                }
            };
            push(svc.vip);
            for rs in &svc.real_servers {
                if let Some(a) = rs.address {
                    push(a);
                }
            }
            if let Some((a, _)) = svc.sorry_server {
                push(a);
            }
        }
        let mut ports_note = String::from(
            "One port per interface the keepalived.conf names (vrrp_instance, track_interface, \
             lvs_sync_daemon).",
        );
        if !on_subnets.is_empty() {
            ports_note.push_str(&format!(
                "\nEvery VIP, real server and sorry server must be on a port's subnet (real servers \
                 may be\nbehind `routes`): {}",
                list_some(&on_subnets)
            ));
        }
        top.push(F::noted("ports", V::List(port_values), &ports_note));
        if !self.services.is_empty() {
            let services = self
                .services
                .iter()
                .map(|s| {
                    V::Commented(
                        format!("{}: virtual_server {} {}", self.place(s.at), s.vip, s.port),
                        Box::new(service(s)),
                    )
                })
                .collect();
            top.push(F::new("services", V::List(services)));
        }
        if self.timeouts.iter().any(Option::is_some) {
            let mut fields = Vec::new();
            for (name, value) in ["tcp_timeout", "tcpfin_timeout", "udp_timeout"]
                .into_iter()
                .zip(self.timeouts)
            {
                if let Some(v) = value {
                    fields.push(F::new(name, num(v)));
                }
            }
            let note = self
                .timeouts_at
                .map(|at| format!("{}: lvs_timeouts", self.place(at)))
                .unwrap_or_default();
            top.push(F::noted(
                "connections",
                V::Struct(String::new(), fields),
                &note,
            ));
        }
        if !self.instances.is_empty() {
            let list = self
                .instances
                .iter()
                .map(|v| {
                    V::Commented(
                        format!("{}: vrrp_instance {}", self.place(v.at), v.name),
                        Box::new(instance(v)),
                    )
                })
                .collect();
            top.push(F::new("vrrp_instances", V::List(list)));
        }
        if !self.groups.is_empty() {
            let list = self
                .groups
                .iter()
                .map(|g| {
                    V::Commented(
                        format!("{}: vrrp_sync_group {}", self.place(g.at), g.name),
                        Box::new(group(g)),
                    )
                })
                .collect();
            top.push(F::new("vrrp_sync_groups", V::List(list)));
        }
        if !self.scripts.is_empty() {
            let list = self
                .scripts
                .iter()
                .map(|s| {
                    V::Commented(
                        format!("{}: vrrp_script {}", self.place(s.at), s.name),
                        Box::new(script(s)),
                    )
                })
                .collect();
            top.push(F::new("vrrp_scripts", V::List(list)));
        }
        if let Some(d) = &self.sync {
            let mut fields = vec![
                F::new("interface", string(&d.interface)),
                F::new(
                    "vrrp_instance",
                    string(d.vrrp_instance.as_deref().unwrap_or_default()),
                ),
            ];
            if let Some(id) = d.id {
                fields.push(F::new("id", num(id)));
            }
            if let Some(v) = d.maxlen {
                fields.push(F::new("maxlen", num(v)));
            }
            if let Some(v) = d.port {
                fields.push(F::new("port", num(v)));
            }
            if let Some(v) = d.ttl {
                fields.push(F::new("ttl", num(v)));
            }
            if let Some(v) = d.group {
                fields.push(F::new("group", string(&v.to_string())));
            }
            top.push(F::noted(
                "lvs_sync_daemon",
                V::Struct(String::new(), fields),
                &format!(
                    "{}: {} (keepalived's default sync id is the instance's \
                     virtual_router_id)",
                    self.place(d.at),
                    d.keyword
                ),
            ));
        }
        out.push_str("(\n");
        for f in &top {
            render_field(f, 4, &mut out);
        }
        out.push_str(")\n");
        out
    }
}

/// At most 12 of `items`, comma separated, with how many more.
fn list_some(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(12)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 12 {
        text.push_str(&format!(" and {} more", items.len() - 12));
    }
    text
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A netmask written dotted (`255.255.255.0`) or as a prefix length (`24`).
fn netmask(text: &str) -> Option<Ipv4Addr> {
    if let Ok(mask) = text.parse::<Ipv4Addr>() {
        let m = u32::from(mask);
        return (m.leading_ones() + m.trailing_zeros() == 32).then_some(mask);
    }
    let len: u32 = text.trim_start_matches('/').parse().ok()?;
    (len <= 32).then(|| Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0)))
}

/// keepalived's free-form hex (`Ab12f 3 456`: each blank-separated group read in pairs, an odd
/// last digit as a byte of its own) as rvs's plain hex (`ab120f034506`). With `wild`, X/x
/// nibbles are accepted (they can only be told apart, not converted).
fn udp_hex(text: &str, wild: bool) -> Option<String> {
    let mut out = String::new();
    for group in text.split_whitespace() {
        let ok = group
            .chars()
            .all(|c| c.is_ascii_hexdigit() || (wild && (c == 'x' || c == 'X')));
        if !ok {
            return None;
        }
        let digits: Vec<char> = group.to_ascii_lowercase().chars().collect();
        for pair in digits.chunks(2) {
            match pair {
                [a, b] => {
                    out.push(*a);
                    out.push(*b);
                }
                [a] => {
                    out.push('0');
                    out.push(*a);
                }
                _ => {}
            }
        }
    }
    Some(out)
}

/// Seconds kept in hundredths, shown as rvs's `Centis` reads them.
struct Centis(u32);

impl fmt::Display for Centis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        match hundredths {
            0 => write!(f, "{whole}"),
            h if h.is_multiple_of(10) => write!(f, "{whole}.{}", h / 10),
            h => write!(f, "{whole}.{h:02}"),
        }
    }
}

fn service(s: &Service) -> V {
    let mut f = vec![
        F::new("protocol", V::Atom(s.protocol.into())),
        F::new("vip", string(&s.vip.to_string())),
        F::new("port", num(s.port)),
        F::new("lb_kind", V::Atom(s.lb_kind.into())),
    ];
    if let Some(a) = &s.lb_algo {
        f.push(F::new("lb_algo", string(a)));
    }
    if !s.sched_flags.is_empty() {
        f.push(F::new(
            "sched_flags",
            V::List(s.sched_flags.iter().map(|x| string(x)).collect()),
        ));
    }
    if let Some(t) = s.persistence_timeout {
        f.push(F::new("persistence_timeout", num(t)));
    }
    if let Some(m) = s.persistence_netmask {
        f.push(F::new("persistence_netmask", string(&m.to_string())));
    }
    s.timing.fields(&mut f);
    if s.alpha {
        f.push(F::new("alpha", num(true)));
    }
    if s.omega {
        f.push(F::new("omega", num(true)));
    }
    if let Some(q) = s.quorum {
        f.push(F::new("quorum", num(q)));
    }
    if let Some(h) = s.hysteresis {
        f.push(F::new("hysteresis", num(h)));
    }
    opt_string(&mut f, "quorum_up", &s.quorum_up);
    opt_string(&mut f, "quorum_down", &s.quorum_down);
    if s.inhibit_on_failure {
        f.push(F::new("inhibit_on_failure", num(true)));
    }
    if let Some((address, port)) = s.sorry_server {
        let mut sorry = vec![F::new("address", string(&address.to_string()))];
        if let Some(p) = port {
            sorry.push(F::new("port", num(p)));
        }
        f.push(F::new("sorry_server", V::Struct(String::new(), sorry)));
    }
    opt_string(&mut f, "virtualhost", &s.virtualhost);
    f.push(F::new(
        "real_servers",
        V::List(s.real_servers.iter().map(real).collect()),
    ));
    V::Struct(String::new(), f)
}

fn real(r: &Real) -> V {
    let mut f = Vec::new();
    if let Some(a) = r.address {
        f.push(F::new("address", string(&a.to_string())));
    }
    if let Some(p) = r.port {
        f.push(F::new("port", num(p)));
    }
    if let Some(w) = r.weight {
        f.push(F::new("weight", num(w)));
    }
    if let Some(u) = r.upper_threshold {
        f.push(F::new("upper_threshold", num(u)));
    }
    if let Some(l) = r.lower_threshold {
        f.push(F::new("lower_threshold", num(l)));
    }
    opt_string(&mut f, "notify_up", &r.notify_up);
    opt_string(&mut f, "notify_down", &r.notify_down);
    if let Some(b) = r.inhibit_on_failure {
        f.push(F::new("inhibit_on_failure", num(b)));
    }
    if let Some(b) = r.alpha {
        f.push(F::new("alpha", num(b)));
    }
    r.timing.fields(&mut f);
    opt_string(&mut f, "virtualhost", &r.virtualhost);
    if !r.checks.is_empty() {
        f.push(F::new("checks", V::List(r.checks.clone())));
    }
    V::Struct(String::new(), f)
}

fn instance(v: &Instance) -> V {
    let mut f = vec![F::new("name", string(&v.name))];
    if let Some(s) = v.state {
        f.push(F::new("state", V::Atom(s.into())));
    }
    f.push(F::new(
        "interface",
        string(v.interface.as_deref().unwrap_or_default()),
    ));
    f.push(F::new(
        "virtual_router_id",
        num(v.virtual_router_id.unwrap_or(0)),
    ));
    if let Some(p) = v.priority {
        f.push(F::new("priority", num(p)));
    }
    if let Some((a, _)) = v.advert_int {
        f.push(F::new("advert_int", V::Atom(Centis(a).to_string())));
    }
    if let Some(x) = v.version {
        f.push(F::new("version", num(x)));
    }
    f.push(F::new(
        "virtual_ipaddress",
        V::List(
            v.virtual_ipaddress
                .iter()
                .map(|c| {
                    if c.prefix_len == 32 {
                        string(&c.addr.to_string())
                    } else {
                        string(&c.to_string())
                    }
                })
                .collect(),
        ),
    ));
    if v.nopreempt.is_some() {
        f.push(F::new("nopreempt", num(true)));
    }
    if let Some(d) = v.preempt_delay {
        f.push(F::new("preempt_delay", V::Atom(Centis(d).to_string())));
    }
    if let Some((p, _, cut)) = &v.auth_pass {
        let note = if *cut {
            "auth_pass cut to its first 8 characters, the part keepalived uses"
        } else {
            ""
        };
        f.push(F::noted(
            "authentication",
            V::Struct(
                String::new(),
                vec![
                    F::new("auth_type", V::Atom("PASS".into())),
                    F::new("auth_pass", string(p)),
                ],
            ),
            note,
        ));
    }
    if let Some(ip) = v.unicast_src_ip {
        f.push(F::new("unicast_src_ip", string(&ip.to_string())));
    }
    if !v.unicast_peer.is_empty() {
        f.push(F::new(
            "unicast_peer",
            V::List(
                v.unicast_peer
                    .iter()
                    .map(|p| string(&p.to_string()))
                    .collect(),
            ),
        ));
    }
    for (name, value) in [
        ("garp_master_delay", v.garp_master_delay),
        ("garp_master_repeat", v.garp_master_repeat),
        ("garp_master_refresh", v.garp_master_refresh),
    ] {
        if let Some(x) = value {
            f.push(F::new(name, num(x)));
        }
    }
    if !v.track_interface.is_empty() {
        f.push(F::new(
            "track_interface",
            V::List(v.track_interface.iter().map(|t| string(t)).collect()),
        ));
    }
    if !v.track_script.is_empty() {
        f.push(F::new(
            "track_script",
            V::List(v.track_script.iter().map(|(t, ..)| string(t)).collect()),
        ));
    }
    opt_string(&mut f, "notify_master", &v.notify_master);
    opt_string(&mut f, "notify_backup", &v.notify_backup);
    opt_string(&mut f, "notify_fault", &v.notify_fault);
    opt_string(&mut f, "notify_stop", &v.notify_stop);
    opt_string(&mut f, "notify", &v.notify);
    V::Struct(String::new(), f)
}

fn group(g: &Group) -> V {
    let mut f = vec![
        F::new("name", string(&g.name)),
        F::new(
            "group",
            V::List(g.members.iter().map(|(m, _)| string(m)).collect()),
        ),
    ];
    opt_string(&mut f, "notify_master", &g.notify_master);
    opt_string(&mut f, "notify_backup", &g.notify_backup);
    opt_string(&mut f, "notify_fault", &g.notify_fault);
    opt_string(&mut f, "notify_stop", &g.notify_stop);
    opt_string(&mut f, "notify", &g.notify);
    V::Struct(String::new(), f)
}

fn script(s: &Script) -> V {
    let mut f = vec![
        F::new("name", string(&s.name)),
        F::new("script", string(s.script.as_deref().unwrap_or_default())),
    ];
    if let Some(i) = s.interval {
        f.push(F::new("interval", num(i)));
    }
    if let Some(t) = s.timeout {
        f.push(F::new("timeout", num(t)));
    }
    if let Some(w) = s.weight {
        f.push(F::new("weight", num(w)));
    }
    if let Some(x) = s.fall {
        f.push(F::new("fall", num(x)));
    }
    if let Some(x) = s.rise {
        f.push(F::new("rise", num(x)));
    }
    V::Struct(String::new(), f)
}

fn opt_string(f: &mut Vec<F>, name: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        f.push(F::new(name, string(v)));
    }
}

// ---------------------------------------------------------------------------------------------
// Writing RON: values with comments, inline when short.

/// A RON value as text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    /// A number, a bool, an enum variant: written as it is.
    Atom(String),
    List(Vec<V>),
    /// `NAME(field: value, ...)`; an empty name is an anonymous struct.
    Struct(String, Vec<F>),
    /// A list item preceded by a comment.
    Commented(String, Box<V>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct F {
    name: &'static str,
    value: V,
    /// Comment lines written above the field.
    note: Option<String>,
}

impl F {
    fn new(name: &'static str, value: V) -> F {
        F {
            name,
            value,
            note: None,
        }
    }

    fn noted(name: &'static str, value: V, note: &str) -> F {
        F {
            name,
            value,
            note: (!note.is_empty()).then(|| note.to_owned()),
        }
    }
}

fn string(text: &str) -> V {
    // Rust's escapes (\", \\, \n, \u{..}) are RON's.
    V::Atom(format!("{text:?}"))
}

fn num(value: impl fmt::Display) -> V {
    V::Atom(value.to_string())
}

/// Widest line an inline value may make.
const WIDTH: usize = 100;

fn inline(v: &V) -> Option<String> {
    match v {
        V::Atom(a) => Some(a.clone()),
        V::List(items) => {
            let parts = items.iter().map(inline).collect::<Option<Vec<_>>>()?;
            Some(format!("[{}]", parts.join(", ")))
        }
        V::Struct(name, fields) => {
            let parts = fields
                .iter()
                .map(|f| match f.note {
                    Some(_) => None,
                    None => Some(format!("{}: {}", f.name, inline(&f.value)?)),
                })
                .collect::<Option<Vec<_>>>()?;
            Some(format!("{name}({})", parts.join(", ")))
        }
        V::Commented(..) => None,
    }
}

/// `text` as `//` lines, wrapped at blanks to fit [`WIDTH`].
fn comment(text: &str, indent: usize, out: &mut String) {
    let room = WIDTH.saturating_sub(indent + 3).max(40);
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split_whitespace() {
            if !current.is_empty() && current.len() + 1 + word.len() > room {
                push_comment(&current, indent, out);
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        push_comment(&current, indent, out);
    }
}

fn push_comment(line: &str, indent: usize, out: &mut String) {
    out.push_str(&" ".repeat(indent));
    out.push_str("//");
    if !line.is_empty() {
        out.push(' ');
        out.push_str(line);
    }
    out.push('\n');
}

fn render_field(f: &F, indent: usize, out: &mut String) {
    if let Some(note) = &f.note {
        comment(note, indent, out);
    }
    out.push_str(&" ".repeat(indent));
    let prefix = format!("{}: ", f.name);
    out.push_str(&prefix);
    render_value(&f.value, indent, indent + prefix.len(), out);
    out.push_str(",\n");
}

/// `v` at a line `used` columns wide, its inner lines indented by `indent` + 4.
fn render_value(v: &V, indent: usize, used: usize, out: &mut String) {
    if let Some(text) = inline(v) {
        if used + text.len() < WIDTH {
            out.push_str(&text);
            return;
        }
    }
    let pad = " ".repeat(indent);
    match v {
        V::Atom(a) => out.push_str(a),
        V::Commented(_, inner) => render_value(inner, indent, used, out),
        V::List(items) => {
            out.push_str("[\n");
            for item in items {
                let inner = match item {
                    V::Commented(text, inner) => {
                        comment(text, indent + 4, out);
                        inner.as_ref()
                    }
                    other => other,
                };
                out.push_str(&pad);
                out.push_str("    ");
                render_value(inner, indent + 4, indent + 4, out);
                out.push_str(",\n");
            }
            out.push_str(&pad);
            out.push(']');
        }
        V::Struct(name, fields) => {
            out.push_str(name);
            out.push_str("(\n");
            for f in fields {
                render_field(f, indent + 4, out);
            }
            out.push_str(&pad);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_line(line, true)
            .into_iter()
            .map(|(k, t)| match k {
                Kind::Word => t,
                Kind::Open => "<{>".into(),
                Kind::Close => "<}>".into(),
            })
            .collect()
    }

    #[test]
    fn comments_end_lines_outside_quotes() {
        assert_eq!(words("weight 1 # a comment"), ["weight", "1"]);
        assert_eq!(words("weight 1 ! a comment"), ["weight", "1"]);
        assert_eq!(words("! all comment"), Vec::<String>::new());
        assert_eq!(
            words("inhibit_on_failure        ! set weight"),
            ["inhibit_on_failure"]
        );
        assert_eq!(words("script \"a # b ! c\" # d"), ["script", "a # b ! c"]);
        assert_eq!(words("path /a#b"), ["path", "/a"]);
    }

    #[test]
    fn quotes_as_keepalived_reads_them() {
        // From keepalived.conf(5): quotes are removed, the whitespace they enclose kept.
        assert_eq!(words(r#"abcd" efg h jkl "mnop"#), ["abcd efg h jkl mnop"]);
        assert_eq!(
            words(r#"abcd "efg h jkl" mnop"#),
            ["abcd", "efg h jkl", "mnop"]
        );
        assert_eq!(words("x 'it \"is\"' y"), ["x", "it \"is\"", "y"]);
        assert_eq!(
            words(r#"s "a\tb\x41\101\\\"\cA\q""#),
            ["s", "a\tbAA\\\"\u{1}q"]
        );
        assert_eq!(words(r#"s "{ not a block }""#), ["s", "{ not a block }"]);
        assert_eq!(words("s ${NAME}x {"), ["s", "${NAME}x", "<{>"]);
    }

    #[test]
    fn braces_are_tokens() {
        assert_eq!(words("url { path / }"), ["url", "<{>", "path", "/", "<}>"]);
        assert_eq!(words("a{b}c"), ["a", "<{>", "b", "<}>", "c"]);
    }

    fn parse_text(text: &str) -> (Vec<Stmt>, Vec<Note>) {
        let mut source = Source {
            files: vec!["t.conf".into()],
            tokens: Vec::new(),
            notes: Vec::new(),
            params: HashSet::new(),
            stack: Vec::new(),
        };
        source.lex(text, 0, Path::new("."));
        let mut notes = source.notes;
        let statements = parse(&source.tokens, &mut notes);
        (statements, notes)
    }

    fn stmt(key: &str, args: &[&str], line: usize, block: Option<Vec<Stmt>>) -> Stmt {
        Stmt {
            key: key.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            block,
            at: (0, line),
        }
    }

    #[test]
    fn nested_blocks_with_line_numbers() {
        let text = "! header\n\
                    virtual_server 10.0.0.1 80 {   # comment\n\
                    \x20   delay_loop 6\n\
                    \n\
                    \x20   real_server 10.0.1.1 8080\n\
                    \x20   {\n\
                    \x20       HTTP_GET { url { path /x } }\n\
                    \x20   }\n\
                    }\n\
                    global_defs { router_id a }\n";
        let (statements, notes) = parse_text(text);
        assert!(notes.is_empty(), "{notes:?}");
        let url = stmt("url", &[], 7, Some(vec![stmt("path", &["/x"], 7, None)]));
        let expected = vec![
            stmt(
                "virtual_server",
                &["10.0.0.1", "80"],
                2,
                Some(vec![
                    stmt("delay_loop", &["6"], 3, None),
                    stmt(
                        "real_server",
                        &["10.0.1.1", "8080"],
                        5,
                        Some(vec![stmt("HTTP_GET", &[], 7, Some(vec![url]))]),
                    ),
                ]),
            ),
            stmt(
                "global_defs",
                &[],
                10,
                Some(vec![stmt("router_id", &["a"], 10, None)]),
            ),
        ];
        assert_eq!(statements, expected);
    }

    #[test]
    fn unbalanced_braces_and_conditionals_are_noted() {
        let text = "}\nvrrp_instance A {\n@main priority 200\n$P=1\n\
                    @^backup unicast_src_ip 10.0.0.1\npriority $P\n";
        let (statements, notes) = parse_text(text);
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0].block,
            Some(vec![stmt("priority", &["$P"], 6, None)])
        );
        let seen: Vec<(usize, &str)> = notes
            .iter()
            .map(|(at, keyword, _)| (at.1, keyword.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (3, "@main priority"),
                (4, "$P"),
                (5, "@^backup unicast_src_ip"),
                (6, "$P"),
                (1, "}"),
                (2, "vrrp_instance"),
            ]
        );
        assert!(notes[2].2.contains("is not backup"), "{}", notes[2].2);
    }

    #[test]
    fn includes_resolve_from_the_including_file() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-include-{}", std::process::id()));
        let sub = dir.join("conf.d");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            dir.join("keepalived.conf"),
            "global_defs {\n  include conf.d/*.conf\n}\ninclude missing.conf\n",
        )
        .unwrap();
        std::fs::write(
            sub.join("b.conf"),
            "lvs_timeouts tcp 60\ninclude ../self.conf\n",
        )
        .unwrap();
        std::fs::write(sub.join("a.conf"), "router_id x\n").unwrap();
        std::fs::write(dir.join("self.conf"), "include conf.d/b.conf\n").unwrap();
        let source = Source::read(&dir.join("keepalived.conf")).unwrap();
        let mut notes = source.notes.clone();
        let statements = parse(&source.tokens, &mut notes);
        let names: Vec<String> = source
            .files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "keepalived.conf",
                "conf.d/a.conf",
                "conf.d/b.conf",
                "conf.d/../self.conf"
            ]
        );
        let block = statements[0].block.as_ref().unwrap();
        assert_eq!(block[0].key, "router_id");
        assert_eq!(block[0].at, (1, 1));
        assert_eq!(block[1].key, "lvs_timeouts");
        assert_eq!(block[1].at, (2, 1));
        let seen: Vec<(usize, usize, &str)> = notes
            .iter()
            .map(|(at, k, _)| (at.0, at.1, k.as_str()))
            .collect();
        assert_eq!(seen, [(3, 1, "include"), (0, 4, "include")]);
        assert!(notes[0].2.contains("includes itself"), "{}", notes[0].2);
        assert!(notes[1].2.contains("no file matches"), "{}", notes[1].2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wildcards() {
        let m = |p: &str, n: &str| {
            wildcard(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.conf", "a.conf"));
        assert!(!m("*.conf", "a.confx"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("*", ""));
    }

    #[test]
    fn udp_hex_is_keepalived_free_form() {
        // keepalived.conf(5)'s example: AB 12 0F 03 45 06 54 64 43 12 03.
        assert_eq!(
            udp_hex("Ab12f 3 456 546443123", false).as_deref(),
            Some("ab120f0345065464431203")
        );
        assert_eq!(udp_hex("zz", false), None);
        assert_eq!(udp_hex("1x", false), None);
        assert_eq!(udp_hex("1x", true).as_deref(), Some("1x"));
    }

    const SMALL: &str = r#"! a small keepalived.conf
global_defs {
    router_id LB1
    lvs_timeouts tcp 7200 udp 60
}

vrrp_script chk_nginx {
    script "/usr/bin/pgrep nginx"
    interval 2
    weight -20
}

vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    authentication {
        auth_type PASS
        auth_pass secret123
    }
    virtual_ipaddress {
        198.51.100.100/24 dev eth0
    }
    track_script {
        chk_nginx
    }
    notify_master "/usr/local/bin/notify master"
}

virtual_server 198.51.100.100 80 {
    delay_loop 5
    lb_algo wrr
    lb_kind DR
    protocol TCP
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    sorry_server 198.51.100.50 80

    real_server 198.51.100.11 80 {
        weight 3
        uthreshold 100
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 2
        }
        SMTP_CHECK {
            helo_name x
        }
    }
    real_server 198.51.100.12 80 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check 198.51.100.12"
            misc_timeout 3
        }
    }
}

lvs_sync_daemon eth1 VI_1 maxlen 1400
"#;

    #[test]
    fn a_small_config_converts_to_this_ron() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-small-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, SMALL).unwrap();
        let import = import(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let listed: Vec<String> = import
            .unsupported
            .iter()
            .map(|u| format!("{}: {}: {}", u.line, u.keyword, u.why))
            .collect();
        assert_eq!(
            listed,
            [
                "3: router_id: no equivalent in rvs",
                "25: dev: dev eth0 for 198.51.100.100/24: rvs holds an instance's addresses on \
                 its interface (eth0); the address is kept",
                "52: SMTP_CHECK: rvs has no SMTP_CHECK (it has TCP_CHECK, HTTP_GET, SSL_GET, \
                 MISC_CHECK, UDP_CHECK, PING_CHECK): left out, the real server is not checked by \
                 it",
            ]
        );
        assert!(import.unsupported.iter().all(|u| u.file == path));
        let expected = SMALL_RON.replace("{DIR}", &dir.display().to_string());
        assert_eq!(import.ron, expected, "got:\n{}", import.ron);
        assert_eq!(
            import_main(&path.with_file_name("absent.conf")).map(|_| ()),
            Err(format!(
                "{}: cannot read: No such file or directory (os error 2)",
                path.with_file_name("absent.conf").display()
            ))
        );
    }

    const EDGES: &str = r#"$VIP=10.0.0.5
~SEQ(X, 1, 3) foo
global_defs {
  vrrp_version 3
  vrrp_garp_master_delay 2
  lvs_sync_daemon eth9
}
virtual_server 10.0.0.1 80 {
  protocol SCTP
}
virtual_server 10.0.0.2 {
  protocol TCP
}
virtual_server ${VIP} 80 {
}
virtual_server 10.0.0.3 443 {
  lvs_sched twos
  lb_algo sh
  flag-1
  flag-2
  delay_loop 2.5
  bogus_kw 1
  real_server fe80::1 443 {
  }
  real_server 10.0.0.10 443 {
    lvs_method DR
    HTTP_GET {
      url { path nopath }
      http_protocol 1.1
    }
    MISC_CHECK {
      misc_path "/bin/sh -c 'exit 0'"
      connect_timeout 3
    }
  }
}
vrrp_instance V {
  state MASTER
  nopreempt
  interface eth0
  virtual_router_id 9
  advert_int 0.5
  authentication {
    auth_type PASS
    auth_pass x
  }
  virtual_ipaddress {
    10.0.0.1/24 brd 10.0.0.255 scope global
    fe80::5
  }
  unicast_peer {
    10.0.0.9 min_ttl 3
  }
}
vrrp_instance W {
  interface eth1
  virtual_router_id 10
  virtual_ipaddress {
    10.0.1.1
  }
"#;

    #[test]
    fn what_does_not_convert_is_listed_not_dropped() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-edges-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, EDGES).unwrap();
        let import = import(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let listed: Vec<String> = import
            .unsupported
            .iter()
            .map(|u| format!("{} {}", u.line, u.keyword))
            .collect();
        assert_eq!(
            listed,
            [
                "1 $VIP",
                "2 ~SEQ",
                "6 lvs_sync_daemon",
                "9 protocol",
                "11 virtual_server",
                "14 $VIP",
                "14 virtual_server",
                "17 lvs_sched",
                "21 delay_loop",
                "22 bogus_kw",
                "23 real_server",
                "26 lvs_method",
                "27 HTTP_GET",
                "28 url",
                "29 http_protocol",
                "32 misc_path",
                "33 connect_timeout",
                "39 nopreempt",
                "45 auth_pass",
                "48 brd",
                "48 scope",
                "49 fe80::5",
                "52 min_ttl",
                "55 vrrp_instance",
            ]
        );
        // What did convert.
        for text in [
            "lb_algo: \"sh\"",
            "sched_flags: [\"sh-fallback\", \"sh-port\"]",
            "delay_loop: 3,",
            "misc_path: \"/bin/sh -c 'exit 0'\"",
            "advert_int: 0.5,",
            "version: 3,",
            "virtual_ipaddress: [\"10.0.0.1/24\"]",
            "unicast_peer: [\"10.0.0.9\"]",
            "garp_master_delay: 2,",
            "name: \"W\"",
        ] {
            assert!(import.ron.contains(text), "{text} in\n{}", import.ron);
        }
        for absent in ["nopreempt", "authentication", "SCTP", "lvs_sync_daemon:"] {
            assert!(
                !import.ron.contains(&format!("    {absent}")),
                "{absent} in\n{}",
                import.ron
            );
        }
    }

    const SMALL_RON: &str = r#"// rvs configuration imported from keepalived's {DIR}/keepalived.conf by rvsadm import-keepalived.
// Before running rvsd: set each port's DPDK device and own addresses (the TODOs), and check
// `workers` (one worker per core listed).
// Not converted (3), FILE:LINE: keyword: why:
//   {DIR}/keepalived.conf:3: router_id: no equivalent in rvs
//   {DIR}/keepalived.conf:25: dev: dev eth0 for 198.51.100.100/24: rvs holds an instance's addresses on its interface (eth0); the address is kept
//   {DIR}/keepalived.conf:52: SMTP_CHECK: rvs has no SMTP_CHECK (it has TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK, PING_CHECK): left out, the real server is not checked by it
(
    // TODO: the CPU cores of the workers (one worker per core; each polls every port)
    workers: [1],
    // One port per interface the keepalived.conf names (vrrp_instance, track_interface,
    // lvs_sync_daemon).
    // Every VIP, real server and sorry server must be on a port's subnet (real servers may be
    // behind `routes`): 198.51.100.100, 198.51.100.11, 198.51.100.12, 198.51.100.50
    ports: [
        (
            name: "eth0",
            // TODO: the DPDK device of eth0 (a PCI address bound to vfio-pci, or a vdev)
            device: "net_af_packet0,iface=eth0",
            // TODO: this appliance's own address(es) on eth0, e.g. "192.0.2.2/24";
            // its VRRP addresses need their subnet here: 198.51.100.100
            addresses: [],
        ),
        (
            name: "eth1",
            // TODO: the DPDK device of eth1 (a PCI address bound to vfio-pci, or a vdev)
            device: "net_af_packet1,iface=eth1",
            // TODO: this appliance's own address(es) on eth1, e.g. "192.0.2.2/24"
            addresses: [],
        ),
    ],
    services: [
        // keepalived.conf:33: virtual_server 198.51.100.100 80
        (
            protocol: TCP,
            vip: "198.51.100.100",
            port: 80,
            lb_kind: DR,
            lb_algo: "wrr",
            persistence_timeout: 300,
            persistence_netmask: "255.255.255.0",
            delay_loop: 5,
            sorry_server: (address: "198.51.100.50", port: 80),
            real_servers: [
                (
                    address: "198.51.100.11",
                    port: 80,
                    weight: 3,
                    upper_threshold: 100,
                    checks: [
                        HTTP_GET(
                            connect_timeout: 2,
                            // keepalived's default for HTTP_GET (rvs's is 1)
                            delay_before_retry: 3,
                            url: [(path: "/health", status_code: 200)],
                        ),
                    ],
                ),
                (
                    address: "198.51.100.12",
                    port: 80,
                    checks: [
                        MISC_CHECK(
                            misc_path: "/usr/local/bin/check 198.51.100.12",
                            // keepalived's default for MISC_CHECK (rvs's is 1)
                            retry: 0,
                            misc_timeout: 3,
                        ),
                    ],
                ),
            ],
        ),
    ],
    // keepalived.conf:4: lvs_timeouts
    connections: (tcp_timeout: 7200, udp_timeout: 60),
    vrrp_instances: [
        // keepalived.conf:13: vrrp_instance VI_1
        (
            name: "VI_1",
            state: BACKUP,
            interface: "eth0",
            virtual_router_id: 51,
            priority: 150,
            advert_int: 1,
            virtual_ipaddress: ["198.51.100.100/24"],
            nopreempt: true,
            // auth_pass cut to its first 8 characters, the part keepalived uses
            authentication: (auth_type: PASS, auth_pass: "secret12"),
            track_script: ["chk_nginx"],
            notify_master: "/usr/local/bin/notify master",
        ),
    ],
    vrrp_scripts: [
        // keepalived.conf:7: vrrp_script chk_nginx
        (name: "chk_nginx", script: "/usr/bin/pgrep nginx", interval: 2, weight: -20),
    ],
    // keepalived.conf:64: lvs_sync_daemon (keepalived's default sync id is the instance's
    // virtual_router_id)
    lvs_sync_daemon: (interface: "eth1", vrrp_instance: "VI_1", id: 51, maxlen: 1400),
)
"#;
}
