//! Per-plugin key-value storage: `nitejar:plugin/kv`.
//!
//! Always scoped to the calling plugin's id (a plugin cannot name another's keys); keys and
//! values are size-checked before any storage work, and every plugin has a quota of keys and of
//! bytes ([`KvQuota`], defaults [`MAX_KV_KEYS_PER_PLUGIN`] and [`MAX_KV_BYTES_PER_PLUGIN`]). A set
//! that would go over it is refused with `limit-exceeded` and a `quota_exceeded`/`blocked`
//! receipt; nothing is written. Where values are stored is the [`KvStore`] the runtime is given
//! (the host's database).

use crate::bindings::nitejar::plugin::{kv, types::HostError};
use crate::limits::{
    MAX_KV_BYTES_PER_PLUGIN, MAX_KV_KEY_BYTES, MAX_KV_KEYS_PER_PLUGIN, MAX_KV_LIST_KEYS,
    MAX_KV_VALUE_BYTES,
};
use crate::receipts::Receipt;
use crate::store::HostState;
use futures::future::BoxFuture;
use std::sync::Arc;

/// How much one plugin may keep in kv storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Most keys.
    pub max_keys: u64,
    /// Most bytes, keys and values counted together.
    pub max_bytes: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota {
            max_keys: MAX_KV_KEYS_PER_PLUGIN,
            max_bytes: MAX_KV_BYTES_PER_PLUGIN,
        }
    }
}

/// Why a kv store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvStoreError {
    /// The set would give the plugin more keys than its quota.
    #[error("the plugin's storage is full: at most {max} keys")]
    TooManyKeys {
        /// The quota.
        max: u64,
    },
    /// The set would give the plugin more bytes than its quota.
    #[error("the plugin's storage is full: at most {max} bytes of keys and values")]
    TooManyBytes {
        /// The quota.
        max: u64,
    },
    /// The storage itself failed (the message is for the host log, not the guest).
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Where plugins' kv values live; implemented by the host's database. Every method is scoped to
/// one plugin id, which the sandbox supplies (never the guest).
pub trait KvStore: Send + Sync {
    /// The value of `key`.
    fn get<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvStoreError>>;
    /// Sets `key` unless the plugin would then exceed `quota` (checked and written atomically;
    /// replacing a key counts its new size, not both).
    fn set<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
        value: &'a [u8],
        quota: KvQuota,
    ) -> BoxFuture<'a, Result<(), KvStoreError>>;
    /// Deletes `key`; whether it existed.
    fn delete<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, KvStoreError>>;
    /// Keys starting with `prefix`, in order, at most `limit`.
    fn list<'a>(
        &'a self,
        plugin_id: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, KvStoreError>>;
}

/// Per-instance state of the kv capability.
#[derive(Clone, Default)]
pub struct KvAccess {
    /// The store, when the runtime has one (inspection calls at install time do not).
    pub store: Option<Arc<dyn KvStore>>,
    /// The plugin's quota.
    pub quota: KvQuota,
    /// Runtime handle used to wait for storage calls from the synchronous import.
    pub handle: Option<tokio::runtime::Handle>,
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > MAX_KV_KEY_BYTES {
        return Err(HostError::InvalidInput(format!(
            "keys must be 1 to {MAX_KV_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

impl HostState {
    fn kv_run<T>(
        &mut self,
        f: impl AsyncFnOnce(&dyn KvStore, &str, KvQuota) -> Result<T, KvStoreError>,
    ) -> Result<T, HostError> {
        let kv = &self.caps.kv;
        let (Some(store), Some(handle)) = (kv.store.clone(), kv.handle.clone()) else {
            return Err(HostError::Unavailable(
                "storage is not available during inspection".into(),
            ));
        };
        let quota = kv.quota;
        let plugin = self.caps.ctx.plugin_id.clone();
        // Plugin calls run on blocking threads (never on a runtime worker), so waiting is safe.
        let (limit, max, e) = match handle.block_on(f(&*store, &plugin, quota)) {
            Ok(v) => return Ok(v),
            Err(KvStoreError::Storage(e)) => {
                tracing::error!(plugin.id = %plugin, "kv storage failed: {e}");
                return Err(HostError::Unavailable(
                    "storage failed; see the host log".into(),
                ));
            }
            Err(e @ KvStoreError::TooManyKeys { max }) => ("keys", max, e),
            Err(e @ KvStoreError::TooManyBytes { max }) => ("bytes", max, e),
        };
        let scope = self.caps.ctx.scope();
        tracing::warn!(plugin.id = %plugin, "kv quota hit: {e}");
        self.caps.ctx.receipts.emit(
            Receipt::new(&plugin, "quota_exceeded", "blocked")
                .version(&self.caps.ctx.plugin_version)
                .correlate(scope.work_item_id.as_deref(), scope.job_id.as_deref())
                .hook(scope.hook_name)
                .detail(serde_json::json!({
                    "capability": "kv",
                    "limit": limit,
                    "max": max,
                    "enforcement": "wasm_import_boundary",
                })),
        );
        Err(HostError::LimitExceeded(e.to_string()))
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        check_key(&key)?;
        self.kv_run(async |s, p, _| s.get(p, &key).await)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        check_key(&key)?;
        if value.len() > MAX_KV_VALUE_BYTES {
            return Err(HostError::LimitExceeded(format!(
                "values are at most {MAX_KV_VALUE_BYTES} bytes"
            )));
        }
        self.kv_run(async |s, p, q| s.set(p, &key, &value, q).await)
    }

    fn delete(&mut self, key: String) -> Result<bool, HostError> {
        check_key(&key)?;
        self.kv_run(async |s, p, _| s.delete(p, &key).await)
    }

    fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, HostError> {
        if prefix.len() > MAX_KV_KEY_BYTES {
            return Err(HostError::InvalidInput(format!(
                "prefixes are at most {MAX_KV_KEY_BYTES} bytes"
            )));
        }
        self.kv_run(async |s, p, _| s.list(p, &prefix, MAX_KV_LIST_KEYS).await)
    }
}
