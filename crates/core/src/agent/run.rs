//! One run of a job (see the module docs of [`crate::agent`]).

use super::Runner;
use super::model::{ChatRequest, ModelSettings};
use super::tools::{Builtin, ToolCatalog, ToolTarget};
use crate::hooks::{ApplyHook, Dispatched, RunScope};
use crate::limits::{
    DEFAULT_TOOL_TIMEOUT_MS, DELIVERY_ATTEMPTS, DELIVERY_GUARD_PREFIX, JOB_ATTEMPTS,
};
use anyhow::{Context, anyhow};
use nitejar_sandbox::bindings::exports::nitejar::plugin::{hooks as h, integration, tools};
use nitejar_sandbox::runtime::{Correlation, LoadedPlugin, PluginFailure};
use nitejar_store::{AgentRow, DeliveryRow, JobEnd, JobRow, NewStep, WorkItemRow, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `e` is the database refusing a write for now (disk full, locked): the host's state,
/// not the job's, so the run is tried again instead of being recorded as failed.
pub fn database_refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<nitejar_store::DbError>()
            .is_some_and(nitejar_store::DbError::is_transient)
    })
}

/// Runs `job` (already claimed) to the end and records the outcome. An `Err` means the outcome
/// may not be recorded: the caller hands the job back ([`nitejar_store::Store::return_job`]).
/// The database refusing a write ([`database_refused`]) is never recorded as the job failing.
/// When `claim_next` is due at the end ([`super::ClaimNext::now`]) a run that ends well claims
/// the next queued job in the same round trip as its end, and returns it: the caller runs it
/// next.
pub async fn run_job(
    runner: &Arc<Runner>,
    job: JobRow,
    claim_next: super::ClaimNext<'_>,
) -> anyhow::Result<Option<JobRow>> {
    if job.attempts > i64::from(JOB_ATTEMPTS) {
        let msg = format!("gave up after {JOB_ATTEMPTS} attempts");
        // An attempt that stopped mid-delivery left its guard entry; nothing will read it now:
        // it goes with the end (read first, so nothing fails after the next job is claimed).
        let guard_key = format!("{DELIVERY_GUARD_PREFIX}{}", job.id);
        let plugin_id = match runner.store.get_work_item(&job.work_item_id).await? {
            Some(item) => runner
                .store
                .get_instance(&item.plugin_instance_id)
                .await?
                .map(|i| i.plugin_id),
            None => None,
        };
        let end = JobEnd {
            error: Some(&msg),
            forget: plugin_id.as_deref().map(|p| (p, guard_key.as_str())),
            claim_next: claim_next.now(),
            ..JobEnd::new("failed")
        };
        return Ok(runner.store.finish_job(&job, &end).await?);
    }
    // Only an earlier attempt can have settled the reply.
    if job.attempts > 1
        && let Some(d) = runner.store.get_delivery(&job.id).await?
        && (d.status == "delivered" || d.status == "blocked")
    {
        // The reply was settled by an earlier attempt: never post twice.
        let result = json!({ "delivery": d.status, "resumed": true }).to_string();
        let end = JobEnd {
            result_json: Some(&result),
            claim_next: claim_next.now(),
            ..JobEnd::new("done")
        };
        return Ok(runner.store.finish_job(&job, &end).await?);
    }
    // The work item became `running` with the claim.
    let mut run = match Run::prepare(runner, &job).await {
        Ok(r) => r,
        // The database refused a write (full, locked): the job goes back to the queue.
        Err(e) if database_refused(&e) => return Err(e),
        Err(e) => {
            let msg = format!("{e:#}");
            let end = JobEnd {
                error: Some(&msg),
                ..JobEnd::new("failed")
            };
            runner.store.finish_job(&job, &end).await?;
            return Err(e);
        }
    };
    let outcome = run.execute().await;
    // The run's plugin instances are torn down off the async threads.
    if let Some(scope) = run.scope.take() {
        scope.finish(&runner.runtime);
    }
    // The reply's settled state when nothing ran after the post: written with the end.
    let unsettled = run.unsettled.take();
    let guard_key = format!("{DELIVERY_GUARD_PREFIX}{}", job.id);
    let settle = JobEnd {
        delivery: unsettled.as_ref().map(|(row, _)| row),
        forget: unsettled
            .as_ref()
            .map(|(_, plugin_id)| (plugin_id.as_str(), guard_key.as_str())),
        ..JobEnd::new("done")
    };
    match outcome {
        Ok(result) => {
            let status = if result["delivery"] == "failed" {
                "failed"
            } else {
                "done"
            };
            let error = result["deliveryError"].as_str().map(str::to_string);
            let result = result.to_string();
            // The last steps are written with the end of the run (one round trip).
            let steps = run.take_steps();
            let end = JobEnd {
                status,
                steps: &steps,
                result_json: Some(&result),
                error: error.as_deref(),
                claim_next: claim_next.now(),
                ..settle
            };
            Ok(runner.store.finish_job(&job, &end).await?)
        }
        Err(e) if database_refused(&e) => Err(e),
        Err(e) => {
            let msg = format!("{e:#}");
            run.step(0, "note", json!({ "error": msg })).await;
            let steps = run.take_steps();
            let end = JobEnd {
                status: "failed",
                steps: &steps,
                error: Some(&msg),
                ..settle
            };
            runner.store.finish_job(&job, &end).await?;
            Err(e)
        }
    }
}

