//! Plugins: packages, installation, bundled plugins and the registry of loaded ones.

pub mod bundled;
pub mod doctor;
pub mod installer;
pub mod lifecycle;
pub mod package;
pub mod registry;
pub mod sources;
pub mod trust;

use nitejar_api::plugins::{
    DeclaredContributions, DeclaredPermissions, HookDeclaration, HookDeclarationOptions,
};
use nitejar_sandbox::manifest::{HookEntry, Manifest};

/// The API's view of a manifest's declarations.
pub fn declarations(m: &Manifest) -> (DeclaredPermissions, DeclaredContributions) {
    let p = m.permissions.clone();
    let permissions = DeclaredPermissions {
        network: p.network,
        secrets: p.secrets,
        filesystem_read: p.filesystem_read,
        filesystem_write: p.filesystem_write,
        allow_process_spawn: p.allow_process_spawn,
    };
    let c = m.contributes.clone();
    let contributions = DeclaredContributions {
        integrations: c.integrations,
        hooks: c
            .hooks
            .into_iter()
            .map(|h| match h {
                HookEntry::Name(n) => HookDeclaration::Name(n),
                HookEntry::Detailed(o) => HookDeclaration::Detailed(HookDeclarationOptions {
                    event: o.event,
                    priority: o.priority,
                    fail_policy: o.fail_policy,
                    timeout_ms: o.timeout_ms,
                }),
            })
            .collect(),
        skills: c.skills,
        tools: c.tools,
    };
    (permissions, contributions)
}
