//! Test plugin `test.skills`: one inline skill and one from a file in the package, so tests can
//! change a skill's content between versions by editing the package, not the component.

use nitejar_plugin_sdk::skills::{Skill, SkillSource};
use nitejar_plugin_sdk::{Contributions, Plugin, Skills, export_plugin};

struct SkillsPlugin;

impl Plugin for SkillsPlugin {
    fn contributions() -> Contributions {
        Contributions {
            integrations: vec![],
            hooks: vec![],
            tools: vec![],
            skills: vec!["triage".into(), "deploy-checklist".into()],
        }
    }
}

impl Skills for SkillsPlugin {
    fn list_skills() -> Vec<Skill> {
        vec![
            Skill {
                id: "triage".into(),
                name: "triage".into(),
                description: Some("How to triage a new issue".into()),
                source: SkillSource::Inline(
                    "# Triage\n\nLabel it, reproduce it, link duplicates.".into(),
                ),
                tags: vec!["issues".into()],
                default_enabled: true,
            },
            Skill {
                id: "deploy-checklist".into(),
                name: "deploy-checklist".into(),
                description: Some("Steps before a production deploy".into()),
                source: SkillSource::File("skills/deploy-checklist.md".into()),
                tags: vec!["ops".into(), "deploy".into()],
                default_enabled: true,
            },
        ]
    }
}

export_plugin!(SkillsPlugin: Skills);
