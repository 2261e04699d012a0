//! Hooks: the nine lifecycle events (spec §12), their registrations, and the dispatcher.
//!
//! [`table`] turns manifests and operator overrides into ordered handler lists, [`events`] says
//! how each event's result applies (validation and mutation rules, one impl per event), and
//! [`dispatcher`] runs a chain with deadlines, budget, validated mutations and failure policies.
//! The event names, failure policies, typed events ([`HookEvent`]) and the crash guard that
//! counts failures per plugin are the sandbox's (`nitejar_sandbox`).

pub mod dispatcher;
pub mod events;
pub mod table;

pub use dispatcher::{Blocked, Dispatched, HookDispatcher, RunScope};
pub use events::ApplyHook;
pub use nitejar_sandbox::crash_guard::CrashGuard;
pub use nitejar_sandbox::hooks::{FailPolicy, HookEvent, HookName, HookOverride};
pub use table::HookTable;
