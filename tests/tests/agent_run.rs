//! Agent runs end to end: webhook -> work item -> durable job -> model and tool calls ->
//! delivery to a local stand-in for the chat platform, with all nine hooks wired.

use nitejar_core::config::OutboundOverrides;
use nitejar_tests::{
    HostOptions, ScriptedModel, StandIn, TestHost, chain_package, completion_text,
    completion_tool_call,
};
use serde_json::{Value, json};

const TOKEN: &str = "chat-token-123";

fn overrides(chat: &StandIn) -> OutboundOverrides {
    let mut o = OutboundOverrides::new();
    o.insert("chat.test".into(), chat.addr.into());
    o
}

/// Installs the chain plugin (optionally with other hook registrations) and a `chat` instance.
async fn setup(host: &TestHost, hooks: Option<Value>) -> String {
    let pkg = chain_package(|m| {
        if let Some(h) = hooks {
            m["contributes"]["hooks"] = h;
        }
    });
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    host.create_instance("chat", json!({ "token": TOKEN }))
        .await
}

async fn send(host: &TestHost, instance: &str, id: &str, text: &str) -> Value {
    let body = json!({ "id": id, "text": text, "chat": "room-1" }).to_string();
    let (status, v) = host
        .webhook(
            "chat",
            instance,
            &[("x-chat-token", TOKEN)],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    v
}

fn sent_texts(chat: &StandIn) -> Vec<Value> {
    chat.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/send")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_runs_the_agent_with_a_plugin_tool_and_all_nine_hooks() {
    let chat = StandIn::start().await;
    let model = ScriptedModel::start(|req, i| {
        if i == 0 {
            return Some(completion_tool_call(
                "call-1",
                "lookup",
                json!({ "q": "weather" }),
            ));
        }
        let messages = req["messages"].as_array().unwrap();
        let system = messages[0]["content"].as_str().unwrap();
        let tool = messages
            .iter()
            .rfind(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let saw = if system.contains("[pre_prompt]") {
            "saw-pre-prompt"
        } else {
            "no-pre-prompt"
        };
        Some(completion_text(&format!("{saw} | {tool}")))
    })
    .await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        model_base_url: Some(model.base_url.clone()),
        ..Default::default()
    })
    .await;
    let instance = setup(&host, None).await;
    let v = send(&host, &instance, "m1", "what is the weather?").await;
    let wi = v["workItemId"].as_str().unwrap().to_string();
    let job = v["jobId"].as_str().unwrap().to_string();
    let run = host.wait_for_run(&wi).await;
    assert_eq!(run["job"]["status"], "done", "{run:#}");

    // Delivered once, carrying the mutations of run.pre_prompt, tool.post_exec (and the
    // tool.pre_exec counter) and response.pre_deliver.
    let sent = sent_texts(&chat);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["text"],
        "saw-pre-prompt | lookup(weather) chain=1 +post_exec +pre_deliver"
    );
    assert_eq!(sent[0]["chat"], "room-1");
    assert_eq!(sent[0]["workItemId"], wi.as_str());
    let key = chat.requests.lock().unwrap()[0].idempotency_key.clone();
    assert_eq!(key.as_deref(), Some(job.as_str()));
    // model.pre_call changed the temperature; the tool and the provider's prompt section were offered.
    let reqs = model.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["temperature"], 0.5);
    assert!(
        reqs[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "lookup")
    );
    assert!(
        reqs[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Use `lookup`")
    );
    // work_item.pre_create changed the title.
    assert_eq!(run["workItem"]["title"], "what is the weather? +pre_create");
    assert_eq!(run["workItem"]["status"], "done");

    // The run's receipts show the nine hook events in order, with the right ids.
    let hooks: Vec<&Value> = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "hook")
        .collect();
    let names: Vec<&str> = hooks
        .iter()
        .map(|r| r["hookName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "work_item.pre_create",
            "work_item.post_create",
            "run.pre_prompt",
            "model.pre_call",
            "model.post_call",
            "tool.pre_exec",
            "tool.post_exec",
            "model.pre_call",
            "model.post_call",
            "response.pre_deliver",
            "response.post_deliver",
        ]
    );
    for r in &hooks {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["pluginId"], "test.chain");
        assert_eq!(r["workItemId"], wi.as_str());
        assert_eq!(r["jobId"], job.as_str());
    }
    // The run record: prompt, two model calls, the tool call, the final response, delivery.
    let kinds: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["prompt", "model_call", "tool_call", "model_call", "final"]
    );
    let tool_step = &run["steps"][2]["detail"];
    assert_eq!(tool_step["tool"], "lookup");
    assert_eq!(tool_step["output"], "lookup(weather) chain=1 +post_exec");
    assert_eq!(run["delivery"]["status"], "delivered");
    assert_eq!(run["result"]["delivery"], "delivered");
    // The same run through the job id.
    let by_job = host
        .admin_json(reqwest::Method::GET, &format!("/jobs/{job}"), None, 200)
        .await;
    assert_eq!(by_job["workItem"]["id"], wi.as_str());

    // A redelivery of the same message creates nothing and runs nothing.
    let body = json!({ "id": "m1", "text": "what is the weather?", "chat": "room-1" }).to_string();
    let (status, v) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", TOKEN)],
            body.into_bytes(),
        )
        .await;
    assert_eq!((status, &v["duplicate"]), (200, &json!(true)));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_fail_closed_tool_hook_blocks_the_tool_and_the_run_continues() {
    let chat = StandIn::start().await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        ..Default::default()
    })
    .await;
    let instance = setup(
        &host,
        Some(json!([{ "event": "tool.pre_exec", "failPolicy": "fail_closed", "timeoutMs": 200 }])),
    )
    .await;
    // The offline model turns `/tool` lines into tool calls.
    let v = send(&host, &instance, "m2", "/tool lookup {\"q\":\"!loop\"}").await;
    let wi = v["workItemId"].as_str().unwrap();
    let run = host.wait_for_run(wi).await;
    assert_eq!(run["job"]["status"], "done", "{run:#}");
    let tool_step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "tool_call")
        .unwrap();
    assert_eq!(tool_step["detail"]["blocked"]["byFailure"], true);
    let sent = sent_texts(&chat);
    assert_eq!(sent.len(), 1);
    let text = sent[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("lookup: blocked by plugin test.chain: fail-closed handler failed"),
        "{text}"
    );
    // Stopped by whichever limit it reached first: its 200 ms deadline or its instruction
    // budget (a tight loop can use the hook's budget in less time on a fast machine).
    let failures: Vec<Value> = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "hook")
        .map(|r| {
            let d: Value = serde_json::from_str(r["detailJson"].as_str().unwrap()).unwrap();
            json!([r["status"], d["failure"]["failure"]])
        })
        .collect();
    assert!(
        failures == vec![json!(["timeout", "timeout"])]
            || failures == vec![json!(["error", "fuel_exhausted"])],
        "{failures:?}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_fail_closed_pre_deliver_hook_suppresses_delivery() {
    let chat = StandIn::start().await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        ..Default::default()
    })
    .await;
    let instance = setup(
        &host,
        Some(json!([
            { "event": "response.pre_deliver", "failPolicy": "fail_closed" },
            "response.post_deliver"
        ])),
    )
    .await;
    let v = send(&host, &instance, "m3", "please !trap").await;
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["job"]["status"], "done");
    assert_eq!(run["delivery"]["status"], "blocked");
    assert!(
        run["delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("trapped")
    );
    assert_eq!(sent_texts(&chat).len(), 0, "nothing was posted");
    // `response.post_deliver` fires for a blocked delivery too (spec: every outcome).
    let post_deliver = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "hook" && r["hookName"] == "response.post_deliver")
        .count();
    assert_eq!(post_deliver, 1, "{run}");
    // The host keeps serving: the next message is delivered.
    let v = send(&host, &instance, "m4", "hello").await;
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered");
    assert_eq!(sent_texts(&chat)[0]["text"], "Received: hello +pre_deliver");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_interrupted_by_a_restart_is_retried_and_delivered_exactly_once() {
    let chat = StandIn::start().await;
    // First process: the model never answers, so the run is in flight when the host stops.
    let stuck = ScriptedModel::start(|_, _| None).await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        model_base_url: Some(stuck.base_url.clone()),
        ..Default::default()
    })
    .await;
    let instance = setup(&host, Some(json!([]))).await;
    let v = send(&host, &instance, "m5", "survive a restart").await;
    let wi = v["workItemId"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if stuck.count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stuck.count(), 1, "the run reached the model");
    let data = host.stop_keep_data().await;

    // Second process on the same data: the job is re-queued at boot and run to the end.
    let model = ScriptedModel::start(|_, _| Some(completion_text("after restart"))).await;
    let host = TestHost::start_in(
        data,
        HostOptions {
            overrides: overrides(&chat),
            model_base_url: Some(model.base_url.clone()),
            ..Default::default()
        },
    )
    .await;
    let run = host.wait_for_run(&wi).await;
    assert_eq!(run["job"]["status"], "done", "{run:#}");
    assert_eq!(run["job"]["attempts"], 2);
    assert_eq!(run["delivery"]["status"], "delivered");
    let sent = sent_texts(&chat);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"], "after restart");

    // A third boot finds the job done and posts nothing again.
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(
        data,
        HostOptions {
            overrides: overrides(&chat),
            model_base_url: Some(model.base_url.clone()),
            ..Default::default()
        },
    )
    .await;
    // Boot re-queued nothing (the job is done, and workers only claim queued jobs).
    assert_eq!(host.last_startup().await["requeuedJobs"], 0);
    let run = host.wait_for_run(&wi).await;
    assert_eq!(run["job"]["attempts"], 2);
    assert_eq!(sent_texts(&chat).len(), 1, "delivered exactly once");
    host.stop().await;
}