/// The state of one run.
struct Run {
    runner: Arc<Runner>,
    job: JobRow,
    item: WorkItemRow,
    agent: AgentRow,
    settings: ModelSettings,
    integration_type: String,
    instance_plugin_id: String,
    instance_config: String,
    catalog: ToolCatalog,
    /// The skills assigned to this run (by precedence) and their file names.
    skills: Vec<nitejar_store::SkillRow>,
    skill_files: Vec<(String, Vec<String>)>,
    /// The earlier exchanges of the conversation, oldest first, as chat messages.
    history: Vec<Value>,
    scope: Option<RunScope>,
    /// Steps recorded and not written yet (see [`Run::step`]).
    steps: std::sync::Mutex<Vec<NewStep>>,
    /// The reply's settled state (and the integration plugin's id, whose delivery guard entry
    /// goes with it) not written yet: see [`Run::settle_delivery`].
    unsettled: Option<(DeliveryRow, String)>,
}

/// The conversation before a run as chat messages, oldest first: `turns` come newest first;
/// reading stops at a `/clear` (the run after it starts afresh) and before the exchange that
/// would pass `max_bytes` (the oldest are dropped).
pub fn conversation(turns: &[nitejar_store::SessionTurn], max_bytes: usize) -> Vec<Value> {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for t in turns {
        if t.command.as_deref() == Some(crate::limits::CLEAR_COMMAND) {
            break;
        }
        bytes += t.text.len() + t.reply.as_deref().map_or(0, str::len);
        if bytes > max_bytes {
            break;
        }
        kept.push(t);
    }
    let mut messages = Vec::new();
    for t in kept.into_iter().rev() {
        messages.push(json!({ "role": "user", "content": t.text }));
        if let Some(r) = &t.reply {
            messages.push(json!({ "role": "assistant", "content": r }));
        }
    }
    messages
}

