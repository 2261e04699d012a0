//! The API's views of stored rows, shared by the handlers that answer with them.

use nitejar_api::instances::WorkItem;
use nitejar_api::plugins::Receipt;
use nitejar_store::{EventRow, WorkItemRow};

/// A stored receipt as the API shows it.
pub fn receipt(e: EventRow) -> Receipt {
    Receipt {
        id: e.id,
        plugin_id: e.plugin_id,
        plugin_version: e.plugin_version,
        kind: e.kind,
        status: e.status,
        work_item_id: e.work_item_id,
        job_id: e.job_id,
        hook_name: e.hook_name,
        duration_ms: e.duration_ms,
        execution_mode: e.execution_mode,
        detail_json: e.detail_json,
        created_at: e.created_at,
    }
}

/// A stored work item as the API shows it.
pub fn work_item(w: WorkItemRow) -> WorkItem {
    WorkItem {
        id: w.id,
        plugin_instance_id: w.plugin_instance_id,
        integration_type: w.integration_type,
        title: w.title,
        text: w.text,
        session_key: w.session_key,
        source_ref: w.source_ref,
        command: w.command,
        payload_json: w.payload_json,
        status: w.status,
        created_at: w.created_at,
    }
}
