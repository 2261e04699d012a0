//! Skills: instructions for the agent from the skills directory, plugins and the admin API.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a skill is offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillAssignment {
    /// `global`, `team`, `agent` or `integration_type`.
    pub scope: String,
    /// Team name, agent id or integration type (empty for `global`).
    #[serde(rename = "ref")]
    pub scope_ref: String,
}

/// A skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    /// Stable id: `repo:<name>`, `plugin:<plugin-id>:<skill-id>`, `admin:<uuid>`.
    pub skill_id: String,
    /// Name (the alias `use_skill` accepts).
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// `repo`, `plugin` or `admin`.
    pub source: String,
    /// Owning plugin (plugin skills).
    pub plugin_id: Option<String>,
    /// Owning plugin version (plugin skills).
    pub plugin_version: Option<String>,
    /// Markdown content (one skill's answers only, not listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// sha256 of content and files.
    pub checksum: String,
    /// Whether it is offered at all.
    pub enabled: bool,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// Whether its source can serve it now (a plugin skill needs its plugin loaded).
    pub available: bool,
    /// The stable id of the skill of the same name that takes precedence (admin > repo > plugin).
    pub shadowed_by: Option<String>,
    /// Where it is offered.
    pub assignments: Vec<SkillAssignment>,
    /// Paths of the files beside its content.
    pub files: Vec<String>,
}

/// `GET /skills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillList {
    /// The skills, by name.
    pub skills: Vec<Skill>,
}

/// Query of `GET /skills`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillsQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only skills assigned in this scope.
    pub scope: Option<String>,
    /// ... with this reference.
    #[serde(rename = "ref")]
    pub scope_ref: Option<String>,
}

fn yes() -> bool {
    true
}

/// `POST /skills`: an admin skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSkillRequest {
    /// 1-64 lower-case letters, digits, `-`, `_` or `.`; unique among admin skills.
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Markdown content (1 byte to 256 KiB).
    pub content: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Offered at once (default).
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `PATCH /skills/{id}`: only admin skills can be edited; any skill can be enabled or disabled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSkillRequest {
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Offered or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `POST /skills/{id}/assignments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignSkillRequest {
    /// `global`, `team`, `agent` or `integration_type`.
    pub scope: String,
    /// Team name, agent id or integration type (empty for `global`).
    #[serde(default, rename = "ref")]
    pub scope_ref: String,
    /// `false` removes the assignment.
    #[serde(default = "yes")]
    pub assigned: bool,
}

/// What a skills-directory sync did: `POST /skills/sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncReport {
    /// Skills found and stored.
    pub synced: Vec<String>,
    /// Repository skills removed because their directory is gone.
    pub removed: Vec<String>,
    /// Directories that could not be read as skills, with why.
    pub problems: Vec<String>,
}

/// A skill a run would get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSkill {
    /// Stable id.
    pub skill_id: String,
    /// Name.
    pub name: String,
    /// Source.
    pub source: String,
}

/// `GET /agents/{id}/skills?instance=`: the skills a run of that agent on that instance gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResolvedSkills {
    /// By name.
    pub skills: Vec<ResolvedSkill>,
}

/// Query of `GET /agents/{id}/skills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveQuery {
    /// The integration instance.
    pub instance: String,
}
