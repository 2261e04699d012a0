//! Builds the guest components (example and test plugins) from source for `wasm32-wasip2` and
//! lays each out as a plugin package directory (`nitejar.plugin.json` + `plugin.wasm`).
//!
//! The bundled examples are embedded in the binary (see `src/plugins/bundled.rs`); the package
//! directory is exported as `NITEJAR_GUEST_PACKAGES_DIR` so tests and benches can install the
//! test plugins. No plugin binary is ever committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates (directory relative to the repo root) and whether the binary embeds them.
const GUESTS: &[(&str, bool)] = &[
    ("plugins-examples/webhook", true),
    ("plugins-examples/hooks", false),
    ("plugins-examples/telegram", true),
    ("plugins-examples/github", true),
    ("tests/plugins/hostile", false),
    ("tests/plugins/chain", false),
    ("tests/plugins/skills", false),
    ("tests/plugins/hijack", false),
    ("tests/plugins/lift", false),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // crates/core -> the repository root
    let root = manifest_dir.ancestors().nth(2).unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // target/<profile>/build/nitejar-core-<hash>/out -> target/<profile>/nitejar-guests
    let guest_target = out_dir.ancestors().nth(3).unwrap().join("nitejar-guests");

    for dir in ["wit", "sdk", "plugins-examples", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(root.join("plugins-examples/Cargo.toml"))
    .arg("--target-dir")
    .arg(&guest_target);
    // The outer build's flags, wrappers and target are for the host, not the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the guest components");
    if !status.success() {
        panic!(
            "building the guest components failed. If the error says the wasm32-wasip2 target \
             is missing, run `rustup target add wasm32-wasip2` (scripts/setup.sh does it)."
        );
    }

    let wasm_dir = guest_target.join("wasm32-wasip2/release");
    let packages = guest_target.join("packages");
    let mut bundled =
        String::from("/// Bundled plugin packages: (name, manifest JSON, component bytes).\n");
    bundled.push_str("pub const BUNDLED: &[(&str, &str, &[u8])] = &[\n");
    for (dir, embed) in GUESTS {
        let crate_dir = root.join(dir);
        let crate_name = crate_name(&crate_dir.join("Cargo.toml"));
        let wasm = wasm_dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
        let name = Path::new(dir).file_name().unwrap().to_str().unwrap();
        let pkg = packages.join(name);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::copy(
            crate_dir.join("nitejar.plugin.json"),
            pkg.join("nitejar.plugin.json"),
        )
        .unwrap();
        std::fs::copy(&wasm, pkg.join("plugin.wasm"))
            .unwrap_or_else(|e| panic!("{} missing after the guest build: {e}", wasm.display()));
        // Package files (skill content) travel with the package.
        let files = crate_dir.join("skills");
        if files.is_dir() {
            copy_dir(&files, &pkg.join("skills"));
        }
        if *embed {
            bundled.push_str(&format!(
                "    ({name:?}, include_str!({:?}), include_bytes!({:?})),\n",
                pkg.join("nitejar.plugin.json"),
                pkg.join("plugin.wasm")
            ));
        }
    }
    bundled.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), bundled).unwrap();
    println!(
        "cargo:rustc-env=NITEJAR_GUEST_PACKAGES_DIR={}",
        packages.display()
    );
}

/// Copies a directory tree (regular files only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Reads `name = "..."` from the `[package]` table of a guest's Cargo.toml.
fn crate_name(cargo_toml: &Path) -> String {
    let text = std::fs::read_to_string(cargo_toml).unwrap();
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("name = \"")
                .map(|r| r.trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no package name in {}", cargo_toml.display()))
}
