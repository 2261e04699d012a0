//! SQL of imported rows.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_instance(&self, i: &ImportedInstance) -> DbResult<bool> {
        let _forget = self.instances.writing(&i.id);
        let written = sqlx::query(
            "INSERT INTO plugin_instances (id, plugin_id, type, name, config_json, enabled,
               created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(&i.id)
        .bind(&i.plugin_id)
        .bind(&i.integration_type)
        .bind(&i.name)
        .bind(&i.config_json)
        .bind(i.enabled)
        .bind(i.created_at)
        .bind(i.updated_at)
        .execute(&mut *self.writer.get().await?)
        .await?
        .rows_affected();
        Ok(written > 0)
    }

    async fn import_work_item(
        &self,
        w: &ImportedWorkItem,
        idempotency_keys: &[String],
    ) -> DbResult<ImportedCounts> {
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
        let created = sqlx::query(
            "INSERT INTO work_items (id, plugin_instance_id, integration_type, title, text,
               session_key, source_ref, payload_json, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(&w.id)
        .bind(&w.plugin_instance_id)
        .bind(&w.integration_type)
        .bind(&w.title)
        .bind(&w.text)
        .bind(&w.session_key)
        .bind(&w.source_ref)
        .bind(&w.payload_json)
        .bind(&w.status)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let mut keys_created = 0;
        for key in idempotency_keys {
            keys_created += sqlx::query(
                "INSERT INTO idempotency_keys (plugin_instance_id, key, work_item_id, created_at)
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&w.plugin_instance_id)
            .bind(key)
            .bind(&w.id)
            .bind(w.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(ImportedCounts {
            work_item_created: created,
            keys_created,
        })
    }
}
