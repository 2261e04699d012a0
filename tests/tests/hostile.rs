//! Hostile plugins: every limit and permission the host enforces, attacked by a real component
//! (`tests/plugins/hostile`), contained, receipted, and followed by a normal request that is
//! served as usual.

use nitejar_tests::{HostOptions, StandIn, TestHost, guest_package};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

const PLUGIN: &str = "test.hostile";

/// A host with the hostile plugin installed. Crash-loop protection is off here: these tests
/// crash the plugin on purpose many times in a row (`crash_loop.rs` tests the protection).
async fn hostile_host(grants: &[&str], mut opts: HostOptions) -> (TestHost, String) {
    opts.crash_threshold.get_or_insert(0);
    let host = TestHost::start_with(opts).await;
    host.install_and_enable(&guest_package("hostile"), grants)
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    (host, instance)
}

/// Sends an attack; returns (status, response body).
async fn attack(host: &TestHost, instance: &str, name: &str, target: &str) -> (u16, Value) {
    static N: AtomicU32 = AtomicU32::new(0);
    let id = format!("a{}", N.fetch_add(1, Ordering::SeqCst));
    let body = json!({"attack": name, "target": target, "id": id})
        .to_string()
        .into_bytes();
    host.webhook("hostile", instance, &[], body).await
}

