//! The hook vocabulary: the nine lifecycle events (spec §12), what a handler failure means,
//! and one typed [`HookEvent`] per event.
//!
//! Manifests declare handlers by these names and the runtime calls them. Each event's record
//! (the WIT `*-event` type) implements [`HookEvent`]: its name, what a handler may return (the
//! WIT decision or patch type, `()` for observe-only hooks) and how the guest export is called,
//! so a call of the wrong shape cannot be written. Ordering, budgets, policies and how a result
//! is applied are the dispatcher's, above this crate.

use crate::bindings::exports::nitejar::plugin::hooks::{self as wit, Guest as HooksGuest};
use crate::bindings::nitejar::plugin::types::PluginError as WitPluginError;
use crate::output::OutputSize;
use crate::store::HostState;
use serde::{Deserialize, Serialize};
use wasmtime::Store;

/// One of the nine hook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum HookName {
    /// `work_item.pre_create` (blocking).
    WorkItemPreCreate,
    /// `work_item.post_create`.
    WorkItemPostCreate,
    /// `run.pre_prompt`.
    RunPrePrompt,
    /// `model.pre_call` (blocking).
    ModelPreCall,
    /// `model.post_call`.
    ModelPostCall,
    /// `tool.pre_exec` (blocking).
    ToolPreExec,
    /// `tool.post_exec`.
    ToolPostExec,
    /// `response.pre_deliver` (blocking).
    ResponsePreDeliver,
    /// `response.post_deliver`.
    ResponsePostDeliver,
}

impl HookName {
    /// All events, in the order a run meets them.
    pub const ALL: [HookName; 9] = [
        HookName::WorkItemPreCreate,
        HookName::WorkItemPostCreate,
        HookName::RunPrePrompt,
        HookName::ModelPreCall,
        HookName::ModelPostCall,
        HookName::ToolPreExec,
        HookName::ToolPostExec,
        HookName::ResponsePreDeliver,
        HookName::ResponsePostDeliver,
    ];

    /// The spec's dotted name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookName::WorkItemPreCreate => "work_item.pre_create",
            HookName::WorkItemPostCreate => "work_item.post_create",
            HookName::RunPrePrompt => "run.pre_prompt",
            HookName::ModelPreCall => "model.pre_call",
            HookName::ModelPostCall => "model.post_call",
            HookName::ToolPreExec => "tool.pre_exec",
            HookName::ToolPostExec => "tool.post_exec",
            HookName::ResponsePreDeliver => "response.pre_deliver",
            HookName::ResponsePostDeliver => "response.post_deliver",
        }
    }

    /// Parses a dotted name.
    pub fn parse(s: &str) -> Option<HookName> {
        HookName::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Whether handlers may block the operation.
    pub fn is_blocking(self) -> bool {
        matches!(
            self,
            HookName::WorkItemPreCreate
                | HookName::ModelPreCall
                | HookName::ToolPreExec
                | HookName::ResponsePreDeliver
        )
    }
}

/// What a handler failure (error, trap, timeout) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Continue as if the handler was not there (default; observability hooks).
    #[serde(alias = "failOpen")]
    FailOpen,
    /// On a blocking hook, block the operation (security hooks).
    #[serde(alias = "failClosed")]
    FailClosed,
}

impl FailPolicy {
    /// Parses `fail_open`/`fail_closed` (also the spec's `failOpen`/`failClosed`).
    pub fn parse(s: &str) -> Option<FailPolicy> {
        match s {
            "fail_open" | "failOpen" => Some(FailPolicy::FailOpen),
            "fail_closed" | "failClosed" => Some(FailPolicy::FailClosed),
            _ => None,
        }
    }
}

/// The operator's change to one hook registration of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookOverride {
    /// Replacement priority.
    pub priority: Option<i32>,
    /// Replacement failure policy.
    pub fail_policy: Option<FailPolicy>,
    /// Replacement timeout (1..=the host's default chain budget ms).
    pub timeout_ms: Option<u64>,
    /// `false` unregisters the handler without disabling the plugin.
    pub enabled: Option<bool>,
}

