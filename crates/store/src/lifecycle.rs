//! SQL of the plugin lifecycle beyond install: staged versions, activation of a version
//! (upgrade and rollback), pending upgrades, and uninstall (migration `0003_lifecycle.sql`).

use super::{Db, DbResult, now_ms};
use sqlx::FromRow;

/// A `plugin_versions` row.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRow {
    /// Plugin id.
    pub plugin_id: String,
    /// Version.
    pub version: String,
    /// sha256 of the component.
    pub checksum: String,
    /// Version directory.
    pub install_path: String,
    /// The version's manifest.
    #[serde(skip)]
    pub manifest_json: String,
    /// WIT API version.
    pub api_version: String,
    /// When it was installed.
    pub installed_at: i64,
    /// The package signature and the digests it covers (shown as `signed`).
    #[serde(skip)]
    pub signature_json: Option<String>,
    /// Where it came from: `{"kind", "ref", "commit"}`.
    #[serde(rename = "source", serialize_with = "as_json")]
    pub source_json: Option<String>,
}

/// Serializes a JSON text column as the JSON it holds.
fn as_json<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    v.as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .serialize(s)
}

/// What an uninstall removes besides the plugin's rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Purge {
    /// Plugin data: key-value storage and operator-set secret values.
    pub data: bool,
}

/// Writes a version row and its artifact (install and staged upgrade share it).
pub(super) async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    v: &super::InstallRecord<'_>,
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

impl Db {
    /// Records a version beside the active one (files are already in place), with its artifact;
    /// the plugin row (active version, source) is not touched.
    pub async fn record_version(&self, v: &super::InstallRecord<'_>) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_version(&mut tx, v, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every installed version of a plugin.
    pub async fn list_versions(&self, plugin_id: &str) -> DbResult<Vec<VersionRow>> {
        Ok(sqlx::query_as(
            "SELECT plugin_id, version, checksum, install_path, manifest_json, api_version, installed_at,
                    signature_json, source_json
             FROM plugin_versions WHERE plugin_id = ? ORDER BY installed_at",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One installed version.
    pub async fn get_version(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> DbResult<Option<VersionRow>> {
        Ok(sqlx::query_as(
            "SELECT plugin_id, version, checksum, install_path, manifest_json, api_version, installed_at,
                    signature_json, source_json
             FROM plugin_versions WHERE plugin_id = ? AND version = ?",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Makes `v` the active version (and clears any pending upgrade), in one statement.
    pub async fn set_active_version(&self, v: &VersionRow) -> DbResult<()> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the trust level the policy in force gives the active version.
    pub async fn set_trust_level(&self, plugin_id: &str, level: &str) -> DbResult<()> {
        sqlx::query("UPDATE plugins SET trust_level = ? WHERE id = ? AND trust_level != 'builtin'")
            .bind(level)
            .bind(plugin_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The staged version waiting for consent, if any.
    pub async fn pending_version(&self, plugin_id: &str) -> DbResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT pending_version FROM plugins WHERE id = ?")
                .bind(plugin_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Sets or clears the staged version waiting for consent.
    pub async fn set_pending_version(
        &self,
        plugin_id: &str,
        version: Option<&str>,
    ) -> DbResult<()> {
        sqlx::query("UPDATE plugins SET pending_version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(now_ms())
            .bind(plugin_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Disables a plugin and records why (crash-loop protection), or clears the alert.
    pub async fn set_plugin_alert(&self, plugin_id: &str, alert: Option<&str>) -> DbResult<()> {
        let sql = if alert.is_some() {
            "UPDATE plugins SET alert_json = ?, enabled = 0, updated_at = ? WHERE id = ?"
        } else {
            "UPDATE plugins SET alert_json = ?, updated_at = ? WHERE id = ?"
        };
        sqlx::query(sql)
            .bind(alert)
            .bind(now_ms())
            .bind(plugin_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a plugin's rows (versions, artifacts, grants and hook overrides with it), and
    /// with `purge.data` its stored data and secret values. Receipts, integration instances,
    /// work items and runs are never touched.
    pub async fn delete_plugin(&self, plugin_id: &str, purge: Purge) -> DbResult<bool> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "plugin_versions",
            "plugin_artifacts",
            "plugin_disclosure_acks",
            "plugin_hook_overrides",
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
}
