//! The sandbox escapes found by attacking the host (issue "Close the sandbox escapes"), each
//! attacked by a real component or package and shown contained: refused or neutralised, a
//! typed error or receipt that tells the truth, and the host still serving.

use nitejar_tests::{ADMIN_TOKEN, TestHost, guest_package, package_with_manifest};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::Read as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Installs a package directory; returns (status, body).
async fn install(host: &TestHost, dir: &std::path::Path) -> (u16, Value) {
    let resp = host
        .admin(Method::POST, "/plugins/install")
        .json(&json!({"sourceKind": "local", "sourceRef": dir}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends the hostile plugin attack `name` on `target` (a fresh idempotency key each time).
async fn attack(host: &TestHost, instance: &str, name: &str, target: &str) -> (u16, Value) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body = json!({"attack": name, "target": target, "id": format!("e{id}")});
    host.webhook("hostile", instance, &[], body.to_string().into_bytes())
        .await
}

/// An attack that returns: the guest's own report (`ok: ...` / `err: ...`).
async fn report(host: &TestHost, instance: &str, name: &str, target: &str) -> String {
    let (status, v) = attack(host, instance, name, target).await;
    assert_eq!(status, 202, "{name} {target}: {v}");
    host.work_item(v["workItemId"].as_str().unwrap()).await["text"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends `n` concurrent attacks `name` on `target`; each task gives (status, body).
fn flood(
    host: &TestHost,
    instance: &str,
    n: usize,
    name: &str,
    target: &str,
) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    (0..n)
        .map(|_| {
            let client = host.client.clone();
            let url = format!("{}/api/webhooks/plugins/hostile/{instance}", host.base);
            let body = json!({"attack": name, "target": target}).to_string();
            tokio::spawn(async move {
                match client.post(url).body(body).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                }
            })
        })
        .collect()
}

// ---- 1. integration-type hijack ---------------------------------------------------------------

#[tokio::test]
async fn a_plugin_provides_exactly_the_integration_types_its_manifest_declares() {
    let host = TestHost::start().await;
    // Declares `hijack`, describes github, telegram and webhook too: refused at install,
    // naming the undeclared type; nothing is recorded.
    let (status, body) = install(&host, &guest_package("hijack")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_plugin");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"github\"") && message.contains("does not declare"),
        "{message}"
    );
    let (status, preview) = {
        let resp = host
            .admin(Method::POST, "/plugins/preview")
            .json(&json!({"sourceKind": "local", "sourceRef": guest_package("hijack")}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 422, "a preview refuses it the same way: {preview}");
    assert!(
        host.app
            .store
            .get_plugin("test.hijack")
            .await
            .unwrap()
            .is_none(),
        "nothing recorded"
    );

    // Telegram instances still land on the built-in, with the token encrypted and redacted.
    let inst = host
        .admin_json(
            Method::POST,
            "/instances",
            Some(json!({"type": "telegram", "name": "t", "enabled": false,
                        "config": {"botToken": "123456:ABCdefGHIjklMNOpqrSTUvwx", "webhookSecret": "s3cret-s3cret-s3cret"}})),
            201,
        )
        .await;
    assert_eq!(inst["pluginId"], "builtin.telegram");
    assert_eq!(inst["config"]["botToken"], "********");
}

#[tokio::test]
async fn built_in_and_installed_integration_types_cannot_be_taken() {
    let host = TestHost::start().await;
    // A third-party package that declares a built-in type (its component would serve it).
    for taken in ["github", "telegram", "webhook"] {
        let pkg = package_with_manifest("hijack", |m| {
            m["id"] = json!(format!("test.takes-{taken}"));
            m["contributes"]["integrations"] = json!([taken]);
        });
        let (status, body) = install(&host, pkg.path()).await;
        assert_eq!(status, 409, "{taken}: {body}");
        assert_eq!(body["error"]["code"], "integration_type_taken");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("built-in"),
            "{body}"
        );
    }
    // A type another installed plugin declares (installed, even if never enabled): the first
    // install keeps it, decided at install time.
    let (status, body) = install(&host, &guest_package("hostile")).await;
    assert_eq!(status, 201, "{body}");
    let second = package_with_manifest("hostile", |m| {
        m["id"] = json!("test.hostile-twin");
    });
    let (status, body) = install(&host, second.path()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("test.hostile"),
        "{body}"
    );

    // After a restart the built-ins load and own their types.
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(data, Default::default()).await;
    for id in ["builtin.telegram", "builtin.github"] {
        assert!(host.app.registry.get(id).is_some(), "{id} loads");
    }
    assert_eq!(
        host.app
            .registry
            .by_integration_type("telegram")
            .unwrap()
            .id(),
        "builtin.telegram"
    );
}

// ---- 2. webhook response headers -------------------------------------------------------------

/// Reads one HTTP/1.1 response framed by its `content-length`; returns (head, body).
async fn read_response(conn: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed in the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let lengths: Vec<usize> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().unwrap())
        .collect();
    assert_eq!(lengths.len(), 1, "exactly one content-length: {head}");
    let mut body = vec![0u8; lengths[0]];
    conn.read_exact(&mut body).await.unwrap();
    (head, body)
}

#[tokio::test]
async fn a_plugin_cannot_frame_or_set_cookies_on_the_hosts_responses() {
    let host = TestHost::start().await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let addr = host.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = json!({"attack": "respond"}).to_string();
    let request = format!(
        "POST /api/webhooks/plugins/hostile/{instance} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut conn).await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        body,
        b"<script>alert(document.cookie)</script>{\"forged\":true}".to_vec(),
        "the whole body, framed by the host"
    );
    for absent in [
        "set-cookie",
        "transfer-encoding",
        "text/html",
        "x-injected",
        "connection: close",
    ] {
        assert!(!lower.contains(absent), "{absent} in {head}");
    }
    for present in [
        "x-hostile: harmless",
        "content-type: application/octet-stream",
        "x-content-type-options: nosniff",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(lower.contains(present), "{present} missing in {head}");
    }

    // The next request on the same keep-alive connection gets its own answer.
    let admin = format!(
        "GET /api/admin/plugins HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    conn.write_all(admin.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert!(list["plugins"].is_array(), "{list}");

    // What was dropped is on the record.
    let receipt = host
        .receipts("test.hostile")
        .await
        .into_iter()
        .find(|r| r["kind"] == "webhook_response")
        .expect("a webhook_response receipt");
    assert_eq!(receipt["status"], "blocked");
    let detail: Value = serde_json::from_str(receipt["detailJson"].as_str().unwrap()).unwrap();
    let dropped = detail["dropped"].to_string();
    for name in [
        "content-length",
        "transfer-encoding",
        "connection",
        "set-cookie",
        "content-type",
        "x-injected",
    ] {
        assert!(dropped.contains(name), "{name} not reported: {dropped}");
    }
}

// ---- 4. archive bombs ---------------------------------------------------------------------------

/// A `.tgz` whose first entry is a GNU long name of `name_bytes` bytes (compressing to almost
/// nothing), followed by an ordinary file.
fn long_name_bomb(name_bytes: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(name_bytes as u64);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    b.append(&h, std::io::repeat(b'n').take(name_bytes as u64))
        .unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_size(1);
    f.set_path("package/x").unwrap();
    f.set_cksum();
    b.append(&f, &b"x"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn archive_bombs_are_refused_with_bounded_memory_and_short_errors() {
    let host = TestHost::start().await;
    // 256 MiB of name in a few hundred KiB: read whole, this took the host down.
    let bomb = long_name_bomb(256 << 20);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    for path in ["/plugins/preview/upload", "/plugins/upload"] {
        let resp = host
            .admin(Method::POST, path)
            .body(bomb.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 422, "{path}: {text}");
        assert!(
            text.len() < 1024,
            "{path}: a short error ({} bytes)",
            text.len()
        );
        assert!(text.contains("extended header"), "{text}");
    }
    // A 64 KiB name (within the header bound) is refused by the path bound, not echoed.
    let resp = host
        .admin(Method::POST, "/plugins/preview/upload")
        .body(long_name_bomb(60 << 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let text = resp.text().await.unwrap();
    assert!(text.len() < 1024 && text.contains("path of"), "{text}");
    // Still serving.
    host.admin_json(Method::GET, "/plugins", None, 200).await;
}

// ---- 3. deadlines while a guest waits in a host call ------------------------------------------

#[tokio::test]
async fn a_guest_waiting_in_the_host_is_stopped_at_its_deadline() {
    use nitejar_tests::{HostOptions, StandIn};
    let stand_in = StandIn::start().await;
    let host = TestHost::start_with(HostOptions {
        integration_timeout_ms: Some(500),
        overrides: [("allowed.test".to_string(), stand_in.addr.into())].into(),
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    host.install_and_enable(&guest_package("hostile"), &["network:http://allowed.test"])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    // A 60 s sleep on the WASI clock, and a response body that stalls for ten minutes after
    // its first bytes: both end at the 500 ms deadline, as timeouts, with truthful receipts.
    for (attack, target) in [("sleep", "60"), ("http", "http://allowed.test/stall")] {
        let started = std::time::Instant::now();
        let body = json!({"attack": attack, "target": target}).to_string();
        let (status, v) = host
            .webhook("hostile", &instance, &[], body.into_bytes())
            .await;
        let waited = started.elapsed();
        assert_eq!(status, 502, "{attack}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("timeout"),
            "{attack}: {v}"
        );
        assert!(
            waited < std::time::Duration::from_secs(30),
            "{attack}: not stopped ({waited:?})"
        );
        let receipt = host
            .receipts("test.hostile")
            .await
            .into_iter()
            .rev()
            .find(|r| r["kind"] == "integration")
            .unwrap();
        assert_eq!(receipt["status"], "timeout", "{attack}: {receipt}");
        let ms = receipt["durationMs"].as_i64().unwrap();
        assert!((500..30_000).contains(&ms), "{attack}: stopped at {ms} ms");
    }
    assert_eq!(
        host.work_item(
            host.webhook(
                "hostile",
                &instance,
                &[],
                json!({"attack": "ok", "id": "after"})
                    .to_string()
                    .into_bytes()
            )
            .await
            .1["workItemId"]
                .as_str()
                .unwrap()
        )
        .await["text"],
        "ok: served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_plugins_waiting_calls_cannot_starve_another_plugins_webhooks() {
    use nitejar_tests::HostOptions;
    const SECRET: &str = "fairness-secret-0123456789";
    let host = TestHost::start_with(HostOptions {
        integration_timeout_ms: Some(3_000),
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let hostile = host.create_instance("hostile", json!({})).await;
    let webhook = host
        .create_instance("webhook", json!({ "secret": SECRET }))
        .await;
    // 300 calls of one plugin that each wait in the host until their deadline: more than the
    // whole shared instance pool.
    let sleepers = flood(&host, &hostile, 300, "sleep", "60");
    // Proof the plugin's slots are full: one of its own calls is refused as busy (the 300
    // sleepers hold their slots until the 3 s deadline).
    let started = std::time::Instant::now();
    loop {
        let (status, _) = attack(&host, &hostile, "ok", "").await;
        if status == 503 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the flooding plugin never reached its limit (last answer {status})"
        );
    }
    // Another plugin's webhook is served meanwhile.
    let body = json!({"id": "fair-1", "text": "still served"}).to_string();
    let sig = nitejar_tests::sign(SECRET, body.as_bytes());
    let (status, v) = host
        .webhook(
            "webhook",
            &webhook,
            &[("x-signature-256", &sig)],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let mut by_status = std::collections::BTreeMap::new();
    for s in sleepers {
        *by_status.entry(s.await.unwrap().0).or_insert(0) += 1;
    }
    // The flooding plugin got its own slots (each call stopped at its deadline) and 503 busy
    // for the rest (a call arriving after a slot freed may get one too).
    let limit = nitejar_sandbox::limits::MAX_CONCURRENT_CALLS_PER_PLUGIN;
    let (timed_out, busy) = (by_status.get(&502).copied(), by_status.get(&503).copied());
    assert_eq!(
        timed_out.unwrap_or(0) + busy.unwrap_or(0),
        300,
        "{by_status:?}"
    );
    assert!(timed_out.unwrap_or(0) >= limit, "{by_status:?}");
    assert!(busy.unwrap_or(0) >= 300 - 2 * limit, "{by_status:?}");
}

// ---- 5. large return values ------------------------------------------------------------------

/// The process's peak resident memory (kB), from `/proc/self/status`.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn return_values_are_bounded_while_they_are_copied_out_of_the_guest() {
    use nitejar_tests::HostOptions;
    let host = TestHost::start_with(HostOptions {
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let before = peak_rss_kb();
    // 40 concurrent answers of 60 headers aliasing one 1 MiB buffer: 4.7 GiB if each alias
    // were copied before the size check.
    let calls = flood(&host, &instance, 40, "alias", "");
    for c in calls {
        let (status, text) = c.await.unwrap();
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("output_too_large"), "{text}");
    }
    let grew_mib = peak_rss_kb().saturating_sub(before) / 1024;
    assert!(grew_mib < 1024, "peak memory grew by {grew_mib} MiB");
    let receipt = host
        .receipts("test.hostile")
        .await
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "integration")
        .unwrap();
    let detail: Value = serde_json::from_str(receipt["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail["failure"]["failure"], "transfer_too_large",
        "{receipt}"
    );
    // Still serving.
    let (status, _) = host
        .webhook(
            "hostile",
            &instance,
            &[],
            json!({"attack": "ok", "id": "after-alias"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 202);
}

// ---- weaker spots ---------------------------------------------------------------------------

#[tokio::test]
async fn an_ipv6_literal_grant_reaches_exactly_that_address() {
    use nitejar_tests::StandIn;
    let stand_in = StandIn::start_on("[::1]:0").await;
    let port = stand_in.addr.port();
    let rule = format!("http://[::1]:{port}");
    let pkg = package_with_manifest("hostile", |m| {
        m["permissions"]["network"] = json!([rule]);
    });
    let host = TestHost::start().await;
    host.install_and_enable(pkg.path(), &[&format!("network:{rule}")])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let ok = report(&host, &instance, "http", &format!("http://[::1]:{port}/v6")).await;
    assert!(ok.starts_with("ok: status 200"), "{ok}");
    assert_eq!(stand_in.requests.lock().unwrap()[0].path, "/v6");
    // The same port on the IPv4 loopback is another address: refused.
    let refused = report(
        &host,
        &instance,
        "http",
        &format!("http://127.0.0.1:{port}/v4"),
    )
    .await;
    assert!(refused.starts_with("err:"), "{refused}");
    assert_eq!(stand_in.count(), 1);
}

// ---- instruction budgets (fuel) ----------------------------------------------------------------

#[tokio::test]
async fn instruction_budgets_come_from_the_manifest_or_the_operator_and_are_receipted() {
    use nitejar_tests::HostOptions;
    let host = TestHost::start_with(HostOptions {
        integration_timeout_ms: Some(20_000),
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    // Out-of-range manifest budgets are refused at install.
    for bad in [
        json!(0),
        json!(nitejar_sandbox::limits::MAX_FUEL_PER_CALL + 1),
    ] {
        let pkg = package_with_manifest("hostile", |m| {
            m["limits"] = json!({ "fuelPerCall": bad });
        });
        let (status, body) = install(&host, pkg.path()).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fuelPerCall")
        );
    }
    // A plugin that asks for one million instructions per call.
    let pkg = package_with_manifest("hostile", |m| {
        m["limits"] = json!({ "fuelPerCall": 1_000_000 });
    });
    host.install_and_enable(pkg.path(), &[]).await;
    let instance = host.create_instance("hostile", json!({})).await;
    let spin = |n: u64| {
        let (host, instance) = (&host, instance.clone());
        async move { attack(host, &instance, "spin", &n.to_string()).await }
    };
    let (status, v) = spin(1_000).await;
    assert_eq!(status, 202, "a small call fits: {v}");
    let (status, v) = spin(50_000_000).await;
    assert_eq!(status, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fuel_exhausted"),
        "{v}"
    );
    let receipts = host.receipts("test.hostile").await;
    // The spin's own receipt: the run of the small call above may write its acknowledge-receipt
    // receipt after it.
    let last = receipts
        .iter()
        .rev()
        .find(|r| {
            r["kind"] == "integration"
                && r["detailJson"]
                    .as_str()
                    .is_some_and(|d| d.contains("\"parse-webhook\""))
        })
        .unwrap();
    let detail: Value = serde_json::from_str(last["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(detail["failure"]["failure"], "fuel_exhausted", "{last}");
    assert_eq!(detail["failure"]["budget"], 1_000_000);
    assert!(
        detail["instructions"].as_u64().unwrap() >= 1_000_000,
        "{detail}"
    );

    // The operator raises it for this plugin: the same call now fits.
    let set = |fuel: Value, status: u16| {
        let host = &host;
        async move {
            host.admin_json(
                Method::PUT,
                "/plugins/test.hostile/limits",
                Some(json!({ "fuelPerCall": fuel })),
                status,
            )
            .await
        }
    };
    set(json!(0), 400).await;
    set(json!(nitejar_sandbox::limits::MAX_FUEL_PER_CALL + 1), 400).await;
    let v = set(json!(2_000_000_000u64), 200).await;
    assert_eq!(v["fuelPerCall"], 2_000_000_000u64);
    let (status, v) = spin(50_000_000).await;
    assert_eq!(status, 202, "{v}");
    let detail = host
        .admin_json(Method::GET, "/plugins/test.hostile", None, 200)
        .await;
    let usage = &detail["instructions"];
    assert_eq!(usage["budgetPerCall"], 2_000_000_000u64, "{detail}");
    assert_eq!(usage["source"], "operator");
    assert!(
        usage["calls"].as_u64().unwrap() >= 1 && usage["total"].as_u64().unwrap() > 50_000_000,
        "{usage}"
    );
    // Cleared: back to the manifest's budget.
    set(Value::Null, 200).await;
    let (status, _) = spin(50_000_000).await;
    assert_eq!(status, 502);
    host.admin_json(
        Method::PUT,
        "/plugins/test.nope/limits",
        Some(json!({"fuelPerCall": 5})),
        404,
    )
    .await;
}

#[tokio::test]
async fn filesystem_changes_are_receipted_when_refused_and_symlinks_are_never_created() {
    use nitejar_tests::HostOptions;
    let host = TestHost::start_with(HostOptions {
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    host.install_and_enable(
        &guest_package("hostile"),
        &["fs:read:shared", "fs:write:scratch"],
    )
    .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let files = host.app.runtime.files_dir("test.hostile");
    std::fs::write(files.join("shared/keep.txt"), "host data").unwrap();
    std::fs::write(files.join("scratch/mine.txt"), "plugin data").unwrap();
    let report = |name: &'static str, target: &'static str| {
        let (host, instance) = (&host, instance.clone());
        async move { report(host, &instance, name, target).await }
    };
    // Changes through the read-only preopen are refused, and each leaves a receipt.
    for (attack, target) in [
        ("fs-mkdir", "/shared/newdir"),
        ("fs-unlink", "/shared/keep.txt"),
        ("fs-rename", "/shared/keep.txt>/shared/moved.txt"),
    ] {
        let text = report(attack, target).await;
        assert!(text.starts_with("err:"), "{attack} {target}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(files.join("shared/keep.txt")).unwrap(),
        "host data"
    );
    assert!(!files.join("shared/newdir").exists());
    // A symlink is refused even in the writable directory, whatever it points at.
    for target in ["/scratch/link>/etc/passwd", "/scratch/rel>mine.txt"] {
        let text = report("fs-symlink", target).await;
        assert!(text.starts_with("err:"), "{target}: {text}");
    }
    assert!(std::fs::symlink_metadata(files.join("scratch/link")).is_err());
    assert!(std::fs::symlink_metadata(files.join("scratch/rel")).is_err());
    // Ordinary changes in the writable directory still work.
    assert_eq!(report("fs-mkdir", "/scratch/sub").await, "ok: created");
    assert_eq!(
        report("fs-rename", "/scratch/mine.txt>/scratch/sub/mine.txt").await,
        "ok: renamed"
    );
    assert_eq!(
        report("fs-unlink", "/scratch/sub/mine.txt").await,
        "ok: removed"
    );

    let denied: Vec<Value> = host
        .receipts("test.hostile")
        .await
        .into_iter()
        .filter(|r| r["kind"] == "permission_denied")
        .map(|r| serde_json::from_str(r["detailJson"].as_str().unwrap()).unwrap())
        .collect();
    let reasons: Vec<String> = denied
        .iter()
        .filter(|d| d["capability"] == "filesystem")
        .map(|d| {
            format!(
                "{} {}",
                d["reason"].as_str().unwrap(),
                d["target"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "create-directory refused",
        "unlink refused",
        "rename refused",
        "symlink refused",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(expected)),
            "{expected}: {reasons:?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("symlink refused"))
            .count(),
        2,
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_hook_is_not_blamed_for_a_title_another_plugin_produced() {
    // Default crash-loop protection (5 failures in the window).
    let host = TestHost::start().await;
    host.install_and_enable(&guest_package("hooks"), &[]).await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    // The hostile integration titles its work items "attack <name>": here with a bell, a
    // carriage return and an escape in it. The example hook prefixes every title and
    // hands it back; before, the host refused that patch (control characters) and counted a
    // crash against the hook until it was disabled.
    for i in 0..7 {
        let body = json!({"attack": format!("ok\u{7}\r\u{1b}[2J{i}"), "id": format!("title-{i}")});
        let (status, v) = host
            .webhook("hostile", &instance, &[], body.to_string().into_bytes())
            .await;
        assert_eq!(status, 202, "{v}");
        let item = host.work_item(v["workItemId"].as_str().unwrap()).await;
        let title = item["title"].as_str().unwrap();
        assert!(!title.chars().any(char::is_control), "{title:?}");
        assert!(
            title.starts_with("[ext] attack ok"),
            "the hook's change applied: {title:?}"
        );
    }
    assert_eq!(
        host.app
            .crash_guard
            .recent_failures("nitejar.example.hooks"),
        0
    );
    assert!(
        host.app.registry.get("nitejar.example.hooks").is_some(),
        "still enabled"
    );
}

/// A hook that hands back what another plugin produced is not blamed for its size: the
/// generic webhook puts a body near the 1 MiB webhook limit into the payload, the
/// example hook returns that payload with one field added. Before, the hook's output went over
/// the 1 MiB output cap and every such delivery counted a crash against the hook until it was
/// disabled; now a call's output cap is 1 MiB more than what it was given.
#[tokio::test]
async fn a_hook_is_not_blamed_for_the_size_of_a_value_another_plugin_produced() {
    let host = TestHost::start().await;
    host.install_and_enable(&guest_package("hooks"), &[]).await;
    let secret = "echo-signing-secret-0123";
    let instance = host
        .create_instance("webhook", json!({ "secret": secret }))
        .await;
    let limit = nitejar_core::limits::MAX_WEBHOOK_BODY_BYTES;
    for i in 0..7 {
        let mut body = json!({ "id": format!("big-{i}"), "text": "summarize this", "blob": "" });
        let pad = limit - 16 - body.to_string().len();
        body["blob"] = json!("x".repeat(pad));
        let body = body.to_string().into_bytes();
        assert!(body.len() <= limit && body.len() > limit - 64);
        let (status, v) = host
            .webhook(
                "webhook",
                &instance,
                &[("x-signature-256", &nitejar_tests::sign(secret, &body))],
                body,
            )
            .await;
        assert_eq!(status, 202, "{v}");
        let item = host.work_item(v["workItemId"].as_str().unwrap()).await;
        let payload: Value =
            serde_json::from_str(item["payloadJson"].as_str().expect("payload")).unwrap();
        assert_eq!(
            payload["tagged_by"], "nitejar.example.hooks",
            "the hook's change applied"
        );
    }
    assert_eq!(
        host.app
            .crash_guard
            .recent_failures("nitejar.example.hooks"),
        0
    );
    assert!(host.app.registry.get("nitejar.example.hooks").is_some());
    host.stop().await;
}

/// A parse result the host refuses after the call itself succeeded (a payload that is not
/// JSON, a redirect status, a response context that is not JSON) is answered 502 and leaves a
/// receipt saying why: before, the only receipt of such a webhook was the call's own `ok`.
#[tokio::test]
async fn refused_plugin_output_is_receipted_not_just_answered() {
    let host = TestHost::start().await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let cases = [
        ("", "a payload that is not a JSON object"),
        ("status", "asked for status 302"),
        ("context", "a response context that is not JSON"),
    ];
    for (target, reason) in cases {
        let (status, v) = attack(&host, &instance, "bad-output", target).await;
        assert_eq!(status, 502, "{target}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(reason),
            "{target}: {v}"
        );
    }
    let mut found = Vec::new();
    for _ in 0..100 {
        found = host
            .receipts("test.hostile")
            .await
            .into_iter()
            .filter(|r| r["kind"] == "webhook_output" && r["status"] == "invalid_output")
            .map(|r| r["detailJson"].as_str().unwrap().to_string())
            .collect();
        if found.len() == cases.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (_, reason) in cases {
        assert!(
            found.iter().any(|d| d.contains(reason)),
            "no receipt says {reason:?}: {found:?}"
        );
    }
    // Still serving.
    assert_eq!(report(&host, &instance, "ok", "").await, "ok: served");
    host.stop().await;
}

/// A seed of the `lift` fuzz target: a raw canonical-ABI return area for the lift test plugin.
fn lift_seed(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/lift")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_return_value_is_the_plugins_invalid_output_not_an_instantiation_failure() {
    let host = TestHost::start().await;
    host.install_and_enable(&guest_package("lift"), &[]).await;
    let instance = host.create_instance("lift", json!({})).await;
    let cases = [
        ("bad-discriminant", "unexpected discriminant"),
        ("bad-utf8", "utf-8"),
        ("out-of-bounds", "out of bounds"),
    ];
    for (seed, _) in cases {
        let (status, v) = host.webhook("lift", &instance, &[], lift_seed(seed)).await;
        assert_eq!(status, 502, "{seed}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("(invalid_output)"),
            "{seed}: {v}"
        );
    }
    let (status, v) = host
        .webhook("lift", &instance, &[], lift_seed("aliased-headers"))
        .await;
    assert_eq!(status, 502, "aliased-headers: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(output_too_large)"),
        "{v}"
    );
    // The receipts name the plugin's fault and what was wrong with the value.
    let failures: Vec<Value> = host
        .receipts("test.lift")
        .await
        .into_iter()
        .filter(|r| r["kind"] == "parse-webhook" || r["kind"] == "integration")
        .filter_map(|r| serde_json::from_str(r["detailJson"].as_str()?).ok())
        .filter_map(|d: Value| d.get("failure").cloned())
        .collect();
    for (seed, says) in cases {
        assert!(
            failures.iter().any(|d| d["failure"] == "invalid_output"
                && d["detail"].as_str().unwrap_or("").contains(says)),
            "no invalid_output receipt says {says:?} ({seed}): {failures:?}"
        );
    }
    assert!(
        failures.iter().all(|d| d["failure"] != "instantiate"),
        "a malformed value was blamed on instantiation: {failures:?}"
    );
    // A well-formed value from the same plugin still goes through.
    let (status, v) = host
        .webhook("lift", &instance, &[], lift_seed("ignored"))
        .await;
    assert_eq!((status, &v["reason"]), (200, &json!("bot sender")), "{v}");
    host.stop().await;
}
