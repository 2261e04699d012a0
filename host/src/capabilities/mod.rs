//! Capabilities a plugin reaches through its imports, each enforced at the import boundary.
//!
//! One module per capability, each with the same parts (STYLE #1): its policy built from the
//! manifest and the operator's grants, the import implementation whose first statement is the
//! policy check, and its tests. A denial never traps: the guest gets a typed error, the host
//! writes a `permission_denied`/`blocked` receipt naming the capability, the target and the grant
//! that would allow it, and logs the same.

pub mod filesystem;
pub mod kv;
pub mod log;
pub mod network;
pub mod secrets;

use crate::receipts::{Receipt, ReceiptSink};
use std::sync::Arc;

/// Who is calling and on behalf of what: shared by every capability of one plugin call.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Plugin id.
    pub plugin_id: Arc<str>,
    /// Plugin version.
    pub plugin_version: Arc<str>,
    /// Work item the call serves, when known.
    pub work_item_id: Option<String>,
    /// Job the call serves, when known.
    pub job_id: Option<String>,
    /// Hook event, for hook calls.
    pub hook_name: Option<&'static str>,
    /// Where receipts go.
    pub receipts: ReceiptSink,
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
                .correlate(self.work_item_id.as_deref(), self.job_id.as_deref())
                .hook(self.hook_name)
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

impl From<&Denial> for crate::runtime::bindings::nitejar::plugin::types::HostError {
    fn from(d: &Denial) -> Self {
        Self::Denied(crate::runtime::bindings::nitejar::plugin::types::Denial {
            capability: d.capability.to_string(),
            target: d.target.clone(),
            required_grant: d.required_grant.clone(),
        })
    }
}
