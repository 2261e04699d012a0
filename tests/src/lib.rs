//! Test support: a real server on a temporary data directory, guest packages built from source,
//! and a local HTTP stand-in that records what plugins send it.

#![warn(missing_docs)]

pub mod browser;
pub mod platforms;
pub mod postgres;
pub mod sources;

use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use nitejar_core::app::{App, Shutdown};
use nitejar_core::config::{Config, OutboundOverrides};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The admin token every test host uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Where the build put guest package `name` (`webhook`, `hooks`, `hostile`).
pub fn guest_package(name: &str) -> PathBuf {
    Path::new(nitejar_core::plugins::bundled::GUEST_PACKAGES_DIR).join(name)
}

/// The bytes of webhook fixture `platform/name` (`tests/fixtures/webhooks`, copied byte for byte
/// from real platform deliveries; tests never read outside the repository).
pub fn webhook_fixture(platform: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/webhooks")
        .join(platform)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A copy of guest package `name` with its manifest changed by `edit`, in a fresh directory.
pub fn package_with_manifest(name: &str, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let src = guest_package(name);
    let dir = tempfile::tempdir().unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join("nitejar.plugin.json")).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(dir.path().join("nitejar.plugin.json"), manifest.to_string()).unwrap();
    std::fs::copy(src.join("plugin.wasm"), dir.path().join("plugin.wasm")).unwrap();
    dir
}

/// The compile cache every test host shares, as a production host shares its cache across
/// restarts: `target/<profile>/nitejar-test-compile-cache`, beside the test binaries. Entries are
/// keyed by component digest and engine hash and written atomically (temporary file, rename),
/// so a component is compiled once per build instead of once per test, hosts running in
/// parallel never see a partial file, and a rebuilt component or engine gets a new entry.
pub fn shared_compile_cache() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/<test binary> -> target/<profile>
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binaries live in target/<profile>/deps");
        profile_dir.join("nitejar-test-compile-cache")
    })
}

/// A running host.
pub struct TestHost {
    /// The application.
    pub app: Arc<App>,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The data directory (kept alive with the host), unless the caller owns it
    /// ([`TestHost::start_at`]).
    pub data: Option<tempfile::TempDir>,
    shutdown: Option<Shutdown>,
    server: tokio::task::JoinHandle<()>,
}

/// Options for [`TestHost::start_with`].
#[derive(Default, Clone)]
pub struct HostOptions {
    /// Outbound overrides.
    pub overrides: OutboundOverrides,
    /// Integration call deadline (default 2000 ms).
    pub integration_timeout_ms: Option<u64>,
    /// Per-event hook chain budget (default: the product default).
    pub hook_chain_budget_ms: Option<u64>,
    /// OpenAI-compatible endpoint; when set the default agent uses provider `openai`.
    pub model_base_url: Option<String>,
    /// Crash-loop threshold (default: the product's, 5 in 5 minutes; `Some(0)` turns it off
    /// for suites that crash a plugin on purpose many times).
    pub crash_threshold: Option<usize>,
    /// Boot in safe mode (built-ins only).
    pub safe_mode: bool,
    /// Trust policy (default: `self_host_open`, no keys).
    pub trust: Option<nitejar_core::plugins::trust::TrustPolicy>,
    /// npm registry URL (default: the product's).
    pub npm_registry: Option<String>,
    /// Every plugin's kv quota (default: the product's).
    pub kv_quota: Option<nitejar_sandbox::capabilities::kv::KvQuota>,
    /// `ENCRYPTION_KEY` in any accepted form (default: 64 hex characters, `ab` x 32).
    pub encryption_key: Option<String>,
    /// Compile cache directory (default: [`shared_compile_cache`], warm after the first test).
    pub cache_dir: Option<PathBuf>,
    /// `NITEJAR_RUN_YIELD_PERCENT` (default: the product's; `Some(0)` watches nothing, so a
    /// test sets the ingress's load itself through `app.ingress_load`).
    pub run_yield_percent: Option<u8>,
}

impl TestHost {
    /// Starts a host with default options.
    pub async fn start() -> TestHost {
        Self::start_with(HostOptions::default()).await
    }

    /// Starts a host.
    pub async fn start_with(opts: HostOptions) -> TestHost {
        Self::start_in(tempfile::tempdir().unwrap(), opts).await
    }

    /// Starts a host on an existing data directory (a restart).
    pub async fn start_in(data: tempfile::TempDir, opts: HostOptions) -> TestHost {
        let path = data.path().to_path_buf();
        let mut host = Self::start_at(path, opts).await;
        host.data = Some(data);
        host
    }

