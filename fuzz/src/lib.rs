//! Fuzz targets for everything hostile input reaches before a person looks at it.
//!
//! Each target is a plain function of the input bytes that panics when a property the host
//! relies on breaks (a panic in the code under test is a finding too). libFuzzer drives them in
//! the binaries under `fuzz_targets/` (`scripts/fuzz.sh`, coverage-guided, stable toolchain);
//! `cargo test` replays every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`
//! through the same functions, so a fixed finding stays fixed without libFuzzer.
//!
//! | target | input | properties |
//! |---|---|---|
//! | [`manifest`] | `nitejar.plugin.json` bytes | no panic; errors short and escaped; an accepted manifest survives a round trip and every network entry it declares is a usable rule |
//! | [`package`] | tar bytes (gzipped here) | no panic; nothing written outside the staging directory; errors short and escaped |
//! | [`webhook`] | plugin selector, headers, body | the built-in parsers never panic on platform input, even correctly signed; what they return is what the host accepts |
//! | [`network`] | a grant and a request URL | an allowed request goes exactly where the grant names |
//! | [`outputs`] | values a plugin returns | response headers the host sends are safe to frame; titles satisfy the hook rules; an invalid hook patch changes nothing |
//! | [`lift`] | a plugin's raw canonical-ABI return area | a malformed value is refused as the plugin's invalid output, never a host panic or a misattributed failure; an accepted one is within the output cap |

use std::path::Path;

/// A target: the input bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name its binary (`fuzz-<name>`), corpus and regression directories use.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("package", package),
    ("webhook", webhook),
    ("network", network),
    ("outputs", outputs),
    ("lift", lift),
];

/// The fields of an input, split at `0xFF` (a byte no UTF-8 text contains), as text.
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |b| *b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// An error message as the host shows it: bounded and free of characters that rewrite a
/// terminal or a page.
fn assert_safe_message(what: &str, message: &str) {
    assert!(
        message.len() <= 2048,
        "{what}: a {}-byte error message",
        message.len()
    );
    assert!(
        !message
            .chars()
            .any(nitejar_sandbox::capabilities::log::is_deceptive),
        "{what}: the error shows a control or invisible character raw: {message:?}"
    );
}

/// A plugin manifest (`Manifest::parse`).
pub fn manifest(data: &[u8]) {
    use nitejar_sandbox::capabilities::network::NetworkRule;
    use nitejar_sandbox::manifest::Manifest;
    let m = match Manifest::parse(data) {
        Ok(m) => m,
        Err(e) => return assert_safe_message("manifest", &e.to_string()),
    };
    let json = serde_json::to_vec(&m).expect("an accepted manifest serializes");
    let again = Manifest::parse(&json).expect("an accepted manifest parses again");
    assert_eq!(m, again, "the manifest changed in a round trip");
    for rule in &m.permissions.network {
        NetworkRule::parse(rule).expect("an accepted manifest's network entry is a rule");
    }
}

/// A package archive (`PluginPackage::from_tgz`). The input is the tar stream; it is gzipped
/// here so the fuzzer spends its effort on the archive, not on deflate.
pub fn package(data: &[u8]) {
    use flate2::{Compression, write::GzEncoder};
    use nitejar_core::plugins::package::PluginPackage;
    use std::io::Write;
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("gzip in memory");
    let tgz = gz.finish().expect("gzip in memory");
    let root = tempfile::tempdir().expect("a temporary directory");
    let staging = root.path().join("staging");
    if let Err(e) = PluginPackage::from_tgz(&tgz, &staging) {
        assert_safe_message("package", &e.to_string());
    }
    // Nothing may land beside the staging directory.
    let beside: Vec<_> = std::fs::read_dir(root.path())
        .expect("read the temporary directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "staging")
        .collect();
    assert!(
        beside.is_empty(),
        "the archive wrote outside staging: {beside:?}"
    );
    assert_no_links(&staging);
}

/// Every entry under `dir` is a regular file or a directory (no links planted).
fn assert_no_links(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let kind = entry.file_type().expect("file type");
        assert!(
            !kind.is_symlink(),
            "the archive planted a link: {}",
            entry.path().display()
        );
        if kind.is_dir() {
            assert_no_links(&entry.path());
        }
    }
}

/// The secret the fuzzed instances are configured with; the target signs every body with it,
/// so the parsers' code past the signature check is reached.
const SECRET: &str = "fuzz-webhook-secret";