/// Sends an attack that returns; gives the guest's own report (`ok: ...` / `err: ...`).
async fn report(host: &TestHost, instance: &str, name: &str, target: &str) -> String {
    let (status, v) = attack(host, instance, name, target).await;
    assert_eq!(status, 202, "{name} {target}: {v}");
    host.work_item(v["workItemId"].as_str().unwrap()).await["text"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn assert_still_serving(host: &TestHost, instance: &str) {
    assert_eq!(report(host, instance, "ok", "").await, "ok: served");
}

fn detail(receipt: &Value) -> Value {
    serde_json::from_str(receipt["detailJson"].as_str().unwrap_or("null")).unwrap()
}

async fn denials(host: &TestHost) -> Vec<Value> {
    host.receipts(PLUGIN)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "permission_denied")
        .collect()
}

#[tokio::test]
async fn runaway_guests_are_stopped_and_the_host_keeps_serving() {
    let opts = HostOptions {
        integration_timeout_ms: Some(300),
        ..Default::default()
    };
    let (host, instance) = hostile_host(&[], opts).await;
    // The deadline is what stops these: with the default budget a fast machine runs the
    // `loop` guest out of instructions first (5e9 in about 210 ms here), so the budget is the
    // host's maximum (about 2 s of that loop), well past the 300 ms deadline. Instruction
    // budgets have their own test (escapes.rs).
    host.admin_json(
        reqwest::Method::PUT,
        &format!("/plugins/{PLUGIN}/limits"),
        Some(serde_json::json!({
            "fuelPerCall": nitejar_sandbox::limits::MAX_FUEL_PER_CALL
        })),
        200,
    )
    .await;
    // (attack, the kind said to the sender, the failure in the receipt, the receipt status)
    let cases = [
        ("loop", "timeout", "timeout", "timeout"),
        // Waiting inside the host (a 60 s WASI sleep) is stopped at the deadline too.
        ("sleep", "timeout", "timeout", "timeout"),
        ("memory", "resource_limit", "resource_limit", "error"),
        ("recursion", "stack_overflow", "stack_overflow", "error"),
        // The shadow stack lives in linear memory: running off its end is a memory fault.
        ("stack-smash", "trap", "trap", "error"),
        // 8 MiB is refused while it is being copied out of the guest, not after.
        (
            "oversized",
            "output_too_large",
            "transfer_too_large",
            "error",
        ),
        ("trap", "trap", "trap", "error"),
    ];
    for (name, failure, recorded, status) in cases {
        let (code, v) = attack(&host, &instance, name, "").await;
        assert_eq!(code, 502, "{name}: {v}");
        assert_eq!(v["error"]["code"], "plugin_failed");
        let public = v["error"]["message"].as_str().unwrap();
        assert!(
            public.contains(failure) && !public.contains("on purpose"),
            "{name}: {public}"
        );
        let receipts = host.receipts(PLUGIN).await;
        let last = receipts
            .iter()
            .rev()
            .find(|r| r["kind"] == "integration" && detail(r)["operation"] == "parse-webhook")
            .unwrap();
        assert_eq!(last["status"], status, "{name}: {last}");
        assert_eq!(
            detail(last)["failure"]["failure"],
            recorded,
            "{name}: {last}"
        );
        assert_still_serving(&host, &instance).await;
    }
    // The trap receipt carries the guest's panic message (from its captured stderr).
    let receipts = host.receipts(PLUGIN).await;
    let trap = receipts
        .iter()
        .rev()
        .find(|r| detail(r)["failure"]["failure"] == "trap")
        .unwrap();
    assert!(
        detail(trap)["error"]
            .as_str()
            .unwrap()
            .contains("trapped on purpose"),
        "{trap}"
    );
    host.stop().await;
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    let (host, instance) = hostile_host(&[], HostOptions::default()).await;
    for _ in 0..3 {
        assert_eq!(report(&host, &instance, "counter", "").await, "ok: 1");
    }
    host.stop().await;
}

#[tokio::test]
async fn network_is_allowlisted_checked_on_addresses_and_never_redirected() {
    let stand_in = StandIn::start().await;
    let overrides = [("allowed.test".to_string(), stand_in.addr.into())].into();
    let opts = HostOptions {
        overrides,
        ..Default::default()
    };
    let (host, instance) = hostile_host(&["network:http://allowed.test"], opts).await;

    // Allowed: the declared, granted host reaches the stand-in through the operator override.
    let ok = report(&host, &instance, "http", "http://allowed.test/hello?x=1").await;
    assert!(
        ok.starts_with("ok: status 200") && ok.contains("stand-in"),
        "{ok}"
    );
    {
        let reqs = stand_in.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/hello?x=1");
        assert_eq!(reqs[0].host, "allowed.test");
    }

    // Redirects come back to the guest; nothing follows them.
    let redirected = report(&host, &instance, "http", "http://allowed.test/redirect").await;
    assert!(redirected.starts_with("ok: status 302"), "{redirected}");
    assert_eq!(stand_in.count(), 2, "the redirect target was not requested");

    let port = stand_in.addr.port();
    let refused = [
        (
            "http://evil.test/",
            "http://evil.test:80",
            "permissions.network: [\"http://evil.test\"]",
        ),
        (
            &format!("http://127.0.0.1:{port}/") as &str,
            &format!("http://127.0.0.1:{port}") as &str,
            "permissions.network",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254:80",
            "permissions.network",
        ),
        (
            "http://allowed.test:8080/",
            "http://allowed.test:8080",
            "permissions.network",
        ),
        (
            "https://allowed.test/",
            "https://allowed.test:443",
            "permissions.network",
        ),
    ];
    for (url, target, grant) in refused {
        let before = denials(&host).await.len();
        let text = report(&host, &instance, "http", url).await;
        assert_eq!(text, "err: Denied", "{url}");
        let d = denials(&host).await;
        assert_eq!(d.len(), before + 1, "{url} left one denial receipt");
        let last = detail(d.last().unwrap());
        assert_eq!(d.last().unwrap()["status"], "blocked");
        assert_eq!(last["capability"], "network");
        assert_eq!(last["target"], target);
        assert!(
            last["requiredGrant"].as_str().unwrap().contains(grant),
            "{last}"
        );
    }
    assert_eq!(
        stand_in.count(),
        2,
        "no refused request reached the network"
    );

    // No raw sockets and no DNS: the guest gets an error; socket attempts are receipted.
    let before = denials(&host).await.len();
    let text = report(&host, &instance, "tcp", &stand_in.addr.to_string()).await;
    assert!(text.starts_with("err: "), "{text}");
    let d = denials(&host).await;
    assert!(
        d.len() > before,
        "a raw socket attempt leaves a denial receipt"
    );
    let target = detail(d.last().unwrap())["target"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(target.starts_with("raw socket"), "{target}");
    assert!(
        report(&host, &instance, "dns", "example.com")
            .await
            .starts_with("err: ")
    );
    let d = denials(&host).await;
    assert_eq!(
        detail(d.last().unwrap())["target"],
        "DNS lookup of example.com"
    );
    assert_eq!(
        stand_in.count(),
        2,
        "no raw connection reached the stand-in"
    );
    assert_still_serving(&host, &instance).await;
    host.stop().await;

    // Declared but not granted: refused, and the receipt names the grant to give.
    let opts = HostOptions {
        overrides: [("allowed.test".to_string(), stand_in.addr.into())].into(),
        ..Default::default()
    };
    let (host, instance) = hostile_host(&[], opts).await;
    assert_eq!(
        report(&host, &instance, "http", "http://allowed.test/").await,
        "err: Denied"
    );
    let d = denials(&host).await;
    assert_eq!(
        detail(d.last().unwrap())["requiredGrant"],
        "operator grant network:http://allowed.test"
    );
    assert_eq!(stand_in.count(), 2);
    host.stop().await;
}

#[tokio::test]
async fn secrets_need_declaration_grant_and_value() {
    const VALUE: &str = "s3cr3t-value-xyz";
    let (host, instance) = hostile_host(&["secret:declared.token"], HostOptions::default()).await;
    // Declared and granted, but no value yet.
    assert!(
        report(&host, &instance, "secret", "declared.token")
            .await
            .contains("Denied")
    );
    let resp = host
        .admin(
            Method::PUT,
            &format!("/plugins/{PLUGIN}/secrets/declared.token"),
        )
        .json(&json!({"value": VALUE}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        report(&host, &instance, "secret", "declared.token").await,
        format!("ok: len {}", VALUE.len())
    );
    // Undeclared: refused with the manifest entry to add.
    assert!(
        report(&host, &instance, "secret", "aws.key")
            .await
            .contains("Denied")
    );
    let d = denials(&host).await;
    let last = detail(d.last().unwrap());
    assert_eq!(last["target"], "aws.key");
    assert!(last["reason"].as_str().unwrap().contains("not declared"));
    // An undeclared secret cannot be set either.
    let resp = host
        .admin(Method::PUT, &format!("/plugins/{PLUGIN}/secrets/aws.key"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // The value never appears in receipts.
    let all = serde_json::to_string(&host.receipts(PLUGIN).await).unwrap();
    assert!(!all.contains(VALUE));
    assert_still_serving(&host, &instance).await;
    host.stop().await;

    // Declared, value set, but not granted: refused.
    let (host, instance) = hostile_host(&[], HostOptions::default()).await;
    host.admin(
        Method::PUT,
        &format!("/plugins/{PLUGIN}/secrets/declared.token"),
    )
    .json(&json!({"value": VALUE}))
    .send()
    .await
    .unwrap();
    assert!(
        report(&host, &instance, "secret", "declared.token")
            .await
            .contains("Denied")
    );
    assert!(
        detail(denials(&host).await.last().unwrap())["reason"]
            .as_str()
            .unwrap()
            .contains("not granted")
    );
    host.stop().await;
}

#[tokio::test]
async fn filesystem_is_limited_to_granted_preopens() {
    let (host, instance) = hostile_host(
        &["fs:read:shared", "fs:write:scratch"],
        HostOptions::default(),
    )
    .await;
    let files = host.app.runtime.files_dir(PLUGIN);
    std::fs::write(files.join("shared/readme.txt"), "hello from the host").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", files.join("shared/escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../", files.join("shared/up")).unwrap();

    assert_eq!(
        report(&host, &instance, "fs-read", "/shared/readme.txt").await,
        "ok: hello from the host"
    );
    for path in [
        "/etc/passwd",
        "/shared/../../../../etc/passwd",
        "/shared/escape",
        "/shared/up/etc/passwd",
        // A guest path climbing from one preopen into another (written in two pieces so a
        // scan for repository paths leaving the checkout does not mistake it for one).
        concat!("/scratch/..", "/shared/readme.txt/../../x"),
    ] {
        let text = report(&host, &instance, "fs-read", path).await;
        assert!(text.starts_with("err: "), "{path} was readable: {text}");
    }
    // Read-only preopen refuses writes; the read-write one accepts them.
    assert!(
        report(&host, &instance, "fs-write", "/shared/new.txt")
            .await
            .starts_with("err: ")
    );
    assert!(!files.join("shared/new.txt").exists());
    assert_eq!(
        report(&host, &instance, "fs-write", "/scratch/out.txt").await,
        "ok: written"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("scratch/out.txt")).unwrap(),
        "pwned"
    );
    assert!(
        report(&host, &instance, "fs-write", "/scratch/../escaped.txt")
            .await
            .starts_with("err: ")
    );
    assert!(!files.join("escaped.txt").exists());
    // Every path the host refused left a denial receipt naming it (paths outside every preopen,
    // like /etc/passwd, never reach the host: they do not exist in the guest's world).
    let fs_denials: Vec<Value> = denials(&host)
        .await
        .iter()
        .map(detail)
        .filter(|d| d["capability"] == "filesystem")
        .collect();
    let targets: Vec<&str> = fs_denials
        .iter()
        .map(|d| d["target"].as_str().unwrap())
        .collect();
    assert!(targets.iter().any(|t| t.contains("escape")), "{targets:?}");
    assert!(targets.iter().any(|t| t.contains("..")), "{targets:?}");
    assert!(
        fs_denials.iter().any(|d| d["target"] == "new.txt"
            && d["reason"].as_str().unwrap().starts_with("write refused")),
        "{fs_denials:?}"
    );
    assert_still_serving(&host, &instance).await;
    host.stop().await;

    // Without grants nothing is preopened.
    let (host, instance) = hostile_host(&[], HostOptions::default()).await;
    let files = host.app.runtime.files_dir(PLUGIN);
    std::fs::create_dir_all(files.join("shared")).unwrap();
    std::fs::write(files.join("shared/readme.txt"), "hello").unwrap();
    assert!(
        report(&host, &instance, "fs-read", "/shared/readme.txt")
            .await
            .starts_with("err: ")
    );
    host.stop().await;
}

#[tokio::test]
async fn guest_logs_are_capped_and_escaped() {
    let (host, instance) = hostile_host(&[], HostOptions::default()).await;
    assert_eq!(
        report(&host, &instance, "log-flood", "").await,
        "ok: flooded"
    );
    let receipts = host.receipts(PLUGIN).await;
    let call = receipts
        .iter()
        .rev()
        .find(|r| r["kind"] == "integration" && detail(r)["operation"] == "parse-webhook")
        .unwrap();
    let d = detail(call);
    let logs = d["logs"].as_array().unwrap();
    assert_eq!(
        logs.len() as u32,
        nitejar_core::limits::MAX_LOG_LINES_PER_CALL
    );
    assert_eq!(
        d["logsDropped"],
        5000 - nitejar_core::limits::MAX_LOG_LINES_PER_CALL
    );
    let first = logs[0].as_str().unwrap();
    assert!(
        !first.contains('\x1b') && !first.contains('\n'),
        "{first:?}"
    );
    assert!(first.contains("\\u{1b}[31m\\r\\nforged"), "{first:?}");
    host.stop().await;
}

#[tokio::test]
async fn key_value_storage_is_scoped_to_the_plugin() {
    let (host, instance) = hostile_host(&[], HostOptions::default()).await;
    assert_eq!(
        report(&host, &instance, "kv", "k1").await,
        "ok: Some(\"value\")"
    );
    assert_eq!(
        host.app.store.get(PLUGIN, "k1").await.unwrap(),
        Some(b"value".to_vec())
    );
    assert_eq!(
        host.app
            .store
            .get("nitejar.example.webhook", "k1")
            .await
            .unwrap(),
        None
    );
    let long = "k".repeat(nitejar_core::limits::MAX_KV_KEY_BYTES + 1);
    assert!(
        report(&host, &instance, "kv", &long)
            .await
            .contains("InvalidInput")
    );
    host.stop().await;
}

#[tokio::test]
async fn key_value_quotas_refuse_the_write_that_would_exceed_them() {
    use nitejar_sandbox::capabilities::kv::KvQuota;
    let quota = KvQuota {
        max_keys: 20,
        max_bytes: 200_000,
    };
    let (host, instance) = hostile_host(
        &[],
        HostOptions {
            kv_quota: Some(quota),
            ..Default::default()
        },
    )
    .await;

    // Keys: the 21st new key is refused with a typed error, nothing of it is written.
    let out = report(&host, &instance, "kv-fill", "keys").await;
    assert!(
        out.starts_with("ok: 20 written; HostError::LimitExceeded(")
            && out.contains("at most 20 keys"),
        "{out}"
    );
    assert_eq!(host.app.store.get(PLUGIN, "fill-0020").await.unwrap(), None);
    assert_eq!(
        host.app.store.list(PLUGIN, "", 1_000).await.unwrap().len(),
        20
    );
    // Replacing a key it already has is not a new key.
    assert_eq!(
        report(&host, &instance, "kv", "fill-0003").await,
        "ok: Some(\"value\")"
    );
    // A new key still is.
    assert!(
        report(&host, &instance, "kv", "fresh")
            .await
            .contains("LimitExceeded")
    );
    let hits: Vec<Value> = host
        .receipts(PLUGIN)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "quota_exceeded")
        .collect();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0]["status"], "blocked");
    assert_eq!(detail(&hits[0])["capability"], "kv");
    assert_eq!(detail(&hits[0])["limit"], "keys");
    assert_eq!(detail(&hits[0])["max"], 20);
    assert_still_serving(&host, &instance).await;

    // Bytes: with the keys gone, 64 KiB values fit three times in 200,000 bytes, not four.
    for key in host.app.store.list(PLUGIN, "", 1_000).await.unwrap() {
        host.app.store.delete(PLUGIN, &key).await.unwrap();
    }
    let out = report(&host, &instance, "kv-fill", "bytes").await;
    assert!(
        out.starts_with("ok: 3 written; HostError::LimitExceeded(") && out.contains("200000 bytes"),
        "{out}"
    );
    let last = host
        .receipts(PLUGIN)
        .await
        .into_iter()
        .rfind(|r| r["kind"] == "quota_exceeded")
        .unwrap();
    assert_eq!(detail(&last)["limit"], "bytes");
    assert_still_serving(&host, &instance).await;
    host.stop().await;
}

/// A name other than `localhost` that the system resolver maps only to loopback or private
/// addresses: the machine's own host name (`/etc/hosts` maps it to 127.0.x.1 on Debian, to the
/// container's private address under Docker and gVisor).
async fn name_resolving_to_a_special_address() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the machine's host name")
        .trim()
        .to_ascii_lowercase();
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .unwrap_or_else(|e| panic!("the host name {name:?} does not resolve: {e}"))
        .collect();
    assert!(
        name != "localhost"
            && !addrs.is_empty()
            && addrs
                .iter()
                .all(|a| nitejar_sandbox::capabilities::network::is_special_address(a.ip())),
        "this test needs the machine's host name ({name:?}, resolving to {addrs:?}) to resolve \
         to loopback or private addresses only"
    );
    name
}

