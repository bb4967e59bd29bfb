//! Binds the system DPDK (Debian's 22.11, found through pkg-config `libdpdk`).
//!
//! Two ways to link, chosen by `RVS_DPDK_LINK=static|shared`, default by profile:
//! - `shared` (default for debug builds): links the shared EAL; EAL then loads every driver
//!   plugin from its plugin directory by itself. Fast to link.
//! - `static` (default for release builds): every DPDK archive whole-archive, so the drivers'
//!   ELF constructors register them. The shared libraries pay a `__tls_get_addr` per mbuf
//!   alloc/free for the lcore id (1.33x on a plain forwarder in the project's reference notes;
//!   not yet measured by rvs's own benchmark).

use std::env;
use std::path::PathBuf;
use std::process::exit;

const MIN_VERSION: &str = "22.11";
const MAX_VERSION: &str = "22.12";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=RVS_DPDK_LINK");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .range_version(MIN_VERSION..MAX_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => {
            let why = err.to_string();
            let first = why.lines().next().unwrap_or("not found");
            eprintln!(
                "dpdk-sys: DPDK {MIN_VERSION} (pkg-config libdpdk) not usable ({first}); \
                 install it with: apt-get install libdpdk-dev  (or run scripts/setup.sh)"
            );
            exit(1);
        }
    };

    let link = match env::var("RVS_DPDK_LINK").ok().as_deref() {
        Some("static") => Link::Static,
        Some("shared") => Link::Shared,
        Some(other) => {
            eprintln!("dpdk-sys: RVS_DPDK_LINK={other:?}: expected \"static\" or \"shared\"");
            exit(1);
        }
        None if env::var("PROFILE").as_deref() == Ok("release") => Link::Static,
        None => Link::Shared,
    };

    let cflags = pkg_config_words(&["--cflags", "libdpdk"]);
    let include_args: Vec<String> = cflags
        .iter()
        .filter(|f| f.starts_with("-I") || f.starts_with("-D"))
        .cloned()
        .collect();

    // The shim: compiled with DPDK's own flags (-march=corei7 -include rte_config.h ...) so
    // the inlined fast path is the same code DPDK's own examples get.
    let mut shim = cc::Build::new();
    shim.file("shim.c").include(".").opt_level(3).warnings(true);
    let mut words = cflags.iter();
    while let Some(flag) = words.next() {
        if flag == "-include" {
            if let Some(header) = words.next() {
                shim.flag("-include").flag(header);
            }
        } else {
            shim.flag(flag);
        }
    }
    shim.compile("rvs_dpdk_shim");

    match link {
        Link::Shared => link_shared(&dpdk),
        Link::Static => link_static(),
    }
    println!("cargo:rustc-cfg=rvs_dpdk_link=\"{}\"", link.name());
    println!("cargo::rustc-check-cfg=cfg(rvs_dpdk_link, values(\"static\", \"shared\"))");
    println!("cargo:link_mode={}", link.name());

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(include_args)
        .clang_arg("-I.")
        .clang_arg("-march=corei7")
        .allowlist_function("rte_.*|rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*|RING_F_.*|SOCKET_ID_ANY")
        // Per-lcore thread-locals come out as plain statics: wrong, so never bind them.
        .blocklist_item("per_lcore_.*")
        // Packed structs with aligned members fail with E0588; rvs parses ARP in Rust.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_ecpri_.*")
        .no_debug("rte_gtp_psc_generic_hdr")
        // Offload and RSS flags are built with RTE_BIT64(): only the fallback evaluates them.
        .clang_macro_fallback()
        // Its scratch files in OUT_DIR, not in the crate's directory: two builds of this crate
        // at once (another target directory) would read each other's half-written files and
        // lose constants.
        .clang_macro_fallback_build_dir(env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate();
    let bindings = match bindings {
        Ok(b) => b,
        Err(err) => {
            eprintln!("dpdk-sys: bindgen failed over the DPDK headers: {err}");
            exit(1);
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

#[derive(Clone, Copy)]
enum Link {
    Static,
    Shared,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Static => "static",
            Link::Shared => "shared",
        }
    }
}

/// Whether the C toolchain the final link uses can find `file` (its own search path, as
/// `cc -print-file-name` reports it, plus the -L directories DPDK names).
fn linker_finds(file: &str, link_dirs: &[String]) -> bool {
    if link_dirs
        .iter()
        .any(|d| std::path::Path::new(d).join(file).exists())
    {
        return true;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    std::process::Command::new(cc)
        .arg(format!("-print-file-name={file}"))
        .output()
        .map(|o| {
            let path = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            path != file && std::path::Path::new(&path).exists()
        })
        .unwrap_or(false)
}

fn pkg_config_words(args: &[&str]) -> Vec<String> {
    let output = std::process::Command::new(env::var("PKG_CONFIG").unwrap_or("pkg-config".into()))
        .args(args)
        .output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => {
            eprintln!(
                "dpdk-sys: `pkg-config {}` failed; install libdpdk-dev",
                args.join(" ")
            );
            exit(1);
        }
    }
}

/// The libraries rvs calls directly; EAL loads the drivers as plugins at run time.
fn link_shared(dpdk: &pkg_config::Library) {
    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in [
        "rte_net_ring",
        "rte_ethdev",
        "rte_mbuf",
        "rte_mempool",
        "rte_ring",
        "rte_eal",
        "rte_telemetry",
    ] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}

/// Every DPDK archive whole-archive (drivers register from constructors), then the system
/// libraries they need. A plain `-Wl,--whole-archive` in link args would not reach the final
/// binary from a library crate; the `+whole-archive,-bundle` modifier does.
fn link_static() {
    let words = pkg_config_words(&["--static", "--libs", "libdpdk"]);
    let mut system_libs: Vec<String> = Vec::new();
    let mut in_whole_archive = false;
    for word in &words {
        match word.as_str() {
            "-Wl,--whole-archive" => in_whole_archive = true,
            "-Wl,--no-whole-archive" => in_whole_archive = false,
            w if w.starts_with("-L") => println!("cargo:rustc-link-search=native={}", &w[2..]),
            w if w.starts_with("-l:lib") && w.ends_with(".a") => {
                let name = &w["-l:lib".len()..w.len() - ".a".len()];
                if in_whole_archive {
                    println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
                } else {
                    println!("cargo:rustc-link-lib=static:-bundle={name}");
                }
            }
            // The shared copies that follow the archives in libdpdk.pc: already linked.
            w if w.starts_with("-lrte_") => {}
            w if w.starts_with("-l") => {
                let name = w[2..].to_owned();
                if !system_libs.contains(&name) {
                    system_libs.push(name);
                }
            }
            "-pthread" if !system_libs.iter().any(|l| l == "pthread") => {
                system_libs.push("pthread".into())
            }
            _ => {}
        }
    }
    let link_dirs: Vec<String> = words
        .iter()
        .filter_map(|w| w.strip_prefix("-L").map(str::to_owned))
        .collect();
    for lib in system_libs {
        let found = ["so", "a"]
            .iter()
            .any(|ext| linker_finds(&format!("lib{lib}.{ext}"), &link_dirs));
        if !found {
            eprintln!(
                "dpdk-sys: static DPDK needs lib{lib} for linking; install its -dev package \
                 (e.g. apt-get install lib{lib}-dev, or run scripts/setup.sh), or build with RVS_DPDK_LINK=shared"
            );
            exit(1);
        }
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}