impl Run {
    async fn prepare(runner: &Arc<Runner>, job: &JobRow) -> anyhow::Result<Run> {
        // The work item, its instance and the agent: one round trip.
        let inputs = runner
            .store
            .run_inputs(&job.work_item_id, &job.agent_id)
            .await?;
        let item = inputs
            .item
            .ok_or_else(|| anyhow!("work item {} is gone", job.work_item_id))?;
        let agent = inputs
            .agent
            .ok_or_else(|| anyhow!("agent {} is gone", job.agent_id))?;
        let settings: ModelSettings = serde_json::from_str(&agent.model_json)
            .with_context(|| format!("agent {}'s model settings are unreadable", agent.name))?;
        let instance = inputs
            .instance
            .ok_or_else(|| anyhow!("integration instance {} is gone", item.plugin_instance_id))?;
        let skills = crate::skills::resolve(
            &runner.skills,
            &runner.registry,
            &agent,
            &instance.integration_type,
        )
        .await?;
        let mut skill_files = Vec::new();
        for s in &skills {
            skill_files.push((
                s.skill_id.clone(),
                runner.store.skill_file_paths(&s.skill_id).await?,
            ));
        }
        let plugins = runner.registry.all();
        let catalog = ToolCatalog::build(&plugins, !skills.is_empty());
        let serving = plugins.iter().filter(|p| p.serves_runs()).count();
        let history = if item.command.as_deref() == Some(crate::limits::CLEAR_COMMAND) {
            vec![]
        } else {
            let turns = runner
                .store
                .session_history(&item, crate::limits::SESSION_HISTORY_TURNS)
                .await?;
            conversation(&turns, crate::limits::SESSION_HISTORY_MAX_BYTES)
        };
        // Room for an instance of every plugin the run may call (see
        // `PluginRuntime::reserve_instances`): waits only on a pool sized for fewer plugins.
        let room = runner.runtime.reserve_instances(serving).await;
        let scope = RunScope::reserved(
            h::HookContext {
                plugin_instance_id: Some(instance.id.clone()),
                work_item_id: Some(item.id.clone()),
                job_id: Some(job.id.clone()),
                agent_id: Some(agent.id.clone()),
            },
            room,
        );
        Ok(Run {
            runner: runner.clone(),
            job: job.clone(),
            integration_type: instance.integration_type.clone(),
            instance_plugin_id: instance.plugin_id.clone(),
            instance_config: instance.config_json.clone(),
            item,
            agent,
            settings,
            catalog,
            skills,
            skill_files,
            history,
            scope: Some(scope),
            steps: std::sync::Mutex::new(Vec::new()),
            unsettled: None,
        })
    }

