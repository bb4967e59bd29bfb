//! DPDK telemetry commands of rvs (`/rvs/...`), answered from tables the control thread
//! publishes: `dpdk-telemetry.py -f PREFIX` lists them beside DPDK's own (`/ethdev/stats`,
//! ...) and answers them. The telemetry thread (DPDK's) reads a table under a lock the control
//! thread takes for a moment every publish; workers never touch it.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{OnceLock, RwLock};

use super::DpdkError;

/// One value of a command's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U64(u64),
    Str(String),
}

/// A command's answer: a dictionary (names are kept to DPDK's limits: letters, digits and
/// `_`, `.`, `-`, `/`, at most 63 characters), or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Dict(Vec<(String, Value)>),
    List(Vec<String>),
}

fn tables() -> &'static RwLock<HashMap<String, Answer>> {
    static TABLES: OnceLock<RwLock<HashMap<String, Answer>>> = OnceLock::new();
    TABLES.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Registers `command` (e.g. `/rvs/stats`) with `help`; until [`publish`] gives it a table it
/// answers an empty dictionary. EAL must be initialised.
pub fn register(command: &str, help: &str) -> Result<(), DpdkError> {
    let c = CString::new(command).map_err(|_| DpdkError::new("command has a NUL", 22))?;
    let h = CString::new(help).map_err(|_| DpdkError::new("help has a NUL", 22))?;
    // DPDK keeps the pointers: they must live for the process.
    let (c, h) = (
        Box::leak(c.into_boxed_c_str()),
        Box::leak(h.into_boxed_c_str()),
    );
    // SAFETY: both strings are NUL-terminated and never freed; `answer` has the signature of
    // `telemetry_cb`.
    let rc = unsafe { dpdk_sys::rte_telemetry_register_cmd(c.as_ptr(), Some(answer), h.as_ptr()) };
    if rc != 0 {
        return Err(DpdkError::new(
            format!("rte_telemetry_register_cmd({command})"),
            -rc,
        ));
    }
    Ok(())
}

/// Makes `answer` what `command` returns from now on.
pub fn publish(command: &str, answer: Answer) {
    if let Ok(mut t) = tables().write() {
        t.insert(command.to_owned(), answer);
    }
}

/// A dictionary name as DPDK accepts it.
fn name(text: &str) -> CString {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    CString::new(clean).expect("no NUL left")
}

fn text(s: &str) -> CString {
    let s: String = s.chars().filter(|c| *c != '\0').take(127).collect();
    CString::new(s).expect("no NUL left")
}

/// DPDK's telemetry thread calls this for every `/rvs/...` command.
extern "C" fn answer(
    cmd: *const c_char,
    _params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -22;
    }
    // SAFETY: DPDK passes the NUL-terminated command it matched.
    let cmd = unsafe { CStr::from_ptr(cmd) }
        .to_string_lossy()
        .into_owned();
    let Ok(t) = tables().read() else {
        return -5;
    };
    match t.get(&cmd) {
        Some(Answer::List(items)) => {
            // SAFETY: `d` is the callback's data; strings are NUL-terminated and copied by
            // DPDK.
            unsafe {
                dpdk_sys::rte_tel_data_start_array(d, dpdk_sys::RTE_TEL_STRING_VAL);
                for item in items {
                    dpdk_sys::rte_tel_data_add_array_string(d, text(item).as_ptr());
                }
            }
        }
        Some(Answer::Dict(entries)) => {
            // SAFETY: as above.
            unsafe {
                dpdk_sys::rte_tel_data_start_dict(d);
                for (key, value) in entries {
                    let k = name(key);
                    match value {
                        Value::U64(v) => {
                            dpdk_sys::rte_tel_data_add_dict_u64(d, k.as_ptr(), *v);
                        }
                        Value::Str(s) => {
                            dpdk_sys::rte_tel_data_add_dict_string(d, k.as_ptr(), text(s).as_ptr());
                        }
                    }
                }
            }
        }
        None => {
            // SAFETY: as above.
            unsafe {
                dpdk_sys::rte_tel_data_start_dict(d);
            }
        }
    }
    0
}
