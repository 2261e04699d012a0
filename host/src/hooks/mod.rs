//! Hooks: the nine lifecycle events (spec §12), their registrations, and the dispatcher.
//!
//! [`table`] turns manifests and operator overrides into ordered handler lists, [`dispatcher`]
//! runs a chain with deadlines, budget, validated mutations and failure policies, and
//! [`crash_guard`] counts failures per plugin.

pub mod crash_guard;
pub mod dispatcher;
pub mod table;

pub use crash_guard::CrashGuard;
pub use dispatcher::{Blocked, Dispatched, HookDispatcher, RunScope};
pub use table::{HookOverride, HookTable};

use serde::{Deserialize, Serialize};

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
}
