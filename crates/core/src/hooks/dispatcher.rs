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
//!
//! The chain rules ([`run_chain`]) are generic over the event (each event is its own type, so
//! a dispatch returns the event it was given, typed) and over how handlers are reached
//! ([`HookCaller`]): the sandbox in production, a fake in this module's unit tests.

use super::events::ApplyHook;
use super::table::{Handler, HandlerPlugin, HookTable};
use super::{CrashGuard, FailPolicy, HookName};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks as wit;
use nitejar_sandbox::hooks::HookEvent;
use nitejar_sandbox::instance::Warm;
use nitejar_sandbox::receipts::HandlerDetail;
use nitejar_sandbox::runtime::{
    HookCall, InstanceReservation, LoadedPlugin, PluginFailure, PluginRuntime,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The room in the instance pool reserved for them, if any (see
    /// [`PluginRuntime::reserve_instances`]).
    room: Option<InstanceReservation>,
}

impl RunScope {
    /// An empty scope.
    pub fn new(ctx: wit::HookContext) -> RunScope {
        RunScope {
            ctx,
            instances: RunInstances(Vec::new()),
            room: None,
        }
    }

    /// An empty scope holding `room` in the instance pool until it finishes.
    pub fn reserved(ctx: wit::HookContext, room: InstanceReservation) -> RunScope {
        RunScope {
            room: Some(room),
            ..RunScope::new(ctx)
        }
    }

    /// Ends the run: its instances are torn down off this thread (never reused) and the pools
    /// it drew on topped up there (see [`PluginRuntime::retire_run`]), then its room in the
    /// pool is given back.
    pub fn finish(self, runtime: &PluginRuntime) {
        runtime.retire_run(self.instances.0);
        drop(self.room);
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
pub struct Dispatched<E> {
    /// The event with every accepted change applied.
    pub event: E,
    /// Set when the operation must not happen.
    pub blocked: Option<Blocked>,
    /// Each handler's outcome, in order (handlers not reached are absent).
    pub handlers: Vec<HandlerOutcome>,
}

/// How the chain reaches its handlers and records what they did: the sandbox in production
/// ([`HookDispatcher`]), a fake in unit tests.
pub trait HookCaller<P> {
    /// Calls `plugin`'s handler of `E` with `event`, stopped after `timeout_ms`.
    fn call<E: HookEvent>(&mut self, plugin: &P, event: &E, timeout_ms: u64)
    -> HookCall<E::Output>;
    /// Writes the receipt of one handler (`call` is empty for a handler never started).
    fn receipt<O>(
        &mut self,
        plugin: &P,
        hook: HookName,
        call: &HookCall<O>,
        status: &'static str,
        handler: HandlerDetail,
    );
}

/// Runs `event` through `handlers` (already in dispatch order) under a chain budget of
/// `budget_ms`, with the rules in this module's documentation. Every handler's success or
/// failure is reported to `guard`.
pub fn run_chain<P, E, C>(
    handlers: &[Handler<P>],
    event: E,
    budget_ms: u64,
    guard: &CrashGuard,
    caller: &mut C,
) -> Dispatched<E>
where
    P: HandlerPlugin,
    E: ApplyHook,
    C: HookCaller<P>,
{
    let name = E::NAME;
    let mut out = Dispatched {
        event,
        blocked: None,
        handlers: Vec::with_capacity(handlers.len()),
    };
    let started = Instant::now();
    let budget = Duration::from_millis(budget_ms);
    for (i, h) in handlers.iter().enumerate() {
        let left = budget.saturating_sub(started.elapsed()).as_millis() as u64;
        if left < MIN_HANDLER_BUDGET_MS {
            budget_exceeded(&handlers[i..], budget_ms, caller, &mut out);
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
        // A held handler is never called: it fails at once, and being fail-closed on a
        // blocking hook, blocks (see `Handler::held`).
        let mut call = if h.held {
            HookCall::failed(PluginFailure::Disabled)
        } else {
            caller.call(&h.plugin, &out.event, timeout_ms)
        };
        let mut block_reason = None;
        // The output is applied (or refused) here; the receipt records the outcome.
        let applied = match std::mem::replace(&mut call.result, Err(PluginFailure::Disabled)) {
            Ok(output) => match out.event.apply(output) {
                Ok(block) => {
                    block_reason = block;
                    Ok(())
                }
                Err(detail) => Err(PluginFailure::InvalidOutput { detail }),
            },
            Err(f) => Err(f),
        };
        let call = call.with_result(applied);
        let status = match (&call.result, &block_reason) {
            (Ok(_), Some(_)) => "blocked",
            (Ok(_), None) => "ok",
            (Err(f), _) => f.receipt_status(),
        };
        span.record("plugin.status", status);
        match &call.result {
            Ok(_) => {
                guard.record(h.plugin.id(), true);
            }
            // Only the plugin's own faults count: not a call the crash guard refused, not the
            // host at capacity (`busy`: capacity is never blamed on a plugin), not an error the
            // handler returned on purpose.
            Err(f) if f.is_crash() => {
                guard.record(h.plugin.id(), false);
            }
            Err(_) => {}
        }
        let failed = call.result.as_ref().err().cloned();
        let effect = match (&failed, h.fail_policy, name.is_blocking()) {
            (None, _, _) if block_reason.is_some() => "blocked",
            (None, _, _) => "applied",
            (Some(_), FailPolicy::FailOpen, _) => "continued",
            (Some(_), FailPolicy::FailClosed, true) => "blocked",
            (Some(_), FailPolicy::FailClosed, false) => "chain_stopped",
        };
        caller.receipt(
            &h.plugin,
            name,
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
                let reason = if h.held {
                    format!(
                        "{} is held: crash-loop protection disabled it, and its fail-closed {} handler blocks this until an operator enables, disables or uninstalls it",
                        h.plugin.id(),
                        name.as_str()
                    )
                } else {
                    format!("fail-closed handler failed: {f}")
                };
                out.blocked = Some(Blocked {
                    plugin_id: h.plugin.id().to_string(),
                    reason,
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
fn budget_exceeded<P: HandlerPlugin, E: HookEvent, C: HookCaller<P>>(
    rest: &[Handler<P>],
    budget_ms: u64,
    caller: &mut C,
    out: &mut Dispatched<E>,
) {
    let name = E::NAME;
    for h in rest {
        caller.receipt(
            &h.plugin,
            name,
            &HookCall::<()>::finished(Ok(()), Duration::ZERO),
            "budget_exceeded",
            handler_detail(h, 0, "not_run"),
        );
        out.handlers.push(HandlerOutcome {
            plugin_id: h.plugin.id().to_string(),
            status: "budget_exceeded",
            duration_ms: 0,
        });
        if h.fail_policy == FailPolicy::FailClosed && name.is_blocking() && out.blocked.is_none() {
            out.blocked = Some(Blocked {
                plugin_id: h.plugin.id().to_string(),
                reason: format!(
                    "the event's chain budget of {budget_ms} ms ran out before this fail-closed handler could run"
                ),
                by_failure: true,
            });
        }
    }
}

fn handler_detail<P>(h: &Handler<P>, timeout_ms: u64, effect: &'static str) -> HandlerDetail {
    HandlerDetail {
        priority: h.priority,
        fail_policy: h.fail_policy,
        timeout_ms,
        effect,
        held: h.held,
    }
}

/// Runs hook chains in the sandbox; one per process.
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
    pub fn dispatch<E: ApplyHook>(
        &self,
        table: &HookTable,
        scope: &mut RunScope,
        event: E,
    ) -> Dispatched<E> {
        let mut caller = SandboxCaller {
            runtime: &self.runtime,
            scope,
        };
        run_chain(
            table.handlers(E::NAME),
            event,
            self.chain_budget_ms,
            &self.crash_guard,
            &mut caller,
        )
    }
}

/// Handlers reached through the sandbox, in the run's instances.
struct SandboxCaller<'a> {
    runtime: &'a PluginRuntime,
    scope: &'a mut RunScope,
}

impl HookCaller<Arc<LoadedPlugin>> for SandboxCaller<'_> {
    fn call<E: HookEvent>(
        &mut self,
        plugin: &Arc<LoadedPlugin>,
        event: &E,
        timeout_ms: u64,
    ) -> HookCall<E::Output> {
        match self.scope.instances.get(self.runtime, plugin) {
            Ok(warm) => self
                .runtime
                .invoke_hook(plugin, warm, &self.scope.ctx, event, timeout_ms),
            Err(f) => HookCall::failed(f),
        }
    }

    fn receipt<O>(
        &mut self,
        plugin: &Arc<LoadedPlugin>,
        hook: HookName,
        call: &HookCall<O>,
        status: &'static str,
        handler: HandlerDetail,
    ) {
        self.runtime
            .hook_receipt(plugin, hook, &self.scope.ctx, call, status, Some(handler));
    }
}

#[cfg(test)]
mod tests {
    //! The chain rules with a fake sandbox: no wasm, every outcome scripted.

    use super::*;
    use crate::hooks::table::dispatch_order;
    use std::any::Any;
    use std::collections::HashMap;

    /// A handler's plugin, by id.
    #[derive(Debug, Clone, PartialEq)]
    struct Fake(&'static str);

    impl HandlerPlugin for Fake {
        fn id(&self) -> &str {
            self.0
        }
        fn version(&self) -> &str {
            "1.0.0"
        }
    }

    /// What a fake handler does.
    #[derive(Clone)]
    enum Script {
        /// Adds its plugin id to the `seen` list of the tool input (both tool hooks).
        Append,
        /// Blocks with this reason.
        Block(&'static str),
        /// Fails like this.
        Fail(PluginFailure),
        /// Returns a tool input that is not a JSON object.
        Invalid,
        /// Sleeps, then appends.
        Sleep(u64),
    }

    #[derive(Default)]
    struct FakeSandbox {
        scripts: HashMap<&'static str, Script>,
        /// (plugin, timeout given).
        calls: Vec<(String, u64)>,
        /// (plugin, status, effect).
        receipts: Vec<(String, String, String)>,
        /// The failure kind each receipt records, if any.
        failures: Vec<Option<&'static str>>,
    }

    fn appended(input: &str, id: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(input).unwrap();
        v["seen"]
            .as_array_mut()
            .expect("seen is a list")
            .push(id.into());
        v.to_string()
    }

    impl HookCaller<Fake> for FakeSandbox {
        fn call<E: HookEvent>(
            &mut self,
            plugin: &Fake,
            event: &E,
            timeout_ms: u64,
        ) -> HookCall<E::Output> {
            self.calls.push((plugin.0.into(), timeout_ms));
            let script = self
                .scripts
                .get(plugin.0)
                .cloned()
                .unwrap_or(Script::Append);
            if let Script::Sleep(ms) = script {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let event: &dyn Any = event;
            let output: Box<dyn Any> = if let Some(e) =
                event.downcast_ref::<wit::ToolPreExecEvent>()
            {
                Box::new(match script {
                    Script::Block(r) => wit::ToolPreExecDecision::Block(r.into()),
                    Script::Invalid => wit::ToolPreExecDecision::Proceed(wit::ToolPreExecPatch {
                        tool_input: Some("[1, 2]".into()),
                    }),
                    _ => wit::ToolPreExecDecision::Proceed(wit::ToolPreExecPatch {
                        tool_input: Some(appended(&e.tool_input, plugin.0)),
                    }),
                })
            } else if let Some(e) = event.downcast_ref::<wit::ToolPostExecEvent>() {
                Box::new(wit::ToolPostExecPatch {
                    output: Some(appended(&e.tool_result.output, plugin.0)),
                })
            } else {
                panic!("the fake scripts the tool hooks only")
            };
            let result = match script {
                Script::Fail(f) => Err(f),
                _ => Ok(*output
                    .downcast::<E::Output>()
                    .expect("the event's output type")),
            };
            HookCall::finished(result, Duration::from_millis(1))
        }

        fn receipt<O>(
            &mut self,
            plugin: &Fake,
            _hook: HookName,
            call: &HookCall<O>,
            status: &'static str,
            handler: HandlerDetail,
        ) {
            self.failures
                .push(call.result.as_ref().err().map(PluginFailure::kind));
            self.receipts
                .push((plugin.0.into(), status.into(), handler.effect.into()));
        }
    }

    fn handler(id: &'static str, priority: i32, fail_policy: FailPolicy) -> Handler<Fake> {
        Handler {
            plugin: Fake(id),
            event: HookName::ToolPreExec,
            priority,
            fail_policy,
            timeout_ms: 1_000,
            seq: 0,
            held: false,
        }
    }

    fn open(id: &'static str) -> Handler<Fake> {
        handler(id, 0, FailPolicy::FailOpen)
    }

    fn closed(id: &'static str) -> Handler<Fake> {
        handler(id, 0, FailPolicy::FailClosed)
    }

    fn pre_exec() -> wit::ToolPreExecEvent {
        wit::ToolPreExecEvent {
            tool_name: "lookup".into(),
            tool_input: r#"{"seen":[]}"#.into(),
            tool_call_id: "c1".into(),
            turn: 1,
        }
    }

    fn post_exec() -> wit::ToolPostExecEvent {
        wit::ToolPostExecEvent {
            tool_name: "lookup".into(),
            tool_input: "{}".into(),
            tool_call_id: "c1".into(),
            tool_result: wit::ToolResult {
                output: r#"{"seen":[]}"#.into(),
                is_error: false,
            },
            duration_ms: 1,
            turn: 1,
        }
    }

    fn seen(input: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(input).unwrap();
        serde_json::from_value(v["seen"].clone()).unwrap()
    }

    fn guard() -> CrashGuard {
        CrashGuard::new(Duration::from_secs(300), 0)
    }

    fn run<E: ApplyHook>(
        handlers: &[Handler<Fake>],
        event: E,
        budget_ms: u64,
        scripts: &[(&'static str, Script)],
    ) -> (Dispatched<E>, FakeSandbox, CrashGuard) {
        let mut fake = FakeSandbox {
            scripts: scripts.iter().cloned().collect(),
            ..Default::default()
        };
        let guard = guard();
        let d = run_chain(handlers, event, budget_ms, &guard, &mut fake);
        (d, fake, guard)
    }

    fn effects(fake: &FakeSandbox) -> Vec<(&str, &str, &str)> {
        fake.receipts
            .iter()
            .map(|(p, s, e)| (p.as_str(), s.as_str(), e.as_str()))
            .collect()
    }

    #[test]
    fn handlers_are_ordered_by_priority_then_plugin_id_then_registration() {
        let mut list = vec![
            Handler {
                seq: 2,
                ..handler("b", 0, FailPolicy::FailOpen)
            },
            handler("a", 0, FailPolicy::FailOpen),
            handler("z", 10, FailPolicy::FailOpen),
            Handler {
                seq: 1,
                ..handler("b", 0, FailPolicy::FailOpen)
            },
            handler("m", -5, FailPolicy::FailOpen),
        ];
        dispatch_order(&mut list);
        let order: Vec<(&str, u64)> = list.iter().map(|h| (h.plugin.0, h.seq)).collect();
        assert_eq!(order, [("z", 0), ("a", 0), ("b", 1), ("b", 2), ("m", 0)]);
    }

    #[test]
    fn each_handler_sees_the_changes_of_the_ones_before_it() {
        let (d, fake, _) = run(&[open("a"), open("b"), open("c")], pre_exec(), 8_000, &[]);
        assert_eq!(seen(&d.event.tool_input), ["a", "b", "c"]);
        assert!(d.blocked.is_none());
        assert_eq!(
            effects(&fake),
            [
                ("a", "ok", "applied"),
                ("b", "ok", "applied"),
                ("c", "ok", "applied")
            ]
        );
    }

    #[test]
    fn a_block_ends_the_chain_and_names_the_plugin() {
        let (d, fake, _) = run(
            &[open("a"), open("b"), open("c")],
            pre_exec(),
            8_000,
            &[("b", Script::Block("not this tool"))],
        );
        let b = d.blocked.expect("blocked");
        assert_eq!(
            (b.plugin_id.as_str(), b.reason.as_str(), b.by_failure),
            ("b", "not this tool", false)
        );
        assert_eq!(seen(&d.event.tool_input), ["a"]);
        assert_eq!(fake.calls.len(), 2, "c is never called");
        assert_eq!(effects(&fake)[1], ("b", "blocked", "blocked"));
    }

    #[test]
    fn a_fail_open_failure_is_receipted_and_the_chain_goes_on() {
        let (d, fake, guard) = run(
            &[open("a"), open("b")],
            pre_exec(),
            8_000,
            &[(
                "a",
                Script::Fail(PluginFailure::Timeout { timeout_ms: 1_000 }),
            )],
        );
        assert!(d.blocked.is_none());
        assert_eq!(seen(&d.event.tool_input), ["b"]);
        assert_eq!(
            effects(&fake),
            [("a", "timeout", "continued"), ("b", "ok", "applied")]
        );
        assert_eq!(guard.recent_failures("a"), 1);
        assert_eq!(guard.recent_failures("b"), 0);
    }

    #[test]
    fn a_fail_closed_failure_blocks_a_blocking_hook_and_stops_any_other() {
        let trap = || {
            Script::Fail(PluginFailure::Trap {
                detail: "unreachable".into(),
            })
        };
        let (d, fake, _) = run(
            &[open("a"), closed("b"), open("c")],
            pre_exec(),
            8_000,
            &[("b", trap())],
        );
        let b = d.blocked.expect("a blocking hook is blocked");
        assert!(b.by_failure && b.plugin_id == "b", "{b:?}");
        assert_eq!(fake.calls.len(), 2);
        assert_eq!(effects(&fake)[1].2, "blocked");

        // tool.post_exec cannot block: the chain stops, the changes made so far stand.
        let (d, fake, _) = run(
            &[open("a"), closed("b"), open("c")],
            post_exec(),
            8_000,
            &[("b", trap())],
        );
        assert!(d.blocked.is_none());
        assert_eq!(seen(&d.event.tool_result.output), ["a"]);
        assert_eq!(fake.calls.len(), 2);
        assert_eq!(effects(&fake)[1].2, "chain_stopped");
    }

    #[test]
    fn an_invalid_value_changes_nothing_and_counts_as_a_failure() {
        let (d, fake, guard) = run(
            &[open("a"), open("b")],
            pre_exec(),
            8_000,
            &[("a", Script::Invalid)],
        );
        assert_eq!(seen(&d.event.tool_input), ["b"]);
        assert_eq!(effects(&fake)[0], ("a", "error", "continued"));
        assert_eq!(fake.failures[0], Some("invalid_output"));
        assert_eq!(guard.recent_failures("a"), 1);
    }

    #[test]
    fn a_call_the_crash_guard_refused_is_not_another_failure() {
        let (d, fake, guard) = run(
            &[open("a")],
            pre_exec(),
            8_000,
            &[("a", Script::Fail(PluginFailure::Disabled))],
        );
        assert!(d.blocked.is_none());
        assert_eq!(fake.receipts.len(), 1);
        assert_eq!(guard.recent_failures("a"), 0);
    }

    /// The host at capacity (`busy`) and an error the handler returned on purpose are receipted
    /// and follow the fail policy, but are never counted towards disabling the plugin; a trap is.
    #[test]
    fn capacity_and_a_returned_error_are_not_the_plugins_crash() {
        let returned = PluginFailure::PluginError {
            code: "nope".into(),
            message: "refused".into(),
            retryable: false,
        };
        let (d, fake, guard) = run(
            &[open("a"), closed("b"), open("c")],
            pre_exec(),
            8_000,
            &[
                ("a", Script::Fail(PluginFailure::Busy)),
                ("b", Script::Fail(returned)),
            ],
        );
        assert_eq!(fake.failures[..2], [Some("busy"), Some("plugin_error")]);
        assert_eq!(guard.recent_failures("a"), 0, "capacity is the host's");
        assert_eq!(
            guard.recent_failures("b"),
            0,
            "a returned error is no crash"
        );
        assert!(d.blocked.is_some(), "b's fail-closed policy still applies");
        let (_, _, guard) = run(
            &[open("a")],
            pre_exec(),
            8_000,
            &[(
                "a",
                Script::Fail(PluginFailure::Trap {
                    detail: "unreachable".into(),
                }),
            )],
        );
        assert_eq!(guard.recent_failures("a"), 1);
    }

    #[test]
    fn the_chain_budget_caps_deadlines_and_handlers_it_cannot_fit_are_not_run() {
        let (d, fake, _) = run(
            &[open("slow"), open("b"), closed("c")],
            pre_exec(),
            50,
            &[("slow", Script::Sleep(60))],
        );
        // The first handler's deadline is its timeout capped by the budget.
        assert_eq!(fake.calls.len(), 1);
        assert!(fake.calls[0].1 <= 50, "{:?}", fake.calls);
        assert_eq!(
            effects(&fake),
            [
                ("slow", "ok", "applied"),
                ("b", "budget_exceeded", "not_run"),
                ("c", "budget_exceeded", "not_run")
            ]
        );
        // A fail-closed check that could not run blocks a blocking hook.
        let b = d.blocked.expect("blocked");
        assert!(b.by_failure && b.plugin_id == "c", "{b:?}");
        assert_eq!(seen(&d.event.tool_input), ["slow"]);
    }
}
