//! The OpenAPI 3.1 document of the HTTP API, generated from one table of operations whose
//! request and response bodies are the types of this crate (their JSON Schemas, under
//! `components/schemas`). Served at `GET /api/openapi.json`; a test validates real responses of
//! a running server against it.
//!
//! Every operation's bodies are typed: a new operation cannot be listed without naming the type
//! of its request and answer.

use crate::error::ErrorBody;
use crate::import as M;
use crate::instances as I;
use crate::lifecycle as L;
use crate::plugins;
use crate::runs as R;
use crate::skills as S;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

/// Writes a type's schema into a generator and returns a reference to it.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a `$ref` into `components/schemas` for named types).
fn json<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A request or response body.
#[derive(Clone, Copy)]
pub enum Body {
    /// No body.
    Empty,
    /// JSON of this type.
    Json(SchemaFn),
    /// A plugin package: the raw bytes of a `.tgz` or `.wasm`, or a multipart form with the
    /// file (50 MiB max).
    Package,
    /// Plain text.
    Text,
    /// Bytes whose format belongs to someone else: a platform's webhook delivery (verified
    /// and parsed by the integration plugin, answered as it decides), or this document.
    Opaque,
}

/// One operation of the API.
pub struct Operation {
    /// `get`, `post`, `put`, `patch` or `delete`.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// Group in the document.
    pub tag: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Status of success.
    pub status: u16,
    /// The query string's type, if the operation reads one (its fields become query parameters).
    pub query: Option<SchemaFn>,
    /// The request body.
    pub request: Body,
    /// The success response body.
    pub response: Body,
}

