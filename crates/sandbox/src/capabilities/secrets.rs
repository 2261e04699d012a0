//! Secrets: `nitejar:plugin/secrets`.
//!
//! A key is readable only when it is declared in `permissions.secrets` **and** the operator
//! granted `secret:<key>`; values are decrypted when the call's store is built, so only granted
//! values ever enter a store.

use super::Denial;
use crate::bindings::nitejar::plugin::{secrets, types::HostError};
use crate::store::HostState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What one plugin may read.
#[derive(Debug, Clone, Default)]
pub struct SecretsPolicy {
    /// Keys declared in the manifest.
    pub declared: BTreeSet<String>,
    /// Declared, granted keys and their decrypted values.
    pub granted: BTreeMap<String, String>,
}

impl SecretsPolicy {
    /// Looks `key` up; the error is the denial to report.
    pub fn get(&self, key: &str) -> Result<&str, Denial> {
        if let Some(v) = self.granted.get(key) {
            return Ok(v);
        }
        let required_grant =
            format!("permissions.secrets: [\"{key}\"] and operator grant secret:{key}");
        let reason = if self.declared.contains(key) {
            "declared but not granted by the operator, or no value is set"
        } else {
            "not declared in the manifest"
        };
        Err(Denial {
            capability: "secrets",
            target: key.to_string(),
            required_grant,
            reason: reason.into(),
        })
    }
}

/// Per-call state of the secrets capability.
pub struct SecretsAccess {
    /// The policy (shared across calls of one loaded plugin).
    pub policy: Arc<SecretsPolicy>,
}

impl secrets::Host for HostState {
    fn get(&mut self, key: String) -> Result<String, HostError> {
        match self.caps.secrets.policy.get(&key) {
            Ok(v) => Ok(v.to_string()),
            Err(d) => {
                self.caps.ctx.deny(&d);
                Err(HostError::from(&d))
            }
        }
    }
}

/// The policy for a plugin: `declared` from the manifest, `granted` the operator-granted values.
pub fn policy_for(declared: &[String], granted: BTreeMap<String, String>) -> SecretsPolicy {
    let declared: BTreeSet<String> = declared.iter().cloned().collect();
    let granted = granted
        .into_iter()
        .filter(|(k, _)| declared.contains(k))
        .collect();
    SecretsPolicy { declared, granted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_and_granted_keys_are_readable() {
        let p = policy_for(
            &["a".into(), "b".into()],
            [
                ("a".to_string(), "1".to_string()),
                ("zzz".to_string(), "leak".to_string()),
            ]
            .into(),
        );
        assert_eq!(p.get("a").unwrap(), "1");
        let d = p.get("b").unwrap_err();
        assert!(d.reason.contains("not granted"));
        assert_eq!(
            d.required_grant,
            "permissions.secrets: [\"b\"] and operator grant secret:b"
        );
        // A granted value for an undeclared key never becomes readable.
        assert!(p.get("zzz").unwrap_err().reason.contains("not declared"));
    }
}
