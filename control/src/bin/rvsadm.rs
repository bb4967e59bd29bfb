//! rvsadm: rvs's administration tool, speaking ipvsadm 1.26's command line and printing its
//! tables byte for byte (see `control::api::ipvsadm`), plus rvs's own `reload`, `status`,
//! `dump`, `--save-ron` and `import-keepalived FILE` (a keepalived.conf as rvs's RON).
//!
//! It asks rvsd over the control socket (`--socket PATH`, default `/run/rvs/rvsd.sock`), or
//! renders a table from a file `rvsadm dump` wrote (`--from FILE`) without any daemon.
//!
//! Exit codes, as ipvsadm's: 0 done; 1 a failure (rvsd unreachable or refusing, "No such
//! service", an unreadable dump), the message on stderr; 2 a command-line error (ipvsadm's
//! `fail(2, ...)`), the message on stderr.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use control::api::ipvsadm::{self, Command, Source, View};
use control::api::{client, State};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().map(String::as_str) == Some("import-keepalived") {
        return import_keepalived(&args[1..]);
    }
    let command = match ipvsadm::parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&command) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                // `rvsadm -L | head`: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `rvsadm import-keepalived FILE`: the RON on stdout, every keyword not converted on stderr
/// with its FILE:LINE (exit 0 either way: the operator reads the list).
fn import_keepalived(args: &[String]) -> ExitCode {
    let [file] = args else {
        eprintln!("usage: rvsadm import-keepalived FILE");
        return ExitCode::from(2);
    };
    match control::config::keepalived::import(Path::new(file)) {
        Ok(import) => {
            print!("{}", import.ron);
            for u in &import.unsupported {
                eprintln!("not converted: {u}");
            }
            if !import.unsupported.is_empty() {
                eprintln!(
                    "{} keywords not converted (also listed at the top of the RON)",
                    import.unsupported.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What to print on stdout, or the message for stderr.
fn run(command: &Command) -> Result<String, String> {
    match command {
        Command::Help => Ok(ipvsadm::usage()),
        Command::Version => Ok(ipvsadm::version()),
        Command::List {
            options,
            source: Source::File(file),
            ..
        } => {
            let state = read_dump(file)?;
            if options.view == View::Connections && state.connections.is_none() {
                return Err(format!(
                    "{} holds no connections (it was not written by `rvsadm dump`)",
                    file.display()
                ));
            }
            ipvsadm::list(&state, options)
        }
        _ => {
            let (Some(request), Some(socket)) = (command.request(), command.socket()) else {
                return Err(format!("rvsadm: nothing to ask rvsd for {command:?}"));
            };
            let reply = client::call(socket, &request)?;
            ipvsadm::output(command, reply)
        }
    }
}

/// A state `rvsadm dump` wrote.
fn read_dump(file: &Path) -> Result<State, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        let text = e.to_string();
        let plain = text.split(" (os error").next().unwrap_or(&text).to_owned();
        format!("cannot read {}: {plain}", file.display())
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a state as `rvsadm dump` writes it: {e}",
            file.display()
        )
    })
}