/// Every operation of the API.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/healthz",
        tag: "health",
        summary: "Liveness probe",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Text,
    },
    Operation {
        method: "get",
        path: "/readyz",
        tag: "health",
        summary: "Readiness probe: a database write within 2 s and free disk (503 not_ready with Retry-After otherwise)",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<crate::health::Readiness>),
    },
    Operation {
        method: "get",
        path: "/api/openapi.json",
        tag: "health",
        summary: "This document",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Opaque,
    },
    Operation {
        method: "post",
        path: "/api/webhooks/plugins/{integrationType}/{instanceId}",
        tag: "webhooks",
        summary: "A platform webhook for an integration instance (1 MiB max; 202 work item, 200 duplicate/ignored/plugin response, 401 bad signature, 404 unknown instance, 413, 502 plugin failure, 503 unavailable)",
        status: 202,
        query: None,
        request: Body::Opaque,
        response: Body::Opaque,
    },
    Operation {
        method: "get",
        path: "/api/admin/plugins",
        tag: "plugins",
        summary: "Installed plugins with runtime posture (executionMode, declaredCapabilities, hostEnforcedControls, effectiveLimitations)",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<plugins::PluginList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/install",
        tag: "plugins",
        summary: "Install from a local directory, an npm package or a git repository ({sourceKind, sourceRef, options}); starts disabled",
        status: 201,
        query: None,
        request: Body::Json(json::<L::InstallRequest>),
        response: Body::Json(json::<L::InstallReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/install/npm",
        tag: "plugins",
        summary: "Install an npm package ({sourceRef: name@range, options}); starts disabled",
        status: 201,
        query: None,
        request: Body::Json(json::<L::InstallRequest>),
        response: Body::Json(json::<L::InstallReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/install/git",
        tag: "plugins",
        summary: "Install from a git repository ({sourceRef: url#ref, options}); starts disabled",
        status: 201,
        query: None,
        request: Body::Json(json::<L::InstallRequest>),
        response: Body::Json(json::<L::InstallReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/preview",
        tag: "plugins",
        summary: "Preview a local, npm or git package: identity, permissions, contributions, trust verdict, permission diff; nothing installed",
        status: 200,
        query: None,
        request: Body::Json(json::<L::InstallRequest>),
        response: Body::Json(json::<L::Preview>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/preview/upload",
        tag: "plugins",
        summary: "Preview an uploaded .tgz or .wasm; nothing installed",
        status: 200,
        query: None,
        request: Body::Package,
        response: Body::Json(json::<L::Preview>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/upload",
        tag: "plugins",
        summary: "Install an uploaded .tgz or .wasm (50 MiB max); starts disabled",
        status: 201,
        query: None,
        request: Body::Package,
        response: Body::Json(json::<L::InstallReport>),
    },
    Operation {
        method: "get",
        path: "/api/admin/plugins/{id}",
        tag: "plugins",
        summary: "One plugin with its disclosures and grant state",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<plugins::PluginDetail>),
    },
    Operation {
        method: "get",
        path: "/api/admin/plugins/{id}/events",
        tag: "plugins",
        summary: "Receipts, newest first, cursor paginated (limit, cursor), filtered by kind and status",
        status: 200,
        query: Some(json::<plugins::EventsQuery>),
        request: Body::Empty,
        response: Body::Json(json::<plugins::EventPage>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/grants",
        tag: "plugins",
        summary: "Grant declared permissions",
        status: 200,
        query: None,
        request: Body::Json(json::<plugins::GrantRequest>),
        response: Body::Json(json::<plugins::GrantResponse>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/revoke",
        tag: "plugins",
        summary: "Withdraw grants of declared permissions (a loaded plugin is reloaded without them)",
        status: 200,
        query: None,
        request: Body::Json(json::<plugins::GrantRequest>),
        response: Body::Json(json::<plugins::RevokeResponse>),
    },
    Operation {
        method: "put",
        path: "/api/admin/plugins/{id}/secrets/{key}",
        tag: "plugins",
        summary: "Set a declared secret (stored encrypted)",
        status: 200,
        query: None,
        request: Body::Json(json::<plugins::SecretRequest>),
        response: Body::Empty,
    },
    Operation {
        method: "put",
        path: "/api/admin/plugins/{id}/limits",
        tag: "plugins",
        summary: "Set the operator's instruction budget per call for a plugin (null: manifest or defaults)",
        status: 200,
        query: None,
        request: Body::Json(json::<plugins::LimitsRequest>),
        response: Body::Json(json::<plugins::LimitsResponse>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/enable",
        tag: "plugins",
        summary: "Enable (third-party plugins need {\"consent\": true})",
        status: 200,
        query: None,
        request: Body::Json(json::<plugins::EnableRequest>),
        response: Body::Json(json::<plugins::EnableResponse>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/disable",
        tag: "plugins",
        summary: "Disable: stops the plugin at once",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<plugins::EnableResponse>),
    },
    Operation {
        method: "get",
        path: "/api/admin/plugins/{id}/versions",
        tag: "lifecycle",
        summary: "Installed, active and pending versions",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<L::VersionList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/upgrade",
        tag: "lifecycle",
        summary: "Upgrade from a local, npm or git source (empty body: the source it was installed from): activated, or pending_consent with addedPermissions",
        status: 200,
        query: None,
        request: Body::Json(json::<L::InstallRequest>),
        response: Body::Json(json::<L::UpgradeReport>),
    },
    Operation {
        method: "delete",
        path: "/api/admin/plugins/{id}/upgrade",
        tag: "lifecycle",
        summary: "Discard the pending upgrade",
        status: 204,
        query: None,
        request: Body::Empty,
        response: Body::Empty,
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/upgrade/upload",
        tag: "lifecycle",
        summary: "Upgrade from an uploaded package",
        status: 200,
        query: None,
        request: Body::Package,
        response: Body::Json(json::<L::UpgradeReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/upgrade/approve",
        tag: "lifecycle",
        summary: "Consent to exactly the added permissions and activate",
        status: 200,
        query: None,
        request: Body::Json(json::<L::ApproveRequest>),
        response: Body::Json(json::<L::UpgradeReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/rollback",
        tag: "lifecycle",
        summary: "Activate an installed older version",
        status: 200,
        query: None,
        request: Body::Json(json::<L::RollbackRequest>),
        response: Body::Json(json::<L::RollbackResponse>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/reload",
        tag: "lifecycle",
        summary: "Re-read a plugin installed from a local directory (a rebuild of the same version)",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<L::ReloadReport>),
    },
    Operation {
        method: "post",
        path: "/api/admin/plugins/{id}/uninstall",
        tag: "lifecycle",
        summary: "Uninstall (purgeFiles, purgeData); not built-ins",
        status: 200,
        query: None,
        request: Body::Json(json::<L::UninstallRequest>),
        response: Body::Json(json::<L::UninstallResponse>),
    },
    Operation {
        method: "get",
        path: "/api/admin/plugins/{id}/doctor",
        tag: "lifecycle",
        summary: "One plugin's health and what to do about each problem",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<L::PluginHealth>),
    },
    Operation {
        method: "get",
        path: "/api/admin/metrics",
        tag: "health",
        summary: "Webhook answer times and two of their stages (histograms) and answers by status class, in the Prometheus text format",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Text,
    },
    Operation {
        method: "get",
        path: "/api/admin/doctor",
        tag: "lifecycle",
        summary: "Every plugin's health",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<L::HealthReport>),
    },
    Operation {
        method: "put",
        path: "/api/admin/plugins/{id}/hooks/{hook}",
        tag: "hooks",
        summary: "Override a hook registration (priority, failPolicy, timeoutMs, enabled)",
        status: 200,
        query: None,
        request: Body::Json(json::<R::HookOverride>),
        response: Body::Json(json::<R::HookOverrideResponse>),
    },
    Operation {
        method: "delete",
        path: "/api/admin/plugins/{id}/hooks/{hook}",
        tag: "hooks",
        summary: "Restore the manifest's registration",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::HookOverrideResponse>),
    },
    Operation {
        method: "get",
        path: "/api/admin/hooks",
        tag: "hooks",
        summary: "The hook table in dispatch order",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::HookTableView>),
    },
    Operation {
        method: "get",
        path: "/api/admin/integration-types",
        tag: "instances",
        summary: "Integration types with JSON Schema, UI hints, sensitive fields",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::IntegrationTypeList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/import/nitejar",
        tag: "instances",
        summary: "Import a Nitejar database: instances (same ids and webhook URLs), agent assignments, work items and idempotency keys; third-party plugins reported (dryRun: write nothing)",
        status: 200,
        query: None,
        request: Body::Json(json::<M::ImportRequest>),
        response: Body::Json(json::<M::ImportReport>),
    },
    Operation {
        method: "get",
        path: "/api/admin/instances",
        tag: "instances",
        summary: "Integration instances (secrets redacted)",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::InstanceList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/instances",
        tag: "instances",
        summary: "Create an instance (schema + validate-config; enabled only after test-connection)",
        status: 201,
        query: None,
        request: Body::Json(json::<I::CreateInstanceRequest>),
        response: Body::Json(json::<I::Instance>),
    },
    Operation {
        method: "post",
        path: "/api/admin/instances/test",
        tag: "instances",
        summary: "Test an unsaved config",
        status: 200,
        query: None,
        request: Body::Json(json::<I::TestConfigRequest>),
        response: Body::Json(json::<I::ConnectionCheck>),
    },
    Operation {
        method: "get",
        path: "/api/admin/instances/{id}",
        tag: "instances",
        summary: "One instance",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::Instance>),
    },
    Operation {
        method: "patch",
        path: "/api/admin/instances/{id}",
        tag: "instances",
        summary: "Partial update (null removes; ******** keeps a secret)",
        status: 200,
        query: None,
        request: Body::Json(json::<I::UpdateInstanceRequest>),
        response: Body::Json(json::<I::Instance>),
    },
    Operation {
        method: "delete",
        path: "/api/admin/instances/{id}",
        tag: "instances",
        summary: "Delete (work items stay)",
        status: 204,
        query: None,
        request: Body::Empty,
        response: Body::Empty,
    },
    Operation {
        method: "post",
        path: "/api/admin/instances/{id}/enable",
        tag: "instances",
        summary: "Enable after a passing connection test",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::Instance>),
    },
    Operation {
        method: "post",
        path: "/api/admin/instances/{id}/disable",
        tag: "instances",
        summary: "Disable (webhooks answer 404)",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::Instance>),
    },
    Operation {
        method: "post",
        path: "/api/admin/instances/{id}/test",
        tag: "instances",
        summary: "Test the stored config",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::ConnectionCheck>),
    },
    Operation {
        method: "get",
        path: "/api/admin/instances/{id}/work-items",
        tag: "runs",
        summary: "Work items of an instance",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<I::WorkItemList>),
    },
    Operation {
        method: "put",
        path: "/api/admin/instances/{id}/agent",
        tag: "runs",
        summary: "Assign the agent that answers an instance",
        status: 200,
        query: None,
        request: Body::Json(json::<R::AssignAgentRequest>),
        response: Body::Json(json::<R::AssignAgentResponse>),
    },
    Operation {
        method: "get",
        path: "/api/admin/agents",
        tag: "runs",
        summary: "Agents",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::AgentList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/agents",
        tag: "runs",
        summary: "Create an agent (name, systemPrompt, team, model)",
        status: 201,
        query: None,
        request: Body::Json(json::<R::AgentRequest>),
        response: Body::Json(json::<R::Agent>),
    },
    Operation {
        method: "get",
        path: "/api/admin/agents/{id}",
        tag: "runs",
        summary: "One agent",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::Agent>),
    },
    Operation {
        method: "put",
        path: "/api/admin/agents/{id}",
        tag: "runs",
        summary: "Replace an agent's fields",
        status: 200,
        query: None,
        request: Body::Json(json::<R::AgentRequest>),
        response: Body::Json(json::<R::Agent>),
    },
    Operation {
        method: "get",
        path: "/api/admin/agents/{id}/skills",
        tag: "skills",
        summary: "The skills a run of this agent on an instance gets (instance=)",
        status: 200,
        query: Some(json::<S::ResolveQuery>),
        request: Body::Empty,
        response: Body::Json(json::<S::ResolvedSkills>),
    },
    Operation {
        method: "get",
        path: "/api/admin/work-items",
        tag: "runs",
        summary: "Work items of every instance, newest first, filtered by instance and status, cursor paginated",
        status: 200,
        query: Some(json::<I::WorkItemsQuery>),
        request: Body::Empty,
        response: Body::Json(json::<I::WorkItemPage>),
    },
    Operation {
        method: "get",
        path: "/api/admin/work-items/{id}/run",
        tag: "runs",
        summary: "A run: job, steps, receipts in order, delivery",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::RunView>),
    },
    Operation {
        method: "get",
        path: "/api/admin/jobs/{id}",
        tag: "runs",
        summary: "A run by job id",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<R::RunView>),
    },
    Operation {
        method: "get",
        path: "/api/admin/skills",
        tag: "skills",
        summary: "Skills (source, scope, ref filters)",
        status: 200,
        query: Some(json::<S::SkillsQuery>),
        request: Body::Empty,
        response: Body::Json(json::<S::SkillList>),
    },
    Operation {
        method: "post",
        path: "/api/admin/skills",
        tag: "skills",
        summary: "Create an admin skill",
        status: 201,
        query: None,
        request: Body::Json(json::<S::CreateSkillRequest>),
        response: Body::Json(json::<S::Skill>),
    },
    Operation {
        method: "post",
        path: "/api/admin/skills/sync",
        tag: "skills",
        summary: "Re-read the repository skills directory",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<S::SyncReport>),
    },
    Operation {
        method: "get",
        path: "/api/admin/skills/{id}",
        tag: "skills",
        summary: "One skill with content and files",
        status: 200,
        query: None,
        request: Body::Empty,
        response: Body::Json(json::<S::Skill>),
    },
    Operation {
        method: "patch",
        path: "/api/admin/skills/{id}",
        tag: "skills",
        summary: "Edit an admin skill; enable/disable any skill",
        status: 200,
        query: None,
        request: Body::Json(json::<S::UpdateSkillRequest>),
        response: Body::Json(json::<S::Skill>),
    },
    Operation {
        method: "delete",
        path: "/api/admin/skills/{id}",
        tag: "skills",
        summary: "Delete an admin skill",
        status: 204,
        query: None,
        request: Body::Empty,
        response: Body::Empty,
    },
    Operation {
        method: "post",
        path: "/api/admin/skills/{id}/assignments",
        tag: "skills",
        summary: "Assign or unassign (setSkillAssignment: scope, ref, assigned)",
        status: 200,
        query: None,
        request: Body::Json(json::<S::AssignSkillRequest>),
        response: Body::Json(json::<S::Skill>),
    },
];