    /// Starts a host on a data directory the caller keeps (for runs across processes).
    pub async fn start_at(data_dir: PathBuf, opts: HostOptions) -> TestHost {
        let mut config = Config::for_data_dir(&data_dir);
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.outbound_overrides = opts.overrides;
        config.integration_timeout_ms = opts.integration_timeout_ms.unwrap_or(2_000);
        config.encryption_key = Some(opts.encryption_key.unwrap_or_else(|| "ab".repeat(32)));
        config.safe_mode = opts.safe_mode;
        if let Some(t) = opts.trust {
            config.trust = t;
        }
        if let Some(r) = opts.npm_registry {
            config.npm_registry = r;
        }
        if let Some(q) = opts.kv_quota {
            config.kv_quota = q;
        }
        config.cache_dir = opts
            .cache_dir
            .unwrap_or_else(|| shared_compile_cache().to_path_buf());
        if let Some(t) = opts.crash_threshold {
            config.crash_threshold = t;
        }
        if let Some(p) = opts.run_yield_percent {
            config.run_yield_percent = p;
        }
        if let Some(b) = opts.hook_chain_budget_ms {
            config.hook_chain_budget_ms = b;
        }
        if let Some(url) = opts.model_base_url {
            config.model_base_url = Some(url);
            config.default_provider = "openai".into();
            config.default_model = "scripted".into();
        }
        let (app, shutdown) = App::start(config).await.expect("host starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = nitejar_server::router(app.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestHost {
            app,
            base,
            client: reqwest::Client::new(),
            data: None,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// Stops serving and flushes receipts.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops serving, flushes receipts, and hands back the data directory for a restart.
    pub async fn stop_keep_data(mut self) -> tempfile::TempDir {
        self.halt().await;
        self.data.take().expect(
            "stop_keep_data: the host was started with start_at; the caller owns its data dir",
        )
    }

    async fn halt(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        if let Some(s) = self.shutdown.take() {
            s.run(self.app.clone()).await;
        }
    }

    /// An authenticated admin request.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/api/admin{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Admin call expecting `status`; returns the JSON body.
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let mut req = self.admin(method.clone(), path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(got, status, "{method} {path} -> {got}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Installs a package directory, grants `grants`, enables it with consent.
    pub async fn install_and_enable(&self, dir: &Path, grants: &[&str]) -> Value {
        let report = self
            .admin_json(
                reqwest::Method::POST,
                "/plugins/install",
                Some(json!({"sourceKind": "local", "sourceRef": dir})),
                201,
            )
            .await;
        let id = report["pluginId"].as_str().unwrap().to_string();
        self.grant_and_enable(&id, grants).await;
        report
    }

    /// Grants `grants` to an installed plugin and enables it with consent.
    pub async fn grant_and_enable(&self, id: &str, grants: &[&str]) {
        if !grants.is_empty() {
            self.admin_json(
                reqwest::Method::POST,
                &format!("/plugins/{id}/grants"),
                Some(json!({"permissions": grants})),
                200,
            )
            .await;
        }
        self.admin_json(
            reqwest::Method::POST,
            &format!("/plugins/{id}/enable"),
            Some(json!({"consent": true})),
            200,
        )
        .await;
    }

    /// Creates an integration instance; returns its id.
    pub async fn create_instance(&self, integration_type: &str, config: Value) -> String {
        let v = self
            .admin_json(
                reqwest::Method::POST,
                "/instances",
                Some(json!({"type": integration_type, "name": format!("test {integration_type}"), "config": config})),
                201,
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    /// Posts a webhook; returns (status, body JSON or text as a JSON string).
    pub async fn webhook(
        &self,
        integration_type: &str,
        instance: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!(
                "{}/api/webhooks/plugins/{integration_type}/{instance}",
                self.base
            ))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// All receipts of `plugin_id`, oldest first.
    pub async fn receipts(&self, plugin_id: &str) -> Vec<Value> {
        self.app.receipts.flush().await;
        let rows = self
            .app
            .store
            .list_events(plugin_id, 10_000, None)
            .await
            .unwrap();
        let mut v: Vec<Value> = rows
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        v.reverse();
        v
    }

    /// Disables a plugin (e.g. the bundled example hooks, to keep a test's chain exact).
    pub async fn disable(&self, id: &str) {
        self.admin_json(
            reqwest::Method::POST,
            &format!("/plugins/{id}/disable"),
            None,
            200,
        )
        .await;
    }

    /// Waits (up to 60 s) until the run of work item `id` has finished; returns the run view.
    pub async fn wait_for_run(&self, id: &str) -> Value {
        for _ in 0..600 {
            let v = self
                .admin_json(
                    reqwest::Method::GET,
                    &format!("/work-items/{id}/run"),
                    None,
                    200,
                )
                .await;
            let status = v["job"]["status"].as_str().unwrap_or("");
            if status == "done" || status == "failed" {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the run of work item {id} did not finish");
    }

    /// The detail of the host's last `startup` receipt (what the latest boot loaded, failed,
    /// re-queued, ...).
    pub async fn last_startup(&self) -> Value {
        let startup = self
            .receipts(nitejar_core::app::HOST_RECEIPT_ID)
            .await
            .into_iter()
            .rfind(|r| r["kind"] == "startup")
            .expect("a startup receipt");
        serde_json::from_str(startup["detailJson"].as_str().expect("its detail"))
            .expect("the detail is JSON")
    }

    /// The work item `id`.
    pub async fn work_item(&self, id: &str) -> Value {
        serde_json::to_value(
            self.app
                .store
                .get_work_item(id)
                .await
                .unwrap()
                .expect("work item exists"),
        )
        .unwrap()
    }
}

/// `sha256=<hex>` HMAC of `body` with `secret` (the example webhook's signature header).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A request a [`StandIn`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Host header.
    pub host: String,
    /// `idempotency-key` header, if sent.
    pub idempotency_key: Option<String>,
    /// Body.
    pub body: String,
}

/// A local HTTP server standing in for a platform API; answers `200 {"ok":true}` (or a `302` to
/// `http://evil.test/stolen` for paths starting with `/redirect`, or for `/stall` a `200` whose
/// body sends a few bytes and then stalls for ten minutes) and records every request.
pub struct StandIn {
    /// Its address.
    pub addr: SocketAddr,
    /// What it received.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl StandIn {
    /// Starts the stand-in on a free loopback port.
    pub async fn start() -> StandIn {
        StandIn::start_on("127.0.0.1:0").await
    }

    /// Starts the stand-in on `bind` (e.g. `[::1]:0` for the IPv6 loopback).
    pub async fn start_on(bind: &str) -> StandIn {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let rec = requests.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let rec = rec.clone();
            async move {
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let host = req
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let idempotency_key = req
                    .headers()
                    .get("idempotency-key")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string);
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let redirect = path.starts_with("/redirect");
                let stall = path.starts_with("/stall");
                rec.lock().unwrap().push(Recorded {
                    method,
                    path,
                    host,
                    idempotency_key,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                if redirect {
                    return axum::response::IntoResponse::into_response((
                        axum::http::StatusCode::FOUND,
                        [("location", "http://evil.test/stolen")],
                        "",
                    ));
                }
                if stall {
                    let body = futures::stream::once(async {
                        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"partial\":"))
                    })
                    .chain(futures::stream::once(async {
                        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                        Ok(axum::body::Bytes::from_static(b"1}"))
                    }));
                    return axum::response::Response::new(axum::body::Body::from_stream(body));
                }
                axum::response::IntoResponse::into_response(axum::Json(
                    json!({"ok": true, "from": "stand-in"}),
                ))
            }
        });
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        StandIn { addr, requests }
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// What a [`ScriptedModel`] answers to one request: a chat-completion object, or `None` to
/// never answer (the request hangs, e.g. to stop the host mid-run).
pub type Script = dyn Fn(&Value, usize) -> Option<Value> + Send + Sync;

/// A local OpenAI-compatible chat-completions server driven by a script; records requests.
pub struct ScriptedModel {
    /// `http://127.0.0.1:port/v1`.
    pub base_url: String,
    /// Request bodies received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedModel {
    /// Starts the server; `script(request, index)` makes each answer.
    pub async fn start(
        script: impl Fn(&Value, usize) -> Option<Value> + Send + Sync + 'static,
    ) -> ScriptedModel {
        let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
        let rec = requests.clone();
        let script: Arc<Script> = Arc::new(script);
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let rec = rec.clone();
                let script = script.clone();
                async move {
                    let index = {
                        let mut r = rec.lock().unwrap();
                        r.push(body.clone());
                        r.len() - 1
                    };
                    match script(&body, index) {
                        Some(v) => axum::Json(v),
                        None => {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                            axum::Json(Value::Null)
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ScriptedModel {
            base_url: format!("http://{addr}/v1"),
            requests,
        }
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// A chat-completion object with text `content`.
pub fn completion_text(content: &str) -> Value {
    json!({
        "id": "scripted", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    })
}

/// A chat-completion object calling tool `name` with `arguments`.
pub fn completion_tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({
        "id": "scripted", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    })
}

/// The chain test plugin's package with its manifest changed by `edit`.
pub fn chain_package(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    package_with_manifest("chain", edit)
}

/// The CLI's own argument parser (as in the binary), without `serve`.
#[derive(clap::Parser)]
struct CliArgs {
    #[command(subcommand)]
    command: nitejar::cli::ClientCommand,
    #[command(flatten)]
    connection: nitejar::cli::Connection,
}

/// Runs `nitejar --no-input <args>` against `host` with the binary's own command code;
/// returns (exit code, output).
pub async fn cli(host: &TestHost, args: &[&str]) -> (i32, String) {
    use clap::Parser;
    let mut argv = vec![
        "nitejar",
        "--url",
        &host.base,
        "--token",
        ADMIN_TOKEN,
        "--no-input",
    ];
    argv.extend_from_slice(args);
    let parsed = CliArgs::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut out = Vec::new();
    let code = nitejar::cli::run(&parsed.connection, parsed.command, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}