/// One hook event: implemented by each of the nine WIT event records.
pub trait HookEvent: Clone + std::fmt::Debug + OutputSize + Send + Sync + 'static {
    /// The event's name.
    const NAME: HookName;
    /// What a handler returns: the hook's decision or patch type (only the fields that hook may
    /// change), `()` for observe-only hooks.
    type Output: OutputSize + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;

    /// Calls this event's export of the guest's `hooks` interface.
    fn call_guest(
        &self,
        guest: &HooksGuest,
        store: &mut Store<HostState>,
        ctx: &wit::HookContext,
    ) -> wasmtime::Result<Result<Self::Output, WitPluginError>>;

    /// Whether `output` blocks the operation (only decisions of the four blocking hooks can).
    fn blocks(output: &Self::Output) -> bool {
        let _ = output;
        false
    }
}

macro_rules! hook_event {
    ($event:ty, $name:ident, $output:ty, $call:ident $(, blocks: $decision:ident)?) => {
        impl HookEvent for $event {
            const NAME: HookName = HookName::$name;
            type Output = $output;

            fn call_guest(
                &self,
                guest: &HooksGuest,
                store: &mut Store<HostState>,
                ctx: &wit::HookContext,
            ) -> wasmtime::Result<Result<Self::Output, WitPluginError>> {
                guest.$call(store, ctx, self)
            }

            $(
                fn blocks(output: &Self::Output) -> bool {
                    matches!(output, wit::$decision::Block(_))
                }
            )?
        }
    };
}

hook_event!(wit::WorkItemPreCreateEvent, WorkItemPreCreate, wit::WorkItemPreCreateDecision,
    call_work_item_pre_create, blocks: WorkItemPreCreateDecision);
hook_event!(
    wit::WorkItemPostCreateEvent,
    WorkItemPostCreate,
    (),
    call_work_item_post_create
);
hook_event!(
    wit::RunPrePromptEvent,
    RunPrePrompt,
    wit::RunPrePromptPatch,
    call_run_pre_prompt
);
hook_event!(wit::ModelPreCallEvent, ModelPreCall, wit::ModelPreCallDecision,
    call_model_pre_call, blocks: ModelPreCallDecision);
hook_event!(
    wit::ModelPostCallEvent,
    ModelPostCall,
    (),
    call_model_post_call
);
hook_event!(wit::ToolPreExecEvent, ToolPreExec, wit::ToolPreExecDecision,
    call_tool_pre_exec, blocks: ToolPreExecDecision);
hook_event!(
    wit::ToolPostExecEvent,
    ToolPostExec,
    wit::ToolPostExecPatch,
    call_tool_post_exec
);
hook_event!(wit::ResponsePreDeliverEvent, ResponsePreDeliver, wit::ResponsePreDeliverDecision,
    call_response_pre_deliver, blocks: ResponsePreDeliverDecision);
hook_event!(
    wit::ResponsePostDeliverEvent,
    ResponsePostDeliver,
    (),
    call_response_post_deliver
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_four_hooks_block() {
        for h in HookName::ALL {
            assert_eq!(HookName::parse(h.as_str()), Some(h));
        }
        assert_eq!(HookName::ALL.iter().filter(|h| h.is_blocking()).count(), 4);
        assert_eq!(HookName::parse("tool.run"), None);
    }

    #[test]
    fn exactly_the_four_blocking_events_have_decisions_that_block() {
        fn blocking<E: HookEvent>() -> bool {
            E::NAME.is_blocking()
        }
        assert!(blocking::<wit::WorkItemPreCreateEvent>());
        assert!(blocking::<wit::ModelPreCallEvent>());
        assert!(blocking::<wit::ToolPreExecEvent>());
        assert!(blocking::<wit::ResponsePreDeliverEvent>());
        assert!(!blocking::<wit::RunPrePromptEvent>());
        assert!(!blocking::<wit::ToolPostExecEvent>());
        assert!(wit::ToolPreExecEvent::blocks(
            &wit::ToolPreExecDecision::Block("no".into())
        ));
        assert!(!wit::ToolPreExecEvent::blocks(
            &wit::ToolPreExecDecision::Proceed(wit::ToolPreExecPatch { tool_input: None })
        ));
    }
}
