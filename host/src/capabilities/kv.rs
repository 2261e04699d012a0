//! Per-plugin key-value storage: `nitejar:plugin/kv`.
//!
//! Always scoped to the calling plugin's id (a plugin cannot name another's keys); keys and
//! values are size-checked before any database work. Stored in `plugin_kv`, which uninstall with
//! purge-data removes.

use crate::db::Db;
use crate::limits::{MAX_KV_KEY_BYTES, MAX_KV_LIST_KEYS, MAX_KV_VALUE_BYTES};
use crate::runtime::bindings::nitejar::plugin::{kv, types::HostError};
use crate::runtime::store::HostState;

/// Per-call state of the kv capability.
#[derive(Clone)]
pub struct KvAccess {
    /// The database, when the runtime has one (inspection calls at install time do not).
    pub db: Option<Db>,
    /// Runtime handle used to wait for database calls from the synchronous import.
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
        f: impl AsyncFnOnce(&Db, &str) -> Result<T, crate::db::DbError>,
    ) -> Result<T, HostError> {
        let (Some(db), Some(handle)) = (self.caps.kv.db.clone(), self.caps.kv.handle.clone())
        else {
            return Err(HostError::Unavailable(
                "storage is not available during inspection".into(),
            ));
        };
        let plugin = self.caps.ctx.plugin_id.clone();
        // Plugin calls run on blocking threads (never on a runtime worker), so waiting is safe.
        handle.block_on(f(&db, &plugin)).map_err(|e| {
            tracing::error!(plugin.id = %plugin, "kv storage failed: {e}");
            HostError::Unavailable("storage failed; see the host log".into())
        })
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        check_key(&key)?;
        self.kv_run(async |db, p| db.kv_get(p, &key).await)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        check_key(&key)?;
        if value.len() > MAX_KV_VALUE_BYTES {
            return Err(HostError::LimitExceeded(format!(
                "values are at most {MAX_KV_VALUE_BYTES} bytes"
            )));
        }
        self.kv_run(async |db, p| db.kv_set(p, &key, &value).await)
    }

    fn delete(&mut self, key: String) -> Result<bool, HostError> {
        check_key(&key)?;
        self.kv_run(async |db, p| db.kv_delete(p, &key).await)
    }

    fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, HostError> {
        if prefix.len() > MAX_KV_KEY_BYTES {
            return Err(HostError::InvalidInput(format!(
                "prefixes are at most {MAX_KV_KEY_BYTES} bytes"
            )));
        }
        self.kv_run(async |db, p| db.kv_list(p, &prefix, MAX_KV_LIST_KEYS).await)
    }
}
