//! The `hook_chain` bench's baseline (the spec's JavaScript dispatcher, `benches/hook_chain_js.mjs`)
//! still runs and still makes the chain test plugin's changes, so the ratio the bench prints is
//! against a working dispatcher. Times nothing: a few chains, and their results.

use std::path::Path;
use std::process::Command;

/// Node.js runs the baseline (install it: `scripts/test.sh` does as root).
const NODE_MISSING: &str = "Node.js (20 or later) runs the hook chain bench's baseline: install it";

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hook_chain_js.mjs")
}

/// The six values the chain test plugin changes, as the baseline reports them.
fn assert_the_plugins_changes(f: &serde_json::Value) {
    assert_eq!(f["title"], "deploy status +pre_create");
    assert_eq!(f["system_prompt"], "You are helpful.\n[pre_prompt]");
    assert_eq!(f["temperature"], 0.5);
    let input: serde_json::Value = serde_json::from_str(f["tool_input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"q": "deploy", "chain": 1}));
    assert_eq!(f["output"], "deployed at 12:00 +post_exec");
    assert_eq!(f["content"], "Yes, deployed at 12:00. +pre_deliver");
}

#[test]
fn the_javascript_baseline_runs_the_chain_and_makes_the_plugins_changes() {
    let out = Command::new("node")
        .arg(script())
        .args(["20", "0"])
        .output()
        .expect(NODE_MISSING);
    assert!(
        out.status.success(),
        "the baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["median_ns"].as_u64().unwrap() > 0, "{v}");
    assert!(v["p90_ns"].as_u64().unwrap() >= v["median_ns"].as_u64().unwrap());
    assert_the_plugins_changes(&v["final"]);
}

/// The interleaved mode the bench uses: `ready` after the warm-up, then one answer per block
/// asked for (`N`, or `N P` to pause P ms before each chain), with one duration per chain,
/// until stdin closes.
#[test]
fn the_javascript_baseline_answers_blocks_of_chains_in_serve_mode() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut child = Command::new("node")
        .arg(script())
        .args(["--serve", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect(NODE_MISSING);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    for (ask, n, pause_ms) in [("3", 3, 0), ("1", 1, 0), ("2 20", 2, 20)] {
        let asked = std::time::Instant::now();
        writeln!(stdin, "{ask}").unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        // The pauses are taken (a lower bound: a slow machine only adds to it).
        assert!(asked.elapsed() >= std::time::Duration::from_millis(n as u64 * pause_ms));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let samples = v["samples_ns"].as_array().unwrap();
        assert_eq!(samples.len(), n, "{v}");
        assert!(samples.iter().all(|s| s.as_u64().unwrap() > 0), "{v}");
        assert_the_plugins_changes(&v["final"]);
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "node exits when stdin closes"
    );
}
