//! Benchmark: the admin UI's pages on a host with 100 plugins and 100,000 receipts, against
//! the JSON API's plugin list on the same host in the same run (the baseline).
//!
//! Run: `cargo bench -p nitejar-tests --bench admin_pages` (or `just bench-ui`). Starts a host
//! on a temporary data directory, installs 100 plugins (copies of the example hooks plugin
//! under other ids; 10 enabled), writes 100,000 receipts (half of them for one plugin, whose
//! pages are the ones timed), then times each page over loopback HTTP with a signed-in
//! session: median, p90, the ratio to the baseline, and the target (under 100 ms).
//! It asserts nothing: timings belong in benchmarks, not tests.

use nitejar_tests::{ADMIN_TOKEN, TestHost, package_with_manifest};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const PLUGINS: usize = 100;
const ENABLED: usize = 10;
const RECEIPTS: usize = 100_000;
const WARMUP: usize = 10;
const ITERATIONS: usize = 100;
const TARGET: Duration = Duration::from_millis(100);

/// The plugin whose pages are timed (it has half of the receipts).
const BUSY: &str = "bench.p000";

fn plugin_id(i: usize) -> String {
    format!("bench.p{i:03}")
}

/// Median and p90 of `ITERATIONS` GETs of `path` (after `WARMUP`), each checked for 200.
async fn time(client: &reqwest::Client, url: &str, cookie: &str) -> (Duration, Duration) {
    let get = async || {
        let started = Instant::now();
        let resp = client
            .get(url)
            .header("cookie", cookie)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        started.elapsed()
    };
    for _ in 0..WARMUP {
        get().await;
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        samples.push(get().await);
    }
    samples.sort();
    (samples[ITERATIONS / 2], samples[ITERATIONS * 9 / 10])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let host = TestHost::start().await;
    let setup = Instant::now();
    for i in 0..PLUGINS {
        let id = plugin_id(i);
        let pkg = package_with_manifest("hooks", |m| {
            m["id"] = json!(id);
            m["name"] = json!(format!("Bench plugin {i}"));
        });
        host.admin_json(
            Method::POST,
            "/plugins/install",
            Some(json!({"sourceKind": "local", "sourceRef": pkg.path()})),
            201,
        )
        .await;
        if i < ENABLED {
            host.admin_json(
                Method::POST,
                &format!("/plugins/{id}/enable"),
                Some(json!({"consent": true})),
                200,
            )
            .await;
        }
    }
    // Receipts as the writer stores them: time-ordered ids, half for the busy plugin.
    let now = 1_764_000_000_000i64;
    let mut batch = Vec::with_capacity(1_000);
    for n in 0..RECEIPTS {
        let plugin = if n % 2 == 0 {
            BUSY.to_string()
        } else {
            plugin_id(1 + n % (PLUGINS - 1))
        };
        let (kind, status) = match n % 10 {
            0 => ("integration", "error"),
            1..=6 => ("hook", "ok"),
            7 => ("hook", "timeout"),
            _ => ("tool", "ok"),
        };
        batch.push(nitejar_store::EventRow {
            id: format!("{:012x}-7000-8000-0000-{n:012x}", now + n as i64),
            plugin_id: plugin,
            plugin_version: Some("0.1.0".into()),
            kind: kind.into(),
            status: status.into(),
            work_item_id: None,
            job_id: None,
            hook_name: (kind == "hook").then(|| "run.pre_prompt".into()),
            duration_ms: Some((n % 40) as i64),
            execution_mode: "wasm_sandbox".into(),
            detail_json: Some(json!({"operation": "run.pre_prompt", "n": n}).to_string()),
            created_at: now + n as i64,
        });
        if batch.len() == 1_000 {
            host.app.store.insert_events(&batch).await.unwrap();
            batch.clear();
        }
    }
    host.app.store.insert_events(&batch).await.unwrap();
    eprintln!(
        "setup: {PLUGINS} plugins ({ENABLED} enabled), {RECEIPTS} receipts in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/admin/login", host.base))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // A cursor deep in the busy plugin's receipts (the 40,000th newest).
    let deep = format!("{:012x}-7000-8000-0000-{:012x}", now + 20_000, 20_000);
    let pages = [
        (
            "baseline: GET /api/admin/plugins (JSON)",
            "/api/admin/plugins".to_string(),
        ),
        ("/admin (overview)", "/admin".into()),
        ("/admin/plugins (100 plugins)", "/admin/plugins".into()),
        (
            "/admin/plugins/{busy} (50,000 receipts)",
            format!("/admin/plugins/{BUSY}"),
        ),
        (
            "receipts, newest page",
            format!("/admin/plugins/{BUSY}/events"),
        ),
        (
            "receipts, kind=hook status=timeout",
            format!("/admin/plugins/{BUSY}/events?kind=hook&status=timeout"),
        ),
        (
            "receipts, a page 40,000 deep",
            format!("/admin/plugins/{BUSY}/events?cursor={deep}"),
        ),
        ("/admin/hooks", "/admin/hooks".into()),
        ("/admin/doctor (100 plugins)", "/admin/doctor".into()),
    ];
    let mut baseline = None;
    println!(
        "{:<44} {:>10} {:>10} {:>8}  target < {} ms",
        "page",
        "median",
        "p90",
        "ratio",
        TARGET.as_millis()
    );
    for (name, path) in pages {
        let (median, p90) = time(&client, &format!("{}{path}", host.base), &cookie).await;
        let base = *baseline.get_or_insert(median);
        println!(
            "{name:<44} {:>8.2}ms {:>8.2}ms {:>7.2}x  {}",
            median.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3,
            median.as_secs_f64() / base.as_secs_f64(),
            if p90 < TARGET { "met" } else { "NOT met" }
        );
    }
    host.stop().await;
}
