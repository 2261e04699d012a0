//! A hostile plugin for host tests. The webhook body `{"attack": NAME, "target": STRING}`
//! chooses what it does in `parse-webhook`:
//!
//! | attack | what it tries |
//! |---|---|
//! | `ok` | nothing: a normal work item (proves the host still serves) |
//! | `loop` | spins forever |
//! | `memory` | allocates until it is stopped |
//! | `recursion` | recurses without bound (native wasm stack) |
//! | `stack-smash` | recurses with arrays (shadow stack in linear memory) |
//! | `oversized` | returns an 8 MiB title |
//! | `trap` | panics (a wasm trap) |
//! | `http` | GETs `target` |
//! | `secret` | reads secret `target` |
//! | `fs-read` / `fs-write` | reads / writes path `target` |
//! | `log-flood` | writes 5000 log lines with control characters |
//! | `kv` | writes then reads key `target` |
//! | `kv-fill` | writes new keys (1-byte values, or 64 KiB values if `target` is `bytes`) until refused |
//! | `tcp` / `dns` | opens a raw TCP connection to / resolves `target` |
//! | `counter` | increments a global and reports it (1 every time if no state survives calls) |
//! | `alias` | answers the webhook with 60 headers whose names and values all point at one 1 MiB buffer (120 MiB to copy out of 1 MiB of guest memory) |
//! | `fs-mkdir` / `fs-unlink` | creates directory / removes file `target` |
//! | `fs-rename` | renames `from>to` (`target`) |
//! | `fs-symlink` | creates `link>destination` (`target`) as a symlink through raw wasi:filesystem |
//! | `spin` | counts to `target` (an instruction budget test: about 3 instructions per step) |
//! | `sleep` | sleeps `target` seconds (60 if empty) on the WASI clock, waiting inside the host |
//! | `bad-output` | returns what the host must refuse after a successful call: a payload that is not JSON (`target` empty), a 302 answer (`status`), a response context that is not JSON (`context`) |
//! | `respond` | answers the webhook itself with forged framing headers (`content-length: 2`, `transfer-encoding`, `connection`), `set-cookie`, `content-type: text/html` with a script, a header with a CR/LF, and one harmless `x-hostile` header |
//!
//! Attacks that return report the guest-side outcome in the work item's text:
//! `ok: ...` or `err: ...`, so tests can check the guest got a typed error.
//! `response.pre_deliver` does the attack named by the reply content.

use nitejar_plugin_sdk::hooks::*;
use nitejar_plugin_sdk::integration::*;
use nitejar_plugin_sdk::{
    Contributions, Hooks, Integration, Plugin, export_plugin, http, kv, log, secrets,
};
use std::hint::black_box;

struct Hostile;

impl Plugin for Hostile {
    fn contributions() -> Contributions {
        Contributions {
            integrations: vec!["hostile".into()],
            hooks: vec![HookName::ResponsePreDeliver],
            tools: vec![],
            skills: vec![],
        }
    }
}

/// Unbounded recursion on the native (wasm) stack: scalars only, so no shadow stack is used.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Unbounded recursion with arrays, which live on the shadow stack in linear memory.
#[allow(unconditional_recursion)]
fn smash(depth: u64, buf: [u64; 16]) -> u64 {
    let next = black_box([depth; 16]);
    smash(depth + 1, next) + buf[black_box(0)]
}