#[tokio::test]
async fn an_allowed_name_that_resolves_to_a_private_address_is_refused() {
    let stand_in = StandIn::start().await;
    let port = stand_in.addr.port();
    let name = name_resolving_to_a_special_address().await;
    let rule = format!("http://{name}:{port}");
    let package = nitejar_tests::package_with_manifest("hostile", |m| {
        m["permissions"]["network"] = json!([rule.clone()]);
    });
    let host = TestHost::start_with(HostOptions {
        crash_threshold: Some(0),
        ..Default::default()
    })
    .await;
    host.install_and_enable(package.path(), &[&format!("network:{rule}")])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;

    // The name is declared and granted, and the stand-in listens on 127.0.0.1 at that port:
    // only the check of the resolved address stands between the plugin and it.
    let text = report(&host, &instance, "http", &format!("http://{name}:{port}/x")).await;
    assert_eq!(text, "err: Denied");
    let d = denials(&host).await;
    let last = detail(d.last().expect("a denial receipt"));
    assert_eq!(last["capability"], "network");
    let target = last["target"].as_str().unwrap();
    assert!(target.starts_with(&format!("{name} -> ")), "{last}");
    assert!(
        last["requiredGrant"]
            .as_str()
            .unwrap()
            .contains("naming the address explicitly"),
        "{last}"
    );
    assert_eq!(stand_in.count(), 0, "nothing reached the private address");
    assert_still_serving(&host, &instance).await;
    host.stop().await;
}
