//! The hook dispatcher: runs an event's handlers in order with deadlines, a chain budget,
//! sequential validated mutations, blocking and failure policies, and a receipt per handler.
//!
//! Semantics (also in the README):
//! - handlers run in [`HookTable`] order, one at a time; each sees the event as changed by the
//!   handlers before it;
//! - a handler's deadline is its timeout capped by what is left of the event's chain budget, and
//!   it is enforced by the store's epoch deadline, so a looping handler is stopped, not abandoned;
//!   a handler that cannot start because less than [`MIN_HANDLER_BUDGET_MS`] of the budget is
//!   left gets a `budget_exceeded` receipt;
//! - a handler can only return the fields its hook allows (the WIT result types); values are
//!   validated here, and an invalid value counts as a failure of that handler;
//! - `block` exists only on the four blocking hooks and ends the chain;
//! - a failure (error, trap, timeout, limit, invalid value, or no budget left) of a `fail_closed`
//!   handler on a blocking hook blocks the operation; on an observe/mutate-only hook it ends the
//!   chain (the operation goes on with the changes made so far); a `fail_open` handler's failure
//!   is receipted and the chain continues with the next handler, so it can never cause a later
//!   `fail_closed` handler to be skipped.
//!
//! All calls of one run go to the instances of its [`RunScope`]: one instance per plugin per
//! run, taken from the prepared pool, dropped with the scope.

use super::table::{Handler, HookTable};
use super::{CrashGuard, FailPolicy};
use crate::receipts::Receipt;
use crate::runtime::bindings::exports::nitejar::plugin::hooks as wit;
use crate::runtime::instance::Warm;
use crate::runtime::{HookCall, HookInput, HookOutput, LoadedPlugin, PluginFailure, PluginRuntime};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest title a `work_item.pre_create` handler may set.
const MAX_TITLE_BYTES: usize = 512;
/// Longest session key or model name a handler may set.
const MAX_KEY_BYTES: usize = 512;
/// Budget a handler needs left to be started; below it the handler gets `budget_exceeded`
/// (a deadline shorter than a few epoch ticks could not be enforced precisely).
pub const MIN_HANDLER_BUDGET_MS: u64 = 5;

/// The plugin instances of one run (or one webhook ingress) and its correlation ids; the
/// instances are dropped with it.
pub struct RunScope {
    /// Correlation ids given to every call.
    pub ctx: wit::HookContext,
    /// One instance per plugin used so far.
    pub instances: RunInstances,
}

impl RunScope {
    /// An empty scope.
    pub fn new(ctx: wit::HookContext) -> RunScope {
        RunScope {
            ctx,
            instances: RunInstances(Vec::new()),
        }
    }

    /// Ends the run: its instances are torn down off this thread (never reused).
    pub fn finish(self, runtime: &PluginRuntime) {
        runtime.retire(self.instances.0.into_iter().map(|(_, w)| w).collect());
    }
}

/// The instances of one run, one per plugin version.
pub struct RunInstances(Vec<(Arc<LoadedPlugin>, Warm)>);

impl RunInstances {
    /// This run's instance of `plugin` (same version), taken from the pool or made on first
    /// use; a poisoned one (it trapped or timed out) is replaced. Blocking.
    pub fn get(
        &mut self,
        runtime: &PluginRuntime,
        plugin: &Arc<LoadedPlugin>,
    ) -> Result<&mut Warm, PluginFailure> {
        if runtime.is_tripped(plugin.id()) {
            return Err(PluginFailure::Disabled);
        }
        let pos = self.0.iter().position(|(p, _)| Arc::ptr_eq(p, plugin));
        match pos {
            Some(i) if !self.0[i].1.is_poisoned() => Ok(&mut self.0[i].1),
            Some(i) => {
                self.0[i].1 = runtime.checkout(plugin)?;
                Ok(&mut self.0[i].1)
            }
            None => {
                let warm = runtime.checkout(plugin)?;
                self.0.push((plugin.clone(), warm));
                Ok(&mut self.0.last_mut().expect("just pushed").1)
            }
        }
    }
}

/// Why an operation was blocked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    /// The plugin that blocked it.
    pub plugin_id: String,
    /// The handler's reason, or the failure that made a fail-closed handler block.
    pub reason: String,
    /// Whether a fail-closed handler's failure (not its decision) blocked it.
    pub by_failure: bool,
}

/// What one handler did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerOutcome {
    /// Plugin id.
    pub plugin_id: String,
    /// `ok`, `error`, `timeout`, `blocked` or `budget_exceeded` (as in its receipt).
    pub status: &'static str,
    /// Time the call took.
    pub duration_ms: u64,
}

/// The result of dispatching one event.
#[derive(Debug, Clone)]
pub struct Dispatched {
    /// The event with every accepted change applied.
    pub event: HookInput,
    /// Set when the operation must not happen.
    pub blocked: Option<Blocked>,
    /// Each handler's outcome, in order (handlers not reached are absent).
    pub handlers: Vec<HandlerOutcome>,
}

