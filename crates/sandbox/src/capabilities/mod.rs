//! Capabilities a plugin reaches through its imports, each enforced at the import boundary.
//!
//! One module per capability, each with the same parts (STYLE #1): its policy built from the
//! manifest and the operator's grants, the import implementation whose first statement is the
//! policy check, and its tests. A denial never traps: the guest gets a typed error, the host
//! writes a `permission_denied`/`blocked` receipt naming the capability, the target and the grant
//! that would allow it, and logs the same.

pub mod blocking;
pub mod filesystem;
pub mod kv;
pub mod log;
pub mod network;
pub mod secrets;

use crate::receipts::{Receipt, ReceiptSink};
use std::sync::{Arc, Mutex};

/// Who is calling: shared by every capability of one plugin instance. An instance kept for a
/// whole run serves several calls, so what each call is on behalf of lives in [`CallScope`],
/// replaced before every call.
#[derive(Debug)]
pub struct CallContext {
    /// Plugin id.
    pub plugin_id: Arc<str>,
    /// Plugin version.
    pub plugin_version: Arc<str>,
    /// Where receipts go.
    pub receipts: ReceiptSink,
    scope: Mutex<CallScope>,
}

/// What the current call is on behalf of (receipt correlation).
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    /// Work item the call serves, when known.
    pub work_item_id: Option<String>,
    /// Job the call serves, when known.
    pub job_id: Option<String>,
    /// Hook event, for hook calls.
    pub hook_name: Option<&'static str>,
}

impl CallContext {
    /// A context for one plugin instance.
    pub fn new(plugin_id: Arc<str>, plugin_version: Arc<str>, receipts: ReceiptSink) -> Self {
        CallContext {
            plugin_id,
            plugin_version,
            receipts,
            scope: Mutex::new(CallScope::default()),
        }
    }

    /// Sets what the next call is on behalf of.
    pub fn set_scope(&self, scope: CallScope) {
        *self.scope.lock().unwrap_or_else(|e| e.into_inner()) = scope;
    }

    /// What the current call is on behalf of.
    pub fn scope(&self) -> CallScope {
        self.scope.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A refused capability request, as reported to the guest and in the receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// `network`, `secrets`, `filesystem`, `kv`.
    pub capability: &'static str,
    /// What was asked for.
    pub target: String,
    /// The manifest entry and grant that would allow it.
    pub required_grant: String,
    /// Why, in a sentence.
    pub reason: String,
}

impl CallContext {
    /// Records a denial: a `permission_denied`/`blocked` receipt and a warning log line.
    pub fn deny(&self, denial: &Denial) {
        let scope = self.scope();
        tracing::warn!(
            plugin.id = %self.plugin_id,
            capability = denial.capability,
            target = %denial.target,
            required_grant = %denial.required_grant,
            "plugin capability denied: {}",
            denial.reason
        );
        self.receipts.emit(
            Receipt::new(&self.plugin_id, "permission_denied", "blocked")
                .version(&self.plugin_version)
                .correlate(scope.work_item_id.as_deref(), scope.job_id.as_deref())
                .hook(scope.hook_name)
                .detail(serde_json::json!({
                    "capability": denial.capability,
                    "target": denial.target,
                    "requiredGrant": denial.required_grant,
                    "reason": denial.reason,
                    "enforcement": "wasm_import_boundary",
                })),
        );
    }
}

impl From<&Denial> for crate::bindings::nitejar::plugin::types::HostError {
    fn from(d: &Denial) -> Self {
        Self::Denied(crate::bindings::nitejar::plugin::types::Denial {
            capability: d.capability.to_string(),
            target: d.target.clone(),
            required_grant: d.required_grant.clone(),
        })
    }
}
