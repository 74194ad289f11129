//! Builds the FLUO Javy plugin (`rule-sdk/`, wasm32-wasip1) from source as part
//! of the normal build and hands its bytes to the host crate through `OUT_DIR`.
//!
//! rquickjs-sys compiles QuickJS with C for wasm32 and, unless `WASI_SDK` names
//! a wasi-sdk-shaped directory, tries to download wasi-sdk (which these machines
//! cannot). Debian ships the pieces (clang-19, llvm-ar-19, wasi-libc headers);
//! this script lays them out as a wasi-sdk of symlinks and points the nested
//! cargo at it. See docs/ARCHITECTURE.md, "Building the plugin".
//!
//! `FLUO_PLUGIN_WASM=<file>` skips all of that and embeds a prebuilt plugin
//! (for checking and testing the host crate on a machine without the wasm
//! toolchain); `make` never sets it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in ["rule-sdk/src", "rule-sdk/Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-env-changed=WASI_SDK");
    println!("cargo:rerun-if-env-changed=FLUO_PLUGIN_WASM");

    if let Some(prebuilt) = env::var_os("FLUO_PLUGIN_WASM") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        let bytes = std::fs::read(&prebuilt).unwrap_or_else(|error| panic!("FLUO_PLUGIN_WASM={}: {error}", prebuilt.display()));
        if !bytes.starts_with(b"\0asm") {
            panic!("FLUO_PLUGIN_WASM={} is not a WebAssembly module", prebuilt.display());
        }
        std::fs::write(out_dir.join("fluo_plugin.wasm"), bytes).expect("write the plugin into OUT_DIR");
        return;
    }

    // target/<profile>/build/fluo-<hash>/out → target/fluo-plugin, shared by all
    // profiles so the plugin is built once per target directory.
    let plugin_target = out_dir.ancestors().nth(4).map(|target| target.join("fluo-plugin")).unwrap_or_else(|| out_dir.join("fluo-plugin"));
    std::fs::create_dir_all(&plugin_target).expect("create the plugin target directory");

    let wasi_sdk = match env::var_os("WASI_SDK") {
        Some(dir) => PathBuf::from(dir),
        None => debian_wasi_sdk(&plugin_target.join("wasi-sdk")),
    };

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest_dir)
        .args(["build", "--locked", "-p", "fluo-rule-sdk", "--target", "wasm32-wasip1", "--profile", "plugin"])
        .arg("--target-dir")
        .arg(&plugin_target)
        .env("WASI_SDK", &wasi_sdk)
        .env("LIBCLANG_PATH", env::var_os("LIBCLANG_PATH").unwrap_or_else(|| "/usr/lib/llvm-19/lib".into()))
        .env("CLANG_PATH", env::var_os("CLANG_PATH").unwrap_or_else(|| "/usr/bin/clang-19".into()));
    // The outer build's settings (target dir, flags, profile overrides) must not
    // leak into the nested one; the jobserver (CARGO_MAKEFLAGS) is shared on purpose.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = key == "CARGO_HOME"
            || key == "CARGO_MAKEFLAGS"
            || key.starts_with("CARGO_NET")
            || key.starts_with("CARGO_HTTP")
            || key.starts_with("CARGO_REGISTR");
        let outer = key.starts_with("CARGO_")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
            || key == "TARGET"
            || key == "HOST"
            || key == "PROFILE"
            || key == "OPT_LEVEL"
            || key == "DEBUG"
            || key == "NUM_JOBS"
            || key == "OUT_DIR";
        if outer && !keep {
            command.env_remove(&key);
        }
    }
    let status = command.status().expect("run cargo for the rule-sdk plugin");
    if !status.success() {
        panic!(
            "building the FLUO Javy plugin (rule-sdk) for wasm32-wasip1 failed; run `make setup` \
             (needs the wasm32-wasip1 target and Debian's clang-19 llvm-19 libclang-19-dev wasi-libc)"
        );
    }
    let built = plugin_target.join("wasm32-wasip1/plugin/fluo_rule_sdk.wasm");
    std::fs::copy(&built, out_dir.join("fluo_plugin.wasm")).unwrap_or_else(|error| panic!("copy {}: {error}", built.display()));
}

/// A wasi-sdk-shaped directory of symlinks to Debian's clang-19 toolchain.
fn debian_wasi_sdk(dir: &Path) -> PathBuf {
    let links = [
        ("bin/clang", "/usr/bin/clang-19"),
        // GNU ar writes no symbol index for wasm objects; llvm-ar does.
        ("bin/ar", "/usr/bin/llvm-ar-19"),
        ("bin/llvm-ar", "/usr/bin/llvm-ar-19"),
        ("share/wasi-sysroot/include", "/usr/include/wasm32-wasi"),
        ("share/wasi-sysroot/lib", "/usr/lib/wasm32-wasi"),
    ];
    for (link, target) in links {
        let link = dir.join(link);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::create_dir_all(link.parent().expect("links have parents")).expect("create wasi-sdk directory");
        if Path::new(target).exists() {
            std::os::unix::fs::symlink(target, &link).expect("create wasi-sdk symlink");
        }
    }
    dir.to_path_buf()
}