/// Runs hook chains; one per process.
pub struct HookDispatcher {
    runtime: Arc<PluginRuntime>,
    chain_budget_ms: u64,
    crash_guard: Arc<CrashGuard>,
}

impl HookDispatcher {
    /// A dispatcher with `chain_budget_ms` per event.
    pub fn new(
        runtime: Arc<PluginRuntime>,
        chain_budget_ms: u64,
        crash_guard: Arc<CrashGuard>,
    ) -> Self {
        HookDispatcher {
            runtime,
            chain_budget_ms,
            crash_guard,
        }
    }

    /// Dispatches `event` to its handlers in `table`. Blocking: plugin calls run on this thread.
    pub fn dispatch(
        &self,
        table: &HookTable,
        scope: &mut RunScope,
        event: HookInput,
    ) -> Dispatched {
        let name = event.name();
        let handlers = table.handlers(name);
        let mut out = Dispatched {
            event,
            blocked: None,
            handlers: Vec::with_capacity(handlers.len()),
        };
        let started = Instant::now();
        let budget = Duration::from_millis(self.chain_budget_ms);
        for (i, h) in handlers.iter().enumerate() {
            let left = budget.saturating_sub(started.elapsed()).as_millis() as u64;
            if left < MIN_HANDLER_BUDGET_MS {
                self.budget_exceeded(&handlers[i..], scope, &mut out);
                break;
            }
            let timeout_ms = h.timeout_ms.min(left);
            let span = tracing::debug_span!(
                "plugin.hook",
                plugin.id = %h.plugin.id(),
                plugin.version = %h.plugin.version(),
                plugin.hook = name.as_str(),
                plugin.status = tracing::field::Empty,
            );
            let _entered = span.enter();
            let mut call = match scope.instances.get(&self.runtime, &h.plugin) {
                Ok(warm) => self
                    .runtime
                    .invoke_hook(&h.plugin, warm, &scope.ctx, &out.event, timeout_ms),
                Err(f) => HookCall::failed(f),
            };
            let block_reason = match std::mem::replace(&mut call.result, Ok(HookOutput::Observed)) {
                Ok(output) => match apply(&mut out.event, output) {
                    Ok(block) => block,
                    Err(detail) => {
                        call.result = Err(PluginFailure::InvalidOutput { detail });
                        None
                    }
                },
                Err(f) => {
                    call.result = Err(f);
                    None
                }
            };
            let status = match (&call.result, &block_reason) {
                (Ok(_), Some(_)) => "blocked",
                (Ok(_), None) => "ok",
                (Err(f), _) => f.receipt_status(),
            };
            span.record("plugin.status", status);
            match &call.result {
                Ok(_) => {
                    self.crash_guard.record(h.plugin.id(), true);
                }
                // A call not made (crash-loop trip) is not another failure of the plugin.
                Err(PluginFailure::Disabled) => {}
                Err(_) => {
                    self.crash_guard.record(h.plugin.id(), false);
                }
            }
            let failed = call.result.as_ref().err().cloned();
            let effect = match (&failed, h.fail_policy, name.is_blocking()) {
                (None, _, _) if block_reason.is_some() => "blocked",
                (None, _, _) => "applied",
                (Some(_), FailPolicy::FailOpen, _) => "continued",
                (Some(_), FailPolicy::FailClosed, true) => "blocked",
                (Some(_), FailPolicy::FailClosed, false) => "chain_stopped",
            };
            self.runtime.hook_receipt(
                &h.plugin,
                name,
                &scope.ctx,
                &call,
                status,
                handler_detail(h, timeout_ms, effect),
            );
            out.handlers.push(HandlerOutcome {
                plugin_id: h.plugin.id().to_string(),
                status,
                duration_ms: call.duration.as_millis() as u64,
            });
            if let Some(reason) = block_reason {
                out.blocked = Some(Blocked {
                    plugin_id: h.plugin.id().to_string(),
                    reason,
                    by_failure: false,
                });
                break;
            }
            if let Some(f) = failed
                && h.fail_policy == FailPolicy::FailClosed
            {
                if name.is_blocking() {
                    out.blocked = Some(Blocked {
                        plugin_id: h.plugin.id().to_string(),
                        reason: format!("fail-closed handler failed: {f}"),
                        by_failure: true,
                    });
                }
                break;
            }
        }
        out
    }

    /// Receipts the handlers the budget left no time for; a fail-closed one on a blocking hook
    /// blocks the operation (a security check that could not run must not let it through).
    fn budget_exceeded(&self, rest: &[Handler], scope: &RunScope, out: &mut Dispatched) {
        let name = out.event.name();
        for h in rest {
            self.runtime.receipts().emit(
                Receipt::new(h.plugin.id(), "hook", "budget_exceeded")
                    .version(h.plugin.version())
                    .correlate(
                        scope.ctx.work_item_id.as_deref(),
                        scope.ctx.job_id.as_deref(),
                    )
                    .hook(Some(name.as_str()))
                    .duration(Duration::ZERO)
                    .detail(handler_detail(h, 0, "not_run")),
            );
            out.handlers.push(HandlerOutcome {
                plugin_id: h.plugin.id().to_string(),
                status: "budget_exceeded",
                duration_ms: 0,
            });
            if h.fail_policy == FailPolicy::FailClosed
                && name.is_blocking()
                && out.blocked.is_none()
            {
                out.blocked = Some(Blocked {
                    plugin_id: h.plugin.id().to_string(),
                    reason: format!(
                        "the event's chain budget of {} ms ran out before this fail-closed handler could run",
                        self.chain_budget_ms
                    ),
                    by_failure: true,
                });
            }
        }
    }
}

