//! Hook registrations: which handlers run for each event, in what order, with what policy.
//!
//! Built from the loaded plugins' manifests (`contributes.hooks`), with the operator's per-install
//! overrides applied, and rebuilt whenever a plugin is activated or deactivated (enable, disable,
//! upgrade, rollback, uninstall all go through those two). A dispatch takes the table current
//! when the event starts, so a change never alters a chain already running.
//!
//! Order: priority descending, then plugin id (byte order), then registration order.

use super::{FailPolicy, HookName, HookOverride};
use nitejar_sandbox::runtime::LoadedPlugin;
use std::sync::Arc;

/// What the table and the dispatcher need of a handler's plugin: the loaded plugin version in
/// production, a stand-in in unit tests of the chain rules.
pub trait HandlerPlugin {
    /// Plugin id.
    fn id(&self) -> &str;
    /// Plugin version.
    fn version(&self) -> &str;
}

impl HandlerPlugin for Arc<LoadedPlugin> {
    fn id(&self) -> &str {
        LoadedPlugin::id(self)
    }
    fn version(&self) -> &str {
        LoadedPlugin::version(self)
    }
}

/// One registered handler.
#[derive(Clone)]
pub struct Handler<P = Arc<LoadedPlugin>> {
    /// The plugin version that handles the event.
    pub plugin: P,
    /// The event.
    pub event: HookName,
    /// Priority (higher runs first).
    pub priority: i32,
    /// What a failure means.
    pub fail_policy: FailPolicy,
    /// Per-handler deadline.
    pub timeout_ms: u64,
    /// Registration order (activation sequence of the plugin).
    pub seq: u64,
    /// A fail-closed handler of a blocking hook whose plugin crash-loop protection disabled:
    /// never called, it blocks its operation until an operator enables, disables or
    /// uninstalls the plugin (disabling a plugin must not silently open what it guarded).
    pub held: bool,
}

impl<P: HandlerPlugin> std::fmt::Debug for Handler<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("plugin", &self.plugin.id())
            .field("event", &self.event)
            .field("priority", &self.priority)
            .field("fail_policy", &self.fail_policy)
            .field("timeout_ms", &self.timeout_ms)
            .field("held", &self.held)
            .finish()
    }
}

/// Sorts handlers into dispatch order: priority descending, then plugin id (byte order), then
/// registration order.
pub fn dispatch_order<P: HandlerPlugin>(list: &mut [Handler<P>]) {
    list.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.plugin.id().as_bytes().cmp(b.plugin.id().as_bytes()))
            .then_with(|| a.seq.cmp(&b.seq))
    });
}

/// The registered handlers of every event, each list in dispatch order.
#[derive(Debug, Default)]
pub struct HookTable {
    by_event: [Vec<Handler>; 9],
}

/// A plugin as the table sees it: the loaded version, its registration order, and overrides.
pub struct TableEntry<'a> {
    /// The loaded plugin.
    pub plugin: &'a Arc<LoadedPlugin>,
    /// When it was registered (lower first among equals).
    pub seq: u64,
    /// The operator's overrides by event.
    pub overrides: &'a [(HookName, HookOverride)],
    /// Disabled by crash-loop protection: only its fail-closed handlers of blocking hooks are
    /// registered, as held ([`Handler::held`]).
    pub held: bool,
}

impl HookTable {
    /// Builds the table; `default_timeout_ms` applies where neither manifest nor operator set one.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = TableEntry<'a>>,
        default_timeout_ms: u64,
    ) -> HookTable {
        let mut table = HookTable::default();
        for entry in entries {
            // Parsed from the manifest and checked once, at load (not for every rebuild: a boot
            // rebuilds the table once per plugin it puts in service).
            for reg in &entry.plugin.hook_registrations {
                let ov = entry
                    .overrides
                    .iter()
                    .find(|(e, _)| *e == reg.event)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_default();
                if ov.enabled == Some(false) {
                    continue;
                }
                let fail_policy = ov.fail_policy.unwrap_or(reg.fail_policy);
                if entry.held && !(fail_policy == FailPolicy::FailClosed && reg.event.is_blocking())
                {
                    continue;
                }
                table.by_event[reg.event as usize].push(Handler {
                    plugin: entry.plugin.clone(),
                    event: reg.event,
                    priority: ov.priority.unwrap_or(reg.priority),
                    fail_policy,
                    timeout_ms: ov
                        .timeout_ms
                        .or(reg.timeout_ms)
                        .unwrap_or(default_timeout_ms),
                    seq: entry.seq,
                    held: entry.held,
                });
            }
        }
        for list in &mut table.by_event {
            dispatch_order(list);
        }
        table
    }

    /// The handlers of `event`, in dispatch order.
    pub fn handlers(&self, event: HookName) -> &[Handler] {
        &self.by_event[event as usize]
    }

    /// How many held handlers `plugin_id` has (see [`Handler::held`]).
    pub fn held_count(&self, plugin_id: &str) -> usize {
        self.by_event
            .iter()
            .flatten()
            .filter(|h| h.held && h.plugin.id() == plugin_id)
            .count()
    }

    /// How many distinct plugins (versions) handle any of `events`: the instances a scope that
    /// dispatches them may take.
    pub fn plugins_handling(&self, events: &[HookName]) -> usize {
        let mut seen: Vec<*const LoadedPlugin> = Vec::new();
        for event in events {
            for h in self.handlers(*event) {
                let p = Arc::as_ptr(&h.plugin);
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
        }
        seen.len()
    }

    /// Whether any handler is registered for `event`.
    pub fn has(&self, event: HookName) -> bool {
        !self.by_event[event as usize].is_empty()
    }
}
