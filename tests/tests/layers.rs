//! The crate graph points one way: no layer depends on one above it (ARCHITECTURE.md, the
//! README's layout). Read from each crate's own manifest, so adding an upward dependency fails
//! here before it can tangle the code.

use std::path::Path;

/// Each of our crates, from the bottom up, with the crates of ours it may depend on.
const LAYERS: &[(&str, &str, &[&str])] = &[
    ("nitejar-api", "crates/api", &[]),
    ("nitejar-sandbox", "crates/sandbox", &[]),
    ("nitejar-store", "crates/store", &["nitejar-sandbox"]),
    (
        "nitejar-core",
        "crates/core",
        &["nitejar-api", "nitejar-sandbox", "nitejar-store"],
    ),
    (
        "nitejar-server",
        "crates/server",
        &[
            "nitejar-api",
            "nitejar-core",
            "nitejar-sandbox",
            "nitejar-store",
        ],
    ),
    (
        "nitejar",
        "host",
        &["nitejar-api", "nitejar-core", "nitejar-server"],
    ),
    // Beside the host, not under it: fuzz targets over the lower layers and the built-ins.
    (
        "nitejar-fuzz",
        "fuzz",
        &[
            "nitejar-sandbox",
            "nitejar-core",
            "nitejar-plugin-sdk",
            "nitejar-builtin-telegram",
            "nitejar-builtin-github",
            "nitejar-example-webhook",
        ],
    ),
];

/// Every crate named in a manifest's `[dependencies]` (not dev- or build-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(|c: char| c == '.' || c == '=' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            deps.push(name.to_string());
        }
    }
    deps
}

#[test]
fn no_crate_depends_on_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (name, dir, allowed) in LAYERS {
        let manifest = std::fs::read_to_string(root.join(dir).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{dir}/Cargo.toml: {e}"));
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{dir} is not {name}"
        );
        for dep in dependencies(&manifest)
            .into_iter()
            .filter(|d| d.starts_with("nitejar"))
        {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} depends on {dep}, which it may not (allowed: {allowed:?})"
            );
        }
    }
    // Nor does the sandbox reach the database driver, the web framework or the CLI parser.
    let sandbox = std::fs::read_to_string(root.join("crates/sandbox/Cargo.toml")).unwrap();
    for forbidden in ["sqlx", "axum", "clap"] {
        assert!(
            !dependencies(&sandbox).contains(&forbidden.to_string()),
            "the sandbox depends on {forbidden}"
        );
    }
}

#[test]
fn the_dependency_reader_sees_what_a_manifest_names() {
    let m = "[package]\nname = \"x\"\n[dependencies]\nnitejar-core.workspace = true\nserde = \"1\"\n[dev-dependencies]\nnitejar-server.workspace = true\n";
    assert_eq!(dependencies(m), ["nitejar-core", "serde"]);
}