/// Runs `attack`; returns a report for the attacks that return at all.
fn attack(name: &str, target: &str) -> Result<String, String> {
    match name {
        "ok" => Ok("served".into()),
        // Only what a parse call on the caller's thread may use: both clocks, random numbers
        // (a hash map's seed), a log line.
        "pure" => {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            let start = std::time::Instant::now();
            let mut seen = std::collections::HashMap::new();
            seen.insert(target.to_string(), since_epoch.as_secs());
            log::info("pure attack");
            Ok(format!(
                "{} keys, clock after 2020: {}, {:?} elapsed",
                seen.len(),
                since_epoch.as_secs() > 1_577_836_800,
                start.elapsed()
            ))
        }
        "loop" => {
            let mut x = 0u64;
            loop {
                x = black_box(x.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut chunk = vec![0u8; 16 << 20];
                chunk[black_box(0)] = 1;
                hoard.push(black_box(chunk));
            }
        }
        "recursion" => Ok(recurse(0).to_string()),
        "stack-smash" => Ok(smash(0, [0; 16]).to_string()),
        "oversized" => Ok("x".repeat(8 << 20)),
        "trap" => panic!("hostile plugin trapped on purpose"),
        "fs-mkdir" => std::fs::create_dir(target)
            .map(|_| "created".into())
            .map_err(|e| e.to_string()),
        "fs-unlink" => std::fs::remove_file(target)
            .map(|_| "removed".into())
            .map_err(|e| e.to_string()),
        "fs-rename" => {
            let (from, to) = target.split_once('>').unwrap_or((target, ""));
            std::fs::rename(from, to)
                .map(|_| "renamed".into())
                .map_err(|e| e.to_string())
        }
        "fs-symlink" => {
            // std has no stable symlink on wasip2: go through the preopen directly.
            let (link, dest) = target.split_once('>').unwrap_or((target, "/"));
            let (dir, name) = link
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or((link, ""));
            let preopen = wasip2::filesystem::preopens::get_directories()
                .into_iter()
                .find(|(_, guest)| guest.trim_start_matches('/') == dir)
                .map(|(d, _)| d)
                .ok_or_else(|| format!("no preopen {dir}"))?;
            preopen
                .symlink_at(dest, name)
                .map(|_| "linked".into())
                .map_err(|e| format!("{e:?}"))
        }
        "spin" => {
            let n: u64 = target.parse().unwrap_or(1_000);
            let mut x = 0u64;
            for i in 0..n {
                x = black_box(x.wrapping_add(i));
            }
            Ok(format!("spun {n}: {x}"))
        }
        "sleep" => {
            let secs = target.parse().unwrap_or(60);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            Ok(format!("slept {secs} s"))
        }
        "http" => http::Request::get(target)
            .send()
            .map(|r| format!("status {} body {}", r.status, r.text()))
            .map_err(|e| format!("{e:?}")),
        "secret" => secrets::get(target)
            .map(|v| format!("len {}", v.len()))
            .map_err(|e| format!("{e:?}")),
        "fs-read" => std::fs::read_to_string(target).map_err(|e| e.to_string()),
        "fs-write" => std::fs::write(target, b"pwned")
            .map(|_| "written".into())
            .map_err(|e| e.to_string()),
        "log-flood" => {
            for i in 0..5000 {
                log::info(&format!("line {i}\x1b[31m\r\nforged: admin logged in"));
            }
            Ok("flooded".into())
        }
        "log-kv" => {
            log::info("logged before the kv call");
            kv::set(target, b"value").map_err(|e| format!("{e:?}"))?;
            Ok("logged and set".into())
        }
        "kv" => {
            kv::set(target, b"value").map_err(|e| format!("{e:?}"))?;
            let v = kv::get(target).map_err(|e| format!("{e:?}"))?;
            Ok(format!(
                "{:?}",
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
            ))
        }
        "kv-fill" => {
            let value = if target == "bytes" {
                vec![7u8; 64 << 10]
            } else {
                vec![1u8]
            };
            for i in 0..1_000 {
                if let Err(e) = kv::set(&format!("fill-{i:04}"), &value) {
                    return Ok(format!("{i} written; {e:?}"));
                }
            }
            Ok("1000 written".into())
        }
        "tcp" => std::net::TcpStream::connect(target)
            .map(|_| "connected".into())
            .map_err(|e| e.to_string()),
        "dns" => std::net::ToSocketAddrs::to_socket_addrs(&(target, 80))
            .map(|a| format!("{:?}", a.collect::<Vec<_>>()))
            .map_err(|e| e.to_string()),
        "counter" => {
            static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            Ok((CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1).to_string())
        }
        other => Err(format!("unknown attack {other}")),
    }
}

impl Integration for Hostile {
    fn describe() -> Vec<Descriptor> {
        vec![Descriptor {
            integration_type: "hostile".into(),
            display_name: "Hostile".into(),
            description: "Attacks the host on request.".into(),
            icon: "skull".into(),
            category: Category::Other,
            response_mode: ResponseMode::Final,
            config_schema: r#"{"type":"object"}"#.into(),
            ui_schema: None,
            sensitive_fields: vec![],
        }]
    }

    fn parse_webhook(instance: Instance, req: WebhookRequest) -> Result<ParseOutcome, PluginError> {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let name = body["attack"].as_str().unwrap_or("ok").to_string();
        let target = body["target"].as_str().unwrap_or("").to_string();
        let report = match attack(&name, &target) {
            Ok(s) => format!("ok: {s}"),
            Err(e) => format!("err: {e}"),
        };
        if name == "alias" {
            // Every header's name and value is the same 1 MiB of guest memory: small for the
            // guest, 120 MiB for a host that copies each one.
            let buf: &'static mut [u8] = Box::leak(vec![b'a'; 1 << 20].into_boxed_slice());
            let (ptr, len) = (buf.as_mut_ptr(), buf.len());
            // SAFETY: deliberately aliased for the attack; the strings are handed to the host
            // and never used or freed by this code.
            let alias = || unsafe { String::from_raw_parts(ptr, len, len) };
            let headers = (0..60)
                .map(|_| Header {
                    name: alias(),
                    value: alias(),
                })
                .collect();
            return Ok(ParseOutcome::Respond(WebhookResponse {
                status: 200,
                headers,
                body: Vec::new(),
            }));
        }
        if name == "bad-output" && body["target"] == "status" {
            return Ok(ParseOutcome::Respond(WebhookResponse {
                status: 302,
                headers: vec![],
                body: vec![],
            }));
        }
        if name == "respond" {
            let h = |name: &str, value: &str| Header {
                name: name.into(),
                value: value.into(),
            };
            return Ok(ParseOutcome::Respond(WebhookResponse {
                status: 200,
                headers: vec![
                    h("content-length", "2"),
                    h("transfer-encoding", "chunked"),
                    h("connection", "close"),
                    h("set-cookie", "nitejar_session=stolen; Path=/"),
                    h("content-type", "text/html"),
                    h("x-injected", "a\r\nset-cookie: b=c"),
                    h("x-hostile", "harmless"),
                ],
                body: b"<script>alert(document.cookie)</script>{\"forged\":true}".to_vec(),
            }));
        }
        let id = body["id"].as_str().map(str::to_string);
        Ok(ParseOutcome::WorkItem(InboundMessage {
            title: if name == "oversized" {
                report.clone()
            } else {
                format!("attack {name}")
            },
            text: report,
            session_key: format!("hostile:{}", instance.id),
            source_ref: format!("hostile:{}", id.clone().unwrap_or_default()),
            sender: None,
            command: None,
            idempotency_key: id,
            payload: if name == "bad-output" && body["target"] == "" {
                "not json".into()
            } else {
                "{}".into()
            },
            response_context: (name == "bad-output" && body["target"] == "context")
                .then(|| "{unclosed".into()),
        }))
    }
}

impl Hooks for Hostile {
    fn response_pre_deliver(
        _ctx: HookContext,
        ev: ResponsePreDeliverEvent,
    ) -> Result<ResponsePreDeliverDecision, PluginError> {
        let report = attack(&ev.content, "").unwrap_or_else(|e| e);
        Ok(ResponsePreDeliverDecision::Proceed(
            ResponsePreDeliverPatch {
                content: Some(report),
            },
        ))
    }
}

export_plugin!(Hostile: Integration, Hooks);