/// While the ingress is saturated one run worker starts runs and the others wait to start
/// theirs: the deliveries are stored and answered meanwhile, and their runs start once it
/// clears.
#[tokio::test(flavor = "multi_thread")]
async fn runs_wait_to_start_while_the_ingress_is_saturated() {
    let chat = StandIn::start().await;
    // The model never answers: every run started stays in flight, so the model counts starts.
    let stuck = ScriptedModel::start(|_, _| None).await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        model_base_url: Some(stuck.base_url.clone()),
        // Nothing watched: the test says when the ingress is saturated.
        run_yield_percent: Some(0),
        ..Default::default()
    })
    .await;
    let instance = setup(&host, Some(json!([]))).await;
    let stuck = &stuck;
    let started_runs = |want: usize| async move {
        for _ in 0..200 {
            if stuck.count() >= want {
                return stuck.count();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        stuck.count()
    };
    host.app.ingress_load.set(true);
    for i in 0..4 {
        send(&host, &instance, &format!("busy-{i}"), "hello").await;
    }
    assert_eq!(started_runs(1).await, 1, "the first worker goes on");
    // Time for the 63 other (idle) workers to take the three queued jobs, were they not waiting.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(
        stuck.count(),
        1,
        "the other workers wait while the ingress is saturated"
    );
    host.app.ingress_load.set(false);
    assert_eq!(
        started_runs(4).await,
        4,
        "the waiting runs start once it clears"
    );
    host.stop().await;
}