/// A webhook for a built-in parser. Byte 0 picks the plugin (Telegram, GitHub, generic webhook),
/// byte 1 the configuration variant; the rest is `event 0xFF delivery-id 0xFF body`.
pub fn webhook(data: &[u8]) {
    use hmac::{Hmac, Mac};
    use nitejar_plugin_sdk::Integration;
    use nitejar_plugin_sdk::integration::{Header, Instance, ParseOutcome, WebhookRequest};
    use sha2::Sha256;
    let (Some(&which), Some(&variant)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = &data[2..];
    let mut parts = rest.splitn(3, |b| *b == 0xFF);
    let event = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let delivery = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default().to_vec();
    let sign = |body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let header = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    nitejar_plugin_sdk::testing::MockHost::default().install();
    let comment_policy = ["mentions", "all", "none"][usize::from(variant % 3)];
    let allowed_chats = if variant & 1 == 1 {
        serde_json::json!([-1001234567890_i64, 42])
    } else {
        serde_json::Value::Null
    };
    let (kind, config, headers) = match which % 3 {
        0 => (
            "telegram",
            serde_json::json!({
                "botToken": "123456789:AAEhBOweik9ai3Fs2yZ-fuzz_token_x",
                "webhookSecret": SECRET,
                "allowedChatIds": allowed_chats,
                "useMessageThreads": variant & 2 == 0,
            }),
            vec![header("x-telegram-bot-api-secret-token", SECRET)],
        ),
        1 => (
            "github",
            serde_json::json!({
                "webhookSecret": SECRET,
                "token": "ghp_fuzztoken",
                "commentPolicy": comment_policy,
                "botLogin": "nitejar-bot",
            }),
            vec![
                header("x-github-event", &event),
                header("x-github-delivery", &delivery),
                header("x-hub-signature-256", &sign(&body)),
                header("content-type", "application/json"),
            ],
        ),
        _ => (
            "webhook",
            serde_json::json!({ "secret": SECRET }),
            vec![
                header("x-signature-256", &sign(&body)),
                header("x-delivery-id", &delivery),
            ],
        ),
    };
    let mut config = config;
    if let Some(map) = config.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let instance = Instance {
        id: "inst-fuzz".into(),
        integration_type: kind.into(),
        config: config.to_string(),
    };
    let request = WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers,
        body,
    };
    let outcome = match kind {
        "telegram" => nitejar_builtin_telegram::Telegram::parse_webhook(instance, request),
        "github" => nitejar_builtin_github::GitHub::parse_webhook(instance, request),
        _ => nitejar_example_webhook::Webhook::parse_webhook(instance, request),
    };
    let Ok(outcome) = outcome else {
        return;
    };
    match outcome {
        ParseOutcome::WorkItem(m) => {
            let payload: serde_json::Value =
                serde_json::from_str(&m.payload).expect("the payload is JSON");
            assert!(payload.is_object(), "the payload is a JSON object");
            if let Some(ctx) = &m.response_context {
                serde_json::from_str::<serde_json::Value>(ctx)
                    .expect("the response context is JSON");
            }
            assert!(
                !m.session_key.is_empty(),
                "{kind}: a work item without a session key"
            );
            if let Some(key) = &m.idempotency_key {
                assert!(!key.is_empty(), "{kind}: an empty idempotency key");
            }
        }
        ParseOutcome::Respond(r) => assert!(
            (200..300).contains(&r.status) || (400..500).contains(&r.status),
            "{kind}: answers status {}",
            r.status
        ),
        ParseOutcome::Ignored(_) | ParseOutcome::Unauthorized(_) => {}
    }
}

/// A network grant and a request URL (`grant 0xFF url`): if the policy allows the request,
/// the request goes to exactly what the grant names.
pub fn network(data: &[u8]) {
    use nitejar_sandbox::capabilities::network::{NetworkPolicy, NetworkRule, request_target};
    let f = fields(data, 2);
    let Ok(rule) = NetworkRule::parse(&f[0]) else {
        return;
    };
    let Ok(uri) = f[1].parse::<http::Uri>() else {
        return;
    };
    let (scheme, host, port) = request_target(&uri);
    let policy = NetworkPolicy {
        rules: vec![rule.clone()],
        ..Default::default()
    };
    let Ok(allowed) = policy.check(&scheme, &host, port) else {
        return;
    };
    assert_eq!(allowed, &rule);
    assert_eq!(port, rule.port(), "allowed on another port");
    // The target, spelled as a grant, is itself a valid grant naming the same host.
    let spelled = format!("{scheme}://{host}:{port}");
    let target = NetworkRule::parse(&spelled).unwrap_or_else(|e| {
        panic!(
            "{uri} was allowed by {:?} but is no valid target: {e}",
            rule.raw
        )
    });
    match rule.host().strip_prefix("*.") {
        Some(suffix) => assert!(
            target.host().ends_with(&format!(".{suffix}")),
            "{uri} allowed by wildcard {:?}",
            rule.raw
        ),
        None => assert_eq!(
            target.host(),
            rule.host(),
            "{uri} allowed by {:?} goes elsewhere",
            rule.raw
        ),
    }
}

