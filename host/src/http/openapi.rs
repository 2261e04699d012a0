//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`.
//!
//! Built from one table of operations (method, path, summary, success status); a test calls
//! every operation listed here against a running server to prove each one is routed.

use axum::Json;
use serde_json::{Map, Value, json};

/// (method, path, tag, summary, success status).
pub const OPERATIONS: &[(&str, &str, &str, &str, u16)] = &[
    ("get", "/healthz", "health", "Liveness probe", 200),
    ("get", "/api/openapi.json", "health", "This document", 200),
    (
        "post",
        "/api/webhooks/plugins/{integrationType}/{instanceId}",
        "webhooks",
        "A platform webhook for an integration instance (1 MiB max; 202 work item, 200 duplicate/ignored/plugin response, 401 bad signature, 404 unknown instance, 413, 502 plugin failure, 503 unavailable)",
        202,
    ),
    (
        "get",
        "/api/admin/plugins",
        "plugins",
        "Installed plugins with runtime posture (executionMode, declaredCapabilities, hostEnforcedControls, effectiveLimitations)",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/install",
        "plugins",
        "Install from a local directory, an npm package or a git repository ({sourceKind, sourceRef, options}); starts disabled",
        201,
    ),
    (
        "post",
        "/api/admin/plugins/install/npm",
        "plugins",
        "Install an npm package ({sourceRef: name@range, options}); starts disabled",
        201,
    ),
    (
        "post",
        "/api/admin/plugins/install/git",
        "plugins",
        "Install from a git repository ({sourceRef: url#ref, options}); starts disabled",
        201,
    ),
    (
        "post",
        "/api/admin/plugins/preview",
        "plugins",
        "Preview a local, npm or git package: identity, permissions, contributions, trust verdict, permission diff; nothing installed",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/preview/upload",
        "plugins",
        "Preview an uploaded .tgz or .wasm; nothing installed",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/upload",
        "plugins",
        "Install an uploaded .tgz or .wasm (50 MiB max); starts disabled",
        201,
    ),
    (
        "get",
        "/api/admin/plugins/{id}",
        "plugins",
        "One plugin with its disclosures and grant state",
        200,
    ),
    (
        "get",
        "/api/admin/plugins/{id}/events",
        "plugins",
        "Receipts, newest first, cursor paginated (limit, cursor)",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/grants",
        "plugins",
        "Grant declared permissions",
        200,
    ),
    (
        "put",
        "/api/admin/plugins/{id}/secrets/{key}",
        "plugins",
        "Set a declared secret (stored encrypted)",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/enable",
        "plugins",
        "Enable (third-party plugins need {\"consent\": true})",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/disable",
        "plugins",
        "Disable: stops the plugin at once",
        200,
    ),
    (
        "get",
        "/api/admin/plugins/{id}/versions",
        "lifecycle",
        "Installed, active and pending versions",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/upgrade",
        "lifecycle",
        "Upgrade from a local, npm or git source (empty body: the source it was installed from): activated, or pending_consent with addedPermissions",
        200,
    ),
    (
        "delete",
        "/api/admin/plugins/{id}/upgrade",
        "lifecycle",
        "Discard the pending upgrade",
        204,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/upgrade/upload",
        "lifecycle",
        "Upgrade from an uploaded package",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/upgrade/approve",
        "lifecycle",
        "Consent to exactly the added permissions and activate",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/rollback",
        "lifecycle",
        "Activate an installed older version",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/reload",
        "lifecycle",
        "Re-read a plugin installed from a local directory (a rebuild of the same version)",
        200,
    ),
    (
        "post",
        "/api/admin/plugins/{id}/uninstall",
        "lifecycle",
        "Uninstall (purgeFiles, purgeData); not built-ins",
        200,
    ),
    (
        "get",
        "/api/admin/plugins/{id}/doctor",
        "lifecycle",
        "One plugin's health and what to do about each problem",
        200,
    ),
    (
        "get",
        "/api/admin/doctor",
        "lifecycle",
        "Every plugin's health",
        200,
    ),
    (
        "put",
        "/api/admin/plugins/{id}/hooks/{hook}",
        "hooks",
        "Override a hook registration (priority, failPolicy, timeoutMs, enabled)",
        200,
    ),
    (
        "delete",
        "/api/admin/plugins/{id}/hooks/{hook}",
        "hooks",
        "Restore the manifest's registration",
        200,
    ),
    (
        "get",
        "/api/admin/hooks",
        "hooks",
        "The hook table in dispatch order",
        200,
    ),
    (
        "get",
        "/api/admin/integration-types",
        "instances",
        "Integration types with JSON Schema, UI hints, sensitive fields",
        200,
    ),
    (
        "get",
        "/api/admin/instances",
        "instances",
        "Integration instances (secrets redacted)",
        200,
    ),
    (
        "post",
        "/api/admin/instances",
        "instances",
        "Create an instance (schema + validate-config; enabled only after test-connection)",
        201,
    ),
    (
        "post",
        "/api/admin/instances/test",
        "instances",
        "Test an unsaved config",
        200,
    ),
    (
        "get",
        "/api/admin/instances/{id}",
        "instances",
        "One instance",
        200,
    ),
    (
        "patch",
        "/api/admin/instances/{id}",
        "instances",
        "Partial update (null removes; ******** keeps a secret)",
        200,
    ),
    (
        "delete",
        "/api/admin/instances/{id}",
        "instances",
        "Delete (work items stay)",
        204,
    ),
    (
        "post",
        "/api/admin/instances/{id}/enable",
        "instances",
        "Enable after a passing connection test",
        200,
    ),
    (
        "post",
        "/api/admin/instances/{id}/disable",
        "instances",
        "Disable (webhooks answer 404)",
        200,
    ),
    (
        "post",
        "/api/admin/instances/{id}/test",
        "instances",
        "Test the stored config",
        200,
    ),
    (
        "get",
        "/api/admin/instances/{id}/work-items",
        "runs",
        "Work items of an instance",
        200,
    ),
    (
        "put",
        "/api/admin/instances/{id}/agent",
        "runs",
        "Assign the agent that answers an instance",
        200,
    ),
    ("get", "/api/admin/agents", "runs", "Agents", 200),
    (
        "post",
        "/api/admin/agents",
        "runs",
        "Create an agent (name, systemPrompt, team, model)",
        201,
    ),
    ("get", "/api/admin/agents/{id}", "runs", "One agent", 200),
    (
        "put",
        "/api/admin/agents/{id}",
        "runs",
        "Replace an agent's fields",
        200,
    ),
    (
        "get",
        "/api/admin/agents/{id}/skills",
        "skills",
        "The skills a run of this agent on an instance gets (instance=)",
        200,
    ),
    (
        "get",
        "/api/admin/work-items/{id}/run",
        "runs",
        "A run: job, steps, receipts in order, delivery",
        200,
    ),
    (
        "get",
        "/api/admin/jobs/{id}",
        "runs",
        "A run by job id",
        200,
    ),
    (
        "get",
        "/api/admin/skills",
        "skills",
        "Skills (source, scope, ref filters)",
        200,
    ),
    (
        "post",
        "/api/admin/skills",
        "skills",
        "Create an admin skill",
        201,
    ),
    (
        "post",
        "/api/admin/skills/sync",
        "skills",
        "Re-read the repository skills directory",
        200,
    ),
    (
        "get",
        "/api/admin/skills/{id}",
        "skills",
        "One skill with content and files",
        200,
    ),
    (
        "patch",
        "/api/admin/skills/{id}",
        "skills",
        "Edit an admin skill; enable/disable any skill",
        200,
    ),
    (
        "delete",
        "/api/admin/skills/{id}",
        "skills",
        "Delete an admin skill",
        204,
    ),
    (
        "post",
        "/api/admin/skills/{id}/assignments",
        "skills",
        "Assign or unassign (setSkillAssignment: scope, ref, assigned)",
        200,
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary, status) in OPERATIONS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "operationId": format!("{method}_{}", path.trim_start_matches('/').replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": {
                status.to_string(): { "description": "success", "content": { "application/json": { "schema": {} } } },
                "default": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if matches!(*method, "post" | "put" | "patch") {
            op["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        if path.starts_with("/api/admin") {
            op["security"] = json!([{ "bearerAuth": [] }]);
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Nitejar plugin host",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Admin API (bearer token) and webhook endpoints. Errors are {\"error\": {\"code\", \"message\"}}; client mistakes are 4xx, never 500."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": { "error": { "type": "object", "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" } } } }
                }
            }
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}