/// A job given up after its attempts (a run killed mid-delivery every time) leaves nothing of
/// its delivery guard in the integration plugin's storage.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_given_up_leaves_no_delivery_guard_entry() {
    let chat = StandIn::start().await;
    let stuck = ScriptedModel::start(|_, _| None).await;
    let host = TestHost::start_with(HostOptions {
        overrides: overrides(&chat),
        model_base_url: Some(stuck.base_url.clone()),
        ..Default::default()
    })
    .await;
    let instance = setup(&host, Some(json!([]))).await;
    let plugin_id = host
        .app
        .store
        .get_instance(&instance)
        .await
        .unwrap()
        .unwrap()
        .plugin_id;
    let v = send(&host, &instance, "m9", "never answered").await;
    let wi = v["workItemId"].as_str().unwrap().to_string();
    let job = v["jobId"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if stuck.count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stuck.count(), 1, "the run reached the model");
    let data = host.stop_keep_data().await;
    // As a process killed mid-delivery on its last attempt leaves it: the guard entry written,
    // every attempt used.
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.path().join("nitejar.db"))
            .connect()
            .await
            .unwrap();
        let key = format!("{}{job}", nitejar_core::limits::DELIVERY_GUARD_PREFIX);
        sqlx::query(
            "INSERT INTO plugin_kv (plugin_id, key, value, updated_at) VALUES (?, ?, ?, 0)",
        )
        .bind(&plugin_id)
        .bind(&key)
        .bind(&b"{\"parts\":{\"0\":\"sending\"}}"[..])
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("UPDATE jobs SET attempts = ? WHERE id = ?")
            .bind(i64::from(nitejar_core::limits::JOB_ATTEMPTS))
            .bind(&job)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let host = TestHost::start_in(
        data,
        HostOptions {
            overrides: overrides(&chat),
            model_base_url: Some(stuck.base_url.clone()),
            ..Default::default()
        },
    )
    .await;
    let run = host.wait_for_run(&wi).await;
    assert_eq!(run["job"]["status"], "failed", "{run:#}");
    assert!(
        run["job"]["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("gave up"),
        "{run:#}"
    );
    let key = format!("{}{job}", nitejar_core::limits::DELIVERY_GUARD_PREFIX);
    let left = nitejar_sandbox::capabilities::kv::KvStore::get(&*host.app.store, &plugin_id, &key)
        .await
        .unwrap();
    assert_eq!(left, None, "the guard entry is removed");
    assert_eq!(sent_texts(&chat).len(), 0);
    host.stop().await;
}