/// Values a plugin returns, as the host handles them. Byte 0 picks what: response headers
/// (`name 0xFF value 0xFF ...`), a work item title, or a `work_item.pre_create` patch
/// (`title 0xFF session-key 0xFF payload`, an empty field meaning "unchanged").
pub fn outputs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => response_headers(rest),
        1 => title(rest),
        _ => pre_create_patch(rest),
    }
}

fn response_headers(data: &[u8]) {
    use nitejar_core::response_headers::{
        HOST_RESPONSE_HEADERS, MAX_PLUGIN_RESPONSE_HEADERS, filter,
    };
    let parts: Vec<String> = data
        .split(|b| *b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let headers: Vec<(String, String)> = parts
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect();
    let (kept, dropped) = filter(headers);
    // The plugin's (bounded), a default content-type, and the host's own.
    assert!(kept.len() <= MAX_PLUGIN_RESPONSE_HEADERS + 1 + HOST_RESPONSE_HEADERS.len());
    assert!(dropped.len() <= MAX_PLUGIN_RESPONSE_HEADERS);
    for d in &dropped {
        assert_safe_message("dropped header", d);
    }
    for (name, value) in &kept {
        // The server builds its response from these: they must be valid, and none may frame
        // the response or set state in the browser.
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("kept header name {name:?} is not a header name"));
        http::HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("kept header {name:?} has an invalid value {value:?}"));
        assert!(
            ![
                http::header::CONTENT_LENGTH,
                http::header::TRANSFER_ENCODING,
                http::header::CONNECTION,
                http::header::SET_COOKIE,
                http::header::LOCATION,
                http::header::UPGRADE,
                http::header::TRAILER,
            ]
            .contains(&n),
            "kept {name:?}"
        );
        if n == http::header::CONTENT_TYPE {
            // The plugin's (a safe type) or the host's default when the plugin set none.
            let media = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            assert!(
                ["application/json", "text/plain", "application/octet-stream"]
                    .contains(&media.as_str()),
                "kept content-type {value:?}"
            );
        }
    }
}

fn title(data: &[u8]) {
    use nitejar_core::ingress::work_item_title;
    let raw = String::from_utf8_lossy(data);
    let title = work_item_title(&raw);
    assert!(!title.is_empty());
    assert!(title.len() <= nitejar_core::limits::MAX_WORK_ITEM_TITLE_BYTES);
    assert!(!title.chars().any(char::is_control), "{title:?}");
    assert_eq!(
        work_item_title(&title),
        title,
        "normalizing twice changes it"
    );
    // A hook that passes the title on unchanged is never refused for it.
    let mut event = pre_create_event();
    let patch = patch(Some(title.clone()), None, None);
    assert!(
        apply(&mut event, patch).is_ok(),
        "a hook returning the ingress title {title:?} is refused"
    );
}

fn pre_create_patch(data: &[u8]) {
    let f = fields(data, 3);
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    let mut event = pre_create_event();
    let before = format!("{:?}", event.work_item);
    let result = apply(&mut event, patch(some(&f[0]), some(&f[2]), some(&f[1])));
    match result {
        Err(reason) => {
            assert_eq!(
                before,
                format!("{:?}", event.work_item),
                "a refused patch changed the work item"
            );
            assert_safe_message("hook refusal", &reason);
        }
        Ok(_) => {
            let w = &event.work_item;
            let payload: serde_json::Value =
                serde_json::from_str(&w.payload).expect("an accepted payload is JSON");
            assert!(payload.is_object());
            assert!(!w.title.chars().any(char::is_control));
            assert!(w.title.len() <= nitejar_core::limits::MAX_WORK_ITEM_TITLE_BYTES);
        }
    }
}

use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks as wit;

fn pre_create_event() -> wit::WorkItemPreCreateEvent {
    wit::WorkItemPreCreateEvent {
        work_item: wit::WorkItemDraft {
            title: "Build failed on main".into(),
            text: "why did it fail?".into(),
            session_key: "github:acme/api#7".into(),
            source_ref: "acme/api#7".into(),
            payload: "{\"n\":7}".into(),
        },
        integration_type: "github".into(),
        plugin_instance_id: "inst-fuzz".into(),
    }
}

fn patch(
    title: Option<String>,
    payload: Option<String>,
    session_key: Option<String>,
) -> wit::WorkItemPreCreateDecision {
    wit::WorkItemPreCreateDecision::Proceed(wit::WorkItemPreCreatePatch {
        title,
        payload,
        session_key,
    })
}

fn apply(
    event: &mut wit::WorkItemPreCreateEvent,
    decision: wit::WorkItemPreCreateDecision,
) -> Result<Option<String>, String> {
    use nitejar_core::hooks::events::ApplyHook;
    event.apply(decision)
}