fn handler_detail(h: &Handler, timeout_ms: u64, effect: &str) -> serde_json::Value {
    serde_json::json!({
        "operation": h.event.as_str(),
        "priority": h.priority,
        "failPolicy": h.fail_policy,
        "timeoutMs": timeout_ms,
        "effect": effect,
    })
}

/// Applies a handler's output to the event after validating it. `Ok(Some(reason))` is a block;
/// `Err` says which value broke which rule (the handler then counts as failed, nothing applied).
pub fn apply(event: &mut HookInput, output: HookOutput) -> Result<Option<String>, String> {
    use wit::{
        ModelPreCallDecision as M, ResponsePreDeliverDecision as R, ToolPreExecDecision as T,
        WorkItemPreCreateDecision as W,
    };
    match (event, output) {
        (
            HookInput::WorkItemPostCreate(_)
            | HookInput::ModelPostCall(_)
            | HookInput::ResponsePostDeliver(_),
            HookOutput::Observed,
        ) => Ok(None),
        (HookInput::WorkItemPreCreate(_), HookOutput::WorkItemPreCreate(W::Block(r)))
        | (HookInput::ModelPreCall(_), HookOutput::ModelPreCall(M::Block(r)))
        | (HookInput::ToolPreExec(_), HookOutput::ToolPreExec(T::Block(r)))
        | (HookInput::ResponsePreDeliver(_), HookOutput::ResponsePreDeliver(R::Block(r))) => {
            Ok(Some(if r.trim().is_empty() {
                "blocked by plugin".into()
            } else {
                r
            }))
        }
        (HookInput::WorkItemPreCreate(e), HookOutput::WorkItemPreCreate(W::Proceed(p))) => {
            if let Some(t) = &p.title {
                text_rule("title", t, MAX_TITLE_BYTES)?;
            }
            if let Some(k) = &p.session_key {
                text_rule("session-key", k, MAX_KEY_BYTES)?;
            }
            if let Some(payload) = &p.payload {
                json_object_rule("payload", payload)?;
            }
            let w = &mut e.work_item;
            set(&mut w.title, p.title);
            set(&mut w.session_key, p.session_key);
            set(&mut w.payload, p.payload);
            Ok(None)
        }
        (HookInput::RunPrePrompt(e), HookOutput::RunPrePrompt(p)) => {
            if let Some(u) = &p.user_message
                && u.trim().is_empty()
            {
                return Err("user-message must not be empty".into());
            }
            set(&mut e.system_prompt, p.system_prompt);
            set(&mut e.user_message, p.user_message);
            Ok(None)
        }
        (HookInput::ModelPreCall(e), HookOutput::ModelPreCall(M::Proceed(p))) => {
            if let Some(m) = &p.model {
                text_rule("model", m, MAX_KEY_BYTES)?;
            }
            if let Some(t) = p.temperature
                && !(t.is_finite() && (0.0..=2.0).contains(&t))
            {
                return Err(format!("temperature {t} must be between 0.0 and 2.0"));
            }
            if p.max_tokens == Some(0) {
                return Err("max-tokens must be at least 1".into());
            }
            set(&mut e.model, p.model);
            if let Some(t) = p.temperature {
                e.temperature = t;
            }
            if let Some(m) = p.max_tokens {
                e.max_tokens = m;
            }
            Ok(None)
        }
        (HookInput::ToolPreExec(e), HookOutput::ToolPreExec(T::Proceed(p))) => {
            if let Some(i) = &p.tool_input {
                json_object_rule("tool-input", i)?;
            }
            set(&mut e.tool_input, p.tool_input);
            Ok(None)
        }
        (HookInput::ToolPostExec(e), HookOutput::ToolPostExec(p)) => {
            set(&mut e.tool_result.output, p.output);
            Ok(None)
        }
        (HookInput::ResponsePreDeliver(e), HookOutput::ResponsePreDeliver(R::Proceed(p))) => {
            if let Some(c) = &p.content
                && c.trim().is_empty()
            {
                return Err("content must not be empty (block the delivery to suppress it)".into());
            }
            set(&mut e.content, p.content);
            Ok(None)
        }
        (e, o) => Err(format!(
            "the output {o:?} does not belong to {}",
            e.name().as_str()
        )),
    }
}

fn set(field: &mut String, value: Option<String>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn text_rule(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn json_object_rule(field: &str, value: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(format!("{field} must be a JSON object")),
    }
}
