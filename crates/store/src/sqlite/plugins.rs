//! SQL of the plugin and grant aggregates.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;
use nitejar_sandbox::hooks::{HookName, HookOverride};

/// One version row by plugin id and version.
const VERSION_SQL: &str = "SELECT plugin_id, version, checksum, install_path, manifest_json,
        api_version, installed_at, signature_json, source_json
     FROM plugin_versions WHERE plugin_id = ? AND version = ?";

/// A plugin's hook overrides.
const HOOK_OVERRIDES_SQL: &str =
    "SELECT hook_name, override_json FROM plugin_hook_overrides WHERE plugin_id = ?";

/// Stored hook overrides as `(hook name, override JSON)`, parsed; one this version cannot read
/// (an unknown hook, a changed shape) is left out.
fn parse_overrides(rows: Vec<(String, String)>) -> Vec<(HookName, HookOverride)> {
    rows.into_iter()
        .filter_map(|(h, j)| Some((HookName::parse(&h)?, serde_json::from_str(&j).ok()?)))
        .collect()
}

/// Writes a version row and its artifact (install and staged upgrade share it).
pub(super) async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    v: &InstallRecord<'_>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO plugin_versions
           (plugin_id, version, checksum, install_path, manifest_json, api_version, installed_at,
            signature_json, source_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(v.plugin_id)
    .bind(v.version)
    .bind(v.checksum)
    .bind(v.install_path)
    .bind(v.manifest_json)
    .bind(v.api_version)
    .bind(now)
    .bind(v.signature_json)
    .bind(v.source_json)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT OR REPLACE INTO plugin_artifacts (plugin_id, version, checksum, kind, bytes, created_at)
         VALUES (?, ?, ?, 'wasm', ?, ?)",
    )
    .bind(v.plugin_id)
    .bind(v.version)
    .bind(v.checksum)
    .bind(v.wasm)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl PluginStore for SqliteStore {
    async fn record_install(&self, v: &InstallRecord<'_>) -> DbResult<()> {
        let now = now_ms();
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO plugins (id, name, trust_level, source_kind, source_ref, current_version,
               current_checksum, current_install_path, manifest_json, installed_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, trust_level = excluded.trust_level,
               source_kind = excluded.source_kind, source_ref = excluded.source_ref,
               current_version = excluded.current_version, current_checksum = excluded.current_checksum,
               current_install_path = excluded.current_install_path,
               manifest_json = excluded.manifest_json, updated_at = excluded.updated_at",
        )
        .bind(v.plugin_id)
        .bind(v.name)
        .bind(v.trust_level)
        .bind(v.source_kind)
        .bind(v.source_ref)
        .bind(v.version)
        .bind(v.checksum)
        .bind(v.install_path)
        .bind(v.manifest_json)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, v, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_plugin(&self, id: &str) -> DbResult<Option<PluginRow>> {
        Ok(sqlx::query_as("SELECT * FROM plugins WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn load_inputs(&self, id: &str) -> DbResult<Option<LoadInputs>> {
        let id = id.to_string();
        // One read transaction: the six reads see one snapshot. A quick read (on the caller's
        // thread, see `quick_reads`): a boot makes one per plugin.
        self.read(move |c| {
            use rusqlite::OptionalExtension;
            let tx = c.unchecked_transaction()?;
            let Some(plugin) = tx
                .prepare_cached("SELECT * FROM plugins WHERE id = ?")?
                .query_row([&id], |r| {
                    Ok(PluginRow {
                        id: r.get("id")?,
                        name: r.get("name")?,
                        enabled: r.get("enabled")?,
                        trust_level: r.get("trust_level")?,
                        source_kind: r.get("source_kind")?,
                        source_ref: r.get("source_ref")?,
                        current_version: r.get("current_version")?,
                        current_checksum: r.get("current_checksum")?,
                        current_install_path: r.get("current_install_path")?,
                        manifest_json: r.get("manifest_json")?,
                        last_load_error: r.get("last_load_error")?,
                        installed_at: r.get("installed_at")?,
                        updated_at: r.get("updated_at")?,
                        pending_version: r.get("pending_version")?,
                        alert_json: r.get("alert_json")?,
                    })
                })
                .optional()?
            else {
                return Ok(None);
            };
            let version = match &plugin.current_version {
                None => None,
                Some(v) => tx
                    .prepare_cached(VERSION_SQL)?
                    .query_row([&id, v], |r| {
                        Ok(VersionRow {
                            plugin_id: r.get(0)?,
                            version: r.get(1)?,
                            checksum: r.get(2)?,
                            install_path: r.get(3)?,
                            manifest_json: r.get(4)?,
                            api_version: r.get(5)?,
                            installed_at: r.get(6)?,
                            signature_json: r.get(7)?,
                            source_json: r.get(8)?,
                        })
                    })
                    .optional()?,
            };
            let disclosures = tx
                .prepare_cached(
                    "SELECT permission, acknowledged FROM plugin_disclosure_acks
                     WHERE plugin_id = ? ORDER BY permission",
                )?
                .query_map([&id], |r| {
                    Ok(DisclosureRow {
                        permission: r.get(0)?,
                        acknowledged: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let secrets = tx
                .prepare_cached(
                    "SELECT key, value_encrypted FROM plugin_secrets WHERE plugin_id = ?",
                )?
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let fuel: Option<Option<i64>> = tx
                .prepare_cached("SELECT fuel_per_call FROM plugin_limits WHERE plugin_id = ?")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let hook_overrides = parse_overrides(
                tx.prepare_cached(HOOK_OVERRIDES_SQL)?
                    .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?,
            );
            Ok(Some(LoadInputs {
                plugin,
                version,
                disclosures,
                secrets,
                fuel_per_call: fuel.flatten().map(|f| f.max(0) as u64),
                hook_overrides,
            }))
        })
        .await
    }

    async fn list_plugins(&self) -> DbResult<Vec<PluginRow>> {
        Ok(sqlx::query_as("SELECT * FROM plugins ORDER BY id")
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }

    async fn set_plugin_enabled(&self, id: &str, enabled: bool) -> DbResult<bool> {
        let r = sqlx::query("UPDATE plugins SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_plugin_load_errors(&self, outcomes: &[(String, Option<String>)]) -> DbResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let outcomes = outcomes.to_vec();
        // On the write thread: its statements run there, not one hand-off each (a boot records
        // a hundred at once).
        self.write(move |c| {
            let now = now_ms();
            let mut update = c.prepare_cached(
                "UPDATE plugins SET last_load_error = ?, last_loaded_at = ? WHERE id = ?",
            )?;
            for (id, error) in &outcomes {
                update.execute(rusqlite::params![error, now, id])?;
            }
            Ok(())
        })
        .await
    }

    async fn get_artifact(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> DbResult<Option<(String, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "SELECT checksum, bytes FROM plugin_artifacts WHERE plugin_id = ? AND version = ?",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&mut *self.pool.get().await?)
        .await?)
    }

    async fn record_version(&self, v: &super::InstallRecord<'_>) -> DbResult<()> {
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
        insert_version(&mut tx, v, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_versions(&self, plugin_id: &str) -> DbResult<Vec<VersionRow>> {
        Ok(sqlx::query_as(
            "SELECT plugin_id, version, checksum, install_path, manifest_json, api_version, installed_at,
                    signature_json, source_json
             FROM plugin_versions WHERE plugin_id = ? ORDER BY installed_at",
        )
        .bind(plugin_id)
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn get_version(&self, plugin_id: &str, version: &str) -> DbResult<Option<VersionRow>> {
        Ok(sqlx::query_as(VERSION_SQL)
            .bind(plugin_id)
            .bind(version)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn set_active_version(&self, v: &VersionRow) -> DbResult<()> {
        sqlx::query(
            "UPDATE plugins SET current_version = ?, current_checksum = ?, current_install_path = ?,
               manifest_json = ?, pending_version = NULL, updated_at = ?,
               source_kind = COALESCE(json_extract(?, '$.kind'), source_kind),
               source_ref = CASE WHEN json_extract(?, '$.kind') IS NULL THEN source_ref
                                 ELSE json_extract(?, '$.ref') END
             WHERE id = ?",
        )
        .bind(&v.version)
        .bind(&v.checksum)
        .bind(&v.install_path)
        .bind(&v.manifest_json)
        .bind(now_ms())
        .bind(&v.source_json)
        .bind(&v.source_json)
        .bind(&v.source_json)
        .bind(&v.plugin_id)
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn set_trust_level(&self, plugin_id: &str, level: &str) -> DbResult<()> {
        sqlx::query("UPDATE plugins SET trust_level = ? WHERE id = ? AND trust_level != 'builtin'")
            .bind(level)
            .bind(plugin_id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(())
    }

    async fn pending_version(&self, plugin_id: &str) -> DbResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT pending_version FROM plugins WHERE id = ?")
                .bind(plugin_id)
                .fetch_optional(&mut *self.pool.get().await?)
                .await?
                .flatten(),
        )
    }

    async fn set_pending_version(&self, plugin_id: &str, version: Option<&str>) -> DbResult<()> {
        sqlx::query("UPDATE plugins SET pending_version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(now_ms())
            .bind(plugin_id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(())
    }

    async fn demote_builtin(&self, plugin_id: &str, alert: &str) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE plugins SET trust_level = 'untrusted', enabled = 0, alert_json = ?, updated_at = ?
             WHERE id = ? AND trust_level = 'builtin'",
        )
        .bind(alert)
        .bind(now_ms())
        .bind(plugin_id)
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_plugin_alert(&self, plugin_id: &str, alert: Option<&str>) -> DbResult<()> {
        let sql = if alert.is_some() {
            "UPDATE plugins SET alert_json = ?, enabled = 0, updated_at = ? WHERE id = ?"
        } else {
            "UPDATE plugins SET alert_json = ?, updated_at = ? WHERE id = ?"
        };
        sqlx::query(sql)
            .bind(alert)
            .bind(now_ms())
            .bind(plugin_id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(())
    }

    async fn delete_plugin(&self, plugin_id: &str, purge: Purge) -> DbResult<bool> {
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
        for table in [
            "plugin_versions",
            "plugin_artifacts",
            "plugin_disclosure_acks",
            "plugin_hook_overrides",
            "plugin_limits",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE plugin_id = ?"))
                .bind(plugin_id)
                .execute(&mut *tx)
                .await?;
        }
        if purge.data {
            for table in ["plugin_kv", "plugin_secrets"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE plugin_id = ?"))
                    .bind(plugin_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let r = sqlx::query("DELETE FROM plugins WHERE id = ?")
            .bind(plugin_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn fuel_override(&self, plugin_id: &str) -> DbResult<Option<u64>> {
        let v: Option<Option<i64>> =
            sqlx::query_scalar("SELECT fuel_per_call FROM plugin_limits WHERE plugin_id = ?")
                .bind(plugin_id)
                .fetch_optional(&mut *self.pool.get().await?)
                .await?;
        Ok(v.flatten().map(|f| f.max(0) as u64))
    }

    async fn set_fuel_override(&self, plugin_id: &str, fuel: Option<u64>) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO plugin_limits (plugin_id, fuel_per_call, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(plugin_id) DO UPDATE
               SET fuel_per_call = excluded.fuel_per_call, updated_at = excluded.updated_at",
        )
        .bind(plugin_id)
        .bind(fuel.map(|f| f.min(i64::MAX as u64) as i64))
        .bind(now_ms())
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn list_hook_overrides(
        &self,
        plugin_id: &str,
    ) -> DbResult<Vec<(HookName, HookOverride)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(HOOK_OVERRIDES_SQL)
            .bind(plugin_id)
            .fetch_all(&mut *self.pool.get().await?)
            .await?;
        Ok(parse_overrides(rows))
    }

    async fn set_hook_override(
        &self,
        plugin_id: &str,
        hook: HookName,
        value: Option<&HookOverride>,
    ) -> DbResult<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_hook_overrides (plugin_id, hook_name, override_json, updated_at)
                     VALUES (?, ?, ?, ?)
                     ON CONFLICT(plugin_id, hook_name) DO UPDATE
                       SET override_json = excluded.override_json, updated_at = excluded.updated_at",
                )
                .bind(plugin_id)
                .bind(hook.as_str())
                .bind(serde_json::to_string(v).unwrap_or_default())
                .bind(now_ms())
                .execute(&mut *self.writer.get().await?)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM plugin_hook_overrides WHERE plugin_id = ? AND hook_name = ?",
                )
                .bind(plugin_id)
                .bind(hook.as_str())
                .execute(&mut *self.writer.get().await?)
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn ensure_disclosures(&self, plugin_id: &str, permissions: &[String]) -> DbResult<()> {
        for p in permissions {
            sqlx::query(
                "INSERT OR IGNORE INTO plugin_disclosure_acks (plugin_id, permission, scope) VALUES (?, ?, '')",
            )
            .bind(plugin_id)
            .bind(p)
            .execute(&mut *self.writer.get().await?)
            .await?;
        }
        Ok(())
    }

    async fn acknowledge(&self, plugin_id: &str, permissions: &[String]) -> DbResult<u64> {
        let mut n = 0;
        for p in permissions {
            n += sqlx::query(
                "UPDATE plugin_disclosure_acks SET acknowledged = 1, acknowledged_at = ?
                 WHERE plugin_id = ? AND permission = ? AND acknowledged = 0",
            )
            .bind(now_ms())
            .bind(plugin_id)
            .bind(p)
            .execute(&mut *self.writer.get().await?)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    async fn revoke(&self, plugin_id: &str, permissions: &[String]) -> DbResult<u64> {
        let mut n = 0;
        for p in permissions {
            n += sqlx::query(
                "UPDATE plugin_disclosure_acks SET acknowledged = 0, acknowledged_at = NULL
                 WHERE plugin_id = ? AND permission = ? AND acknowledged = 1",
            )
            .bind(plugin_id)
            .bind(p)
            .execute(&mut *self.writer.get().await?)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    async fn all_grants(&self) -> DbResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT plugin_id, permission FROM plugin_disclosure_acks WHERE acknowledged = 1",
        )
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn list_disclosures(&self, plugin_id: &str) -> DbResult<Vec<DisclosureRow>> {
        Ok(sqlx::query_as(
            "SELECT permission, acknowledged FROM plugin_disclosure_acks WHERE plugin_id = ? ORDER BY permission",
        )
        .bind(plugin_id)
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn granted_permissions(
        &self,
        plugin_id: &str,
    ) -> DbResult<std::collections::BTreeSet<String>> {
        Ok(self
            .list_disclosures(plugin_id)
            .await?
            .into_iter()
            .filter(|d| d.acknowledged)
            .map(|d| d.permission)
            .collect())
    }

    async fn set_secret(&self, plugin_id: &str, key: &str, value_encrypted: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO plugin_secrets (plugin_id, key, value_encrypted, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(plugin_id, key) DO UPDATE SET value_encrypted = excluded.value_encrypted,
               updated_at = excluded.updated_at",
        )
        .bind(plugin_id)
        .bind(key)
        .bind(value_encrypted)
        .bind(now_ms())
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn list_secrets(&self, plugin_id: &str) -> DbResult<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT key, value_encrypted FROM plugin_secrets WHERE plugin_id = ?")
                .bind(plugin_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }
}