    /// Runs `f` with the scope on a blocking thread (plugin calls block).
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Runner, &mut RunScope) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let mut scope = self.scope.take().context("run scope lost")?;
        let runner = self.runner.clone();
        let (scope, out) = tokio::task::spawn_blocking(move || {
            let out = f(&runner, &mut scope);
            (scope, out)
        })
        .await
        .context("a plugin call task failed")?;
        self.scope = Some(scope);
        Ok(out)
    }

    /// Dispatches a hook event (no thread hop when nobody listens).
    async fn dispatch<E: ApplyHook>(&mut self, event: E) -> anyhow::Result<Dispatched<E>> {
        let table = self.runner.registry.hook_table();
        if !table.has(E::NAME) {
            return Ok(Dispatched {
                event,
                blocked: None,
                handlers: Vec::new(),
            });
        }
        self.blocking(move |runner, scope| runner.dispatcher.dispatch(&table, scope, event))
            .await
    }

    /// Records a step of this run with the time it happened. Steps are written together (one
    /// statement) before a network model call, before the reply is posted, and with the end of
    /// the run: a step is a few microseconds of work, its own write would be most of a run.
    async fn step(&self, turn: u32, kind: &str, detail: Value) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.push(NewStep {
                turn,
                kind: kind.to_string(),
                detail,
                created_at: now_ms(),
            });
        }
    }

    /// The steps recorded since the last write, taken to be written with another write of
    /// the run (its delivery, its end).
    fn take_steps(&self) -> Vec<NewStep> {
        match self.steps.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(_) => Vec::new(),
        }
    }

    /// Writes the steps recorded since the last write; a failure is logged (steps describe a
    /// run, they do not decide it).
    async fn flush_steps(&self) {
        let steps = self.take_steps();
        if steps.is_empty() {
            return;
        }
        if let Err(e) = self
            .runner
            .store
            .insert_steps(&self.job.id, self.job.attempts, &steps)
            .await
        {
            tracing::error!(job_id = %self.job.id, "recording {} run steps failed: {e}", steps.len());
        }
    }

    fn tool_context(&self) -> tools::ToolContext {
        tools::ToolContext {
            work_item_id: self.item.id.clone(),
            job_id: self.job.id.clone(),
            agent_id: self.agent.id.clone(),
            integration_type: self.integration_type.clone(),
            plugin_instance_id: self.item.plugin_instance_id.clone(),
        }
    }

    fn wit_work_item(&self) -> h::WorkItem {
        h::WorkItem {
            id: self.item.id.clone(),
            title: self.item.title.clone(),
            text: self.item.text.clone(),
            session_key: self.item.session_key.clone(),
            source_ref: self.item.source_ref.clone(),
            payload: self.item.payload_json.clone(),
            status: "running".into(),
            created_at_ms: self.item.created_at.max(0) as u64,
        }
    }

    async fn system_prompt(&mut self) -> anyhow::Result<String> {
        let mut prompt = self.agent.system_prompt.clone();
        if let Some(section) =
            crate::skills::prompt_section(&self.skills, crate::limits::MAX_SKILLS_PROMPT_BYTES)
        {
            prompt.push_str("\n\n");
            prompt.push_str(&section);
        }
        let providers = self.catalog.providers();
        if providers.is_empty() {
            return Ok(prompt);
        }
        let ctx = self.tool_context();
        let timeout = self.runner.hook_timeout_ms;
        let sections = self
            .blocking(move |runner, scope| {
                providers
                    .iter()
                    .filter_map(|p| {
                        let warm = scope.instances.get(&runner.runtime, p).ok()?;
                        runner.runtime.prompt_section(p, warm, &ctx, timeout).ok()?
                    })
                    .collect::<Vec<String>>()
            })
            .await?;
        for s in sections.iter().filter(|s| !s.trim().is_empty()) {
            prompt.push_str("\n\n");
            prompt.push_str(s.trim());
        }
        Ok(prompt)
    }

    /// The plugin and instance (config decrypted) this run answers on; `None` when the plugin
    /// is not enabled.
    fn integration(&self) -> anyhow::Result<Option<(Arc<LoadedPlugin>, integration::Instance)>> {
        let Some(plugin) = self
            .runner
            .registry
            .get(&self.instance_plugin_id)
            .filter(|p| p.descriptor(&self.integration_type).is_some())
        else {
            return Ok(None);
        };
        let config = crate::instances::decrypt_config(
            &self.runner.secrets,
            &self.instance_config,
            plugin.descriptor(&self.integration_type),
        )
        .map_err(|e| anyhow!("the instance configuration could not be decrypted: {e}"))?;
        let instance = integration::Instance {
            id: self.item.plugin_instance_id.clone(),
            integration_type: self.integration_type.clone(),
            config,
        };
        Ok(Some((plugin, instance)))
    }

    /// Tells the platform the agent is on it (`acknowledge-receipt`: a reaction, "typing").
    /// Best effort: a failure is receipted by the runtime and the run goes on.
    async fn acknowledge(&mut self) -> anyhow::Result<()> {
        let Some((plugin, instance)) = self.integration()? else {
            return Ok(());
        };
        let corr = Correlation {
            work_item_id: Some(self.item.id.clone()),
            job_id: Some(self.job.id.clone()),
        };
        let context = self.item.response_context_json.clone();
        let timeout = self.runner.integration_timeout_ms;
        let r = self
            .blocking(move |runner, scope| {
                let warm = scope.instances.get(&runner.runtime, &plugin)?;
                runner.runtime.acknowledge_receipt(
                    &plugin,
                    warm,
                    &corr,
                    &instance,
                    context.as_deref(),
                    timeout,
                )
            })
            .await?;
        if let Err(f) = r {
            tracing::warn!(job.id = %self.job.id, "acknowledge-receipt failed: {f}");
        }
        Ok(())
    }

    async fn execute(&mut self) -> anyhow::Result<Value> {
        self.acknowledge().await?;
        if self.item.command.as_deref() == Some(crate::limits::CLEAR_COMMAND) {
            // `/clear`: the conversation starts afresh; later runs read nothing before this
            // work item. Confirmed without calling the model.
            let content = crate::limits::CLEAR_REPLY.to_string();
            self.step(
                0,
                "note",
                json!({ "sessionCleared": self.item.session_key }),
            )
            .await;
            self.step(0, "final", json!({ "content": content, "hitLimit": false }))
                .await;
            let delivery = self.deliver(content.clone(), false).await?;
            return Ok(json!({
                "finalResponse": content,
                "hitLimit": false,
                "sessionCleared": true,
                "delivery": delivery.status,
                "deliveryError": delivery.error,
            }));
        }
        // run.pre_prompt
        let system = self.system_prompt().await?;
        let d = self
            .dispatch(h::RunPrePromptEvent {
                system_prompt: system,
                user_message: self.item.text.clone(),
                agent: h::AgentInfo {
                    id: self.agent.id.clone(),
                    name: self.agent.name.clone(),
                    model: self.settings.model.clone(),
                },
                work_item: self.wit_work_item(),
            })
            .await?;
        let prompt = d.event;
        self.step(
            0,
            "prompt",
            json!({
                "systemPrompt": prompt.system_prompt, "userMessage": prompt.user_message,
                "historyMessages": self.history.len(), "hooks": d.handlers,
            }),
        )
        .await;
        let mut messages = vec![json!({ "role": "system", "content": prompt.system_prompt })];
        messages.append(&mut self.history);
        messages.push(json!({ "role": "user", "content": prompt.user_message }));
        let tools = self.catalog.openai_tools();
        let mut final_response: Option<String> = None;
        let mut last_content: Option<String> = None;
        let mut hit_limit = false;
        let mut stopped_by: Option<Value> = None;
        let max_turns = self.settings.max_turns;
        let mut turns_used = 0;
        for turn in 1..=max_turns {
            turns_used = turn;
            // model.pre_call (the conversation is serialized for it only when someone listens)
            let listening = self
                .runner
                .registry
                .hook_table()
                .has(crate::hooks::HookName::ModelPreCall);
            let as_json = |v: &[Value]| {
                if listening {
                    serde_json::to_string(v).unwrap_or_default()
                } else {
                    String::new()
                }
            };
            let d = self
                .dispatch(h::ModelPreCallEvent {
                    model: self.settings.model.clone(),
                    temperature: self.settings.temperature,
                    max_tokens: self.settings.max_tokens,
                    messages: as_json(&messages),
                    tools: as_json(&tools),
                    turn,
                })
                .await?;
            let call = d.event;
            if let Some(b) = d.blocked {
                self.step(turn, "note", json!({ "modelCallBlocked": b }))
                    .await;
                stopped_by = Some(json!(b));
                final_response = last_content.clone();
                break;
            }
            let started = Instant::now();
            let req = ChatRequest {
                model: &call.model,
                temperature: call.temperature,
                max_tokens: call.max_tokens,
                messages: &messages,
                tools: &tools,
            };
            if self.settings.provider != super::model::Provider::Offline {
                // A network call takes a while: what the run did so far is visible meanwhile.
                self.flush_steps().await;
            }
            let reply = self
                .runner
                .models
                .complete(self.settings.provider, &req)
                .await?;
            let duration_ms = started.elapsed().as_millis() as u64;
            self.step(
                turn,
                "model_call",
                json!({
                    "model": call.model, "temperature": call.temperature, "maxTokens": call.max_tokens,
                    "durationMs": duration_ms, "usage": reply.usage, "content": reply.content,
                    "toolCalls": reply.tool_calls, "hooks": d.handlers,
                }),
            )
            .await;
            // model.post_call
            self.dispatch(h::ModelPostCallEvent {
                response: reply.raw.to_string(),
                model: call.model.clone(),
                turn,
                duration_ms,
                usage: h::Usage {
                    prompt_tokens: reply.usage.prompt_tokens,
                    completion_tokens: reply.usage.completion_tokens,
                    cost_usd: None,
                },
            })
            .await?;
            if reply.content.is_some() {
                last_content = reply.content.clone();
            }
            if reply.tool_calls.is_empty() {
                final_response = reply.content;
                break;
            }
            messages.push(json!({
                "role": "assistant",
                "content": reply.content,
                "tool_calls": reply.tool_calls.iter().map(|c| json!({
                    "id": c.id, "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })).collect::<Vec<_>>(),
            }));
            for call in &reply.tool_calls {
                let output = self.tool_call(turn, call).await?;
                messages
                    .push(json!({ "role": "tool", "tool_call_id": call.id, "content": output }));
            }
            if turn == max_turns {
                hit_limit = true;
            }
        }
        let content = final_response
            .or(last_content)
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| {
                if hit_limit {
                    format!("I stopped after {max_turns} turns without a final answer.")
                } else {
                    "I have no answer to give.".into()
                }
            });
        self.step(
            turns_used,
            "final",
            json!({ "content": content, "hitLimit": hit_limit, "stoppedBy": stopped_by }),
        )
        .await;
        let delivery = self.deliver(content.clone(), hit_limit).await?;
        Ok(json!({
            "finalResponse": content,
            "hitLimit": hit_limit,
            "stoppedBy": stopped_by,
            "delivery": delivery.status,
            "deliveryError": delivery.error,
        }))
    }

    /// One tool call with its two hooks; returns the output text given to the model.
    async fn tool_call(
        &mut self,
        turn: u32,
        call: &super::model::ToolCall,
    ) -> anyhow::Result<String> {
        let input = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(v @ Value::Object(_)) => v.to_string(),
            _ => {
                let out = format!(
                    "error: the arguments of {} are not a JSON object",
                    call.name
                );
                self.step(turn, "tool_call", json!({ "tool": call.name, "toolCallId": call.id, "input": call.arguments, "output": out, "isError": true }))
                    .await;
                return Ok(out);
            }
        };
        // tool.pre_exec
        let d = self
            .dispatch(h::ToolPreExecEvent {
                tool_name: call.name.clone(),
                tool_input: input,
                tool_call_id: call.id.clone(),
                turn,
            })
            .await?;
        let pre_hooks = d.handlers;
        let pre = d.event;
        if let Some(b) = d.blocked {
            let out = format!("blocked by plugin {}: {}", b.plugin_id, b.reason);
            self.step(
                turn,
                "tool_call",
                json!({
                    "tool": call.name, "toolCallId": call.id, "input": pre.tool_input,
                    "output": out, "isError": true, "blocked": b, "hooks": pre_hooks,
                }),
            )
            .await;
            return Ok(out);
        }
        let started = Instant::now();
        let (output, is_error) = match self.catalog.find(&call.name).map(|e| e.target.clone()) {
            None => (format!("error: there is no tool named {}", call.name), true),
            Some(ToolTarget::Builtin(Builtin::UseSkill)) => crate::skills::use_skill(
                &self.skills,
                &self.skill_files,
                &serde_json::from_str(&pre.tool_input).unwrap_or(Value::Null),
            ),
            Some(ToolTarget::Builtin(b)) => {
                b.run(&serde_json::from_str(&pre.tool_input).unwrap_or(Value::Null))
            }
            Some(ToolTarget::Plugin(p)) => {
                let ctx = self.tool_context();
                let name = call.name.clone();
                let input = pre.tool_input.clone();
                let result = self
                    .blocking(move |runner, scope| {
                        let warm = scope.instances.get(&runner.runtime, &p)?;
                        runner.runtime.call_tool(
                            &p,
                            warm,
                            &ctx,
                            &name,
                            &input,
                            DEFAULT_TOOL_TIMEOUT_MS,
                        )
                    })
                    .await?;
                match result {
                    Ok(o) => (o.output, o.is_error),
                    Err(f) => (format!("error: the tool failed ({})", f.kind()), true),
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        // tool.post_exec
        let d = self
            .dispatch(h::ToolPostExecEvent {
                tool_name: call.name.clone(),
                tool_input: pre.tool_input.clone(),
                tool_call_id: call.id.clone(),
                tool_result: h::ToolResult { output, is_error },
                duration_ms,
                turn,
            })
            .await?;
        let post = d.event;
        self.step(turn, "tool_call", json!({
            "tool": call.name, "toolCallId": call.id, "input": pre.tool_input,
            "output": post.tool_result.output, "isError": post.tool_result.is_error,
            "durationMs": duration_ms, "hooks": { "preExec": pre_hooks, "postExec": d.handlers },
        }))
        .await;
        Ok(post.tool_result.output)
    }

    /// Settles the reply: its final state is recorded and the integration's delivery-guard
    /// entry for this job (`nitejar/delivery/<job id>` in its kv, see the SDK's `delivery`
    /// module) removed, in one round trip with the steps not written yet; once the outcome is
    /// recorded the job never posts again, so the entry is no longer needed. The write is left
    /// to the end of the run ([`run_job`] writes it with the job's end) unless something runs
    /// in between: a `response.post_deliver` handler writes it first ([`Run::post_deliver`]).
    /// Either way nothing else happens between the post and the write, so a crash there leaves
    /// `posting` exactly as before, and the next attempt asks the delivery guard.
    fn settle_delivery(&mut self, row: &DeliveryRow, plugin_id: &str) {
        self.unsettled = Some((row.clone(), plugin_id.to_string()));
    }

    /// Writes the reply's settled state now (see [`Run::settle_delivery`]).
    async fn write_settled(&mut self) -> anyhow::Result<()> {
        let Some((row, plugin_id)) = self.unsettled.take() else {
            return Ok(());
        };
        let key = format!("{DELIVERY_GUARD_PREFIX}{}", self.job.id);
        self.runner
            .store
            .record_delivery(
                &row,
                self.job.attempts,
                &self.take_steps(),
                Some((&plugin_id, &key)),
            )
            .await?;
        Ok(())
    }

    /// `response.post_deliver` with the recorded outcome, whatever it is: `delivered` (with the
    /// platform's id), or not delivered with the error prefixed by the status (`failed: ...`,
    /// `blocked: ...`, `unsupported: ...`), so a handler tells them apart. A settled state not
    /// written yet is written first: a handler may take time, or crash the process.
    async fn post_deliver(&mut self, content: String, row: &DeliveryRow) -> anyhow::Result<()> {
        let table = self.runner.registry.hook_table();
        if !table.has(crate::hooks::HookName::ResponsePostDeliver) {
            return Ok(());
        }
        self.write_settled().await?;
        let delivered = row.status == "delivered";
        let delivery = h::DeliveryResult {
            delivered,
            external_id: row.external_id.clone(),
            error: (!delivered).then(|| {
                format!(
                    "{}: {}",
                    row.status,
                    row.error.as_deref().unwrap_or("not delivered")
                )
            }),
        };
        self.dispatch(h::ResponsePostDeliverEvent {
            content,
            delivery,
            integration_type: self.integration_type.clone(),
            plugin_instance_id: self.item.plugin_instance_id.clone(),
            work_item_id: self.item.id.clone(),
        })
        .await?;
        Ok(())
    }

    /// `response.pre_deliver`, post-response with retries, `response.post_deliver`.
    async fn deliver(&mut self, content: String, hit_limit: bool) -> anyhow::Result<DeliveryRow> {
        // An earlier run of this job (before a restart) may have handed the reply to the
        // platform without recording the answer (`posting`): its attempts count on, and the
        // integration's delivery guard (keyed by the job id) decides what to send again.
        let earlier = if self.job.attempts > 1 {
            self.runner.store.get_delivery(&self.job.id).await?
        } else {
            None
        };
        let interrupted = earlier.as_ref().is_some_and(|d| d.status == "posting");
        let mut row = DeliveryRow {
            job_id: self.job.id.clone(),
            work_item_id: self.item.id.clone(),
            status: "pending".into(),
            content: None,
            attempts: earlier.as_ref().map_or(0, |d| d.attempts),
            external_id: None,
            error: None,
            created_at: earlier.as_ref().map_or_else(now_ms, |d| d.created_at),
            updated_at: now_ms(),
        };
        if interrupted {
            tracing::warn!(
                job.id = %self.job.id,
                "an earlier attempt to post this reply was interrupted; the integration checks what reached the platform"
            );
        }
        let d = self
            .dispatch(h::ResponsePreDeliverEvent {
                content,
                integration_type: self.integration_type.clone(),
                plugin_instance_id: self.item.plugin_instance_id.clone(),
                work_item_id: self.item.id.clone(),
                streaming: false,
                hit_limit,
            })
            .await?;
        let pre = d.event;
        row.content = Some(pre.content.clone());
        if let Some(b) = d.blocked {
            row.status = "blocked".into();
            row.error = Some(format!("blocked by plugin {}: {}", b.plugin_id, b.reason));
            self.runner.store.upsert_delivery(&row).await?;
            self.post_deliver(pre.content, &row).await?;
            return Ok(row);
        }
        let Some((plugin, instance)) = self.integration()? else {
            row.status = "failed".into();
            row.error = Some(format!(
                "the plugin providing {} is not enabled",
                self.integration_type
            ));
            self.runner.store.upsert_delivery(&row).await?;
            self.post_deliver(pre.content, &row).await?;
            return Ok(row);
        };
        let options = integration::PostOptions {
            hit_limit,
            idempotency_key: Some(self.job.id.clone()),
        };
        let corr = Correlation {
            work_item_id: Some(self.item.id.clone()),
            job_id: Some(self.job.id.clone()),
        };
        let timeout = self.runner.integration_timeout_ms;
        let mut result = None;
        for attempt in 1..=DELIVERY_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            // Recorded before the post, with the steps so far: a crash from here on leaves
            // `posting` (and the steps), which the next run of the job sees.
            row.attempts += 1;
            row.status = "posting".into();
            self.runner
                .store
                .record_delivery(&row, self.job.attempts, &self.take_steps(), None)
                .await?;
            let (p, i, c, rc, o, co) = (
                plugin.clone(),
                instance.clone(),
                pre.content.clone(),
                self.item.response_context_json.clone(),
                options.clone(),
                corr.clone(),
            );
            let r = self
                .blocking(move |runner, scope| {
                    let warm = scope.instances.get(&runner.runtime, &p)?;
                    runner
                        .runtime
                        .post_response(&p, warm, &co, &i, &c, rc.as_deref(), &o, timeout)
                })
                .await?;
            match r {
                Ok(res) if res.delivered => {
                    result = Some(res);
                    break;
                }
                Ok(res) => {
                    row.error = Some(
                        res.detail
                            .clone()
                            .unwrap_or_else(|| "the platform did not accept the reply".into()),
                    );
                }
                Err(PluginFailure::PluginError { code, message, .. })
                    if code == "not_implemented" =>
                {
                    row.status = "unsupported".into();
                    row.error = Some(format!("the integration cannot post replies: {message}"));
                    self.settle_delivery(&row, plugin.id());
                    self.post_deliver(pre.content, &row).await?;
                    return Ok(row);
                }
                Err(PluginFailure::PluginError {
                    retryable: false,
                    code,
                    message,
                }) => {
                    row.error = Some(format!("{code}: {message}"));
                    break;
                }
                Err(f) => row.error = Some(f.to_string()),
            }
            row.status = "pending".into();
            self.runner.store.upsert_delivery(&row).await?;
        }
        match &result {
            Some(res) => {
                row.status = "delivered".into();
                row.external_id = res.external_id.clone();
                row.error = None;
            }
            None => row.status = "failed".into(),
        }
        self.settle_delivery(&row, plugin.id());
        self.post_deliver(pre.content, &row).await?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::conversation;
    use nitejar_store::SessionTurn;
    use serde_json::json;

    fn turn(text: &str, command: Option<&str>, reply: Option<&str>) -> SessionTurn {
        SessionTurn {
            work_item_id: text.into(),
            text: text.into(),
            command: command.map(str::to_string),
            reply: reply.map(str::to_string),
        }
    }

    #[test]
    fn history_is_oldest_first_stops_at_clear_and_drops_the_oldest_to_fit() {
        // Newest first, as the store returns them.
        let turns = [
            turn("c", None, None),
            turn("b", None, Some("B")),
            turn("/clear", Some("clear"), Some("cleared")),
            turn("a", None, Some("A")),
        ];
        assert_eq!(
            conversation(&turns, 1000),
            [
                json!({"role": "user", "content": "b"}),
                json!({"role": "assistant", "content": "B"}),
                json!({"role": "user", "content": "c"}),
            ]
        );
        // 3 bytes fit "c" and "b"+"B" (1 + 2); 2 bytes only the newest.
        assert_eq!(conversation(&turns, 3).len(), 3);
        assert_eq!(
            conversation(&turns, 2),
            [json!({"role": "user", "content": "c"})]
        );
        assert!(conversation(&turns[2..], 1000).is_empty());
    }
}