/// The settings of the document's schemas: JSON Schema 2020-12 (what OpenAPI 3.1 uses), named
/// types under `components/schemas`.
fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.into_generator()
}

fn content(body: &Body, generator: &mut SchemaGenerator) -> Option<Value> {
    match body {
        Body::Empty => None,
        Body::Json(f) => Some(json!({ "application/json": { "schema": f(generator) } })),
        Body::Package => Some(json!({
            "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } },
            "multipart/form-data": { "schema": { "type": "object", "properties": { "file": { "type": "string", "contentMediaType": "application/octet-stream" } } } }
        })),
        Body::Text => Some(json!({ "text/plain": { "schema": { "type": "string" } } })),
        Body::Opaque => Some(json!({ "*/*": { "schema": {} } })),
    }
}

/// The query parameters of a query type: one per property of its (inlined) schema.
fn query_parameters(query: SchemaFn) -> Vec<Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let mut generator = settings.into_generator();
    let schema = query(&mut generator).to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, p)| {
                    json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "description": p.get("description").cloned().unwrap_or(Value::Null),
                        "schema": p,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The document.
pub fn document() -> Value {
    let mut generator = generator();
    let error = json::<ErrorBody>(&mut generator);
    let mut paths = Map::new();
    for op in OPERATIONS {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if let Some(query) = op.query {
            params.extend(query_parameters(query));
        }
        let mut success = json!({ "description": "success" });
        if let Some(c) = content(&op.response, &mut generator) {
            success["content"] = c;
        }
        let mut operation = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": format!("{}_{}", op.method, op.path.trim_start_matches('/').replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": {
                op.status.to_string(): success,
                "default": { "description": "error", "content": { "application/json": { "schema": error } } }
            }
        });
        if let Some(c) = content(&op.request, &mut generator) {
            operation["requestBody"] =
                json!({ "required": matches!(op.request, Body::Json(_)), "content": c });
        }
        if op.path.starts_with("/api/admin") {
            operation["security"] = json!([{ "bearerAuth": [] }]);
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = operation;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
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
            "schemas": schemas
        }
    })
}

/// The operation for `method` and `path` (as written in the table, `{param}` segments).
pub fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.method == method && o.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_operations_reference_schemas_the_document_defines() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "PluginList",
            "PluginDetail",
            "EventPage",
            "ErrorBody",
            "RuntimePosture",
        ] {
            assert!(
                schemas.contains_key(name),
                "{name} missing: {:?}",
                schemas.keys()
            );
        }
        let list = &doc["paths"]["/api/admin/plugins"]["get"];
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/PluginList"
        );
        let events = &doc["paths"]["/api/admin/plugins/{id}/events"]["get"]["parameters"];
        let names: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "cursor", "kind", "limit", "status"]);
        let resolve = &doc["paths"]["/api/admin/agents/{id}/skills"]["get"]["parameters"];
        assert_eq!(resolve[1]["name"], "instance");
        assert_eq!(resolve[1]["required"], true);
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = r.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target}"));
            assert!(schemas.contains_key(name), "dangling {target}");
        }
    }
}
