//! The tools a run offers the model: the host's built-ins and the enabled plugins' tools.
//!
//! Names are unique in a run: built-ins come first, then plugin tools in plugin-id order; a
//! plugin tool whose name is already taken is left out (with a warning), never silently
//! replacing another.

use nitejar_sandbox::runtime::LoadedPlugin;
use serde_json::{Value, json};
use std::sync::Arc;

/// A host built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `current_time`: the host's clock.
    CurrentTime,
    /// `use_skill`: a skill's content (run by the run itself, which holds its skills).
    UseSkill,
}

impl Builtin {
    /// Runs the tool (they are quick and local).
    pub fn run(self, _input: &Value) -> (String, bool) {
        match self {
            Builtin::UseSkill => ("error: no skills in this run".into(), true),
            Builtin::CurrentTime => {
                let ms = nitejar_store::now_ms();
                (
                    json!({ "unixMs": ms, "unixSeconds": ms / 1000 }).to_string(),
                    false,
                )
            }
        }
    }
}

/// Who runs a tool.
#[derive(Clone)]
pub enum ToolTarget {
    /// The host.
    Builtin(Builtin),
    /// A plugin (in the run's instance).
    Plugin(Arc<LoadedPlugin>),
}

/// One tool offered to the model.
#[derive(Clone)]
pub struct ToolEntry {
    /// Name the model uses.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the input.
    pub parameters: Value,
    /// Who runs it.
    pub target: ToolTarget,
}

/// The tools of one run.
#[derive(Clone, Default)]
pub struct ToolCatalog {
    entries: Vec<ToolEntry>,
}

impl ToolCatalog {
    /// Built-ins (`use_skill` when the run has skills) plus the tools of `plugins`.
    pub fn build(plugins: &[Arc<LoadedPlugin>], with_skills: bool) -> ToolCatalog {
        let mut entries = vec![ToolEntry {
            name: "current_time".into(),
            description: "The current time on the host (Unix milliseconds and seconds).".into(),
            parameters: json!({ "type": "object", "properties": {}, "additionalProperties": false }),
            target: ToolTarget::Builtin(Builtin::CurrentTime),
        }];
        if with_skills {
            entries.push(ToolEntry {
                name: "use_skill".into(),
                description: "Read one of the skills listed in the system prompt: its instructions and the names of its files.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": { "skill": { "type": "string", "description": "The skill's name or stable id" } },
                    "required": ["skill"],
                    "additionalProperties": false
                }),
                target: ToolTarget::Builtin(Builtin::UseSkill),
            });
        }
        for p in plugins {
            for t in &p.tools {
                if entries.iter().any(|e| e.name == t.name) {
                    tracing::warn!(
                        plugin_id = %p.id(),
                        tool = %t.name,
                        "tool name already taken; this plugin's tool is not offered"
                    );
                    continue;
                }
                let parameters = serde_json::from_str(&t.parameters)
                    .unwrap_or_else(|_| json!({ "type": "object" }));
                entries.push(ToolEntry {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters,
                    target: ToolTarget::Plugin(p.clone()),
                });
            }
        }
        ToolCatalog { entries }
    }

    /// The tools in OpenAI `tools` format.
    pub fn openai_tools(&self) -> Vec<Value> {
        self.entries
            .iter()
            .map(|e| {
                json!({
                    "type": "function",
                    "function": {
                        "name": e.name,
                        "description": e.description,
                        "parameters": e.parameters,
                    }
                })
            })
            .collect()
    }

    /// The tool named `name`.
    pub fn find(&self, name: &str) -> Option<&ToolEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The plugins that provide tools (they may add a system-prompt section).
    pub fn providers(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut out: Vec<Arc<LoadedPlugin>> = Vec::new();
        for e in &self.entries {
            if let ToolTarget::Plugin(p) = &e.target
                && !out.iter().any(|o| Arc::ptr_eq(o, p))
            {
                out.push(p.clone());
            }
        }
        out
    }
}
