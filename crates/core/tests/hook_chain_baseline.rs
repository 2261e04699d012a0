//! The `hook_chain` bench's baseline (the spec's JavaScript dispatcher, `benches/hook_chain_js.mjs`)
//! still runs and still makes the chain test plugin's changes, so the ratio the bench prints is
//! against a working dispatcher. Times nothing: a few chains, and their results.

use std::path::Path;
use std::process::Command;

#[test]
fn the_javascript_baseline_runs_the_chain_and_makes_the_plugins_changes() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hook_chain_js.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(["20", "0"])
        .output()
        .expect("Node.js (20 or later) runs the hook chain bench's baseline: install it");
    assert!(
        out.status.success(),
        "the baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["median_ns"].as_u64().unwrap() > 0, "{v}");
    assert!(v["p90_ns"].as_u64().unwrap() >= v["median_ns"].as_u64().unwrap());
    let f = &v["final"];
    assert_eq!(f["title"], "deploy status +pre_create");
    assert_eq!(f["system_prompt"], "You are helpful.\n[pre_prompt]");
    assert_eq!(f["temperature"], 0.5);
    let input: serde_json::Value = serde_json::from_str(f["tool_input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"q": "deploy", "chain": 1}));
    assert_eq!(f["output"], "deployed at 12:00 +post_exec");
    assert_eq!(f["content"], "Yes, deployed at 12:00. +pre_deliver");
}