/// The runtime and the raw-return test plugin (`tests/plugins/lift`), built once per process.
struct LiftRig {
    runtime: nitejar_sandbox::runtime::PluginRuntime,
    plugin: nitejar_sandbox::runtime::LoadedPlugin,
    _dir: tempfile::TempDir,
}

fn lift_rig() -> &'static LiftRig {
    use nitejar_core::plugins::package::PluginPackage;
    use nitejar_sandbox::receipts::ReceiptSink;
    use nitejar_sandbox::runtime::{Grants, PluginRuntime, RuntimeOptions};
    static RIG: std::sync::OnceLock<LiftRig> = std::sync::OnceLock::new();
    RIG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = PluginRuntime::new(RuntimeOptions {
            memory_bytes: nitejar_core::limits::DEFAULT_GUEST_MEMORY_BYTES,
            cache_dir: dir.path().join("cache"),
            files_root: dir.path().join("files"),
            outbound_overrides: Default::default(),
            kv: None,
            kv_quota: Default::default(),
            receipts: ReceiptSink::discard(),
            crash_guard: None,
            fuel: true,
            pool_instances: nitejar_sandbox::limits::POOL_TOTAL_COMPONENT_INSTANCES,
            idle_code_release: None,
            inline_budget_ms: nitejar_sandbox::limits::INLINE_BUDGET_MS,
        })
        .expect("the plugin runtime starts");
        let package = Path::new(nitejar_core::plugins::bundled::GUEST_PACKAGES_DIR).join("lift");
        let pkg = PluginPackage::from_dir(&package).expect("the lift test plugin was built");
        let plugin = runtime
            .load(
                &pkg.manifest,
                &pkg.wasm,
                &Grants::all_declared(&pkg.manifest),
            )
            .expect("the lift test plugin loads");
        LiftRig {
            runtime,
            plugin,
            _dir: dir,
        }
    })
}

/// A `parse-webhook` result lifted from bytes the plugin chose (the request body becomes the
/// canonical-ABI return area; see `tests/plugins/lift` for the layout, pointers relocated).
///
/// Properties: no host panic; a malformed value is refused as the plugin's fault
/// (`invalid_output`, or `output_too_large` when it claims more than the host copies), never
/// blamed on instantiation; an accepted value is within the call's output cap, and what the
/// host does next with it (response headers, titles) holds; the error text is bounded and
/// escaped; and the next call works.
pub fn lift(data: &[u8]) {
    use nitejar_sandbox::bindings::exports::nitejar::plugin::integration::{
        Instance, ParseOutcome, WebhookRequest,
    };
    use nitejar_sandbox::output::OutputSize;
    use nitejar_sandbox::runtime::PluginFailure;
    let rig = lift_rig();
    let instance = Instance {
        id: "inst-fuzz".into(),
        integration_type: "lift".into(),
        config: "{}".into(),
    };
    let request = WebhookRequest {
        method: "POST".into(),
        path: "/webhooks/lift/inst-fuzz".into(),
        query: String::new(),
        headers: vec![],
        body: data.to_vec(),
    };
    let cap = nitejar_sandbox::limits::MAX_GUEST_OUTPUT_BYTES + request.output_bytes();
    match rig
        .runtime
        .parse_webhook(&rig.plugin, &instance, &request, 2_000)
    {
        Ok(outcome) => {
            let bytes = outcome.output_bytes();
            assert!(
                bytes <= cap,
                "a {bytes}-byte outcome passed a {cap}-byte cap"
            );
            match outcome {
                ParseOutcome::Respond(r) => {
                    let (headers, _) = nitejar_core::response_headers::filter(
                        r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                    );
                    for (name, value) in headers {
                        assert!(
                            http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                                && http::HeaderValue::from_str(&value).is_ok(),
                            "an unframeable header passed the filter: {name:?}"
                        );
                    }
                }
                ParseOutcome::WorkItem(m) => {
                    let title = nitejar_core::ingress::work_item_title(&m.title);
                    assert_eq!(title, nitejar_core::ingress::work_item_title(&title));
                }
                ParseOutcome::Ignored(_) | ParseOutcome::Unauthorized(_) => {}
            }
        }
        Err(failure) => {
            assert!(
                matches!(
                    failure,
                    PluginFailure::InvalidOutput { .. }
                        | PluginFailure::OutputTooLarge { .. }
                        | PluginFailure::TransferTooLarge { .. }
                        | PluginFailure::PluginError { .. }
                        | PluginFailure::Trap { .. }
                ),
                "a malformed return value was classified as {}: {failure}",
                failure.kind()
            );
            assert_safe_message("lift", &failure.to_string());
        }
    }
}
